"""Proxy settings as each HTTP client family sees them, and whether a request to IMDS would go through one.

IMDS must never be proxied (failure-catalog F08: "Calls via proxy or gateway aren't supported by IMDS").
Every client reads proxy settings from slightly different places (``proxy_sources``) and matches
``NO_PROXY`` with its own rules (``no_proxy``). This module answers, per client family, "would
``http://169.254.169.254/...`` go through a proxy, which one, and why", and suggests the value that
protects every family. ``inspect_proxy`` memoizes the ``proxy.settings`` fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from midoctor.facts.httpx_routing import httpx_route
from midoctor.facts.no_proxy import CLIENT_FAMILIES, IMDS_HOST, IMDS_PORT, bypasses, requests_first_pass
from midoctor.facts.probes import CommandOutput, FileContent, command, file_text, prefetch
from midoctor.facts.proxy_sources import (
    ETC_ENVIRONMENT,
    NETSH_WINHTTP,
    REG_INTERNET_SETTINGS,
    WINDOWS_COMMANDS,
    WinHttpProxy,
    WinInetSettings,
    parse_etc_environment,
    parse_internet_settings,
    parse_netsh_winhttp,
    proxy_environ,
)
from midoctor.redact import redact_env_value

if TYPE_CHECKING:
    from midoctor.context import Context

CLIENT_LABELS: Dict[str, str] = {
    "requests": "Python requests (azure-identity's default transport)",
    "httpx": "Python httpx",
    "urllib": "Python urllib / aiohttp (stdlib rules)",
    "curl": "curl / libcurl",
    "go": "Go net/http (azidentity, Terraform)",
    "dotnet": ".NET HttpClient (Azure.Identity)",
    "winhttp": "WinHTTP API clients (Windows services)",
}


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
            bypass = bool(no_proxy and requests_first_pass(no_proxy, host)) or \
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


# -- gathering: raw inputs arrive through the probe seam (midoctor.facts.probes) ------------------------------
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
