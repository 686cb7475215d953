"""The route a packet to IMDS would take on this machine: interface, primary NIC, tunnel.

The kernel is asked which route it *would* use (``ip route get`` performs a FIB lookup only); nothing is
sent. ``inspect_route`` memoizes the answer as the ``network.route`` fact (seed it to skip every probe).

Reference: failure-catalog F11 (routes: "there must be a route for the 169.254.169.254/32 address"; the
primary NIC / primary IP rule) and F14 (interceptors: ``ip route get`` → ``local``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from midoctor.facts.probes import (
    IP_LINK_DETAILS_JSON,
    IP_ROUTE_GET,
    IP_ROUTE_GET_JSON,
    IP_ROUTE_TABLE_JSON,
    PROC_NET_ROUTE,
    ROUTE_PRINT,
    CommandOutput,
    FileContent,
    command,
    file_text,
    prefetch,
)
from midoctor.facts.route_parsers import (
    Route,
    RouteEntry,
    best_route,
    parse_ip_route_get,
    parse_ip_route_get_json,
    parse_ip_route_table_json,
    parse_proc_net_route,
    parse_route_print,
    parse_rtnetlink_error,
)

if TYPE_CHECKING:
    from midoctor.context import Context


@dataclass(frozen=True)
class PrimaryInterface:
    dev: Optional[str]
    gateway: Optional[str] = None
    ip: Optional[str] = None
    assumed: bool = False  # no default route seen: Azure's first NIC is eth0 / the lowest-metric interface

    def to_evidence(self) -> Dict[str, Any]:
        out = {k: v for k, v in (("dev", self.dev), ("gateway", self.gateway), ("ip", self.ip)) if v}
        if self.assumed:
            out["assumed"] = "no default route found; assuming eth0 is the primary NIC"
        return out


def primary_interface(entries: Sequence[RouteEntry]) -> PrimaryInterface:
    """The interface that carries the main table's lowest-metric default route, or ``eth0``."""
    defaults = [e for e in entries if e.table == "main" and e.network.prefixlen == 0 and e.kind == "unicast"]
    if defaults:
        best = min(defaults, key=lambda e: e.metric)
        ip = best.src or next((e.src for e in entries if e.dev == best.dev and e.src and e.table == "main"), None)
        return PrimaryInterface(dev=best.dev, gateway=best.gateway, ip=ip)
    connected = next((e for e in entries if e.dev == "eth0" and e.src and e.table == "main"), None)
    return PrimaryInterface(dev="eth0", ip=connected.src if connected else None, assumed=True)


# -- tunnels and VPNs -----------------------------------------------------------------------------------------
_TUNNEL_NAME = re.compile(r"^(tun|tap|wg|ppp|tailscale|zt|vpn|utun|ipsec|gpd|cscotun|nordlynx|proton)", re.I)
_TUNNEL_KINDS = frozenset({"wireguard", "tun", "ipip", "gre", "gretap", "sit", "vti", "vti6", "xfrm", "ip6tnl",
                           "ipip6", "ppp", "l2tp"})


def parse_ip_link_kinds(text: str) -> Dict[str, str]:
    """``ip -d -j link show`` → {ifname: linkinfo kind} for interfaces that declare one."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    kinds: Dict[str, str] = {}
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("ifname"), str):
            continue
        info = item.get("linkinfo")
        kind = info.get("info_kind") if isinstance(info, dict) else None
        if isinstance(kind, str):
            kinds[item["ifname"]] = kind
    return kinds


def tunnel_reason(dev: Optional[str], kinds: Mapping[str, str]) -> Optional[str]:
    """Why ``dev`` looks like a tunnel/VPN, or None. The link kind is authoritative when known."""
    if not dev:
        return None
    kind = kinds.get(dev)
    if kind in _TUNNEL_KINDS:
        return f"{dev} is a {kind} link"
    if _TUNNEL_NAME.match(dev):
        return f"{dev} is named like a tunnel/VPN interface"
    return None


# -- the assembled route report ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteReport:
    os_name: str
    route: Optional[Route]
    primary: Optional[PrimaryInterface] = None
    tunnel: Optional[str] = None  # why the route's interface looks like a tunnel/VPN
    covering: Tuple[RouteEntry, ...] = ()  # table entries that cover IMDS (any table)
    probes: Tuple[str, ...] = ()  # what was run and how it went
    notes: Tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.route is not None

    @property
    def off_primary(self) -> bool:
        """The route leaves through another interface (or source address) than the primary one."""
        if self.route is None or self.primary is None or self.route.kind != "unicast":
            return False
        if self.route.dev and self.primary.dev and self.route.dev != self.primary.dev:
            return True
        return bool(self.route.src and self.primary.ip and self.route.src != self.primary.ip)

    def rejecting_entry(self) -> Optional[RouteEntry]:
        """The table entry that makes the route refuse traffic (for the exact ``ip route del``)."""
        if self.route is None:
            return None
        kind = self.route.kind
        matches = [e for e in self.covering if e.kind == kind]
        if self.route.table:
            matches = [e for e in matches if e.table == self.route.table] or matches
        return max(matches, key=lambda e: e.network.prefixlen) if matches else None

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"route": self.route.to_evidence() if self.route else "unknown"}
        if self.primary:
            out["primary_interface"] = self.primary.to_evidence()
        if self.tunnel:
            out["tunnel"] = self.tunnel
        if self.covering:
            out["routes_covering_imds"] = [e.text or str(e.network) for e in self.covering][:20]
        out["probes"] = list(self.probes)
        if self.notes:
            out["notes"] = list(self.notes)
        return out


def linux_route_report(
    get_json: CommandOutput,
    table: CommandOutput,
    links: CommandOutput,
    proc_route: FileContent,
    get_plain: Optional[CommandOutput] = None,
) -> RouteReport:
    """Combine the Linux probes. ``ip route get`` is the authority (it applies policy routing and every
    table); the table listing explains it and finds the primary interface; ``/proc/net/route`` is the
    fallback when ``ip`` is missing (main table only, so policy routing is invisible there)."""
    probes = [get_json.describe(), table.describe()]
    notes: List[str] = []
    route: Optional[Route] = None
    if get_json.ran:
        route = parse_ip_route_get_json(get_json.stdout) or parse_rtnetlink_error(get_json.output)
        if route is None and get_plain is not None:
            probes.append(get_plain.describe())
            if get_plain.ran:
                route = parse_ip_route_get(get_plain.output)
    entries = parse_ip_route_table_json(table.stdout) if table.ran else []
    if not entries:
        probes.append(f"{proc_route.path}: " + ("read" if proc_route.text is not None else str(proc_route.reason)))
        if proc_route.text is not None:
            entries = parse_proc_net_route(proc_route.text)
            notes.append("routes read from /proc/net/route: main table only, policy routing not visible")
    if route is None and entries:
        best = best_route(entries)
        route = _route_from_entry(best, "/proc/net/route" if not table.ran else "ip route show table all")
    if route is not None and route.kind == "no-route":
        throw = next((e for e in entries if e.kind == "throw" and e.covers()), None)
        if throw is not None:
            route = Route(kind="throw", table=throw.table, source=route.source, detail=route.detail)
    kinds = parse_ip_link_kinds(links.stdout) if links.ran else {}
    if links.ran:
        probes.append(links.describe())
    tunnel = tunnel_reason(route.dev, kinds) if route else None
    covering = tuple(e for e in entries if e.covers() and e.kind not in ("broadcast", "multicast"))
    return RouteReport(
        os_name="Linux",
        route=route,
        primary=primary_interface(entries) if entries else (PrimaryInterface("eth0", assumed=True) if route else None),
        tunnel=tunnel,
        covering=covering,
        probes=tuple(probes),
        notes=tuple(notes),
    )


def _route_from_entry(entry: Optional[RouteEntry], source: str) -> Route:
    if entry is None:
        return Route(kind="no-route", source=source, detail="no table entry covers 169.254.169.254")
    return Route(kind=entry.kind, dev=entry.dev, gateway=entry.gateway, src=entry.src,
                 table=entry.table if entry.table != "main" else None, source=source, detail=entry.text[:300])


def windows_route_report(route_print: CommandOutput) -> RouteReport:
    """Windows: best active route for IMDS by longest prefix, then metric (``route print``)."""
    probes = (route_print.describe(),)
    if not route_print.ran:
        return RouteReport(os_name="Windows", route=None, probes=probes)
    table = parse_route_print(route_print.stdout)
    if not table.recognized:
        return RouteReport(os_name="Windows", route=None, probes=probes,
                           notes=("route print output not recognized (localized Windows?)",))
    best = best_route(table.active, tables=("main",))
    defaults = [e for e in table.active if e.network.prefixlen == 0]
    primary = None
    if defaults:
        first = min(defaults, key=lambda e: e.metric)
        primary = PrimaryInterface(dev=first.dev, gateway=first.gateway, ip=first.src)
    if best is None:
        route = Route(kind="no-route", source="route print", detail="no active route covers 169.254.169.254")
    else:
        route = Route(kind="unicast", dev=best.dev, gateway=best.gateway, src=best.src, source="route print",
                      detail=best.text)
    covering = tuple(e for e in table.active + table.persistent if e.covers() and e.network.prefixlen > 0)
    notes = ("Windows Firewall rules are not inspected: Get-NetFirewallRule -Direction Outbound -Enabled True "
             "-Action Block | Get-NetFirewallAddressFilter | Where-Object RemoteAddress -match '169.254'",)
    return RouteReport(os_name="Windows", route=route, primary=primary, covering=covering, probes=probes,
                       notes=notes)


def inspect_route(ctx: Context, os_name: str) -> RouteReport:
    """The route report for this machine, memoized as ``network.route`` (seed it to skip every probe)."""
    def produce() -> RouteReport:
        if os_name.lower().startswith("win"):
            return windows_route_report(command(ctx, ROUTE_PRINT))
        prefetch(ctx, (IP_ROUTE_GET_JSON, IP_ROUTE_TABLE_JSON, IP_LINK_DETAILS_JSON))
        get_json = command(ctx, IP_ROUTE_GET_JSON)
        plain = None
        if get_json.ran and parse_ip_route_get_json(get_json.stdout) is None and \
                parse_rtnetlink_error(get_json.output) is None:
            plain = command(ctx, IP_ROUTE_GET)  # iproute2 without -j support
        table = command(ctx, IP_ROUTE_TABLE_JSON)
        proc = file_text(ctx, PROC_NET_ROUTE) if not (table.ran and parse_ip_route_table_json(table.stdout)) \
            else FileContent(PROC_NET_ROUTE, reason="not needed")
        return linux_route_report(get_json, table, command(ctx, IP_LINK_DETAILS_JSON), proc, plain)

    return ctx.fact("network.route", produce)
