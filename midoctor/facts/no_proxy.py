"""Per-client NO_PROXY matching: would this client skip its proxy for ``http://169.254.169.254/``?

Every client matches ``NO_PROXY`` (or a Windows bypass list) with its own rules, so one value can protect
curl and still let ``requests`` (azure-identity's default transport) send the token request to the proxy.
``bypasses`` applies one family's rules; which proxy a family reads in the first place is decided in
``midoctor.facts.proxy``.

Sources for the matching rules (cited on each matcher):

* REF: ``/work/shared/reference/failure-catalog.md`` F08 (requests 2.34, httpx 0.28.1 and ``urllib`` rows,
  measured there) — the only confirmed cells.
* SRC: read from the client's public source (curl ``lib/noproxy.c`` ≥ 7.86 and ``lib/url.c`` ≤ 7.85,
  golang.org/x/net ``http/httpproxy/proxy.go``, dotnet/runtime ``HttpEnvironmentProxy*.cs``, CPython
  ``urllib/request.py`` 3.9–3.13, requests 2.34 ``utils.py``, httpx 0.28 ``_utils.py``). Anything only
  SRC is marked UNCONFIRMED: read, not measured against the real client on a VM.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
import struct
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from midoctor.facts.httpx_routing import httpx_route
from midoctor.facts.ipv4 import IMDS_IP, IMDS_PORT

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

IMDS_HOST = IMDS_IP

# The client families the check reports on. ``requests`` first: it is azure-identity's default transport
# (azure-core ``RequestsTransport``, ``trust_env`` on by default — REF F08).
CLIENT_FAMILIES: Tuple[str, ...] = ("requests", "httpx", "urllib", "curl", "go", "dotnet")
# Matchers ``bypasses`` knows, including variants that are not separate families in the report.
MATCHERS: Tuple[str, ...] = CLIENT_FAMILIES + ("curl-legacy", "windows", "windows-cpython-legacy")


def bypasses(no_proxy_value: Optional[str], host: str = IMDS_HOST, port: int = IMDS_PORT,
             client: str = "requests") -> bool:
    """Would ``client`` skip its proxy for ``http://host:port/`` given this NO_PROXY / bypass-list value?

    ``client`` is one of ``MATCHERS``: the six families, ``curl-legacy`` (curl ≤ 7.85: Ubuntu 20.04/22.04,
    RHEL 8 ship 7.61–7.81, so CIDR entries do nothing there), ``windows`` (ProxyOverride / WinHTTP
    bypass-list; also CPython ≥ 3.13's registry matcher) and ``windows-cpython-legacy`` (CPython ≤ 3.12's
    registry matcher). Never raises: a value the client itself would choke on counts as "no bypass".
    """
    if no_proxy_value is None or no_proxy_value == "":
        return False
    try:
        return bool(_MATCHER_FUNCS[client](no_proxy_value, host, port))
    except KeyError:
        raise ValueError(f"unknown client family {client!r}; expected one of {', '.join(MATCHERS)}") from None
    except Exception:  # noqa: BLE001 - the client would fail to use this entry; that is not a bypass
        return False


def _urllib_bypass(value: str, host: str, port: int) -> bool:
    """CPython ``urllib.request.proxy_bypass_environment`` (identical in 3.9–3.13; REF F08: CIDR ✘).

    Only a value that is exactly ``*`` disables the proxy; entries are stripped, lower-cased, leading dots
    dropped, then compared as a host or a dot-suffix. ``host`` is the URL's netloc, so ``ip:port`` entries
    only match when the URL itself spells the port.
    """
    if value == "*":
        return True
    netloc = host.lower() if port == IMDS_PORT else f"{host}:{port}".lower()
    hostonly = netloc.rsplit(":", 1)[0] if re.search(r":\d*$", netloc) else netloc
    for name in value.split(","):
        name = name.strip()
        if not name:
            continue
        name = name.lstrip(".").lower()
        if hostonly == name or netloc == name:
            return True
        name = "." + name
        if hostonly.endswith(name) or netloc.endswith(name):
            return True
    return False


def _requests_bypass(value: str, host: str, port: int) -> bool:
    """requests 2.34 ``utils.should_bypass_proxies`` for an IPv4 host (REF F08: exact ✔, ``.ip`` ✔, ``*`` ✔,
    CIDR ✔, ``ip:port`` ✘, ``169.254.*`` ✘).

    First pass: spaces removed (tabs are not), each entry is a CIDR (checked with ``socket.inet_aton`` and
    ``int()``, exactly as requests does, so its quirks are reproduced) or must equal the host. Second
    pass: the ``urllib`` rules on the bare host name.
    """
    return requests_first_pass(value, host) or _urllib_bypass(value, host, IMDS_PORT)


def requests_first_pass(value: str, host: str) -> bool:
    """requests' own pass alone: its decision reads ``no_proxy or NO_PROXY`` here but CPython's view of the
    environment in the ``urllib`` fallback, so the two must be asked separately."""
    entries = [entry for entry in value.replace(" ", "").split(",") if entry]
    if _inet_aton_ok(host):
        for entry in entries:
            if _requests_valid_cidr(entry):
                if _requests_in_network(host, entry):
                    return True
            elif host == entry:
                return True
    return False


def _inet_aton_ok(text: str) -> bool:
    try:
        socket.inet_aton(text)
    except (OSError, ValueError):
        return False
    return True


def _requests_valid_cidr(entry: str) -> bool:
    if entry.count("/") != 1:
        return False
    address, bits = entry.split("/")
    try:
        mask = int(bits)
    except ValueError:
        return False
    return 1 <= mask <= 32 and _inet_aton_ok(address)


def _requests_in_network(ip: str, net: str) -> bool:
    address, bits = net.split("/")
    mask_bits = 0xFFFFFFFF ^ (1 << 32 - int(bits)) - 1
    netmask = struct.unpack("=L", socket.inet_aton(socket.inet_ntoa(struct.pack(">I", mask_bits))))[0]
    ipaddr = struct.unpack("=L", socket.inet_aton(ip))[0]
    network = struct.unpack("=L", socket.inet_aton(address))[0] & netmask
    return (ipaddr & netmask) == (network & netmask)


def _httpx_bypass(value: str, host: str, port: int) -> bool:
    """httpx 0.28 ``get_environment_proxies`` + ``URLPattern`` with an HTTP proxy configured.

    REF F08: exact ✔, ``*`` ✔, CIDR ✘, ``ip:port`` ✘. Derived from source (verified against the installed
    httpx in tests/test_proxy.py, UNCONFIRMED for other versions): ``.169.254.169.254`` ✘ (becomes
    ``*.169.254.169.254``, subdomains only), ``169.254.*`` ✘, whitespace around entries ✔; a CIDR whose
    address part *is* the host (``169.254.169.254/16``) matches because httpx reads ``/16`` as a URL path.
    """
    decision = httpx_route({"http": "http://proxy.invalid:3128", "no": value}, host, port)
    return decision is None


def _curl_bypass(value: str, host: str, port: int) -> bool:
    """curl ≥ 7.86 ``Curl_check_noproxy`` for an IPv4 host (SRC lib/noproxy.c; UNCONFIRMED on a VM).

    Only a value that is exactly ``*`` disables the proxy; tokens are separated by commas and blanks
    (space, tab), and a token ends the list unless a comma follows it. For an IP host each token is an
    address with an optional ``/bits`` (CIDR ✔), compared as addresses: ``.169.254.169.254`` ✘,
    ``169.254.169.254:80`` ✘, ``169.254.*`` ✘.
    """
    if value == "*":
        return True
    if _strict_ipv4(host) is None:
        return _curl_legacy_bypass(value, host, port)  # host names keep the string rules
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t":
            i += 1
        start = i
        while i < n and value[i] not in " \t,":
            i += 1
        token = value[start:i]
        if token and len(token) < 128 and _curl_cidr4_match(host, token):
            return True
        while i < n and value[i] in " \t":
            i += 1
        if i >= n or value[i] != ",":
            break
        while i < n and value[i] == ",":
            i += 1
    return False


def _curl_cidr4_match(host: str, token: str) -> bool:
    check, bits = token, 0
    if "/" in token:
        check, rest = token.split("/", 1)
        bits = _c_atoi(rest) & 0xFFFFFFFF
    if bits > 32:
        return False
    address, network = _strict_ipv4(host), _strict_ipv4(check)
    if address is None or network is None:
        return False
    if bits and bits != 32:
        mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
        return (int(address) ^ int(network)) & mask == 0
    return address == network


def _c_atoi(text: str) -> int:
    match = re.match(r"[ \t\n\v\f\r]*([+-]?\d+)", text)
    if not match or not match.group(1).lstrip("+-").isascii():
        return 0
    return int(match.group(1))


def _curl_legacy_bypass(value: str, host: str, port: int) -> bool:
    """curl ≤ 7.85 ``check_noproxy`` (SRC lib/url.c; UNCONFIRMED on a VM): pure string tail-match.

    Separators are comma and space (not tab); a leading dot is dropped; the token must equal the host or
    be a dot-aligned suffix of it. No CIDR, so ``169.254.0.0/16`` ✘ while ``.169.254.169.254`` ✔.
    """
    if value.lower() == "*":
        return True
    name = host.lower()
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in ", ":
            i += 1
        if i == n:
            break
        end = i
        while end < n and value[end] not in ", ":
            end += 1
        start = i + 1 if value[i] == "." else i
        token = value[start:end].lower()
        if len(token) <= len(name) and name.endswith(token):
            if len(token) == len(name) or name[len(name) - len(token) - 1] == ".":
                return True
        i = end + 1
    return False


def _go_bypass(value: str, host: str, port: int) -> bool:
    """Go ``golang.org/x/net/http/httpproxy`` (used by ``http.ProxyFromEnvironment``; SRC, UNCONFIRMED).

    Entries split on commas, trimmed and lower-cased; any entry ``*`` disables the proxy; CIDR ✔;
    ``ip:port`` ✔ (the request port is 80 for http); an exact IP ✔ (IPv4-mapped IPv6 too); other entries
    are domain suffixes: ``.169.254.169.254`` ✘ (subdomains only), ``169.254.*`` ✘, but ``254.169.254`` ✔.
    Loopback and ``localhost`` are never proxied (irrelevant for IMDS).
    """
    target = _strict_ipv4(host)
    lowered_host = host.lower().strip(_GO_SPACE)
    port_text = str(port)
    ip_hits: List[bool] = []
    domain_hits: List[bool] = []
    for raw in value.split(","):
        entry = raw.strip(_GO_SPACE).lower()
        if not entry:
            continue
        if entry == "*":
            return True
        network = _go_parse_cidr(entry)
        if network is not None:
            ip_hits.append(target is not None and _go_contains(network, target))
            continue
        split = _go_split_host_port(entry)
        entry_host, entry_port = split if split is not None else (entry, "")
        entry_ip = _go_parse_ip(entry_host)
        if entry_ip is not None:
            ip_hits.append(target is not None and _go_ip_equal(entry_ip, target)
                           and entry_port in ("", port_text))
            continue
        if not entry_host:
            continue
        if entry_host.startswith("*."):
            entry_host = entry_host[1:]
        match_host = not entry_host.startswith(".")
        suffix = "." + entry_host if match_host else entry_host
        domain_hits.append((lowered_host.endswith(suffix) or (match_host and lowered_host == suffix[1:]))
                           and entry_port in ("", port_text))
    # Go consults IP matchers only for IP hosts, then domain matchers for every host.
    return any(ip_hits if target is not None else []) or any(domain_hits)


_GO_SPACE = " \t\n\v\f\r\x85\xa0"


def _go_parse_ip(text: str) -> Optional[IPAddress]:
    v4 = _strict_ipv4(text)
    if v4 is not None:
        return v4
    if ":" in text and "%" not in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return None


def _go_parse_cidr(text: str) -> Optional[IPNetwork]:
    if "/" not in text:
        return None
    address, bits = text.split("/", 1)
    ip = _go_parse_ip(address)
    if ip is None or not bits.isdigit() or not bits.isascii() or len(bits) > 3:
        return None
    prefix = int(bits)
    if prefix > ip.max_prefixlen:
        return None
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)


def _go_ip_equal(a: IPAddress, b: IPAddress) -> bool:
    # Go's IP.Equal treats an IPv4 address and its IPv4-mapped IPv6 form as the same address.
    def v4(x: IPAddress) -> Any:
        return x.ipv4_mapped if isinstance(x, ipaddress.IPv6Address) and x.ipv4_mapped else x

    return bool(v4(a) == v4(b))


def _go_contains(network: IPNetwork, ip: IPAddress) -> bool:
    # An IPv6 network never contains a 4-byte IPv4 address in Go (length mismatch in IPNet.Contains).
    return network.version == ip.version and ip in network


def _go_split_host_port(text: str) -> Optional[Tuple[str, str]]:
    """``net.SplitHostPort``; None where Go returns an error."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or end + 1 >= len(text) or text[end + 1] != ":":
            return None
        host, port = text[1:end], text[end + 2:]
        if "[" in host or "]" in host:
            return None
    else:
        colon = text.rfind(":")
        if colon < 0:
            return None
        host, port = text[:colon], text[colon + 1:]
        if ":" in host or "[" in host or "]" in host:
            return None
    if "[" in port or "]" in port:
        return None
    return host, port


def _dotnet_bypass(value: str, host: str, port: int) -> bool:
    """.NET ``HttpEnvironmentProxy.IsMatchInBypassList`` (SRC dotnet/runtime, UNCONFIRMED on a VM).

    Entries split on commas and trimmed; ``.suffix`` matches the host itself or a dot-suffix; anything
    else must equal the host (case-insensitive). No ``*``, no CIDR, no ports, no globs.
    """
    name = host.lower()
    for raw in value.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry.startswith("."):
            if entry[1:] == name or name.endswith(entry):
                return True
        elif entry == name:
            return True
    return False


def _windows_bypass(value: str, host: str, port: int) -> bool:
    """Windows ProxyOverride / WinHTTP bypass-list, as CPython ≥ 3.13 ``_proxy_bypass_winreg_override``
    applies it (SRC): entries split on ``;``, stripped, ``<local>`` means "a host name without a dot"
    (so never IMDS), others are case-insensitive globs (``169.254.*`` ✔, ``*`` ✔). Native WinINET/WinHTTP
    matching is assumed to be the same glob semantics: UNCONFIRMED (no Microsoft source in the reference).
    """
    name = host.lower()
    for raw in value.split(";"):
        entry = raw.strip()
        if entry == "<local>":
            if "." not in name:
                return True
        elif entry and fnmatch.fnmatchcase(name, entry.lower().replace("/", "\\")):
            return True
    return False


def _windows_cpython_legacy_bypass(value: str, host: str, port: int) -> bool:
    """CPython ≤ 3.12 ``proxy_bypass_registry`` (SRC): entries split on ``;`` and NOT stripped, turned into
    a regex anchored only at the start (``re.match``), so ``169.254`` matches ``169.254.169.254`` and
    `` 169.254.169.254`` (leading space) does not. A pattern that is not a valid regex raises inside the
    client (the request fails); here that is "no bypass".
    """
    name = host.lower()
    for entry in value.split(";"):
        if entry == "<local>" and "." not in name:
            return True
        pattern = entry.replace(".", r"\.").replace("*", r".*").replace("?", r".")
        try:
            if re.match(pattern, name, re.I):
                return True
        except re.error:
            return False
    return False


_MATCHER_FUNCS: Dict[str, Callable[[str, str, int], bool]] = {
    "requests": _requests_bypass,
    "httpx": _httpx_bypass,
    "urllib": _urllib_bypass,
    "curl": _curl_bypass,
    "curl-legacy": _curl_legacy_bypass,
    "go": _go_bypass,
    "dotnet": _dotnet_bypass,
    "windows": _windows_bypass,
    "windows-cpython-legacy": _windows_cpython_legacy_bypass,
}


def _strict_ipv4(text: str) -> Optional[ipaddress.IPv4Address]:
    """Dotted-quad only, no leading zeros: what ``inet_pton`` (curl) and Go's ``ParseIP`` accept."""
    if not re.fullmatch(r"[0-9.]{7,15}", text):
        return None
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None
