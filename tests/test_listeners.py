"""Naming the local process that listens where IMDS should be."""

from __future__ import annotations

import os
import socket

from midoctor.facts.listeners import listeners_on


def test_names_the_listening_process() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        found = listeners_on(port, addresses=("127.0.0.1",))
    assert len(found) == 1
    assert found[0]["address"] == f"127.0.0.1:{port}"
    assert found[0]["pid"] == os.getpid()
    assert "python" in found[0]["process"].lower()


def test_nothing_listening_is_an_empty_list() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening
    assert listeners_on(port, addresses=("127.0.0.1",)) == []
