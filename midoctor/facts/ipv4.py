"""Where IMDS is, and the lenient readers of IPv4 text that the route and firewall parsers share.

Tool output is read, never trusted: a field that does not parse becomes ``None`` or a default instead of
an exception, so one odd line cannot hide the rest of a routing table or ruleset.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Optional

IMDS_IP = "169.254.169.254"
IMDS_ADDRESS = ipaddress.IPv4Address(IMDS_IP)
IMDS_PORT = 80


def int_or(value: Any, default: int) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def parse_network(text: str) -> Optional[ipaddress.IPv4Network]:
    """An IPv4 network (host bits allowed), with ``ip route``'s ``default`` read as 0.0.0.0/0."""
    text = text.strip()
    if text == "default":
        return ipaddress.IPv4Network("0.0.0.0/0")
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        return None
