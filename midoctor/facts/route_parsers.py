"""Routing tables and route lookups as the tools print them, parsed into ``Route`` / ``RouteEntry``.

Covers ``ip [-j] route get``, its ``RTNETLINK answers`` errors, ``ip [-j] route show table all``,
``/proc/net/route`` and Windows ``route print``. Parsers are pure and never raise: what they cannot read
yields ``None`` or no entry. ``best_route`` answers the kernel's question from a table when ``ip route
get`` could not be asked.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from midoctor.facts.ipv4 import IMDS_ADDRESS, int_or, is_ipv4, parse_network

REJECT_KINDS = ("blackhole", "unreachable", "prohibit", "throw")

# ``ip route get`` prints these for routes that refuse traffic (verified with iproute2 6.1 in a network
# namespace: blackhole → EINVAL, unreachable → EHOSTUNREACH, prohibit → EACCES, throw/no route → ENETUNREACH).
_RTNETLINK_KIND = {
    "invalid argument": "blackhole",
    "no route to host": "unreachable",
    "permission denied": "prohibit",
    "network is unreachable": "no-route",
}


@dataclass(frozen=True)
class Route:
    """The route the kernel would use for IMDS."""

    kind: str  # unicast | local | blackhole | unreachable | prohibit | throw | no-route
    dev: Optional[str] = None
    gateway: Optional[str] = None
    src: Optional[str] = None
    table: Optional[str] = None
    source: str = ""
    detail: str = ""

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"kind": self.kind}
        for key in ("dev", "gateway", "src", "table", "source", "detail"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


@dataclass(frozen=True)
class RouteEntry:
    """One line of a routing table (``ip route show``, ``/proc/net/route`` or ``route print``)."""

    network: ipaddress.IPv4Network
    kind: str = "unicast"
    dev: Optional[str] = None
    gateway: Optional[str] = None
    src: Optional[str] = None
    metric: int = 0
    table: str = "main"
    persistent: bool = False
    text: str = ""

    def covers(self, address: ipaddress.IPv4Address = IMDS_ADDRESS) -> bool:
        return address in self.network


def parse_ip_route_get_json(text: str) -> Optional[Route]:
    """``ip -j route get``: ``[{"dst":..,"gateway":..,"dev":..,"prefsrc":..}]``; None if not that shape."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        return None
    item = data[0]
    kind = str(item.get("type") or "unicast")
    return Route(
        kind=kind,
        dev=_str_or_none(item.get("dev")),
        gateway=_str_or_none(item.get("gateway")),
        src=_str_or_none(item.get("prefsrc")),
        table=_str_or_none(item.get("table")),
        source="ip -j route get",
        detail=_route_text(item)[:300],
    )


def parse_ip_route_get(text: str) -> Optional[Route]:
    """Plain ``ip route get`` output or its ``RTNETLINK answers: ...`` error; None if unrecognized."""
    error = parse_rtnetlink_error(text)
    if error is not None:
        return error
    for line in text.splitlines():
        tokens = line.split()
        if not tokens or line[:1].isspace():
            continue
        kind = "unicast"
        if tokens[0] in ("local", "broadcast", "multicast", "unicast", "anycast") + REJECT_KINDS:
            kind, tokens = tokens[0], tokens[1:]
        if not tokens or not is_ipv4(tokens[0]):
            continue
        attrs = _route_attrs(tokens[1:])
        return Route(kind=kind, dev=attrs.get("dev"), gateway=attrs.get("via"), src=attrs.get("src"),
                     table=attrs.get("table"), source="ip route get", detail=line.strip()[:300])
    return None


def parse_rtnetlink_error(text: str) -> Optional[Route]:
    match = re.search(r"RTNETLINK answers:\s*(.+)", text)
    if not match:
        return None
    message = match.group(1).strip()
    kind = _RTNETLINK_KIND.get(message.lower().rstrip("."))
    if kind is None:
        return None
    return Route(kind=kind, source="ip route get", detail=f"RTNETLINK answers: {message}")


def _route_attrs(tokens: Sequence[str]) -> Dict[str, str]:
    attrs: Dict[str, str] = {}
    for key, value in zip(tokens, tokens[1:]):
        if key in ("via", "dev", "src", "table", "metric", "proto", "scope") and key not in attrs:
            attrs[key] = value
    return attrs


def parse_ip_route_table_json(text: str) -> List[RouteEntry]:
    """``ip -4 -j route show table all``; entries that are not IPv4 routes are skipped."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return []
    if not isinstance(data, list):
        return []
    entries: List[RouteEntry] = []
    for item in data:
        if not isinstance(item, dict):
            continue
        network = parse_network(str(item.get("dst", "")))
        if network is None:
            continue
        entries.append(RouteEntry(
            network=network,
            kind=str(item.get("type") or "unicast"),
            dev=_str_or_none(item.get("dev")),
            gateway=_str_or_none(item.get("gateway")),
            src=_str_or_none(item.get("prefsrc")),
            metric=int_or(item.get("metric"), 0),
            table=str(item.get("table") or "main"),
            text=_route_text(item),
        ))
    return entries


def parse_ip_route_table(text: str) -> List[RouteEntry]:
    """Plain ``ip route show [table all]`` lines."""
    entries: List[RouteEntry] = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens or line[:1].isspace():
            continue
        kind = "unicast"
        if tokens[0] in ("local", "broadcast", "multicast", "unicast", "anycast", "nat") + REJECT_KINDS:
            kind, tokens = tokens[0], tokens[1:]
        network = parse_network(tokens[0]) if tokens else None
        if network is None:
            continue
        attrs = _route_attrs(tokens[1:])
        entries.append(RouteEntry(network=network, kind=kind, dev=attrs.get("dev"), gateway=attrs.get("via"),
                                  src=attrs.get("src"), metric=int_or(attrs.get("metric"), 0),
                                  table=attrs.get("table", "main"), text=line.strip()))
    return entries


_RTF_UP, _RTF_GATEWAY, _RTF_REJECT = 0x1, 0x2, 0x200


def parse_proc_net_route(text: str) -> List[RouteEntry]:
    """``/proc/net/route`` (main table only): hex little-endian addresses; interface ``*`` marks a route
    without a device — with RTF_REJECT it is unreachable/prohibit, without it a blackhole (as observed)."""
    entries: List[RouteEntry] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = _le_hex_ip(fields[1])
            gateway = _le_hex_ip(fields[2])
            flags = int(fields[3], 16)
            metric = int(fields[6])
            mask = _le_hex_ip(fields[7])
            network = ipaddress.IPv4Network(f"{destination}/{mask}", strict=False)
        except ValueError:
            continue
        if not flags & _RTF_UP:
            continue
        kind = "unicast"
        dev: Optional[str] = fields[0]
        if dev == "*":
            kind, dev = ("unreachable" if flags & _RTF_REJECT else "blackhole"), None
        entries.append(RouteEntry(network=network, kind=kind, dev=dev,
                                  gateway=str(gateway) if flags & _RTF_GATEWAY else None, metric=metric,
                                  text=line.strip()))
    return entries


def _le_hex_ip(text: str) -> ipaddress.IPv4Address:
    if not re.fullmatch(r"[0-9A-Fa-f]{8}", text):
        raise ValueError(f"not a hex address: {text!r}")
    return ipaddress.IPv4Address(int.from_bytes(bytes.fromhex(text), "little"))


def best_route(entries: Iterable[RouteEntry], address: ipaddress.IPv4Address = IMDS_ADDRESS,
               tables: Sequence[str] = ("local", "main")) -> Optional[RouteEntry]:
    """Longest prefix, then lowest metric, looking in the tables in order (the default ``ip rule`` set)."""
    for table in tables:
        candidates = [e for e in entries if e.table == table and e.covers(address)]
        if candidates:
            return min(candidates, key=lambda e: (-e.network.prefixlen, e.metric))
    return None


# -- Windows ``route print`` -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowsRouteTable:
    active: Tuple[RouteEntry, ...] = ()
    persistent: Tuple[RouteEntry, ...] = ()
    interfaces: Tuple[str, ...] = ()  # "Interface List" lines, for evidence
    recognized: bool = False


def parse_route_print(text: str) -> WindowsRouteTable:
    """``route print [-4]``: the IPv4 "Active Routes" and "Persistent Routes" tables. Gateway ``On-link``
    means directly connected; the Interface column is the local interface address; persistent routes
    may show ``Default`` as metric."""
    active: List[RouteEntry] = []
    persistent: List[RouteEntry] = []
    interfaces: List[str] = []
    section = ""
    recognized = False
    for raw in text.splitlines():
        line = raw.strip()
        lowered = line.lower()
        if lowered.startswith("interface list"):
            section = "interfaces"
            continue
        if lowered.startswith("ipv4 route table"):
            section, recognized = "ipv4", True
            continue
        if lowered.startswith("ipv6 route table"):
            section = "ipv6"
            continue
        if lowered.startswith("persistent routes") and section in ("ipv4", "ipv4-persistent"):
            section = "ipv4-persistent"
            continue
        if not line or line.startswith("="):
            continue
        if section == "interfaces":
            interfaces.append(line)
            continue
        fields = line.split()
        if section == "ipv4" and len(fields) == 5:
            entry = _windows_entry(fields[0], fields[1], fields[2], fields[4], interface=fields[3], text=line)
            if entry:
                active.append(entry)
        elif section == "ipv4-persistent" and len(fields) == 4:
            entry = _windows_entry(fields[0], fields[1], fields[2], fields[3], interface=None, text=line,
                                   persistent=True)
            if entry:
                persistent.append(entry)
    return WindowsRouteTable(tuple(active), tuple(persistent), tuple(interfaces), recognized)


def _windows_entry(dst: str, mask: str, gateway: str, metric: str, interface: Optional[str], text: str,
                   persistent: bool = False) -> Optional[RouteEntry]:
    try:
        network = ipaddress.IPv4Network(f"{dst}/{mask}", strict=False)
    except ValueError:
        return None
    gw = None if gateway.lower() == "on-link" or not is_ipv4(gateway) else gateway
    return RouteEntry(network=network, dev=interface if interface and is_ipv4(interface) else None,
                      gateway=gw, src=interface if interface and is_ipv4(interface) else None,
                      metric=int_or(metric, 0 if persistent else 9999), persistent=persistent, text=text)


def _str_or_none(value: Any) -> Optional[str]:
    return str(value) if isinstance(value, (str, int)) and str(value) else None


def _route_text(item: Mapping[str, Any]) -> str:
    parts = [str(item["type"])] if item.get("type") else []
    parts.append(str(item.get("dst", "")))
    for key, word in (("gateway", "via"), ("dev", "dev"), ("table", "table"), ("protocol", "proto"),
                      ("scope", "scope"), ("prefsrc", "src"), ("metric", "metric")):
        if item.get(key) not in (None, ""):
            parts.extend([word, str(item[key])])
    return " ".join(parts)
