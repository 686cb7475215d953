"""Wire-level response builders shared by the IMDS, ARM and impostor routes."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Optional

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass
class Response:
    status: int
    body: bytes = b""
    # Complete, ordered header list (Date and Content-Length included) so captures can be mimicked.
    headers: list[tuple[str, str]] = field(default_factory=list)
    reason: Optional[str] = None  # None -> the standard phrase
    http_version: Optional[str] = None  # None -> the server's protocol version
    close: bool = False

    def header(self, name: str) -> Optional[str]:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def http_date() -> str:
    return formatdate(usegmt=True)


def compact_json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def imds_response(
    status: int,
    body: bytes,
    server: str,
    content_type: str = JSON_TYPE,
    request_id: bool = False,
    extra: Optional[list[tuple[str, str]]] = None,
) -> Response:
    """IMDS header set and order from live captures (imds-fidelity 1.8, 2.2 (d))."""
    headers = [("Content-Type", content_type), ("Server", server)]
    if request_id:
        # Only the instance endpoint was seen sending x-ms-request-id (imds-fidelity 1.8).
        headers.append(("x-ms-request-id", str(uuid.uuid4())))
    headers.extend(extra or [])
    headers.extend([("Date", http_date()), ("Content-Length", str(len(body)))])
    return Response(status=status, body=body, headers=headers)


def arm_response(status: int, obj: Any, extra: Optional[list[tuple[str, str]]] = None) -> Response:
    """ARM-like headers (RECONSTRUCTED from typical ARM responses; no Server: IMDS header)."""
    body = compact_json(obj)
    request_id = str(uuid.uuid4())
    headers = [
        ("Cache-Control", "no-cache"),
        ("Pragma", "no-cache"),
        ("Content-Type", JSON_TYPE),
        ("Expires", "-1"),
    ]
    headers.extend(extra or [])
    headers.extend([
        ("x-ms-request-id", request_id),
        ("x-ms-correlation-request-id", request_id),
        ("Date", http_date()),
        ("Content-Length", str(len(body))),
    ])
    return Response(status=status, body=body, headers=headers)


def arm_error(status: int, code: str, message: str, extra: Optional[list[tuple[str, str]]] = None) -> Response:
    return arm_response(status, {"error": {"code": code, "message": message}}, extra)
