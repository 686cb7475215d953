"""Where proxy settings come from, read and redacted: environment variables, ``/etc/environment``, the
WinHTTP default (``netsh winhttp show proxy``) and the per-user WinINET registry key.

Proxy URLs are redacted when they are read (nothing parsed here holds a credential), so nothing downstream
can leak one. Parsers are pure: the commands themselves run through ``midoctor.facts.probes``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from midoctor.redact import MASK, redact_url

PROXY_ENV_NAMES: Tuple[str, ...] = (
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY",
)

ETC_ENVIRONMENT = Path("/etc/environment")
INTERNET_SETTINGS_KEY = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings"
NETSH_WINHTTP: Tuple[str, ...] = ("netsh", "winhttp", "show", "proxy")
REG_INTERNET_SETTINGS: Tuple[str, ...] = ("reg", "query", INTERNET_SETTINGS_KEY)
WINDOWS_COMMANDS: Tuple[Tuple[str, ...], ...] = (NETSH_WINHTTP, REG_INTERNET_SETTINGS)


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


# -- environment variables -------------------------------------------------------------------------------------
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


# -- Windows: WinHTTP and WinINET ------------------------------------------------------------------------------
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
