"""The proxy-route check end to end, with every probe replaced by recorded output through the context.

The seam: ``ctx.seed(command_key(argv), CommandOutput(...))`` and ``ctx.seed(file_key(path), FileContent(...))``
for raw inputs, plus ``host`` (os), ``host.identity`` and ``host.container``. Nothing here runs ``ip``,
``iptables`` or sends a packet, except the last test, which runs the check on this machine (read-only
probes, no packet to IMDS).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Mapping, Optional, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midoctor.config import Config
from midoctor.context import Context
from midoctor.facts import firewall, probes, proxy_sources, route_parsers, routes
from midoctor.facts.firewall import Identity
from midoctor.facts.probes import CommandOutput, FileContent, command_key, file_key
from midoctor.model import Result, Status
from midoctor.registry import load_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
USER = Identity(uid=1000, gid=1000, groups=(1000,), user="azureuser")


def _load_check() -> ModuleType:
    name = "midoctor_test_checks.proxy_route"
    spec = importlib.util.spec_from_file_location(name, ROOT / "checks" / "proxy_route.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


check = _load_check()


def linux(name: str) -> str:
    return (DATA / "linux" / name).read_text(encoding="utf-8")


def windows(name: str) -> str:
    return (DATA / "windows" / name).read_text(encoding="utf-8")


def out(argv: Sequence[str], stdout: str = "", stderr: str = "", returncode: int = 0) -> CommandOutput:
    return CommandOutput(tuple(argv), stdout, stderr, returncode)


HEALTHY_LINUX = {
    probes.IP_ROUTE_GET_JSON: out(probes.IP_ROUTE_GET_JSON, linux("ip_route_get_normal.json")),
    probes.IP_ROUTE_TABLE_JSON: out(probes.IP_ROUTE_TABLE_JSON, linux("ip_route_table_normal.json")),
    probes.IP_LINK_DETAILS_JSON: out(probes.IP_LINK_DETAILS_JSON, linux("ip_link_details_normal.json")),
    probes.IPTABLES_SAVE: out(probes.IPTABLES_SAVE, linux("iptables_save_walinuxagent.txt")),
}
HEALTHY_WINDOWS = {
    probes.ROUTE_PRINT: out(probes.ROUTE_PRINT, windows("route_print_normal.txt")),
    proxy_sources.NETSH_WINHTTP: out(proxy_sources.NETSH_WINHTTP, windows("netsh_winhttp_direct.txt")),
    proxy_sources.REG_INTERNET_SETTINGS: out(proxy_sources.REG_INTERNET_SETTINGS,
                                             windows("reg_internet_settings_disabled.txt")),
}


def make_ctx(environ: Optional[Mapping[str, str]] = None, os_name: str = "Linux",
             commands: Optional[Mapping[Sequence[str], CommandOutput]] = None,
             files: Optional[Mapping[str, FileContent]] = None, identity: Optional[Identity] = USER,
             container: Optional[Dict[str, Any]] = None, healthy: bool = True) -> Context:
    """A context whose every probe is recorded: unlisted commands are "missing", unlisted files absent."""
    ctx = Context(Config(environ=dict(environ or {})))
    ctx.seed("host", {"os": os_name})
    ctx.seed("host.identity", identity)
    ctx.seed("host.container", container or {})
    for argv in check.probe_commands(os_name):
        ctx.seed(command_key(argv), CommandOutput(tuple(argv), returncode=None, reason="missing"))
    for path in ("/etc/environment", probes.PROC_NET_ROUTE):
        ctx.seed(file_key(path), FileContent(path, reason="does not exist"))
    base = (HEALTHY_WINDOWS if os_name == "Windows" else HEALTHY_LINUX) if healthy else {}
    for argv, output in {**base, **dict(commands or {})}.items():
        ctx.seed(command_key(argv), output)
    for path, content in (files or {}).items():
        ctx.seed(file_key(path), content)
    return ctx


def run(ctx: Context) -> Result:
    result = check.evaluate(ctx)
    json.dumps(result.to_dict())  # the report must be serialisable
    return result


def shells(result: Result) -> set:
    return {c.shell for c in result.fix.commands} if result.fix else set()


def commands_text(result: Result) -> str:
    return "\n".join(c.text for c in result.fix.commands) if result.fix else ""


# -- the spec ------------------------------------------------------------------------------------------------------
def test_spec_loads_through_the_registry(tmp_path: Path) -> None:
    shutil.copy(ROOT / "checks" / "proxy_route.py", tmp_path / "proxy_route.py")
    [loaded] = load_dir(tmp_path, "midoctor_test_registry")
    assert loaded.id == "proxy-route" and loaded.spec.order == 20 and loaded.spec.timeout == 5.0
    assert loaded.spec.requires == ()
    required = {"no-interference", "proxy-intercepts-imds", "no-proxy-partial", "proxy-env-file", "winhttp-proxy",
                "route-blackhole", "no-route", "route-not-primary", "firewall-blocks", "firewall-owner-only",
                "container", "cannot-inspect"}
    assert required <= {c.slug for c in loaded.spec.causes}
    assert set(check._PRIORITY) == {c.slug for c in check.SPEC.causes} - {"no-interference", "cannot-inspect"}


# -- pass ----------------------------------------------------------------------------------------------------------
def test_healthy_linux_passes() -> None:
    result = run(make_ctx())
    assert (result.status, result.cause) == (Status.PASS, "no-interference")
    assert result.evidence["route"]["route"]["dev"] == "eth0"
    assert result.evidence["firewall"]["readable"] is True
    assert result.fix is None


def test_healthy_windows_passes() -> None:
    result = run(make_ctx(os_name="Windows"))
    assert (result.status, result.cause) == (Status.PASS, "no-interference")
    assert "Windows Firewall rules are not inspected" in result.evidence["route"]["notes"][0]


def test_exact_no_proxy_passes() -> None:
    result = run(make_ctx({"http_proxy": "http://proxy:3128", "HTTP_PROXY": "http://proxy:3128",
                           "NO_PROXY": "localhost,169.254.169.254", "no_proxy": "localhost,169.254.169.254"}))
    assert result.cause == "no-interference"
    assert all(not c["proxied"] for c in result.evidence["clients"])


# -- proxies -------------------------------------------------------------------------------------------------------
def test_proxy_without_bypass_fails_and_never_shows_the_password() -> None:
    environ = {"HTTP_PROXY": "http://svc:Pa55w0rd@proxy.contoso.com:3128", "https_proxy": "svc:Pa55w0rd@proxy:3128"}
    result = run(make_ctx(environ))
    assert (result.status, result.cause) == (Status.FAIL, "proxy-intercepts-imds")
    assert "requests" in result.summary and "http://***@proxy.contoso.com:3128" in result.summary
    assert "Pa55w0rd" not in json.dumps(result.to_dict())
    assert 'export NO_PROXY="169.254.169.254" no_proxy="169.254.169.254"' in commands_text(result)
    assert shells(result) == {"bash"}
    assert "/etc/systemd/system/<unit>.service.d/imds-no-proxy.conf" in commands_text(result)


def test_port_form_is_still_proxied_for_requests() -> None:
    result = run(make_ctx({"http_proxy": "http://proxy:3128", "no_proxy": "169.254.169.254:80"}))
    assert result.cause == "proxy-intercepts-imds"
    assert "Bypassed only for go" in result.summary
    assert 'NO_PROXY="169.254.169.254:80,169.254.169.254"' in commands_text(result)


def test_cidr_no_proxy_is_partial() -> None:
    result = run(make_ctx({"http_proxy": "http://proxy:3128", "no_proxy": "169.254.0.0/16"}))
    assert (result.status, result.cause) == (Status.WARN, "no-proxy-partial")
    assert "httpx" in result.summary and "urllib" in result.summary and "dotnet" in result.summary
    assert "bypasses IMDS for requests, curl, go" in result.summary


def test_proxy_in_etc_environment_only() -> None:
    files = {"/etc/environment": FileContent("/etc/environment", linux("etc_environment_proxy.txt"))}
    result = run(make_ctx({}, files=files))
    assert (result.status, result.cause) == (Status.WARN, "proxy-env-file")
    assert "S3cr3t" not in json.dumps(result.to_dict())
    assert "NO_PROXY=localhost,127.0.0.1,.contoso.com,169.254.0.0/16,169.254.169.254" in commands_text(result)


def test_windows_registry_proxy_fails_with_windows_commands() -> None:
    commands = {proxy_sources.REG_INTERNET_SETTINGS: out(proxy_sources.REG_INTERNET_SETTINGS,
                                                         windows("reg_internet_settings_proxy.txt"))}
    result = run(make_ctx(os_name="Windows", commands=commands))
    assert result.cause == "proxy-intercepts-imds"
    assert shells(result) == {"powershell"}
    assert "ProxyOverride -Value '<local>;*.contoso.com;168.63.129.16;169.254.169.254'" in commands_text(result)


def test_winhttp_proxy_warns() -> None:
    commands = {proxy_sources.NETSH_WINHTTP: out(proxy_sources.NETSH_WINHTTP, windows("netsh_winhttp_proxy.txt"))}
    result = run(make_ctx(os_name="Windows", commands=commands))
    assert (result.status, result.cause) == (Status.WARN, "winhttp-proxy")
    assert ('netsh winhttp set proxy proxy-server="proxy.contoso.com:8080" '
            'bypass-list="<local>;*.contoso.com;10.*;169.254.169.254"') in commands_text(result)
    bypassed = run(make_ctx(os_name="Windows", commands={proxy_sources.NETSH_WINHTTP: out(
        proxy_sources.NETSH_WINHTTP, windows("netsh_winhttp_proxy_imds_bypass.txt"))}))
    assert bypassed.cause == "no-interference"


# -- routes --------------------------------------------------------------------------------------------------------
def route_commands(get: str, table: str, links: Optional[str] = None, get_rc: int = 0) -> Dict[Any, CommandOutput]:
    text = linux(get)
    is_json = get.endswith(".json")
    commands = {
        probes.IP_ROUTE_GET_JSON: out(probes.IP_ROUTE_GET_JSON, text if is_json else "", "" if is_json else text,
                                      get_rc),
        probes.IP_ROUTE_TABLE_JSON: out(probes.IP_ROUTE_TABLE_JSON, linux(table)),
    }
    if links:
        commands[probes.IP_LINK_DETAILS_JSON] = out(probes.IP_LINK_DETAILS_JSON, linux(links))
    return commands


def test_blackhole_route_fails_with_the_exact_delete() -> None:
    result = run(make_ctx(commands=route_commands("ip_route_get_blackhole.txt", "ip_route_table_blackhole.json",
                                                  get_rc=2)))
    assert (result.status, result.cause) == (Status.FAIL, "route-blackhole")
    text = commands_text(result)
    assert "sudo ip route del blackhole 169.254.0.0/16" in text
    assert "sudo ip route replace 169.254.169.254/32 via 10.0.0.1 dev eth0 src 10.0.0.4" in text


@pytest.mark.parametrize("get", ["ip_route_get_unreachable.txt", "ip_route_get_prohibit.txt"])
def test_unreachable_and_prohibit_routes_fail(get: str) -> None:
    result = run(make_ctx(commands=route_commands(get, "ip_route_table_unreachable.json", get_rc=2)))
    assert result.cause == "route-blackhole" and result.status is Status.FAIL


def test_no_route_fails() -> None:
    result = run(make_ctx(commands=route_commands("ip_route_get_no_route.txt", "ip_route_table_no_route.json",
                                                  get_rc=2)))
    assert (result.status, result.cause) == (Status.FAIL, "no-route")
    assert "sudo ip route replace 169.254.169.254/32 via <gateway> dev eth0 src 10.0.0.4" in commands_text(result)


def test_tunnel_route_fails() -> None:
    result = run(make_ctx(commands=route_commands("ip_route_get_tunnel.json", "ip_route_table_tunnel.json",
                                                  "ip_link_details_tunnel.json")))
    assert (result.status, result.cause) == (Status.FAIL, "route-not-primary")
    assert "wg0 is a tun link" in result.summary


def test_secondary_nic_warns() -> None:
    result = run(make_ctx(commands=route_commands("ip_route_get_secondary.json", "ip_route_table_secondary.json")))
    assert (result.status, result.cause) == (Status.WARN, "route-not-primary")
    assert "eth1" in result.summary and "eth0" in result.summary


def test_local_address_warns() -> None:
    result = run(make_ctx(commands=route_commands("ip_route_get_local.json", "ip_route_table_normal.json")))
    assert result.cause == "imds-address-local"
    assert "sudo ip addr del 169.254.169.254/32 dev lo" in commands_text(result)


def test_windows_secondary_nic_and_no_route() -> None:
    secondary = run(make_ctx(os_name="Windows", commands={probes.ROUTE_PRINT: out(
        probes.ROUTE_PRINT, windows("route_print_secondary_nic.txt"))}))
    assert secondary.cause == "route-not-primary" and "10.1.1.5" in secondary.summary
    assert "route add 169.254.169.254 mask 255.255.255.255 10.1.0.1 -p" in commands_text(secondary)
    assert shells(secondary) == {"cmd"}
    none = run(make_ctx(os_name="Windows", commands={probes.ROUTE_PRINT: out(
        probes.ROUTE_PRINT, windows("route_print_no_route.txt"))}))
    assert (none.status, none.cause) == (Status.FAIL, "no-route")


def test_ip_missing_uses_proc_and_unreadable_everything_skips() -> None:
    files = {probes.PROC_NET_ROUTE: FileContent(probes.PROC_NET_ROUTE, linux("proc_net_route_blackhole.txt"))}
    result = run(make_ctx(healthy=False, files=files))
    assert result.cause == "route-blackhole"
    skipped = run(make_ctx(healthy=False))
    assert (skipped.status, skipped.cause) == (Status.SKIP, "cannot-inspect")
    assert "ip -j route get 169.254.169.254: missing" in skipped.summary
    assert "/proc/net/route: does not exist" in skipped.summary


# -- firewall ------------------------------------------------------------------------------------------------------
def fw(name: str, tool: Sequence[str] = probes.IPTABLES_SAVE) -> Dict[Any, CommandOutput]:
    return {tool: out(tool, linux(name))}


def test_firewall_drop_fails_with_the_delete_command() -> None:
    result = run(make_ctx(commands=fw("iptables_save_drop.txt")))
    assert (result.status, result.cause) == (Status.FAIL, "firewall-blocks")
    assert commands_text(result) == "sudo iptables -t filter -D OUTPUT -d 169.254.169.254/32 -j DROP"


def test_policy_drop_blocks_everyone() -> None:
    result = run(make_ctx(commands=fw("nft_ruleset_policy_drop.txt", probes.NFT_RULESET)))
    assert result.cause == "firewall-blocks" and "OUTPUT chain policy" in result.summary


def test_owner_rules_block_this_user() -> None:
    result = run(make_ctx(commands=fw("iptables_save_owner.txt")))
    assert (result.status, result.cause) == (Status.FAIL, "firewall-owner-only")
    assert result.summary.startswith("Firewall owner rules let only uid 0 (root), gid 998 reach 169.254.169.254; "
                                     "blocked: uid 1000 (azureuser, this process), uid 65534 (any other user). "
                                     "This process is BLOCKED")
    assert commands_text(result) == ("sudo iptables -t filter -I IMDS-GUARD 1 -d 169.254.169.254/32 -p tcp --dport "
                                     "80 -m owner --uid-owner 1000 -j ACCEPT")


def test_owner_rules_allowing_this_user_warn() -> None:
    result = run(make_ctx(commands=fw("nft_ruleset_owner.txt", probes.NFT_RULESET),
                          identity=Identity(0, 0, (), "root")))
    assert (result.status, result.cause) == (Status.WARN, "firewall-owner-only")
    assert "is allowed" in result.summary
    assert "sudo nft insert rule inet filter output ip daddr 169.254.169.254" in commands_text(result)


def test_nat_redirect_warns() -> None:
    result = run(make_ctx(commands=fw("iptables_save_nat_redirect.txt")))
    assert (result.status, result.cause) == (Status.WARN, "nat-redirect")
    assert "10.240.0.4:2579" in result.summary
    assert commands_text(result).startswith("sudo iptables -t nat -D aad-metadata -d 169.254.169.254/32")


def test_unreadable_firewall_is_reported_not_guessed() -> None:
    commands = {probes.IPTABLES_SAVE: out(probes.IPTABLES_SAVE, "", linux("iptables_save_nonroot_stderr.txt"), 4)}
    result = run(make_ctx(commands=commands))
    assert result.cause == "no-interference"
    assert result.evidence["firewall"]["readable"] is False
    assert "permission denied" in result.evidence["firewall"]["reason"]


# -- containers and combinations ----------------------------------------------------------------------------------
def test_container_warns_with_its_meaning() -> None:
    result = run(make_ctx(container={"docker": True}))
    assert (result.status, result.cause) == (Status.WARN, "container")
    assert "NATed through the host" in result.summary


def test_most_severe_wins_and_the_rest_is_listed() -> None:
    commands = {**route_commands("ip_route_get_secondary.json", "ip_route_table_secondary.json"),
                **fw("iptables_save_drop.txt")}
    result = run(make_ctx({"http_proxy": "http://proxy:3128", "no_proxy": "169.254.0.0/16"}, commands=commands,
                          container={"kubernetes": True}))
    assert result.cause == "firewall-blocks"
    others = [f["cause"] for f in result.evidence["other_findings"]]
    assert others == ["route-not-primary", "no-proxy-partial", "container"]


def test_parsed_facts_can_be_seeded_directly() -> None:
    ctx = make_ctx()
    ctx.seed("network.route", routes.RouteReport(os_name="Linux", route=route_parsers.Route(kind="blackhole"),
                                                 covering=()))
    result = run(ctx)
    assert result.cause == "route-blackhole"
    assert "sudo ip route del blackhole 169.254.169.254" in commands_text(result)


# -- robustness ----------------------------------------------------------------------------------------------------
GARBAGE = st.one_of(st.text(max_size=300), st.sampled_from(["[]", "[{}]", '[{"dst": 5}]', "{", "null",
                                                            '[{"type": "blackhole", "dst": "x"}]']))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(GARBAGE, min_size=9, max_size=9), codes=st.lists(st.sampled_from([0, 1, 2, 255]), min_size=9,
                                                                       max_size=9),
       os_name=st.sampled_from(["Linux", "Windows"]))
def test_garbage_never_raises(texts, codes, os_name) -> None:
    argvs = list(check.probe_commands(os_name))
    commands = {argv: out(argv, texts[i], texts[-1 - i], codes[i]) for i, argv in enumerate(argvs)}
    files = {path: FileContent(path, texts[-1]) for path in ("/etc/environment", probes.PROC_NET_ROUTE)}
    result = run(make_ctx({"HTTP_PROXY": texts[0][:50], "NO_PROXY": texts[1][:50]}, os_name, commands, files,
                          healthy=False))
    assert isinstance(result, Result) and result.check_id == "proxy-route"


def test_a_crashing_probe_becomes_evidence() -> None:
    ctx = make_ctx()

    def boom() -> None:
        raise RuntimeError("kaput")

    original = firewall.inspect_firewall
    try:
        firewall.inspect_firewall = lambda c: boom()  # type: ignore[assignment]
        result = run(ctx)
    finally:
        firewall.inspect_firewall = original  # type: ignore[assignment]
    assert result.cause == "no-interference"
    assert result.evidence["probe_errors"] == ["firewall: RuntimeError: kaput"]


def test_runs_on_this_machine_quickly() -> None:
    """Real, read-only probes (ip route get, iptables-save...): fast, and never raises."""
    started = time.monotonic()
    result = run(Context(Config(environ={})))
    assert time.monotonic() - started < 1.0
    assert result.check_id == "proxy-route" and result.status in tuple(Status)
