"""The path a packet to IMDS would take on this machine: route, interface, tunnel, local firewall.

Nothing here sends a packet. The kernel is asked which route it *would* use (``ip route get`` performs a
FIB lookup only), and the firewall is read, not exercised. Every raw input goes through two small probe
functions, ``command(ctx, argv)`` and ``file_text(ctx, path)``, memoized in the run context under
``command_key(argv)`` / ``file_key(path)``: tests, the network-namespace lab and recorded reports supply
recorded outputs with ``ctx.seed(command_key(argv), CommandOutput(...))`` and every parser stays pure.

Reference: failure-catalog F11 (routes: "there must be a route for the 169.254.169.254/32 address"; the
primary NIC / primary IP rule), F12 (local firewall, owner-match allow-lists), F14 (interceptors:
``ip route get`` → ``local``, iptables DNAT/REDIRECT). WALinuxAgent's owner-match rules protect
168.63.129.16 (the WireServer), not IMDS: they are read like any rule and only count when they cover
169.254.169.254.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from midoctor.context import Context

IMDS_IP = "169.254.169.254"
IMDS_ADDRESS = ipaddress.IPv4Address(IMDS_IP)
IMDS_PORT = 80

IP_ROUTE_GET_JSON: Tuple[str, ...] = ("ip", "-j", "route", "get", IMDS_IP)
IP_ROUTE_GET: Tuple[str, ...] = ("ip", "route", "get", IMDS_IP)
IP_ROUTE_TABLE_JSON: Tuple[str, ...] = ("ip", "-4", "-j", "route", "show", "table", "all")
IP_LINK_DETAILS_JSON: Tuple[str, ...] = ("ip", "-d", "-j", "link", "show")
IPTABLES_SAVE: Tuple[str, ...] = ("iptables-save",)
NFT_RULESET: Tuple[str, ...] = ("nft", "-a", "list", "ruleset")
ROUTE_PRINT: Tuple[str, ...] = ("route", "print", "-4")
PROC_NET_ROUTE = "/proc/net/route"

LINUX_COMMANDS: Tuple[Tuple[str, ...], ...] = (
    IP_ROUTE_GET_JSON, IP_ROUTE_GET, IP_ROUTE_TABLE_JSON, IP_LINK_DETAILS_JSON, IPTABLES_SAVE, NFT_RULESET,
)
WINDOWS_COMMANDS: Tuple[Tuple[str, ...], ...] = (ROUTE_PRINT,)

COMMAND_TIMEOUT_S = 1.5
MAX_TEXT = 4 * 1024 * 1024


# == the probe seam ==========================================================================================
@dataclass(frozen=True)
class CommandOutput:
    """What one command printed, or why it could not run (``reason``: ``missing``, ``timeout``,
    ``permission denied``, ``error: ...``). A non-zero exit is not a failure to run: ``ip route get``
    exits 2 with ``RTNETLINK answers: ...`` and that *is* the answer."""

    argv: Tuple[str, ...]
    stdout: str = ""
    stderr: str = ""
    returncode: Optional[int] = 0
    reason: Optional[str] = None

    @property
    def ran(self) -> bool:
        return self.reason is None

    @property
    def output(self) -> str:
        return self.stdout + ("\n" + self.stderr if self.stderr else "")

    def describe(self) -> str:
        name = " ".join(self.argv)
        if not self.ran:
            return f"{name}: {self.reason}"
        return f"{name}: exit {self.returncode}"


@dataclass(frozen=True)
class FileContent:
    path: str
    text: Optional[str] = None
    reason: Optional[str] = None  # why it could not be read


def run_command(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> CommandOutput:
    """Run a read-only command with a deadline; never raises. ``LC_ALL=C`` keeps Linux tools in English
    (Windows tools follow the display language whatever the environment says)."""
    args = tuple(str(a) for a in argv)
    if not args or shutil.which(args[0]) is None:
        return CommandOutput(args, returncode=None, reason="missing")
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        return CommandOutput(args, returncode=None, reason=f"timeout after {timeout:g} s")
    except FileNotFoundError:
        return CommandOutput(args, returncode=None, reason="missing")
    except PermissionError:
        return CommandOutput(args, returncode=None, reason="permission denied")
    except OSError as exc:
        return CommandOutput(args, returncode=None, reason=f"error: {exc}")
    return CommandOutput(
        args,
        stdout=done.stdout[:MAX_TEXT].decode("utf-8", "replace"),
        stderr=done.stderr[:MAX_TEXT].decode("utf-8", "replace"),
        returncode=done.returncode,
    )


def read_text(path: str, limit: int = MAX_TEXT) -> FileContent:
    try:
        with open(path, "rb") as handle:
            return FileContent(path, handle.read(limit).decode("utf-8", "replace"))
    except FileNotFoundError:
        return FileContent(path, reason="does not exist")
    except PermissionError:
        return FileContent(path, reason="permission denied")
    except OSError as exc:
        return FileContent(path, reason=f"error: {exc.strerror or exc}")


def command_key(argv: Sequence[str]) -> Tuple[str, ...]:
    return ("command",) + tuple(argv)


def file_key(path: str) -> Tuple[str, str]:
    return ("file", str(path))


def command(ctx: Context, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> CommandOutput:
    """Run ``argv`` once per run (memoized in the context; ``ctx.seed(command_key(argv), ...)`` replaces it)."""
    return ctx.fact(command_key(argv), lambda: run_command(argv, timeout))


def file_text(ctx: Context, path: str) -> FileContent:
    return ctx.fact(file_key(path), lambda: read_text(path))


def prefetch(ctx: Context, argvs: Iterable[Sequence[str]]) -> None:
    """Start independent probes together so a slow one does not add up with the others."""
    from concurrent.futures import ThreadPoolExecutor

    todo = list(argvs)
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=min(6, len(todo))) as pool:
        list(pool.map(lambda argv: command(ctx, argv), todo))


# == routes ==================================================================================================
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
        if not tokens or not _is_ipv4(tokens[0]):
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
        network = _network(str(item.get("dst", "")))
        if network is None:
            continue
        entries.append(RouteEntry(
            network=network,
            kind=str(item.get("type") or "unicast"),
            dev=_str_or_none(item.get("dev")),
            gateway=_str_or_none(item.get("gateway")),
            src=_str_or_none(item.get("prefsrc")),
            metric=_int(item.get("metric"), 0),
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
        network = _network(tokens[0]) if tokens else None
        if network is None:
            continue
        attrs = _route_attrs(tokens[1:])
        entries.append(RouteEntry(network=network, kind=kind, dev=attrs.get("dev"), gateway=attrs.get("via"),
                                  src=attrs.get("src"), metric=_int(attrs.get("metric"), 0),
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
    gw = None if gateway.lower() == "on-link" or not _is_ipv4(gateway) else gateway
    return RouteEntry(network=network, dev=interface if interface and _is_ipv4(interface) else None,
                      gateway=gw, src=interface if interface and _is_ipv4(interface) else None,
                      metric=_int(metric, 0 if persistent else 9999), persistent=persistent, text=text)


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


# == firewall ================================================================================================
@dataclass(frozen=True)
class Match:
    """One condition of a firewall rule; ``kind`` ``unknown`` is a condition this reader cannot evaluate."""

    kind: str  # daddr | saddr | proto | dport | uid | gid | oif | ctstate | unknown
    values: Tuple[Any, ...] = ()
    negated: bool = False
    text: str = ""
    suppl_groups: bool = False


@dataclass(frozen=True)
class Packet:
    """A new TCP connection to IMDS from a process with this uid/gid."""

    uid: int
    gid: int
    groups: Tuple[int, ...] = ()
    oif: Optional[str] = None
    src: Optional[str] = None
    dst: ipaddress.IPv4Address = IMDS_ADDRESS
    dport: int = IMDS_PORT


@dataclass(frozen=True)
class FirewallRule:
    source: str  # "iptables-save" | "nft"
    table: str  # iptables table ("filter") or nft "family name" ("inet filter")
    chain: str
    text: str
    matches: Tuple[Match, ...] = ()
    target: str = ""  # ACCEPT DROP REJECT RETURN DNAT REDIRECT <chain> (iptables spelling, also for nft)
    target_args: str = ""
    goto: bool = False
    handle: Optional[int] = None  # nft rule handle, for ``nft delete rule``

    def evaluate(self, packet: Packet) -> Optional[bool]:
        """True/False when every condition is understood, None when an unknown one decides."""
        unknown = False
        for match in self.matches:
            result = _match(match, packet)
            if result is False:
                return False
            if result is None:
                unknown = True
        return None if unknown else True

    @property
    def mentions_imds(self) -> bool:
        return any(m.kind == "daddr" and not m.negated and any(IMDS_ADDRESS in n for n in m.values)
                   for m in self.matches)

    @property
    def owner_matches(self) -> Tuple[Match, ...]:
        return tuple(m for m in self.matches if m.kind in ("uid", "gid"))

    def delete_command(self) -> str:
        if self.source == "nft":
            family, _, name = self.table.partition(" ")
            handle = self.handle if self.handle is not None else "<handle from: nft -a list chain " \
                f"{family} {name} {self.chain}>"
            return f"sudo nft delete rule {family} {name} {self.chain} handle {handle}"
        spec = re.sub(r"^(?:\[\d+:\d+\]\s+)?-A\s+\S+\s*", "", self.text)
        return f"sudo iptables -t {self.table} -D {self.chain} {spec}".rstrip()

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"source": self.source, "table": self.table, "chain": self.chain, "rule": self.text}
        owners = [("! " if m.negated else "") + m.text for m in self.owner_matches]
        if owners:
            out["owner"] = owners
        unknown = [m.text for m in self.matches if m.kind == "unknown"]
        if unknown:
            out["not_evaluated"] = unknown
        return out


_BLOCK = frozenset({"DROP", "REJECT"})
_REDIRECT = frozenset({"DNAT", "REDIRECT", "TPROXY"})


def _match(match: Match, packet: Packet) -> Optional[bool]:
    result: Optional[bool]
    kind = match.kind
    if kind == "daddr":
        result = any(packet.dst in net for net in match.values)
    elif kind == "saddr":
        try:
            src = ipaddress.IPv4Address(packet.src or "")
        except ValueError:
            return None  # source address unknown (or not IPv4): cannot tell
        result = any(src in net for net in match.values)
    elif kind == "proto":
        result = any(str(v).lower() in ("tcp", "6", "all", "0") for v in match.values)
    elif kind == "dport":
        result = any(lo <= packet.dport <= hi for lo, hi in match.values)
    elif kind in ("uid", "gid"):
        if any(not isinstance(v, tuple) for v in match.values):
            return None  # a user/group name: resolving it on another machine would be a guess
        ids = (packet.uid,) if kind == "uid" else ((packet.gid,) + (packet.groups if match.suppl_groups else ()))
        result = any(lo <= i <= hi for lo, hi in match.values for i in ids)
    elif kind == "oif":
        if packet.oif is None:
            return None
        result = any(_iface_match(str(v), packet.oif) for v in match.values)
    elif kind == "ctstate":
        result = any(str(v).upper() == "NEW" for v in match.values)
    else:
        return None
    return result != match.negated


def _iface_match(pattern: str, name: str) -> bool:
    if pattern.endswith("+") or pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


@dataclass(frozen=True)
class Verdict:
    """What the local firewall does to a new connection to IMDS from one uid/gid."""

    action: str  # accept | drop | reject | redirect
    rule: Optional[FirewallRule] = None  # the deciding rule (None: a chain policy)
    certain: bool = True
    uncertain_rules: Tuple[FirewallRule, ...] = ()  # blocking rules with conditions we cannot evaluate

    @property
    def blocked(self) -> bool:
        return self.action in ("drop", "reject")

    def describe(self) -> str:
        how = self.rule.text if self.rule else "chain policy"
        text = f"{self.action} ({how})"
        if not self.certain:
            text += f"; {len(self.uncertain_rules)} rule(s) with conditions midoctor cannot evaluate may block first"
        return text


@dataclass
class _Walk:
    chains: Mapping[str, Sequence[FirewallRule]]
    packet: Packet
    maybe: List[FirewallRule] = field(default_factory=list)

    def run(self, chain: str, depth: int = 0) -> Optional[Tuple[str, Optional[FirewallRule]]]:
        """Walk one chain; returns (action, rule), ("return", rule) or None when the chain falls through."""
        if depth > 32:
            return None
        for rule in self.chains.get(chain, ()):
            hit = rule.evaluate(self.packet)
            if hit is False:
                continue
            target = rule.target
            if hit is None:
                if target in _BLOCK or (target in self.chains and self._can_block(target, depth + 1)):
                    self.maybe.append(rule)
                continue
            if target == "ACCEPT":
                return "accept", rule
            if target in _BLOCK:
                return target.lower(), rule
            if target == "RETURN":
                return "return", rule
            if target in _REDIRECT:
                return "redirect", rule
            if target in self.chains:
                result = self.run(target, depth + 1)
                if result is not None and result[0] != "return":
                    return result
                if rule.goto:
                    return "return", rule
        return None

    def _can_block(self, chain: str, depth: int) -> bool:
        if depth > 32:
            return False
        return any(r.target in _BLOCK or (r.target in self.chains and self._can_block(r.target, depth + 1))
                   for r in self.chains.get(chain, ()))


@dataclass(frozen=True)
class BaseChain:
    """Where a packet enters: an iptables built-in OUTPUT chain or an nft base chain on the output hook."""

    source: str
    table: str
    chain: str
    kind: str  # filter | nat | route
    priority: int
    policy: str  # accept | drop


@dataclass(frozen=True)
class Ruleset:
    source: str
    bases: Tuple[BaseChain, ...] = ()
    chains: Mapping[Tuple[str, str], Tuple[FirewallRule, ...]] = field(default_factory=dict)
    backend: str = ""  # iptables-save header: "nf_tables" or "legacy"

    @property
    def rules(self) -> List[FirewallRule]:
        return [rule for rules in self.chains.values() for rule in rules]

    def verdict(self, packet: Packet) -> Verdict:
        maybe: List[FirewallRule] = []
        for base in sorted(self.bases, key=lambda b: b.priority):
            chains = {name: rules for (table, name), rules in self.chains.items() if table == base.table}
            walk = _Walk(chains, packet)
            result = walk.run(base.chain)
            maybe.extend(walk.maybe)
            action, rule = result if result is not None and result[0] != "return" else (base.policy, None)
            if action in ("drop", "reject", "redirect"):
                return Verdict(action, rule, certain=not maybe, uncertain_rules=tuple(maybe))
        return Verdict("accept", None, certain=not maybe, uncertain_rules=tuple(maybe))


# -- iptables-save ---------------------------------------------------------------------------------------------
_IPT_TABLE_PRIORITY = {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50}


def parse_iptables_save(text: str) -> Ruleset:
    """``iptables-save`` (with or without ``-c`` counters). Only what decides a new TCP connection to IMDS
    from a local process is modelled: the OUTPUT path of raw/mangle/nat/filter/security."""
    chains: Dict[Tuple[str, str], List[FirewallRule]] = {}
    policies: Dict[Tuple[str, str], str] = {}
    table = ""
    backend = ""
    header = re.search(r"iptables-save v[\d.]+ \(([^)]+)\)", text)
    if header:
        backend = header.group(1)
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if not table or not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            if parts:
                policies[(table, parts[0])] = parts[1] if len(parts) > 1 else "-"
                chains.setdefault((table, parts[0]), [])
            continue
        rule = _parse_iptables_rule(table, line)
        if rule is not None:
            chains.setdefault((table, rule.chain), []).append(rule)
    bases = tuple(
        BaseChain("iptables-save", t, "OUTPUT", "nat" if t == "nat" else "filter", _IPT_TABLE_PRIORITY[t],
                  "drop" if policy.upper() == "DROP" else "accept")
        for (t, name), policy in policies.items() if name == "OUTPUT" and t in _IPT_TABLE_PRIORITY
    )
    return Ruleset("iptables-save", bases, {k: tuple(v) for k, v in chains.items()}, backend)


def _parse_iptables_rule(table: str, line: str) -> Optional[FirewallRule]:
    body = re.sub(r"^\[\d+:\d+\]\s+", "", line)
    try:
        tokens = shlex.split(body)
    except ValueError:
        tokens = body.split()
    if len(tokens) < 2 or tokens[0] != "-A":
        return None
    chain = tokens[1]
    matches: List[Match] = []
    target, target_args, goto = "", [], False
    negate = False
    i = 2
    while i < len(tokens):
        token = tokens[i]
        if token == "!":
            negate = True
            i += 1
            continue
        value = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in ("-j", "--jump", "-g", "--goto"):
            target, goto = value, token in ("-g", "--goto")
            target_args = tokens[i + 2:]
            break
        consumed = 2
        if token in ("-d", "--destination", "--dst", "-s", "--source", "--src"):
            nets = tuple(n for n in (_network(v) for v in value.split(",")) if n is not None)
            kind = "daddr" if token in ("-d", "--destination", "--dst") else "saddr"
            matches.append(Match(kind, nets, negate, f"{token} {value}") if nets else
                           Match("unknown", (), negate, f"{token} {value}"))
        elif token in ("-p", "--protocol"):
            matches.append(Match("proto", (value,), negate, f"-p {value}"))
        elif token in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            ports = _ports(value.replace(":", "-"))
            matches.append(Match("dport", ports, negate, f"{token} {value}") if ports is not None else
                           Match("unknown", (), negate, f"{token} {value}"))
        elif token in ("--uid-owner", "--gid-owner"):
            ids = _id_ranges(value)
            suppl = "--suppl-groups" in tokens
            matches.append(Match("uid" if token == "--uid-owner" else "gid", ids, negate, f"{token} {value}",
                                 suppl_groups=suppl))
        elif token in ("-o", "--out-interface"):
            matches.append(Match("oif", (value,), negate, f"-o {value}"))
        elif token in ("--ctstate", "--state"):
            matches.append(Match("ctstate", tuple(value.split(",")), negate, f"{token} {value}"))
        elif token in ("-m", "--match"):
            pass  # module loads carry no condition of their own
        elif token in ("--comment",):
            pass
        elif token == "--suppl-groups":
            consumed = 1
        elif token.startswith("-"):
            # An option we do not model (mark, set, addrtype, ...): its arguments run until the next option.
            j = i + 1
            while j < len(tokens) and not tokens[j].startswith("-") and tokens[j] != "!":
                j += 1
            matches.append(Match("unknown", (), negate, " ".join(tokens[i:j])))
            consumed = j - i
        else:
            consumed = 1
        negate = False
        i += consumed
    return FirewallRule("iptables-save", table, chain, body, tuple(matches), target, " ".join(target_args), goto)


# -- nft list ruleset -----------------------------------------------------------------------------------------------
_NFT_PRIORITY = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
_NFT_VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "queue", "dnat", "redirect", "snat",
                 "masquerade", "continue", "tproxy")
_NFT_SERVICES = {"http": 80, "https": 443}


def parse_nft_ruleset(text: str, skip_tables: Iterable[str] = ()) -> Ruleset:
    """``nft [-a] list ruleset``: tables of family ``ip`` and ``inet`` (the ones IPv4 output traverses),
    their base chains on the output hook, named sets with literal elements, and rules. ``skip_tables``
    (``"ip filter"``...) drops tables already read through iptables-save (iptables-nft shows both)."""
    skip = set(skip_tables)
    chains: Dict[Tuple[str, str], List[FirewallRule]] = {}
    bases: List[BaseChain] = []
    sets: Dict[Tuple[str, str], List[str]] = {}
    table = ""
    chain = ""
    set_name = ""
    set_text: List[str] = []
    depth = 0
    for raw in text.splitlines():
        line, handle = _strip_nft_comment(raw)
        if not line:
            continue
        opens, closes = line.count("{"), line.count("}")
        if depth == 0:
            match = re.match(r"table\s+(\S+)\s+(\S+)\s*\{", line)
            if match:
                family, name = match.group(1), match.group(2)
                table = f"{family} {name}" if family in ("ip", "inet") and f"{family} {name}" not in skip else ""
                depth = 1
            continue
        if depth == 1:
            if line == "}":
                depth, table = 0, ""
                continue
            match = re.match(r"(chain|set|map|flowtable|counter|quota|limit|ct\s+\S+|secmark|synproxy)\s+(\S+)"
                             r"\s*\{", line)
            if match:
                kind, name = match.group(1), match.group(2)
                chain = name if kind == "chain" else ""
                set_name = name if kind in ("set", "map") else ""
                set_text = [line]
                depth = 1 + opens - closes
                if depth == 1:
                    _finish_set(sets, table, set_name, set_text)
                    set_name = ""
                continue
            continue
        # depth >= 2: inside a chain or a set
        depth += opens - closes
        if set_name:
            set_text.append(line)
            if depth <= 1:
                _finish_set(sets, table, set_name, set_text)
                set_name = ""
            continue
        if depth <= 1:
            chain = ""
            continue
        if not table or not chain:
            continue
        base = re.match(r"type\s+(\w+)\s+hook\s+(\w+)(?:\s+device\s+\S+)?\s+priority\s+([^;]+);"
                        r"(?:\s*policy\s+(\w+);)?", line)
        if base:
            kind, hook, priority, policy = base.groups()
            if hook == "output":
                bases.append(BaseChain("nft", table, chain, kind, _nft_priority(priority),
                                       "drop" if (policy or "accept") == "drop" else "accept"))
            continue
        if line.startswith(("policy ", "comment ", "devices ")):
            continue
        chains.setdefault((table, chain), []).append(_parse_nft_rule(table, chain, line, handle, sets))
    return Ruleset("nft", tuple(bases), {k: tuple(v) for k, v in chains.items()})


def _strip_nft_comment(raw: str) -> Tuple[str, Optional[int]]:
    line = raw.strip()
    handle = None
    match = re.search(r"\s*#\s*handle\s+(\d+)\s*$", line)
    if match:
        handle = int(match.group(1))
        line = line[: match.start()].rstrip()
    if line.startswith("#"):
        return "", None
    return line, handle


def _finish_set(sets: Dict[Tuple[str, str], List[str]], table: str, name: str, lines: List[str]) -> None:
    if not table or not name:
        return
    joined = " ".join(lines)
    match = re.search(r"elements\s*=\s*\{([^}]*)\}", joined)
    sets[(table, name)] = [e.strip() for e in match.group(1).split(",") if e.strip()] if match else []


def _nft_priority(text: str) -> int:
    text = text.strip()
    match = re.fullmatch(r"([a-z]+)\s*([+-])\s*(\d+)", text)
    if match:
        base = _NFT_PRIORITY.get(match.group(1), 0)
        return base + int(match.group(3)) * (1 if match.group(2) == "+" else -1)
    if text in _NFT_PRIORITY:
        return _NFT_PRIORITY[text]
    return _int(text, 0)


def _nft_tokens(line: str) -> List[str]:
    """Whitespace tokens, with ``{ ... }`` and quoted strings kept whole."""
    tokens: List[str] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "{":
            end = line.find("}", i)
            end = n if end < 0 else end + 1
            tokens.append(line[i:end])
            i = end
            continue
        if ch == '"':
            end = line.find('"', i + 1)
            end = n if end < 0 else end + 1
            tokens.append(line[i:end])
            i = end
            continue
        j = i
        while j < n and not line[j].isspace():
            j += 1
        tokens.append(line[i:j])
        i = j
    return tokens


def _nft_values(token: str, sets: Mapping[Tuple[str, str], List[str]], table: str) -> Optional[List[str]]:
    if token.startswith("@"):
        return sets.get((table, token[1:]))
    if token.startswith("{"):
        return [v.strip() for v in token.strip("{} ").split(",") if v.strip()]
    return [v for v in token.split(",") if v]


def _parse_nft_rule(table: str, chain: str, line: str, handle: Optional[int],
                    sets: Mapping[Tuple[str, str], List[str]]) -> FirewallRule:
    tokens = _nft_tokens(line)
    matches: List[Match] = []
    target, target_args, goto = "", "", False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _NFT_VERDICTS:
            target, target_args, goto = _nft_verdict(tokens[i:])
            break
        if token in ("counter", "log", "limit", "comment", "meta", "ip", "tcp", "udp", "th", "ct", "skuid",
                     "skgid", "oifname", "oif", "l4proto"):
            consumed = _nft_statement(tokens, i, table, sets, matches)
        else:
            consumed = 1
            matches.append(Match("unknown", (), False, token))
        i += consumed
    return FirewallRule("nft", table, chain, line, tuple(matches), target, target_args, goto, handle)


def _nft_verdict(tokens: Sequence[str]) -> Tuple[str, str, bool]:
    word = tokens[0]
    rest = " ".join(tokens[1:])
    if word in ("jump", "goto"):
        return (tokens[1] if len(tokens) > 1 else ""), "", word == "goto"
    mapping = {"accept": "ACCEPT", "drop": "DROP", "reject": "REJECT", "return": "RETURN", "dnat": "DNAT",
               "redirect": "REDIRECT", "tproxy": "TPROXY", "queue": "QUEUE", "snat": "SNAT",
               "masquerade": "MASQUERADE", "continue": ""}
    return mapping.get(word, word.upper()), rest, False


def _nft_statement(tokens: Sequence[str], i: int, table: str, sets: Mapping[Tuple[str, str], List[str]],
                   matches: List[Match]) -> int:
    """Parse one expression at ``tokens[i]`` into ``matches``; returns how many tokens it used."""
    token = tokens[i]
    if token == "counter":
        j = i + 1
        while j + 1 < len(tokens) and tokens[j] in ("packets", "bytes"):
            j += 2
        return j - i
    if token == "comment":
        return 2
    if token == "log":
        j = i + 1
        while j + 1 < len(tokens) and tokens[j] in ("prefix", "level", "flags", "group", "snaplen",
                                                    "queue-threshold"):
            j += 2
        return j - i
    if token == "limit":
        j = i + 1
        while j < len(tokens) and tokens[j] not in _NFT_VERDICTS:
            j += 1
        matches.append(Match("unknown", (), False, " ".join(tokens[i:j])))
        return j - i
    # "<expr> [op] value": the expression is one or two words.
    key = token
    j = i + 1
    if token in ("meta", "ip", "tcp", "udp", "th", "ct") and j < len(tokens):
        key = f"{token} {tokens[j]}"
        j += 1
    negated = False
    if j < len(tokens) and tokens[j] in ("!=", "==", "eq", "ne"):
        negated = tokens[j] in ("!=", "ne")
        j += 1
    if j < len(tokens) and tokens[j] == "set":  # "meta mark set 1" is a statement, not a condition
        return j + 2 - i
    value = tokens[j] if j < len(tokens) else ""
    used = j + 1 - i
    text = " ".join(tokens[i:i + used])
    values = _nft_values(value, sets, table)
    kind = {
        "ip daddr": "daddr", "ip saddr": "saddr", "meta l4proto": "proto", "ip protocol": "proto",
        "l4proto": "proto", "tcp dport": "dport", "th dport": "dport", "meta skuid": "uid", "skuid": "uid",
        "meta skgid": "gid", "skgid": "gid", "oifname": "oif", "meta oifname": "oif", "ct state": "ctstate",
    }.get(key)
    if kind is None or values is None:
        if key in ("meta nfproto", "meta protocol") and value in ("ipv4", "ip"):
            return used
        matches.append(Match("unknown", (), negated, text))
        return used
    if kind in ("daddr", "saddr"):
        nets = [_network(v) or _range_network(v) for v in values]
        parsed: Tuple[Any, ...] = tuple(n for n in nets if n is not None)
        if len(parsed) != len(values):
            matches.append(Match("unknown", (), negated, text))
            return used
    elif kind == "dport":
        ports = _ports(",".join(str(_NFT_SERVICES.get(v, v)) for v in values))
        if ports is None:
            matches.append(Match("unknown", (), negated, text))
            return used
        parsed = ports
    elif kind in ("uid", "gid"):
        parsed = tuple(_nft_owner_id(v) for v in values)
    else:
        parsed = tuple(v.strip('"') for v in values)
    if key.startswith("tcp "):
        matches.append(Match("proto", ("tcp",), False, "tcp"))
    elif key.startswith("udp "):
        matches.append(Match("proto", ("udp",), False, "udp"))
    matches.append(Match(kind, parsed, negated, text))
    return used


def _nft_owner_id(value: str) -> Any:
    """A numeric id or range becomes ``(low, high)``; ``root`` is uid/gid 0 everywhere; any other name
    stays a string (evaluated as "cannot tell")."""
    parsed = _id_ranges(value)[0]
    if isinstance(parsed, tuple):
        return parsed
    return (0, 0) if value == "root" else value


def _range_network(text: str) -> Optional[ipaddress.IPv4Network]:
    if "-" not in text:
        return None
    low, _, high = text.partition("-")
    try:
        nets = list(ipaddress.summarize_address_range(ipaddress.IPv4Address(low), ipaddress.IPv4Address(high)))
    except ValueError:
        return None
    covering = [n for n in nets if IMDS_ADDRESS in n]
    return covering[0] if covering else nets[0]


# -- who may reach IMDS ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FirewallReport:
    readable: bool
    rulesets: Tuple[Ruleset, ...] = ()
    probes: Tuple[str, ...] = ()
    reason: str = ""  # why nothing could be read

    def verdict(self, packet: Packet) -> Verdict:
        """Every readable ruleset applies in turn; the first block wins."""
        maybe: List[FirewallRule] = []
        for ruleset in self.rulesets:
            result = ruleset.verdict(packet)
            maybe.extend(result.uncertain_rules)
            if result.action != "accept":
                return Verdict(result.action, result.rule, not maybe, tuple(maybe))
        return Verdict("accept", None, not maybe, tuple(maybe))

    def imds_rules(self) -> List[FirewallRule]:
        return [rule for ruleset in self.rulesets for rule in ruleset.rules if rule.mentions_imds]

    def owner_ids(self) -> Tuple[List[int], List[int]]:
        """uids and gids named by owner matches in rules that touch IMDS (directly or in chains they jump to)."""
        uids: List[int] = []
        gids: List[int] = []
        for ruleset in self.rulesets:
            relevant = _reachable_rules(ruleset)
            for rule in relevant:
                for match in rule.owner_matches:
                    for value in match.values:
                        if isinstance(value, tuple):
                            (uids if match.kind == "uid" else gids).append(value[0])
        return sorted(set(uids)), sorted(set(gids))

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"readable": self.readable, "probes": list(self.probes)}
        if not self.readable:
            out["reason"] = self.reason
        rules = self.imds_rules()
        if rules:
            out["rules_for_imds"] = [r.to_evidence() for r in rules][:20]
        return out


def _reachable_rules(ruleset: Ruleset) -> List[FirewallRule]:
    """Rules on the path of IMDS traffic: rules naming IMDS and every rule in chains they jump to."""
    out: List[FirewallRule] = []
    seen: set = set()
    todo = [r for r in ruleset.rules if r.mentions_imds]
    while todo:
        rule = todo.pop()
        if id(rule) in seen:
            continue
        seen.add(id(rule))
        out.append(rule)
        todo.extend(ruleset.chains.get((rule.table, rule.target), ()))
    return out


def _permission_problem(output: CommandOutput) -> Optional[str]:
    text = output.output.lower()
    if output.returncode not in (0, None) and any(s in text for s in ("permission denied", "must be root",
                                                                      "operation not permitted")):
        return "permission denied (run as root to read the firewall)"
    return None


def firewall_report(iptables: CommandOutput, nft: CommandOutput) -> FirewallReport:
    """Read both tools: iptables-save (legacy or nft backend) and native nftables tables. If neither can
    be read the answer is "not readable" with the reason — never a guess."""
    rulesets: List[Ruleset] = []
    probes: List[str] = []
    reasons: List[str] = []
    skip: List[str] = []
    for output in (iptables, nft):
        name = " ".join(output.argv)
        if not output.ran:
            probes.append(f"{name}: {output.reason}")
            reasons.append(f"{output.argv[0]} {output.reason}")
            continue
        problem = _permission_problem(output)
        if problem:
            probes.append(f"{name}: {problem}")
            reasons.append(f"{output.argv[0]}: {problem}")
            continue
        if output.returncode not in (0, None):
            detail = output.stderr.strip().splitlines()[:1]
            probes.append(f"{name}: exit {output.returncode}" + (f" ({detail[0][:200]})" if detail else ""))
            reasons.append(f"{output.argv[0]} failed")
            continue
        if output.argv[:1] == ("iptables-save",):
            ruleset = parse_iptables_save(output.stdout)
            if ruleset.backend == "nf_tables":
                skip.extend(f"ip {t}" for t in _IPT_TABLE_PRIORITY)
        else:
            ruleset = parse_nft_ruleset(output.stdout, skip)
        rulesets.append(ruleset)
        probes.append(f"{name}: read")
    return FirewallReport(readable=bool(rulesets), rulesets=tuple(rulesets), probes=tuple(probes),
                          reason="; ".join(reasons))


def inspect_firewall(ctx: Context) -> FirewallReport:
    def produce() -> FirewallReport:
        prefetch(ctx, (IPTABLES_SAVE, NFT_RULESET))
        return firewall_report(command(ctx, IPTABLES_SAVE), command(ctx, NFT_RULESET))

    return ctx.fact("network.firewall", produce)


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: Tuple[int, ...] = ()
    user: str = ""


def current_identity() -> Optional[Identity]:
    """The effective uid/gid of this process (None on Windows). The application may run as someone else
    (F10), which is why owner-match findings name the allowed ids too."""
    if not hasattr(os, "geteuid"):
        return None
    uid, gid = os.geteuid(), os.getegid()
    user = ""
    try:
        import pwd

        user = pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        pass
    try:
        groups = tuple(os.getgroups())
    except OSError:
        groups = ()
    return Identity(uid, gid, groups, user)


def identity(ctx: Context) -> Optional[Identity]:
    return ctx.fact("host.identity", current_identity)


# == helpers ==================================================================================================
def _str_or_none(value: Any) -> Optional[str]:
    return str(value) if isinstance(value, (str, int)) and str(value) else None


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _network(text: str) -> Optional[ipaddress.IPv4Network]:
    text = text.strip()
    if text == "default":
        return ipaddress.IPv4Network("0.0.0.0/0")
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError:
        return None


def _route_text(item: Mapping[str, Any]) -> str:
    parts = [str(item["type"])] if item.get("type") else []
    parts.append(str(item.get("dst", "")))
    for key, word in (("gateway", "via"), ("dev", "dev"), ("table", "table"), ("protocol", "proto"),
                      ("scope", "scope"), ("prefsrc", "src"), ("metric", "metric")):
        if item.get(key) not in (None, ""):
            parts.extend([word, str(item[key])])
    return " ".join(parts)


def _ports(text: str) -> Optional[Tuple[Tuple[int, int], ...]]:
    out: List[Tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        out.append((int(low), int(high or low)))
    return tuple(out) if out else None


def _id_ranges(text: str) -> Tuple[Any, ...]:
    low, _, high = text.partition("-")
    if low.isdigit() and (not high or high.isdigit()):
        return ((int(low), int(high or low)),)
    return (text,)

