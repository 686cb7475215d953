"""Bounded HTTP observations: every call has a deadline, a size cap and a classified outcome.

A probe never raises for network trouble; it returns an ``Observation`` that says what happened
(refused, timed out, unreachable, answered ...) so that checks can name the cause.
"""

from __future__ import annotations

import errno
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

import httpx

from midoctor.redact import redact_headers, redact_url, scrub_text

MAX_BODY_BYTES = 256 * 1024
BODY_EXCERPT_CHARS = 600


@dataclass
class Observation:
    """One HTTP exchange as seen from this machine. Never holds a secret: see ``redact``."""

    method: str
    url: str
    status: Optional[int] = None
    headers: Dict[str, str] = field(default_factory=dict)
    elapsed_ms: float = 0.0
    error: Optional[str] = None  # refused | connect-timeout | read-timeout | network-unreachable | ...
    error_detail: str = ""
    body_excerpt: str = ""
    body_bytes: int = 0
    truncated: bool = False
    json: Any = None
    json_error: Optional[str] = None

    @property
    def answered(self) -> bool:
        return self.status is not None

    @property
    def server(self) -> str:
        return self.headers.get("server", "")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"method": self.method, "url": self.url, "elapsed_ms": round(self.elapsed_ms, 1)}
        if self.status is not None:
            out["status"] = self.status
            shown = {k: v for k, v in self.headers.items() if k in _EVIDENCE_HEADERS}
            if shown:
                out["headers"] = shown
            if self.json_error:
                out["json_error"] = self.json_error
            if self.body_excerpt and not isinstance(self.json, dict):
                out["body_excerpt"] = self.body_excerpt
            if self.truncated:
                out["truncated_at_bytes"] = MAX_BODY_BYTES
        else:
            out["error"] = self.error
            out["error_detail"] = self.error_detail
        return out


_EVIDENCE_HEADERS = (
    "server",
    "content-type",
    "location",
    "retry-after",
    "via",
    "x-squid-error",
    "proxy-agent",
    "www-authenticate",
    "x-ms-request-id",
    "x-ms-failure-cause",
)


def _os_errno(exc: BaseException) -> Optional[int]:
    seen = set()
    current: Optional[BaseException] = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno:
            return current.errno
        for arg in getattr(current, "args", ()):
            if isinstance(arg, OSError) and arg.errno:
                return arg.errno
        current = current.__cause__ or current.__context__
    return None


_ERRNO_KIND = {
    errno.ECONNREFUSED: "refused",
    errno.ENETUNREACH: "network-unreachable",
    errno.EHOSTUNREACH: "host-unreachable",
    errno.ECONNRESET: "reset",
    errno.EACCES: "permission-denied",  # a prohibit route; checks tell it from a firewall by the route
    errno.EPERM: "permission-denied",  # e.g. a local netfilter rule on a datagram path
    errno.EADDRNOTAVAIL: "address-not-available",
    errno.ETIMEDOUT: "connect-timeout",
    errno.EINVAL: "invalid-argument",
}


def classify_exception(exc: BaseException) -> str:
    """Map a transport exception to a stable failure kind."""
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect-timeout"
    if isinstance(exc, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)):
        return "read-timeout"
    if isinstance(exc, _Trickle):
        return "read-timeout"
    code = _os_errno(exc)
    if code in _ERRNO_KIND:
        return _ERRNO_KIND[code]
    text = str(exc).lower()
    for needle, kind in (
        ("connection refused", "refused"),
        ("network is unreachable", "network-unreachable"),
        ("no route to host", "host-unreachable"),
        ("connection reset", "reset"),
        ("operation not permitted", "permission-denied"),
        ("name or service not known", "dns"),
        ("temporary failure in name resolution", "dns"),
    ):
        if needle in text:
            return kind
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return "bad-response"
    if isinstance(exc, socket.gaierror):
        return "dns"
    return "transport-error"


class _Trickle(Exception):
    """The server kept sending bytes but not fast enough to finish within the deadline."""


def request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    params: Optional[Mapping[str, str]] = None,
    headers: Optional[Mapping[str, str]] = None,
    deadline_s: float,
) -> Observation:
    """Perform one request and never raise for what the network or the server did."""
    obs = Observation(method=method, url=redact_url(url))
    started = time.monotonic()
    try:
        obs.url = redact_url(str(httpx.URL(url, params=params)) if params else url)
        with client.stream(method, url, params=params, headers=headers) as response:
            obs.status = response.status_code
            obs.headers = redact_headers({k.lower(): v for k, v in response.headers.items()})
            body = bytearray()
            for chunk in response.iter_raw():
                body.extend(chunk)
                if len(body) > MAX_BODY_BYTES:
                    obs.truncated = True
                    del body[MAX_BODY_BYTES:]
                    break
                if time.monotonic() - started > deadline_s:
                    raise _Trickle(f"response body not complete after {deadline_s:.1f} s")
            obs.body_bytes = len(body)
            _decode(obs, bytes(body))
    except Exception as exc:  # noqa: BLE001 - every transport failure becomes an observation
        if obs.status is not None and isinstance(exc, _Trickle):
            obs.error = "slow-body"
        elif obs.status is not None:
            # Status and headers arrived, then the body broke off: an answer, but an unusable one.
            obs.error = "incomplete-body"
            obs.json_error = f"answer cut off: {type(exc).__name__}"
        else:
            obs.status = None
            obs.error = classify_exception(exc)
        obs.error_detail = f"{type(exc).__name__}: {_short(scrub_text(str(exc))) or 'no detail'}"
    obs.elapsed_ms = (time.monotonic() - started) * 1000.0
    return obs


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _decode(obs: Observation, body: bytes) -> None:
    text = body.decode("utf-8", errors="replace")
    # A body that is not the JSON we expect (duplicate keys, cut off, an echoing proxy) may still carry a
    # token or an Authorization header: the excerpt is scrubbed before it can become evidence.
    obs.body_excerpt = _printable(scrub_text(text[: BODY_EXCERPT_CHARS * 4]))[:BODY_EXCERPT_CHARS]
    if obs.truncated:
        obs.json_error = f"body larger than {MAX_BODY_BYTES} bytes; not parsed"
        return
    if not text.strip():
        obs.json_error = "empty body"
        return
    try:
        obs.json = json.loads(text, object_pairs_hook=_reject_duplicates)
    except (ValueError, RecursionError) as exc:
        obs.json_error = f"not JSON: {_short(str(exc), 120)}"


def _reject_duplicates(pairs: Any) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _printable(text: str) -> str:
    """Control characters from a hostile or broken server are shown, not interpreted by a terminal."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)


def direct_client(connect_timeout: float, read_timeout: float, tls: bool = False) -> httpx.Client:
    """A client for IMDS: never a proxy (``trust_env`` off), never a redirect, short timeouts."""
    return httpx.Client(
        trust_env=False,
        follow_redirects=False,
        # IMDS is plain HTTP: loading a CA bundle for TLS it never speaks costs tens of milliseconds.
        verify=tls,
        timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout),
        limits=httpx.Limits(max_connections=4, max_keepalive_connections=4),
    )
