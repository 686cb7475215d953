"""Hostile and broken answers: every one ends as a check result with a clear reason, never a traceback,
never a hang. Raw sockets on loopback play the broken servers; hypothesis drives the parsers."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Callable, Iterator, List

import pytest
from conftest import invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midoctor.config import NO_SELECTOR
from midoctor.facts.attached import parse_identity_block
from midoctor.facts.http import MAX_BODY_BYTES, Observation, _decode
from midoctor.facts.imds import Exchange, parse_token_response
from midoctor.rbac import decide, parse_operation
from midoctor.redact import token_summary

IMDS_HEADERS = "Server: IMDS/150.870.65.1854\r\nContent-Type: application/json; charset=utf-8\r\n"


class RawServer:
    """A TCP server on loopback whose every connection is handled by `respond(conn)`."""

    def __init__(self, respond: Callable[[socket.socket], None]) -> None:
        self.respond = respond
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.stopping = threading.Event()
        self.last_request = b""
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(10)
            self.last_request = conn.recv(65536)
            self.respond(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopping.set()
        self.sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], RawServer]]:
    servers: List[RawServer] = []

    def start(respond: Callable[[socket.socket], None]) -> RawServer:
        servers.append(RawServer(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def reply(status: str, body: bytes, headers: str = IMDS_HEADERS, length: int = -1) -> Callable[[socket.socket], None]:
    def respond(conn: socket.socket) -> None:
        size = len(body) if length < 0 else length
        conn.sendall(f"HTTP/1.1 {status}\r\n{headers}Content-Length: {size}\r\nConnection: close\r\n\r\n".encode()
                     + body)
    return respond


def run_imds_check(url: str) -> dict:
    run = invoke(["run", "--imds-url", url, "--arm-url", url, "--only", "imds-reachable", "--only",
                  "identity-attached", "--format", "json", "--timeout", "15"])
    assert run.report is not None, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    return {c["id"]: c for c in run.report["checks"]}


@pytest.mark.parametrize("name, respond, cause", [
    ("truncated", reply("200 OK", b'{"compute": {"name": "vm', length=500), "malformed-reply"),
    ("not json", reply("200 OK", b"<html>hello</html>"), "malformed-reply"),
    ("wrong types", reply("200 OK", b'{"compute": ["not", "an", "object"]}'), "malformed-reply"),
    ("duplicate keys", reply("200 OK", b'{"compute": {}, "compute": {"name": "x"}}'), "malformed-reply"),
    ("deeply nested", reply("200 OK", b'{"compute": ' + b"[" * 100000 + b"]" * 100000 + b"}"), "malformed-reply"),
    ("huge", reply("200 OK", b'{"compute": {"name": "' + b"x" * (MAX_BODY_BYTES * 4) + b'"}}'), "malformed-reply"),
    ("redirect", reply("302 Found", b"", headers=IMDS_HEADERS + "Location: http://127.0.0.1:1/evil\r\n"),
     "redirected"),
    ("empty reply", lambda conn: None, "impostor"),
    ("garbage bytes", lambda conn: conn.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n"), "impostor"),
    ("no server header", reply("200 OK", b'{"compute": {}}', headers="Content-Type: application/json\r\n"),
     "impostor"),
])
def test_broken_instance_answers_become_named_causes(raw_server, name: str, respond, cause: str) -> None:
    server = raw_server(respond)
    started = time.monotonic()
    checks = run_imds_check(server.url)
    assert time.monotonic() - started < 8
    result = checks["imds-reachable"]
    assert result["cause"] == cause, (name, result["summary"])
    assert result["status"] == "fail"
    # A redirect is reported, never followed.
    if name == "redirect":
        assert "not followed" in result["summary"]


def test_server_that_never_answers_is_bounded(raw_server) -> None:
    release = threading.Event()
    server = raw_server(lambda conn: release.wait(20))
    started = time.monotonic()
    checks = run_imds_check(server.url)
    release.set()
    assert time.monotonic() - started < 6
    assert checks["imds-reachable"]["cause"] == "no-answer"


def test_server_that_trickles_bytes_is_bounded(raw_server) -> None:
    def trickle(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\n{IMDS_HEADERS}Content-Length: 100000\r\n\r\n".encode())
        for _ in range(200):
            conn.sendall(b" ")
            time.sleep(0.1)

    server = raw_server(trickle)
    started = time.monotonic()
    checks = run_imds_check(server.url)
    assert time.monotonic() - started < 8
    assert checks["imds-reachable"]["cause"] == "no-answer"


@pytest.mark.parametrize("token_body, cause", [
    ({"access_token": 12345, "expires_in": ["x"], "client_id": {"a": 1}}, "malformed-reply"),
    ({"error": {"nested": True}, "error_description": 7}, "malformed-reply"),
    ({"error": "invalid_request", "error_description": "\u001b[31mred\u0000"}, "request-rejected"),
    ([1, 2, 3], "malformed-reply"),
])
def test_hostile_token_replies_are_clear_reasons(raw_server, token_body, cause: str) -> None:
    """Instance metadata fine, token answers of the wrong shape: identity-attached names it, no traceback."""
    holder: List[RawServer] = []
    instance = json.dumps({"compute": {"name": "vm1", "azEnvironment": "AzurePublicCloud"}}).encode()

    def respond(conn: socket.socket) -> None:
        is_token = b"/metadata/identity/oauth2/token" in holder[0].last_request.split(b"\r\n", 1)[0]
        status = "200 OK" if not isinstance(token_body, dict) or "error" not in token_body else "400 Bad Request"
        reply(status if is_token else "200 OK", json.dumps(token_body).encode() if is_token else instance)(conn)

    holder.append(raw_server(respond))
    checks = run_imds_check(holder[0].url)
    assert checks["imds-reachable"]["cause"] == "healthy"
    assert checks["identity-attached"]["cause"] == cause
    assert checks["identity-attached"]["status"] == "fail"


def _obs(status: int, body: bytes) -> Observation:
    obs = Observation(method="GET", url="http://x", status=status, headers={"server": "IMDS/1"})
    _decode(obs, body)
    return obs


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2048), st.sampled_from([200, 400, 404, 410, 429, 500]))
def test_token_parser_never_raises_on_bytes(body: bytes, status: int) -> None:
    result = parse_token_response("https://management.azure.com", NO_SELECTOR, Exchange([_obs(status, body)]))
    json.dumps(result.to_evidence())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["access_token", "error", "error_description", "error_codes", "client_id",
                                        "expires_in", "resource"]), json_values))
def test_token_parser_never_raises_on_shapes(body: dict) -> None:
    result = parse_token_response("r", NO_SELECTOR, Exchange([_obs(200, json.dumps(body).encode())]))
    json.dumps(result.to_evidence())
    assert "access_token" not in json.dumps(result.to_evidence()) or not isinstance(body.get("access_token"), str)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_token_summary_never_raises_and_never_echoes_the_token(token: str) -> None:
    summary = token_summary(token)
    if len(token) >= 24:
        assert token not in json.dumps(summary)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_identity_block_parser_never_raises(resource) -> None:
    parse_identity_block("/subscriptions/x", resource if isinstance(resource, dict) else {"identity": resource})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.lists(st.dictionaries(st.sampled_from(["actions", "notActions", "dataActions",
                                                                      "notDataActions"]), json_values), max_size=4))
def test_rbac_decide_never_raises(operation: str, entries) -> None:
    try:
        parsed = parse_operation(operation)
    except ValueError:  # "data:" with nothing after it: the CLI turns this into exit 2
        return
    decide(parsed, entries)


FAKE_JWT = ("eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + "eyJhdWQiOiJodHRwczovL21hbmFnZW1lbnQuYXp1cmUuY29tIiwib2lkIjoiMSJ9"
            + ".c2lnbmF0dXJlLW5vdC1yZWFsLXNpZ25hdHVyZQ")


@pytest.mark.parametrize("token_reply", [
    # Duplicate keys and a cut-off body are not parsed, so only an excerpt could reach the report.
    ('{"access_token":"' + FAKE_JWT + '","access_token":"' + FAKE_JWT + '","expires_in":"3599"}', -1),
    ('{"access_token":"' + FAKE_JWT + '","expires_in":"35', 400),
])
def test_unparsable_token_replies_never_leak_the_token(raw_server, token_reply) -> None:
    body, length = token_reply
    holder: List[RawServer] = []
    instance = json.dumps({"compute": {"name": "vm1", "subscriptionId": "s", "resourceGroupName": "g"}}).encode()

    def respond(conn: socket.socket) -> None:
        first_line = holder[0].last_request.split(b"\r\n", 1)[0]
        if b"/metadata/identity/oauth2/token" in first_line:
            reply("200 OK", body.encode(), length=length if length > 0 else -1)(conn)
        else:
            reply("200 OK", instance)(conn)

    holder.append(raw_server(respond))
    for fmt in ("json", "text", "html", "markdown", "junit"):
        run = invoke(["run", "--imds-url", holder[0].url, "--arm-url", holder[0].url, "--format", fmt, "-v"])
        assert FAKE_JWT not in run.stdout and FAKE_JWT.split(".")[1] not in run.stdout, fmt


def test_a_proxy_echoing_the_authorization_header_does_not_leak_it(raw_server, simulator) -> None:
    """ARM answered by something that echoes the request (Authorization included) in an HTML error page."""
    sim = simulator("healthy-system")

    def echo(conn: socket.socket) -> None:
        request = echo_server[0].last_request.decode("latin-1")
        reply("502 Bad Gateway", f"<html><pre>{request}</pre></html>".encode(),
              headers="Content-Type: text/html\r\n")(conn)

    echo_server: List[RawServer] = []
    echo_server.append(raw_server(echo))
    run = invoke(["run", "--imds-url", sim.url, "--arm-url", echo_server[0].url, "--format", "json", "-v"])
    assert "Bearer ***" in run.stdout or "***" in run.stdout
    for token in sim.issued_tokens:
        assert token not in run.stdout and token.split(".")[1] not in run.stdout


def test_hostile_instance_metadata_renders_inert_in_every_format(simulator, tmp_path) -> None:
    """VM name, tags and userData are user-controlled: markup, quotes, control characters, large values.
    (A 1 MB answer is over the read cap and ends as malformed-reply: see the "huge" case above; the renderers'
    own tests feed them 1 MB strings.)"""
    import xml.etree.ElementTree as ET

    from midoctor.sim import Scenario, load_scenario

    data = json.loads(json.dumps(load_scenario("no-identity").data))
    data["name"] = "hostile"
    data["vm"]["name"] = "<script>alert(1)</script>\"'\u001b[2J\u0000vm"
    data["vm"]["tags"] = {"big": "A" * 256, "html": "<img src=x onerror=alert(1)>"}  # Azure caps tag values at 256
    data["vm"].setdefault("compute_overrides", {})["userData"] = "PHNjcmlwdD4=" * 7000  # ~84 KB, near the 64 KB cap
    sim = simulator(Scenario.from_dict(data))
    outputs = {}
    for fmt in ("json", "html", "markdown", "junit", "text"):
        run = invoke(["run", "--imds-url", sim.url, "--arm-url", sim.url, "--format", fmt, "-v"])
        assert run.exit_code == 1, (fmt, run.stderr[-500:])
        outputs[fmt] = run.stdout
    report = json.loads(outputs["json"])
    assert report["diagnosis"]["cause"] == "no-identity"
    assert "<script>" not in outputs["html"] and "onerror=alert" not in outputs["html"]
    assert "&lt;script&gt;" in outputs["html"]
    ET.fromstring(outputs["junit"].encode("utf-8"))
    assert "\u001b" not in outputs["text"] and "\x00" not in outputs["text"]


def test_invalid_utf8_in_instance_metadata_is_tolerated(raw_server) -> None:
    body = b'{"compute": {"name": "vm\xff\xfe\xc3", "azEnvironment": "AzurePublicCloud"}}'
    server = raw_server(reply("200 OK", body))
    checks = run_imds_check(server.url)
    assert checks["imds-reachable"]["cause"] == "healthy"
