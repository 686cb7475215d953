"""Proxy settings and the per-client NO_PROXY rules (midoctor.facts.proxy, proxy_sources, no_proxy).

The Python families are checked against the real libraries as oracles (urllib always, requests and httpx
when installed): hypothesis generates NO_PROXY values and environments and both must agree. curl, Go and
.NET rules are pinned by the table below, transcribed from their source (UNCONFIRMED on a VM).
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Dict, Optional
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midoctor.facts import no_proxy, proxy, proxy_sources
from midoctor.facts.no_proxy import bypasses
from midoctor.facts.probes import CommandOutput, FileContent
from midoctor.facts.proxy import ProxySettings, decide, decide_all, gather

DATA = Path(__file__).parent / "data"
IMDS = "169.254.169.254"


def windows_text(name: str) -> str:
    return (DATA / "windows" / name).read_text(encoding="utf-8")


def linux_text(name: str) -> str:
    return (DATA / "linux" / name).read_text(encoding="utf-8")


# -- the matrix -----------------------------------------------------------------------------------------------
# REF = failure-catalog F08 measured it; the rest is read from each client's source.
MATRIX = {
    #                      requests httpx urllib curl  go    dotnet curl<7.86 windows
    "169.254.169.254":      (True,  True,  True,  True,  True,  True,  True,  True),
    ".169.254.169.254":     (True,  False, True,  False, False, True,  True,  False),
    "*":                    (True,  True,  True,  True,  True,  False, True,  True),
    "169.254.0.0/16":       (True,  False, False, True,  True,  False, False, False),
    "169.254.169.254:80":   (False, False, False, False, True,  False, False, False),
    "169.254.*":            (False, False, False, False, False, False, False, True),
    " 169.254.169.254 ":    (True,  True,  True,  True,  True,  True,  True,  True),
    "localhost,127.0.0.1":  (False, False, False, False, False, False, False, False),
    "*,localhost":          (False, True,  False, False, True,  False, False, False),
}
FAMILIES = ("requests", "httpx", "urllib", "curl", "go", "dotnet", "curl-legacy", "windows")
CONFIRMED = {  # cells the reference measured (F08)
    ("169.254.169.254", "requests"), (".169.254.169.254", "requests"), ("*", "requests"),
    ("169.254.0.0/16", "requests"), ("169.254.169.254:80", "requests"), ("169.254.*", "requests"),
    ("localhost,127.0.0.1", "requests"), ("169.254.169.254", "httpx"), ("*", "httpx"),
    ("169.254.0.0/16", "httpx"), ("169.254.169.254:80", "httpx"), ("169.254.0.0/16", "urllib"),
}


@pytest.mark.parametrize("value", list(MATRIX))
@pytest.mark.parametrize("client", FAMILIES)
def test_no_proxy_matrix(value: str, client: str) -> None:
    expected = MATRIX[value][FAMILIES.index(client)]
    assert bypasses(value, IMDS, 80, client=client) is expected


def test_reference_cells_are_in_the_matrix() -> None:
    for value, client in CONFIRMED:
        assert value in MATRIX and client in FAMILIES


@pytest.mark.parametrize("value,client,expected", [
    # curl ≥ 7.86: blanks separate tokens, but a token not followed by a comma ends the list
    ("foo 169.254.169.254", "curl", False),
    ("foo,\t169.254.169.254", "curl", True),
    ("169.254.169.254/32", "curl", True),
    ("169.254.0.0/33", "curl", False),
    ("169.254.169.254/0", "curl", True),  # bits 0 means exact compare in Curl_cidr4_match
    # curl ≤ 7.85: comma and space separate, tab does not
    ("foo 169.254.169.254", "curl-legacy", True),
    ("169.254.169.254\tfoo", "curl-legacy", False),
    ("254.169.254", "curl-legacy", True),
    # Go: domain-suffix and IPv4-mapped IPv6 entries, ports, CIDR on mapped networks
    ("254.169.254", "go", True),
    ("::ffff:169.254.169.254", "go", True),
    ("[::ffff:169.254.169.254]:80", "go", True),
    ("169.254.169.254:8080", "go", False),
    ("169.254.169.254:", "go", True),
    ("*.169.254.169.254", "go", False),
    # .NET: leading dot is "itself or subdomain"; no wildcard at all
    (".169.254.169.254", "dotnet", True),
    ("*", "dotnet", False),
    # Windows ProxyOverride: <local> never covers a dotted address; globs do
    ("<local>", "windows", False),
    ("<local>;169.254.169.*", "windows", True),
    ("169.254", "windows", False),
    ("169.254", "windows-cpython-legacy", True),  # CPython ≤ 3.12 matches a prefix
    (" 169.254.169.254", "windows-cpython-legacy", False),  # ...and does not strip
    ("[", "windows-cpython-legacy", False),  # an invalid regex raises inside CPython: no bypass
])
def test_family_specific_rules(value: str, client: str, expected: bool) -> None:
    assert bypasses(value, IMDS, 80, client=client) is expected


def test_unknown_family_is_an_error_and_empty_values_never_bypass() -> None:
    with pytest.raises(ValueError):
        bypasses("*", client="wget")
    for client in no_proxy.MATCHERS:
        assert bypasses("", client=client) is False
        assert bypasses(None, client=client) is False


NO_PROXY_TEXT = st.text(alphabet="0123456789./*:, \t-abcflo[]<>;", max_size=40)
ENTRY = st.sampled_from(["169.254.169.254", ".169.254.169.254", "*", "169.254.0.0/16", "169.254.169.254:80",
                         "169.254.*", "localhost", "127.0.0.1", "254.169.254", "169.254.169.254/16", "",
                         " 169.254.169.254", "10.0.0.0/8", ".internal", "169.254.169.25", "69.254.169.254"])
NO_PROXY_LISTS = st.one_of(NO_PROXY_TEXT, st.lists(ENTRY, max_size=4).map(",".join),
                           st.lists(ENTRY, max_size=4).map(", ".join))


@given(value=st.text(max_size=60), client=st.sampled_from(no_proxy.MATCHERS),
       host=st.sampled_from([IMDS, "localhost", "example.com", "::1", ""]), port=st.integers(0, 70000))
def test_bypasses_never_raises(value: str, client: str, host: str, port: int) -> None:
    assert bypasses(value, host, port, client=client) in (True, False)


@given(NO_PROXY_LISTS)
def test_urllib_matches_cpython(value: str) -> None:
    expected = bool(urllib.request.proxy_bypass_environment(IMDS, {"no": value}))
    assert bypasses(value, client="urllib") is expected


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(NO_PROXY_LISTS)
def test_requests_matches_requests(value: str) -> None:
    utils = pytest.importorskip("requests.utils")
    with mock.patch.dict(os.environ, {}, clear=True):
        expected = utils.should_bypass_proxies(f"http://{IMDS}/metadata/identity/oauth2/token", no_proxy=value)
    assert bypasses(value, client="requests") is bool(expected)


def _httpx_oracle(environ: Dict[str, str]) -> Optional[str]:
    """The proxy the installed httpx picks for the IMDS URL, through its own (private) helpers."""
    import httpx
    from httpx import _utils

    with mock.patch.dict(os.environ, environ, clear=True):
        mounts = _utils.get_environment_proxies()
    url = httpx.URL(f"http://{IMDS}/metadata/identity/oauth2/token")
    for pattern, target in sorted((_utils.URLPattern(k), v) for k, v in mounts.items()):
        if pattern.matches(url):
            return target
    return None


@given(NO_PROXY_LISTS)
def test_httpx_matches_httpx(value: str) -> None:
    try:
        expected = _httpx_oracle({"HTTP_PROXY": "http://proxy.invalid:3128", "NO_PROXY": value}) is None
    except Exception:  # noqa: BLE001 - httpx itself rejects the value (InvalidURL): no bypass either way
        expected = False
    assert bypasses(value, client="httpx") is expected


# -- environment reading -----------------------------------------------------------------------------------------
ENV_NAMES = st.sampled_from(["http_proxy", "HTTP_PROXY", "Http_Proxy", "all_proxy", "ALL_PROXY", "no_proxy",
                             "NO_PROXY", "https_proxy", "REQUEST_METHOD", "ftp_proxy"])
ENV_VALUES = st.sampled_from(["", "http://p1:3128", "p2:8080", "169.254.169.254", "169.254.0.0/16", "*", "GET"])
ENVIRONS = st.dictionaries(ENV_NAMES, ENV_VALUES, max_size=6)


@given(ENVIRONS)
def test_python_environment_reading_matches_cpython(environ: Dict[str, str]) -> None:
    with mock.patch.dict(os.environ, environ, clear=True):
        expected = urllib.request.getproxies_environment()
    assert proxy.python_getproxies_environment(environ) == expected


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(ENVIRONS)
def test_requests_decision_matches_requests(environ: Dict[str, str]) -> None:
    utils = pytest.importorskip("requests.utils")
    url = f"http://{IMDS}/metadata/identity/oauth2/token"
    with mock.patch.dict(os.environ, environ, clear=True):
        expected = utils.select_proxy(url, utils.get_environ_proxies(url))
    decision = decide("requests", gather("Linux", environ))
    assert decision.proxied is bool(expected)


@given(ENVIRONS)
def test_httpx_decision_matches_httpx(environ: Dict[str, str]) -> None:
    try:
        expected = _httpx_oracle(environ)
    except Exception:  # noqa: BLE001 - httpx would refuse to build the client; nothing to compare
        return
    assert decide("httpx", gather("Linux", environ)).proxied is (expected is not None)


def by_client(settings_: ProxySettings) -> Dict[str, proxy.ClientDecision]:
    return {d.client: d for d in decide_all(settings_)}


def test_uppercase_http_proxy_is_ignored_by_curl_only() -> None:
    decisions = by_client(gather("Linux", {"HTTP_PROXY": "http://proxy:3128"}))
    assert not decisions["curl"].proxied and "ignores uppercase" in decisions["curl"].reason
    assert all(decisions[c].proxied for c in ("requests", "httpx", "urllib", "go", "dotnet"))


def test_cgi_environment_drops_uppercase_http_proxy() -> None:
    decisions = by_client(gather("Linux", {"HTTP_PROXY": "http://proxy:3128", "REQUEST_METHOD": "GET"}))
    assert not decisions["requests"].proxied and not decisions["urllib"].proxied
    assert decisions["go"].broken and not decisions["go"].proxied
    dotnet = by_client(gather("Linux", {"HTTP_PROXY": "http://proxy:3128", "GATEWAY_INTERFACE": "CGI/1.1"}))
    assert not dotnet["dotnet"].proxied


def test_all_proxy_is_read_by_some_families() -> None:
    decisions = by_client(gather("Linux", {"ALL_PROXY": "http://proxy:3128"}))
    assert {c for c, d in decisions.items() if d.proxied} == {"requests", "httpx", "curl", "dotnet"}


def test_empty_lowercase_no_proxy_hides_uppercase_for_urllib_only() -> None:
    environ = {"http_proxy": "http://proxy:3128", "no_proxy": "", "NO_PROXY": IMDS}
    decisions = by_client(gather("Linux", environ))
    assert decisions["urllib"].proxied  # the empty lowercase value removes "no" (CPython two-pass read)
    assert not decisions["requests"].proxied  # requests reads no_proxy or NO_PROXY
    assert decisions["dotnet"].proxied  # .NET: lowercase set (even empty) wins


def test_requests_reads_no_proxy_twice_differently() -> None:
    # requests' own pass sees "*" (no_proxy or NO_PROXY) but does not treat it as a wildcard; its urllib
    # fallback, which would, sees no NO_PROXY because the empty lowercase one deletes it.
    environ = {"no_proxy": "", "NO_PROXY": "*", "http_proxy": "http://p1:3128"}
    assert decide("requests", gather("Linux", environ)).proxied


def test_proxy_credentials_never_reach_evidence() -> None:
    environ = {"https_proxy": "user:hunter2@proxy:3128", "HTTP_PROXY": "http://u:hunter2@proxy:3128",
               "ALL_PROXY": "socks5://u:hunter2@proxy:1080", "NO_PROXY": "localhost"}
    result = gather("Linux", environ)
    text = repr(result.to_evidence()) + repr([d.to_evidence() for d in decide_all(result)]) + repr(result)
    assert "hunter2" not in text
    assert "***@proxy:3128" in text


@given(user=st.text(alphabet="abcXYZ09-_.%!", min_size=1, max_size=12),
       password=st.text(alphabet="abcXYZ09-_.%!~", min_size=4, max_size=16),
       scheme=st.sampled_from(["", "http://", "https://", "socks5://"]),
       prefix=st.sampled_from(["", "http=", "https="]))
def test_redact_proxy_never_leaks_a_password(user: str, password: str, scheme: str, prefix: str) -> None:
    value = f"{prefix}{scheme}{user}:{password}@proxy.contoso.com:3128"
    shown = proxy_sources.redact_proxy(value + ";" + value)
    assert password not in shown.replace("proxy.contoso.com", "")
    assert "proxy.contoso.com:3128" in shown


# -- /etc/environment ------------------------------------------------------------------------------------------
def test_parse_etc_environment_sample() -> None:
    values = proxy_sources.parse_etc_environment(linux_text("etc_environment_proxy.txt"))
    assert values["http_proxy"] == "http://svc-egress:S3cr3t!@proxy.contoso.com:3128"
    assert values["HTTP_PROXY"] == "http://svc-egress:S3cr3t!@proxy.contoso.com:3128"  # "export" and quotes
    assert values["no_proxy"] == "localhost,127.0.0.1,.contoso.com,169.254.0.0/16"
    assert "not an assignment" not in " ".join(values)


def test_etc_environment_is_redacted_and_decided() -> None:
    settings_ = gather("Linux", {}, FileContent("/etc/environment", linux_text("etc_environment_proxy.txt")))
    assert "S3cr3t" not in repr(settings_)
    affected = {d.client for d in proxy.etc_environment_decisions(settings_) if d.proxied}
    assert affected == {"httpx", "urllib", "dotnet"}  # the CIDR entry helps requests, curl and Go only


@given(st.text(max_size=300))
def test_parse_etc_environment_never_raises(text: str) -> None:
    assert isinstance(proxy_sources.parse_etc_environment(text), dict)


# -- Windows -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,direct,server,bypass", [
    ("netsh_winhttp_direct.txt", True, "", ""),
    ("netsh_winhttp_proxy.txt", False, "proxy.contoso.com:8080", "<local>;*.contoso.com;10.*"),
    ("netsh_winhttp_proxy_imds_bypass.txt", False, "http=proxy.contoso.com:8080;https=proxy.contoso.com:8443",
     "<local>;169.254.169.254;168.63.129.16"),
    ("netsh_winhttp_proxy_none_bypass.txt", False, "10.0.0.1:3128", ""),
    ("netsh_winhttp_proxy_fr.txt", False, "proxy.contoso.com:8080", ""),
])
def test_parse_netsh_winhttp(name: str, direct: bool, server: str, bypass: str) -> None:
    parsed = proxy_sources.parse_netsh_winhttp(windows_text(name))
    assert (parsed.direct, parsed.proxy_server, parsed.bypass_list, parsed.recognized) == (direct, server, bypass,
                                                                                           True)


def test_unrecognized_netsh_output_is_not_guessed() -> None:
    parsed = proxy_sources.parse_netsh_winhttp("Die Syntax ist falsch.\r\n")
    assert not parsed.recognized and not parsed.direct


def test_parse_internet_settings_samples() -> None:
    enabled = proxy_sources.parse_internet_settings(windows_text("reg_internet_settings_proxy.txt"))
    assert enabled.proxy_enable and enabled.http_proxy() == "http://proxy.contoso.com:8080"
    assert enabled.proxy_override == "<local>;*.contoso.com;168.63.129.16"
    assert "User Agent" in enabled.values_seen  # value names with spaces
    per_protocol = proxy_sources.parse_internet_settings(windows_text("reg_internet_settings_per_protocol.txt"))
    assert per_protocol.http_proxy() == "http://***@proxy.contoso.com:8080"
    assert "P%40ss" not in repr(per_protocol)
    disabled = proxy_sources.parse_internet_settings(windows_text("reg_internet_settings_disabled.txt"))
    assert not disabled.proxy_enable and disabled.http_proxy() is None
    pac = proxy_sources.parse_internet_settings(windows_text("reg_internet_settings_pac.txt"))
    assert pac.auto_config_url == "http://wpad.contoso.com/proxy.pac"


@given(st.text(max_size=400))
def test_windows_parsers_never_raise(text: str) -> None:
    proxy_sources.parse_netsh_winhttp(text)
    parsed = proxy_sources.parse_internet_settings(text)
    parsed.http_proxy()


def windows_settings(environ: Dict[str, str], reg: str = "reg_internet_settings_disabled.txt",
                     netsh: str = "netsh_winhttp_direct.txt") -> ProxySettings:
    return gather("Windows", environ, None,
                  CommandOutput(proxy_sources.NETSH_WINHTTP, windows_text(netsh)),
                  CommandOutput(proxy_sources.REG_INTERNET_SETTINGS, windows_text(reg)))


def test_windows_python_falls_back_to_the_registry_only_without_env_proxies() -> None:
    decisions = by_client(windows_settings({}, reg="reg_internet_settings_proxy.txt"))
    assert decisions["requests"].proxied and decisions["requests"].proxy_source.startswith("registry")
    assert decisions["urllib"].proxied and decisions["httpx"].proxied
    assert decisions["dotnet"].proxied  # HttpWindowsProxy reads the same WinINET settings
    assert not decisions["curl"].proxied and not decisions["go"].proxied  # environment only
    # Any *_PROXY variable, even NO_PROXY alone, switches Python to the environment
    decisions = by_client(windows_settings({"NO_PROXY": "localhost"}, reg="reg_internet_settings_proxy.txt"))
    assert not decisions["requests"].proxied


def test_windows_proxy_override_glob_is_honoured_except_by_httpx() -> None:
    decisions = by_client(windows_settings({}, reg="reg_internet_settings_per_protocol.txt"))
    assert not decisions["requests"].proxied and not decisions["urllib"].proxied  # 169.254.* in ProxyOverride
    assert decisions["httpx"].proxied and "ignores ProxyOverride" in decisions["httpx"].reason
    assert not decisions["dotnet"].proxied


def test_windows_env_names_are_case_insensitive() -> None:
    decisions = by_client(windows_settings({"Http_Proxy": "http://proxy:3128"}))
    assert decisions["curl"].proxied  # Windows getenv("http_proxy") finds HTTP_PROXY
    assert decisions["requests"].proxied


def test_winhttp_decision() -> None:
    assert by_client(windows_settings({}, netsh="netsh_winhttp_proxy.txt"))["winhttp"].proxied
    assert not by_client(windows_settings({}, netsh="netsh_winhttp_proxy_imds_bypass.txt"))["winhttp"].proxied
    assert not by_client(windows_settings({}))["winhttp"].proxied


def test_pac_script_is_reported_not_evaluated() -> None:
    decisions = by_client(windows_settings({}, reg="reg_internet_settings_pac.txt"))
    assert not decisions["dotnet"].proxied and "PAC" in decisions["dotnet"].reason


def test_gather_reports_why_a_source_was_not_read() -> None:
    result = gather("Windows", {}, None,
                    CommandOutput(proxy_sources.NETSH_WINHTTP, returncode=None, reason="missing"),
                    CommandOutput(proxy_sources.REG_INTERNET_SETTINGS, stderr=windows_text(
                        "reg_query_missing_key_stderr.txt"), returncode=1))
    evidence = result.to_evidence()
    assert evidence["winhttp"] == "not read: missing"
    assert evidence["wininet_hkcu"].startswith("not read: exit 1: ERROR: The system was unable")
    linux = gather("Linux", {}, FileContent("/etc/environment", reason="permission denied"))
    assert linux.to_evidence()["etc_environment"] == "not read: permission denied"


def test_suggestions_add_the_exact_address_once() -> None:
    assert proxy.suggested_no_proxy("localhost, 169.254.0.0/16") == "localhost,169.254.0.0/16,169.254.169.254"
    assert proxy.suggested_no_proxy(IMDS) == IMDS
    assert proxy.suggested_override("<local>;*.contoso.com") == "<local>;*.contoso.com;169.254.169.254"
