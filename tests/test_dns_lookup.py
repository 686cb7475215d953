"""DNS lookups of downstream endpoints, against a tiny DNS server on loopback (dnspython builds replies)."""

from __future__ import annotations

import socket
import threading
from typing import Iterator, Optional

import dns.message
import dns.rcode
import dns.rrset
import pytest

from midoctor.facts.dns_lookup import is_ip_literal, resolve


class FakeDns:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            reply = self.answer(dns.message.from_wire(data))
            if reply is not None:
                self.sock.sendto(reply.to_wire(), peer)

    def answer(self, query: dns.message.Message) -> Optional[dns.message.Message]:
        if self.mode == "silent":
            return None
        response = dns.message.make_response(query)
        question = query.question[0]
        if self.mode == "nxdomain":
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif self.mode == "ok" and question.rdtype == dns.rdatatype.A:
            response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", "192.0.2.10"))
        return response

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def fake_dns() -> Iterator:
    servers = []

    def start(mode: str) -> FakeDns:
        servers.append(FakeDns(mode))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_resolves(fake_dns) -> None:
    server = fake_dns("ok")
    answer = resolve("management.azure.com", ["127.0.0.1"], server.port)
    assert answer.resolved and answer.addresses == ["192.0.2.10"]


def test_nxdomain(fake_dns) -> None:
    server = fake_dns("nxdomain")
    answer = resolve("management.azure.com", ["127.0.0.1"], server.port)
    assert (answer.resolved, answer.error) == (False, "nxdomain")


def test_silent_server_is_bounded(fake_dns) -> None:
    import time

    server = fake_dns("silent")
    started = time.monotonic()
    answer = resolve("management.azure.com", ["127.0.0.1"], server.port, timeout=0.5)
    assert answer.error == "timeout" and time.monotonic() - started < 1.5


def test_ip_literals_need_no_lookup() -> None:
    assert is_ip_literal("127.0.0.1") and is_ip_literal("[::1]") and not is_ip_literal("management.azure.com")
