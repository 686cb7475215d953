"""Proxy settings as each HTTP client family sees them, and whether a request to IMDS would go through one.

IMDS must never be proxied (failure-catalog F08: "Calls via proxy or gateway aren't supported by IMDS").
Every client reads proxy settings from slightly different places and matches ``NO_PROXY`` with its own
rules, so one ``NO_PROXY`` value can protect curl and still let ``requests`` (azure-identity's default
transport) send the token request to the proxy. This module answers, per client family, "would
``http://169.254.169.254/...`` go through a proxy, which one, and why".

Sources for the matching rules (cited on each matcher):

* REF: ``/work/shared/reference/failure-catalog.md`` F08 (requests 2.34, httpx 0.28.1 and ``urllib`` rows,
  measured there) — the only confirmed cells.
* SRC: read from the client's public source (curl ``lib/noproxy.c`` ≥ 7.86 and ``lib/url.c`` ≤ 7.85,
  golang.org/x/net ``http/httpproxy/proxy.go``, dotnet/runtime ``HttpEnvironmentProxy*.cs``, CPython
  ``urllib/request.py`` 3.9–3.13, requests 2.34 ``utils.py``, httpx 0.28 ``_utils.py``). Anything only
  SRC is marked UNCONFIRMED: read, not measured against the real client on a VM.

Proxy URLs are redacted when they are read (``ProxySettings`` never holds a credential), so nothing
downstream can leak one.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from midoctor.facts.network import CommandOutput, FileContent, command, file_text, prefetch
from midoctor.redact import MASK, redact_env_value, redact_url

if TYPE_CHECKING:
    from midoctor.context import Context

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

IMDS_HOST = "169.254.169.254"
IMDS_PORT = 80

# The client families the check reports on. ``requests`` first: it is azure-identity's default transport
# (azure-core ``RequestsTransport``, ``trust_env`` on by default — REF F08).
CLIENT_FAMILIES: Tuple[str, ...] = ("requests", "httpx", "urllib", "curl", "go", "dotnet")
# Matchers ``bypasses`` knows, including variants that are not separate families in the report.
MATCHERS: Tuple[str, ...] = CLIENT_FAMILIES + ("curl-legacy", "windows", "windows-cpython-legacy")

CLIENT_LABELS: Dict[str, str] = {
    "requests": "Python requests (azure-identity's default transport)",
    "httpx": "Python httpx",
    "urllib": "Python urllib / aiohttp (stdlib rules)",
    "curl": "curl / libcurl",
    "go": "Go net/http (azidentity, Terraform)",
    "dotnet": ".NET HttpClient (Azure.Identity)",
    "winhttp": "WinHTTP API clients (Windows services)",
}

PROXY_ENV_NAMES: Tuple[str, ...] = (
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
)

ETC_ENVIRONMENT = Path("/etc/environment")
INTERNET_SETTINGS_KEY = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings"


# -- redaction ----------------------------------------------------------------------------------------------
def redact_proxy(value: str) -> str:
    """A proxy setting as it may appear in a report: credentials gone, with or without a scheme.

    ``redact_url`` only recognises ``scheme://user:pass@host``; proxy variables are just as often written
    ``user:pass@host:3128`` and the registry uses ``http=user:pass@host:80;https=...``.
    """
    parts = re.split(r"([;,])", value)
    return "".join(part if part in (";", ",") else _redact_one_proxy(part) for part in parts)


def _redact_one_proxy(part: str) -> str:
    prefix = ""
    match = re.match(r"^(\s*[A-Za-z][A-Za-z0-9+.-]*=)(?!/)", part)
    if match and "://" not in part[: match.end()]:
        prefix, part = match.group(1), part[match.end():]
    if "://" in part:
        return prefix + redact_url(part)
    if "@" in part:
        return prefix + MASK + "@" + part.rsplit("@", 1)[1]
    return prefix + part


# -- NO_PROXY matchers ---------------------------------------------------------------------------------------
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
    return _requests_first_pass(value, host) or _urllib_bypass(value, host, IMDS_PORT)


def _requests_first_pass(value: str, host: str) -> bool:
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


# -- httpx routing (mounts and URL patterns, as httpx 0.28 builds them) ------------------------------------------
def httpx_route(proxy_info: Mapping[str, str], host: str = IMDS_HOST, port: int = IMDS_PORT) -> Optional[str]:
    """The proxy httpx would use for ``http://host:port/`` given ``urllib.request.getproxies()``-style info,
    or None for a direct connection. Mirrors ``httpx._utils.get_environment_proxies`` and the sorted
    ``URLPattern`` mounts of ``httpx.Client``; URLs are parsed with ``httpx.URL`` itself.
    """
    import httpx

    mounts: Dict[str, Optional[str]] = {}
    for scheme in ("http", "https", "all"):
        if proxy_info.get(scheme):
            target = proxy_info[scheme]
            mounts[f"{scheme}://"] = target if "://" in target else f"http://{target}"
    for entry in (item.strip() for item in proxy_info.get("no", "").split(",")):
        if entry == "*":
            return None
        if not entry:
            continue
        if "://" in entry:
            mounts[entry] = None
        elif _httpx_is_ipv4(entry) or entry.lower() == "localhost":
            mounts[f"all://{entry}"] = None
        elif _httpx_is_ipv6(entry):
            mounts[f"all://[{entry}]"] = None
        else:
            mounts[f"all://*{entry}"] = None
    url = httpx.URL(f"http://{host}/" if port == IMDS_PORT else f"http://{host}:{port}/")
    patterns = sorted(
        ((_HttpxPattern(key), proxy) for key, proxy in mounts.items()), key=lambda item: item[0].priority
    )
    for pattern, proxy in patterns:
        if pattern.matches(url):
            return proxy
    return None


def _httpx_is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text.split("/")[0])
    except ValueError:
        return False
    return True


def _httpx_is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text.split("/")[0])
    except ValueError:
        return False
    return True


class _HttpxPattern:
    def __init__(self, pattern: str) -> None:
        import httpx

        if pattern and ":" not in pattern:
            raise ValueError(f"proxy key {pattern!r} is not a URL")
        url = httpx.URL(pattern)
        self.scheme = "" if url.scheme == "all" else url.scheme
        self.host = "" if url.host == "*" else url.host
        self.port = url.port
        self.regex: Optional[re.Pattern[str]] = None
        if url.host and url.host != "*":
            if url.host.startswith("*."):
                self.regex = re.compile(f"^.+\\.{re.escape(url.host[2:])}$")
            elif url.host.startswith("*"):
                self.regex = re.compile(f"^(.+\\.)?{re.escape(url.host[1:])}$")
            else:
                self.regex = re.compile(f"^{re.escape(url.host)}$")

    @property
    def priority(self) -> Tuple[int, int, int]:
        return (0 if self.port is not None else 1, -len(self.host), -len(self.scheme))

    def matches(self, url: Any) -> bool:
        if self.scheme and self.scheme != url.scheme:
            return False
        if self.host and self.regex is not None and not self.regex.match(url.host):
            return False
        return not (self.port is not None and self.port != url.port)


# -- where settings come from ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class WinHttpProxy:
    """``netsh winhttp show proxy``: the machine-wide WinHTTP default (services using the WinHTTP API)."""

    direct: bool
    proxy_server: str = ""  # redacted
    bypass_list: str = ""
    recognized: bool = True

    def to_evidence(self) -> Dict[str, Any]:
        if not self.recognized:
            return {"state": "unrecognized output (localized Windows?)"}
        if self.direct:
            return {"state": "direct (no proxy server)"}
        return {"state": "proxy", "proxy_server": self.proxy_server, "bypass_list": self.bypass_list or "(none)"}


@dataclass(frozen=True)
class WinInetSettings:
    """``HKCU\\...\\Internet Settings``: the per-user proxy (WinINET; Python's fallback when env is empty)."""

    proxy_enable: bool
    proxy_server: str = ""  # redacted
    proxy_override: str = ""
    auto_config_url: str = ""  # redacted
    values_seen: Tuple[str, ...] = ()

    def http_proxy(self) -> Optional[str]:
        """The proxy for plain-http URLs, as CPython's ``getproxies_registry`` splits ``ProxyServer``."""
        if not self.proxy_enable or not self.proxy_server:
            return None
        server = self.proxy_server
        if "=" not in server and ";" not in server:
            return server if "://" in server else "http://" + server
        protocols: Dict[str, str] = {}
        for part in server.split(";"):
            if "=" not in part:
                continue
            protocol, address = part.split("=", 1)
            protocols[protocol.strip().lower()] = address.strip()
        address = protocols.get("http") or ""
        if not address and protocols.get("socks"):
            address = "socks4://" + protocols["socks"].split("://", 1)[-1]
        if address and not re.match(r"(?:[^/:]+)://", address):
            address = "http://" + address
        return address or None

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"ProxyEnable": int(self.proxy_enable)}
        if self.proxy_server:
            out["ProxyServer"] = self.proxy_server
        if self.proxy_override:
            out["ProxyOverride"] = self.proxy_override
        if self.auto_config_url:
            out["AutoConfigURL"] = self.auto_config_url
        return out


@dataclass(frozen=True)
class ProxySettings:
    """Every proxy setting a client on this machine could read. Values are already redacted."""

    os_name: str
    environ: Dict[str, str] = field(default_factory=dict)  # proxy variables of the diagnosed environment
    etc_environment: Optional[Dict[str, str]] = None  # proxy variables in /etc/environment (None: unread)
    etc_environment_error: Optional[str] = None
    winhttp: Optional[WinHttpProxy] = None
    winhttp_error: Optional[str] = None
    wininet: Optional[WinInetSettings] = None
    wininet_error: Optional[str] = None

    @property
    def windows(self) -> bool:
        return self.os_name.lower().startswith("win")

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "environment": {k: redact_env_value(k, v) for k, v in sorted(self.environ.items())} or "no proxy variables"
        }
        if self.etc_environment is not None:
            out["etc_environment"] = dict(sorted(self.etc_environment.items())) or "no proxy variables"
        elif self.etc_environment_error:
            out["etc_environment"] = f"not read: {self.etc_environment_error}"
        if self.windows:
            out["winhttp"] = self.winhttp.to_evidence() if self.winhttp else f"not read: {self.winhttp_error}"
            out["wininet_hkcu"] = self.wininet.to_evidence() if self.wininet else f"not read: {self.wininet_error}"
        return out


def proxy_environ(environ: Mapping[str, str], windows: bool = False) -> Dict[str, str]:
    """The proxy-related variables of an environment, redacted. On Windows names are case-insensitive, so
    they are upper-cased as ``os.environ`` does there."""
    out: Dict[str, str] = {}
    for name, value in environ.items():
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if name.lower().endswith("_proxy") or name in ("REQUEST_METHOD", "GATEWAY_INTERFACE"):
            key = name.upper() if windows else name
            out[key] = value if name.lower() == "no_proxy" else redact_proxy(value)
    return out


# -- /etc/environment ---------------------------------------------------------------------------------------------
def parse_etc_environment(text: str) -> Dict[str, str]:
    """``KEY=value`` lines as pam_env reads them: comments, blank lines, an optional ``export`` prefix,
    and one pair of matching quotes around the value. Lines that are not assignments are ignored."""
    out: Dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[name] = value
    return out


# -- Windows parsers ---------------------------------------------------------------------------------------------
def parse_netsh_winhttp(text: str) -> WinHttpProxy:
    """``netsh winhttp show proxy``. English labels are matched; on a localized Windows the two
    ``label : value`` lines still come in the same order (proxy server(s), then bypass list)."""
    pairs: List[Tuple[str, str]] = []
    for raw in text.splitlines():
        label, sep, value = raw.partition(" :")
        # The header ("Current WinHTTP proxy settings:", French "... actuels :") has no value after it.
        if sep and label.strip() and value.strip():
            pairs.append((label.strip().lower(), value.strip()))
    if not pairs:
        if "direct access" in text.lower():
            return WinHttpProxy(direct=True)
        return WinHttpProxy(direct=False, recognized=False)
    server = next((v for k, v in pairs if k.startswith("proxy server")), pairs[0][1])
    bypass = next((v for k, v in pairs if k.startswith("bypass list")), pairs[1][1] if len(pairs) > 1 else "")
    if re.fullmatch(r"\(.*\)", bypass):  # "(none)", "(aucun)"
        bypass = ""
    return WinHttpProxy(direct=False, proxy_server=redact_proxy(server), bypass_list=bypass)


_REG_VALUE = re.compile(r"^\s{2,}(?P<name>.+?)\s{2,}(?P<type>REG_[A-Z0-9_]+)(?:\s{2,}(?P<data>.*?))?\s*$")


def parse_reg_query(text: str) -> Dict[str, Tuple[str, str]]:
    """``reg query <key>`` value lines: ``    Name    REG_TYPE    data`` → {name: (type, data)}.
    Only values of the queried key itself (the first key header) are returned, not of sub-keys."""
    values: Dict[str, Tuple[str, str]] = {}
    keys_seen = 0
    for raw in text.splitlines():
        line = raw.rstrip("\r")
        if line.startswith("HKEY_"):
            keys_seen += 1
            continue
        if keys_seen > 1:
            break
        match = _REG_VALUE.match(line)
        if match:
            values[match.group("name")] = (match.group("type"), match.group("data") or "")
    return values


def parse_internet_settings(text: str) -> WinInetSettings:
    values = parse_reg_query(text)

    def dword(name: str) -> int:
        kind, data = values.get(name, ("", ""))
        try:
            return int(data, 16) if data.lower().startswith("0x") else int(data or 0)
        except ValueError:
            return 0

    def text_value(name: str) -> str:
        return values.get(name, ("", ""))[1].strip()

    return WinInetSettings(
        proxy_enable=dword("ProxyEnable") != 0,
        proxy_server=redact_proxy(text_value("ProxyServer")),
        proxy_override=text_value("ProxyOverride"),
        auto_config_url=redact_url(text_value("AutoConfigURL")) if text_value("AutoConfigURL") else "",
        values_seen=tuple(sorted(values)),
    )


# -- per-client decision -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClientDecision:
    """Whether one client family would send the IMDS request through a proxy, and why."""

    client: str
    proxied: bool
    reason: str
    proxy: Optional[str] = None  # redacted
    proxy_source: Optional[str] = None
    bypass_source: Optional[str] = None
    confirmed: bool = False  # True only where the reference measured this rule (REF F08)
    broken: bool = False  # the client would fail outright (e.g. Go refusing HTTP_PROXY under CGI)

    @property
    def label(self) -> str:
        return CLIENT_LABELS.get(self.client, self.client)

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"client": self.client, "proxied": self.proxied, "reason": self.reason}
        for key in ("proxy", "proxy_source", "bypass_source"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if not self.confirmed:
            out["rule_source"] = "client source code (UNCONFIRMED on a VM)"
        if self.broken:
            out["broken"] = True
        return out


def _env(environ: Mapping[str, str], name: str, windows: bool) -> Optional[str]:
    if windows:
        return environ.get(name.upper())
    return environ.get(name)


def python_getproxies_environment(environ: Mapping[str, str]) -> Dict[str, str]:
    """CPython ``urllib.request.getproxies_environment`` on a mapping (3.9–3.13 identical): non-empty
    any-case ``*_proxy`` first, ``http`` dropped under CGI (``REQUEST_METHOD`` set), then lowercase names
    override — and an empty lowercase value removes the entry."""
    proxies: Dict[str, str] = {}
    for name, value in environ.items():
        if len(name) > 5 and name[-6] == "_" and name[-5:].lower() == "proxy" and value:
            proxies[name[:-6].lower()] = value
    if "REQUEST_METHOD" in environ:
        proxies.pop("http", None)
    for name, value in environ.items():
        if name[-6:] == "_proxy":
            key = name[:-6].lower()
            if value:
                proxies[key] = value
            else:
                proxies.pop(key, None)
    return proxies


def _python_proxy_info(settings: ProxySettings) -> Tuple[Dict[str, str], str]:
    """What ``urllib.request.getproxies()`` returns and where it came from (env, else the registry on
    Windows — REF F08, CPython ``getproxies_registry``)."""
    env = python_getproxies_environment(settings.environ)
    if env or not settings.windows:
        return env, "environment"
    info: Dict[str, str] = {}
    if settings.wininet is not None:
        http = settings.wininet.http_proxy()
        if http:
            info["http"] = http
    return info, "registry HKCU Internet Settings"


def _python_registry_bypass(settings: ProxySettings, host: str) -> Tuple[bool, str]:
    """``proxy_bypass_registry``: ProxyOverride with the glob matcher (CPython ≥ 3.13) and the prefix regex
    (≤ 3.12); when they disagree the app's Python version decides, so only a bypass both agree on counts."""
    wininet = settings.wininet
    if wininet is None or not wininet.proxy_enable or not wininet.proxy_override:
        return False, "no ProxyOverride"
    modern = bypasses(wininet.proxy_override, host, client="windows")
    legacy = bypasses(wininet.proxy_override, host, client="windows-cpython-legacy")
    if modern and legacy:
        return True, "ProxyOverride lists it"
    if modern or legacy:
        return False, "ProxyOverride matches only on CPython " + ("≥ 3.13" if modern else "≤ 3.12")
    return False, "ProxyOverride does not list it"


def _decide_python(client: str, settings: ProxySettings, host: str, port: int) -> ClientDecision:
    info, origin = _python_proxy_info(settings)
    confirmed = client in ("requests", "httpx", "urllib") and not settings.windows
    if client == "httpx":
        proxy = httpx_route(info, host, port) if info else None
        no_proxy = info.get("no")
        if proxy is None:
            if not any(info.get(k) for k in ("http", "all")):
                return ClientDecision(client, False, f"no http/all proxy in the {origin}", confirmed=confirmed)
            return ClientDecision(client, False, "NO_PROXY bypasses IMDS", bypass_source=_no_proxy_name(settings),
                                  confirmed=confirmed)
        reason = "no NO_PROXY set" if not no_proxy else "NO_PROXY does not match IMDS under httpx rules"
        if origin != "environment":
            reason = "httpx ignores ProxyOverride (derived from source, UNCONFIRMED)"
        return ClientDecision(client, True, reason, proxy=proxy, proxy_source=f"{origin}",
                              bypass_source=_no_proxy_name(settings) if no_proxy else None, confirmed=confirmed)
    if client == "requests":
        proxy = next((info[k] for k in ("http", "all") if k in info), None)  # select_proxy key order
    else:
        proxy = info.get("http")  # urllib's ProxyHandler has no "all" handler
    if not proxy:
        what = "http/all" if client == "requests" else "http"
        return ClientDecision(client, False, f"no {what} proxy in the {origin}", confirmed=confirmed)
    if origin == "environment":
        if client == "requests":
            # Two readers: requests' own pass reads ``no_proxy or NO_PROXY``; its urllib fallback reads
            # CPython's view, where an empty lowercase ``no_proxy`` deletes the entry.
            no_proxy = _requests_no_proxy(settings)
            bypass = bool(no_proxy and _requests_first_pass(no_proxy, host)) or \
                bypasses(info.get("no"), host, IMDS_PORT, client="urllib")
        else:
            no_proxy = info.get("no")
            bypass = bypasses(no_proxy, host, port, client=client)
        if bypass:
            return ClientDecision(client, False, "NO_PROXY bypasses IMDS", bypass_source=_no_proxy_name(settings),
                                  confirmed=confirmed)
        reason = "no NO_PROXY set" if not no_proxy else f"NO_PROXY does not match IMDS under {client} rules"
        return ClientDecision(client, True, reason, proxy=proxy, proxy_source=_proxy_var_name(settings, client),
                              bypass_source=_no_proxy_name(settings) if no_proxy else None, confirmed=confirmed)
    bypass, why = _python_registry_bypass(settings, host)
    if bypass:
        return ClientDecision(client, False, why, bypass_source="registry ProxyOverride")
    return ClientDecision(client, True, why, proxy=proxy, proxy_source=origin, bypass_source="registry ProxyOverride")


def _requests_no_proxy(settings: ProxySettings) -> Optional[str]:
    # requests reads ``no_proxy`` or, when that is empty/unset, ``NO_PROXY`` (utils.should_bypass_proxies).
    env = settings.environ
    if settings.windows:
        return env.get("NO_PROXY") or None
    return env.get("no_proxy") or env.get("NO_PROXY") or None


def _no_proxy_name(settings: ProxySettings) -> str:
    env = settings.environ
    if not settings.windows and env.get("no_proxy"):
        return "no_proxy"
    return "NO_PROXY"


def _proxy_var_name(settings: ProxySettings, client: str) -> str:
    env = settings.environ
    candidates = ("http_proxy", "HTTP_PROXY") + (("all_proxy", "ALL_PROXY") if client == "requests" else ())
    for name in candidates:
        if _env(env, name, settings.windows):
            return f"env {name.upper() if settings.windows else name}"
    return "environment"


def _first_set(environ: Mapping[str, str], names: Sequence[str], windows: bool) -> Optional[Tuple[str, str]]:
    for name in names:
        value = _env(environ, name, windows)
        if value:
            return (name.upper() if windows else name), value
    return None


def _decide_env_client(client: str, settings: ProxySettings, host: str, port: int) -> ClientDecision:
    """curl, Go and .NET: each has its own variable names, case rules and CGI guard (SRC)."""
    env, win = settings.environ, settings.windows
    notes: List[str] = []
    if client == "curl":
        # lib/url.c detect_proxy: lowercase http_proxy only ("HTTP_PROXY" is ignored for security), then
        # all_proxy/ALL_PROXY; no_proxy before NO_PROXY. Windows getenv is case-insensitive.
        found = _first_set(env, ("http_proxy", "all_proxy", "ALL_PROXY"), win)
        if not found and not win and env.get("HTTP_PROXY"):
            notes.append("curl ignores uppercase HTTP_PROXY")
        no_proxy = _first_set(env, ("no_proxy", "NO_PROXY"), win)
    elif client == "go":
        # httpproxy.FromEnvironment: uppercase first; no ALL_PROXY; REQUEST_METHOD set means CGI.
        found = _first_set(env, ("HTTP_PROXY", "http_proxy"), win)
        no_proxy = _first_set(env, ("NO_PROXY", "no_proxy"), win)
        if found and _env(env, "REQUEST_METHOD", win):
            return ClientDecision(client, False, "REQUEST_METHOD is set (CGI): Go refuses HTTP_PROXY and the "
                                  "request fails with 'refusing to use HTTP_PROXY value in CGI environment'",
                                  proxy=found[1], proxy_source=f"env {found[0]}", broken=True)
    else:
        # HttpEnvironmentProxy.Unix: lowercase wins; HTTP_PROXY skipped when GATEWAY_INTERFACE is set (CGI).
        names: List[str] = ["http_proxy"]
        if _env(env, "GATEWAY_INTERFACE", win) is None:
            names.append("HTTP_PROXY")
        found = _first_set(env, names + ["all_proxy", "ALL_PROXY"], win)
        no_name = "no_proxy" if (_env(env, "no_proxy", win) is not None) else "NO_PROXY"
        no_value = _env(env, no_name, win)
        no_proxy = (no_name.upper() if win else no_name, no_value) if no_value is not None else None
        if not found and win:
            return _decide_dotnet_system(settings, host)
    if not found:
        reason = "no proxy variable it reads is set" + (f" ({'; '.join(notes)})" if notes else "")
        return ClientDecision(client, False, reason)
    name, proxy = found
    if no_proxy and bypasses(no_proxy[1], host, port, client=client):
        return ClientDecision(client, False, f"{no_proxy[0]} bypasses IMDS", bypass_source=f"env {no_proxy[0]}")
    reason = "no NO_PROXY set" if not no_proxy or not no_proxy[1] else f"{no_proxy[0]} does not match IMDS " \
        f"under {client} rules"
    return ClientDecision(client, True, reason, proxy=proxy, proxy_source=f"env {name}",
                          bypass_source=f"env {no_proxy[0]}" if no_proxy else None)


def _decide_dotnet_system(settings: ProxySettings, host: str) -> ClientDecision:
    """.NET on Windows without proxy variables uses the user's WinINET settings (HttpWindowsProxy, SRC;
    bypass semantics assumed to be the ProxyOverride glob rules: UNCONFIRMED)."""
    wininet = settings.wininet
    http = wininet.http_proxy() if wininet else None
    if wininet and wininet.auto_config_url and not http:
        return ClientDecision("dotnet", False, "a PAC script (AutoConfigURL) decides; midoctor cannot evaluate it",
                              proxy_source="registry AutoConfigURL")
    if not http:
        return ClientDecision("dotnet", False, "no proxy variables and no WinINET proxy")
    if wininet and wininet.proxy_override and bypasses(wininet.proxy_override, host, client="windows"):
        return ClientDecision("dotnet", False, "ProxyOverride lists IMDS", bypass_source="registry ProxyOverride")
    return ClientDecision("dotnet", True, "WinINET proxy without a matching ProxyOverride", proxy=http,
                          proxy_source="registry HKCU Internet Settings", bypass_source="registry ProxyOverride")


def decide(client: str, settings: ProxySettings, host: str = IMDS_HOST, port: int = IMDS_PORT) -> ClientDecision:
    """One family's decision for ``http://host:port/``. Never raises."""
    try:
        if client in ("requests", "httpx", "urllib"):
            return _decide_python(client, settings, host, port)
        if client in ("curl", "go", "dotnet"):
            return _decide_env_client(client, settings, host, port)
        if client == "winhttp":
            return _decide_winhttp(settings, host)
    except Exception as exc:  # noqa: BLE001 - a decision that cannot be made is reported, not raised
        return ClientDecision(client, False, f"could not evaluate: {type(exc).__name__}: {exc}")
    raise ValueError(f"unknown client family {client!r}")


def _decide_winhttp(settings: ProxySettings, host: str) -> ClientDecision:
    winhttp = settings.winhttp
    if winhttp is None or winhttp.direct or not winhttp.recognized:
        return ClientDecision("winhttp", False, "WinHTTP is set to direct access" if winhttp and winhttp.direct
                              else "WinHTTP proxy not known")
    if winhttp.bypass_list and bypasses(winhttp.bypass_list, host, client="windows"):
        return ClientDecision("winhttp", False, "bypass-list lists IMDS", bypass_source="netsh winhttp bypass-list")
    return ClientDecision("winhttp", True, "WinHTTP proxy without a matching bypass-list",
                          proxy=winhttp.proxy_server, proxy_source="netsh winhttp",
                          bypass_source="netsh winhttp bypass-list")


def decide_all(settings: ProxySettings, host: str = IMDS_HOST, port: int = IMDS_PORT) -> List[ClientDecision]:
    """Every family's decision; WinHTTP is added on Windows."""
    families: Iterable[str] = CLIENT_FAMILIES + (("winhttp",) if settings.windows else ())
    return [decide(client, settings, host, port) for client in families]


def etc_environment_decisions(settings: ProxySettings, host: str = IMDS_HOST) -> List[ClientDecision]:
    """Decisions for a process whose environment came from /etc/environment alone (a login session, cron
    on Debian/Ubuntu via pam_env) — the "works in my shell, fails in the service" split (F10)."""
    if not settings.etc_environment:
        return []
    other = ProxySettings(os_name=settings.os_name, environ=proxy_environ(settings.etc_environment))
    return decide_all(other, host)


def suggested_no_proxy(current: Optional[str]) -> str:
    """The NO_PROXY value to recommend: the current list plus the exact IMDS address, the one form every
    family honours (REF F08: "avoid :port forms; prefer exact IP over CIDR for httpx")."""
    entries = [e.strip() for e in (current or "").split(",") if e.strip()]
    if IMDS_HOST not in entries:
        entries.append(IMDS_HOST)
    return ",".join(entries)


def suggested_override(current: Optional[str]) -> str:
    entries = [e.strip() for e in (current or "").split(";") if e.strip()]
    if IMDS_HOST not in entries:
        entries.append(IMDS_HOST)
    return ";".join(entries)


# -- gathering: raw inputs arrive through the probe seam of midoctor.facts.network ---------------------------
NETSH_WINHTTP: Tuple[str, ...] = ("netsh", "winhttp", "show", "proxy")
REG_INTERNET_SETTINGS: Tuple[str, ...] = ("reg", "query", INTERNET_SETTINGS_KEY)
WINDOWS_COMMANDS: Tuple[Tuple[str, ...], ...] = (NETSH_WINHTTP, REG_INTERNET_SETTINGS)


def _command_text(output: Optional[CommandOutput]) -> Tuple[Optional[str], Optional[str]]:
    """(text, None) when the command answered, (None, why not) otherwise."""
    if output is None:
        return None, "not probed"
    if not output.ran:
        return None, output.reason
    if output.returncode not in (0, None):
        first = (output.stderr.strip() or output.stdout.strip()).splitlines()[:1]
        return None, f"exit {output.returncode}" + (f": {first[0][:200]}" if first else "")
    return output.stdout, None


def gather(os_name: str, environ: Mapping[str, str], etc_environment: Optional[FileContent] = None,
           winhttp: Optional[CommandOutput] = None,
           internet_settings: Optional[CommandOutput] = None) -> ProxySettings:
    """Assemble the settings from raw inputs; every source that could not be read says why."""
    windows = os_name.lower().startswith("win")
    etc_values: Optional[Dict[str, str]] = None
    etc_error: Optional[str] = None
    if etc_environment is not None:
        if etc_environment.text is not None:
            etc_values = proxy_environ(parse_etc_environment(etc_environment.text))
        else:
            etc_error = etc_environment.reason
    win_proxy: Optional[WinHttpProxy] = None
    inet: Optional[WinInetSettings] = None
    win_error = inet_error = None
    if windows:
        text, win_error = _command_text(winhttp)
        win_proxy = parse_netsh_winhttp(text) if text is not None else None
        text, inet_error = _command_text(internet_settings)
        inet = parse_internet_settings(text) if text is not None else None
    return ProxySettings(
        os_name=os_name,
        environ=proxy_environ(environ, windows),
        etc_environment=etc_values,
        etc_environment_error=etc_error,
        winhttp=win_proxy,
        winhttp_error=win_error,
        wininet=inet,
        wininet_error=inet_error,
    )


def inspect_proxy(ctx: Context, os_name: str) -> ProxySettings:
    """The proxy settings of the diagnosed environment (``ctx.environ``), memoized as ``proxy.settings``."""
    def produce() -> ProxySettings:
        if os_name.lower().startswith("win"):
            prefetch(ctx, WINDOWS_COMMANDS)
            return gather(os_name, ctx.environ, None, command(ctx, NETSH_WINHTTP),
                          command(ctx, REG_INTERNET_SETTINGS))
        return gather(os_name, ctx.environ, file_text(ctx, str(ETC_ENVIRONMENT)))

    return ctx.fact("proxy.settings", produce)
