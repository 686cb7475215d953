"""Routes, tunnels, firewall and containers (facts.routes, facts.firewall, host.container_*), from recorded output.

The Linux samples under tests/data/linux were recorded with iproute2 6.1, iptables 1.8.9 (nf_tables) and
nftables 1.0.6 inside throw-away network namespaces; the Windows ones follow the real tools' layout.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from midoctor.config import Config
from midoctor.context import Context
from midoctor.facts import firewall, firewall_parsers, probes, route_parsers, routes
from midoctor.facts.firewall_rules import Packet
from midoctor.facts.host import container_facts, container_imds_meaning
from midoctor.facts.probes import CommandOutput, FileContent

DATA = Path(__file__).parent / "data"


def linux(name: str) -> str:
    return (DATA / "linux" / name).read_text(encoding="utf-8")


def windows(name: str) -> str:
    return (DATA / "windows" / name).read_text(encoding="utf-8")


def ran(argv, stdout: str = "", stderr: str = "", returncode: int = 0) -> CommandOutput:
    return CommandOutput(tuple(argv), stdout, stderr, returncode)


def missing(argv) -> CommandOutput:
    return CommandOutput(tuple(argv), returncode=None, reason="missing")


# -- the probe seam --------------------------------------------------------------------------------------------
def test_run_command_reports_missing_tools_and_output() -> None:
    assert probes.run_command(["midoctor-no-such-tool-xyz"]).reason == "missing"
    done = probes.run_command([sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr); "
                                                     "sys.exit(3)"])
    assert done.ran and done.returncode == 3 and done.stdout.strip() == "out" and done.stderr.strip() == "err"


def test_run_command_times_out() -> None:
    done = probes.run_command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
    assert done.reason is not None and done.reason.startswith("timeout")


def test_read_text_says_why(tmp_path: Path) -> None:
    assert probes.read_text(str(tmp_path / "absent")).reason == "does not exist"
    assert probes.read_text(str(tmp_path)).reason is not None  # a directory
    (tmp_path / "f").write_text("x")
    assert probes.read_text(str(tmp_path / "f")).text == "x"


def test_seeded_commands_are_used_instead_of_running() -> None:
    ctx = Context(Config(environ={}))
    ctx.seed(probes.command_key(probes.IPTABLES_SAVE), ran(probes.IPTABLES_SAVE, "recorded"))
    assert probes.command(ctx, probes.IPTABLES_SAVE).stdout == "recorded"
    ctx.seed(probes.file_key("/etc/environment"), FileContent("/etc/environment", "A=b"))
    assert probes.file_text(ctx, "/etc/environment").text == "A=b"


# -- ip route get ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kind,dev,gateway,src", [
    ("ip_route_get_normal.json", "unicast", "eth0", "10.0.0.1", "10.0.0.4"),
    ("ip_route_get_secondary.json", "unicast", "eth1", "10.0.1.1", "10.0.1.5"),
    ("ip_route_get_tunnel.json", "unicast", "wg0", None, "100.64.0.2"),
    ("ip_route_get_local.json", "local", "lo", None, "169.254.169.254"),
    ("ip_route_get_policy.json", "unicast", "wg0", None, "100.64.0.2"),
])
def test_parse_ip_route_get_json(name: str, kind: str, dev: str, gateway: Optional[str], src: str) -> None:
    route = route_parsers.parse_ip_route_get_json(linux(name))
    assert route is not None and (route.kind, route.dev, route.gateway, route.src) == (kind, dev, gateway, src)


@pytest.mark.parametrize("name,kind,dev,table", [
    ("ip_route_get_normal.txt", "unicast", "eth0", None),
    ("ip_route_get_tunnel.txt", "unicast", "wg0", None),
    ("ip_route_get_local.txt", "local", "lo", None),
    ("ip_route_get_policy.txt", "unicast", "wg0", "100"),
    ("ip_route_get_blackhole.txt", "blackhole", None, None),
    ("ip_route_get_unreachable.txt", "unreachable", None, None),
    ("ip_route_get_prohibit.txt", "prohibit", None, None),
    ("ip_route_get_no_route.txt", "no-route", None, None),
])
def test_parse_ip_route_get_plain(name: str, kind: str, dev: Optional[str], table: Optional[str]) -> None:
    route = route_parsers.parse_ip_route_get(linux(name))
    assert route is not None and (route.kind, route.dev, route.table) == (kind, dev, table)


def test_unsupported_json_option_is_not_a_route() -> None:
    text = linux("ip_route_get_json_unsupported.txt")
    assert route_parsers.parse_ip_route_get_json(text) is None and route_parsers.parse_ip_route_get(text) is None


# -- routing tables --------------------------------------------------------------------------------------------
def test_parse_route_table_json_and_primary_interface() -> None:
    entries = route_parsers.parse_ip_route_table_json(linux("ip_route_table_normal.json"))
    assert any(e.table == "local" for e in entries)
    primary = routes.primary_interface(entries)
    assert (primary.dev, primary.gateway, primary.ip, primary.assumed) == ("eth0", "10.0.0.1", "10.0.0.4", False)
    best = route_parsers.best_route(entries)
    assert best is not None and best.network == ipaddress.IPv4Network("169.254.169.254/32") and best.dev == "eth0"


def test_blackhole_covering_prefix_is_found() -> None:
    entries = route_parsers.parse_ip_route_table_json(linux("ip_route_table_blackhole.json"))
    best = route_parsers.best_route(entries)
    assert best is not None and best.kind == "blackhole" and str(best.network) == "169.254.0.0/16"
    assert best.text == "blackhole 169.254.0.0/16"


@pytest.mark.parametrize("name,kind,dev", [
    ("proc_net_route_normal.txt", "unicast", "eth0"),
    ("proc_net_route_secondary.txt", "unicast", "eth1"),
    ("proc_net_route_blackhole.txt", "blackhole", None),
    ("proc_net_route_unreachable.txt", "unreachable", None),
    ("proc_net_route_tunnel.txt", "unicast", "wg0"),  # the VPN's 169.254.0.0/16 beats the default route
])
def test_proc_net_route(name: str, kind: str, dev: Optional[str]) -> None:
    best = route_parsers.best_route(route_parsers.parse_proc_net_route(linux(name)))
    assert best is not None and (best.kind, best.dev) == (kind, dev)


def test_proc_net_route_without_a_covering_route() -> None:
    entries = route_parsers.parse_proc_net_route(linux("proc_net_route_no_route.txt"))
    assert entries and route_parsers.best_route(entries) is None
    assert routes.primary_interface(entries).assumed


def test_plain_route_table_parser() -> None:
    entries = route_parsers.parse_ip_route_table(
        "default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.4 metric 100 \n"
        "blackhole 169.254.0.0/16 \nfe80::/64 dev eth0 proto kernel metric 256\n")
    assert [(str(e.network), e.kind) for e in entries] == [("0.0.0.0/0", "unicast"), ("169.254.0.0/16", "blackhole")]
    assert entries[0].metric == 100 and entries[0].gateway == "10.0.0.1"


# -- the Linux route report ---------------------------------------------------------------------------------------
def report(get: str, table: Optional[str] = None, links: Optional[str] = None, proc: Optional[str] = None,
           get_rc: int = 0) -> routes.RouteReport:
    text = linux(get)
    get_out = ran(probes.IP_ROUTE_GET_JSON, text if get.endswith(".json") else "",
                  "" if get.endswith(".json") else text, get_rc)
    table_out = ran(probes.IP_ROUTE_TABLE_JSON, linux(table)) if table else missing(probes.IP_ROUTE_TABLE_JSON)
    links_out = ran(probes.IP_LINK_DETAILS_JSON, linux(links)) if links else missing(probes.IP_LINK_DETAILS_JSON)
    proc_in = FileContent(probes.PROC_NET_ROUTE, linux(proc)) if proc else FileContent(probes.PROC_NET_ROUTE,
                                                                                       reason="does not exist")
    return routes.linux_route_report(get_out, table_out, links_out, proc_in)


def test_normal_route_is_on_the_primary_interface() -> None:
    rep = report("ip_route_get_normal.json", "ip_route_table_normal.json", "ip_link_details_normal.json")
    assert rep.route is not None and rep.route.kind == "unicast" and not rep.off_primary and rep.tunnel is None


def test_secondary_nic_is_off_primary() -> None:
    rep = report("ip_route_get_secondary.json", "ip_route_table_secondary.json")
    assert rep.off_primary and rep.primary is not None and rep.primary.dev == "eth0"


def test_tunnel_by_link_kind_and_by_name() -> None:
    rep = report("ip_route_get_tunnel.json", "ip_route_table_tunnel.json", "ip_link_details_tunnel.json")
    assert rep.tunnel == "wg0 is a tun link"
    assert routes.tunnel_reason("tailscale0", {}) == "tailscale0 is named like a tunnel/VPN interface"
    assert routes.tunnel_reason("eth0", {"eth0": "veth"}) is None


def test_blackhole_report_names_the_route_to_delete() -> None:
    rep = report("ip_route_get_blackhole.txt", "ip_route_table_blackhole.json", get_rc=2)
    assert rep.route is not None and rep.route.kind == "blackhole"
    entry = rep.rejecting_entry()
    assert entry is not None and entry.text == "blackhole 169.254.0.0/16"


def test_no_route_and_throw() -> None:
    rep = report("ip_route_get_no_route.txt", "ip_route_table_no_route.json", get_rc=2)
    assert rep.route is not None and rep.route.kind == "no-route"
    throw_table = '[{"type":"throw","dst":"169.254.0.0/16","flags":[]}]'
    rep = routes.linux_route_report(ran(probes.IP_ROUTE_GET_JSON, "", linux("ip_route_get_no_route.txt"), 2),
                                    ran(probes.IP_ROUTE_TABLE_JSON, throw_table),
                                     missing(probes.IP_LINK_DETAILS_JSON), FileContent("/proc/net/route"))
    assert rep.route is not None and rep.route.kind == "throw"


def test_ip_missing_falls_back_to_proc_net_route() -> None:
    rep = routes.linux_route_report(missing(probes.IP_ROUTE_GET_JSON), missing(probes.IP_ROUTE_TABLE_JSON),
                                    missing(probes.IP_LINK_DETAILS_JSON),
                                     FileContent("/proc/net/route", linux("proc_net_route_blackhole.txt")))
    assert rep.route is not None and rep.route.kind == "blackhole" and "main table only" in rep.notes[0]
    nothing = routes.linux_route_report(missing(probes.IP_ROUTE_GET_JSON), missing(probes.IP_ROUTE_TABLE_JSON),
                                        missing(probes.IP_LINK_DETAILS_JSON),
                                         FileContent("/proc/net/route", reason="permission denied"))
    assert not nothing.known and any("permission denied" in p for p in nothing.probes)


def test_old_iproute2_without_json_uses_plain_output() -> None:
    rep = routes.linux_route_report(
        ran(probes.IP_ROUTE_GET_JSON, "", linux("ip_route_get_json_unsupported.txt"), 255),
        ran(probes.IP_ROUTE_TABLE_JSON, "", linux("ip_route_get_json_unsupported.txt"), 255),
        missing(probes.IP_LINK_DETAILS_JSON), FileContent("/proc/net/route", linux("proc_net_route_normal.txt")),
        get_plain=ran(probes.IP_ROUTE_GET, linux("ip_route_get_normal.txt")))
    assert rep.route is not None and rep.route.source == "ip route get" and rep.route.dev == "eth0"
    assert rep.primary is not None and rep.primary.dev == "eth0"


def test_inspect_route_uses_the_seam_and_memoizes() -> None:
    ctx = Context(Config(environ={}))
    for argv in probes.LINUX_COMMANDS:
        ctx.seed(probes.command_key(argv), missing(argv))
    ctx.seed(probes.command_key(probes.IP_ROUTE_GET_JSON), ran(probes.IP_ROUTE_GET_JSON,
                                                               linux("ip_route_get_normal.json")))
    ctx.seed(probes.command_key(probes.IP_ROUTE_TABLE_JSON), ran(probes.IP_ROUTE_TABLE_JSON,
                                                                 linux("ip_route_table_normal.json")))
    first = routes.inspect_route(ctx, "Linux")
    assert first.route is not None and first.route.dev == "eth0"
    assert routes.inspect_route(ctx, "Linux") is first


# -- Windows route print -----------------------------------------------------------------------------------------
def test_route_print_normal() -> None:
    table = route_parsers.parse_route_print(windows("route_print_normal.txt"))
    assert table.recognized and len(table.active) == 13 and not table.persistent
    rep = routes.windows_route_report(ran(probes.ROUTE_PRINT, windows("route_print_normal.txt")))
    assert rep.route is not None and (rep.route.gateway, rep.route.src) == ("10.1.0.1", "10.1.0.4")
    assert rep.primary is not None and rep.primary.ip == "10.1.0.4" and not rep.off_primary


def test_route_print_secondary_nic_wins_on_metric() -> None:
    table = route_parsers.parse_route_print(windows("route_print_secondary_nic.txt"))
    assert [e.text.split()[2] for e in table.persistent] == ["10.1.1.1"]
    rep = routes.windows_route_report(ran(probes.ROUTE_PRINT, windows("route_print_secondary_nic.txt")))
    assert rep.route is not None and rep.route.src == "10.1.1.5" and rep.off_primary


def test_route_print_without_route() -> None:
    rep = routes.windows_route_report(ran(probes.ROUTE_PRINT, windows("route_print_no_route.txt")))
    assert rep.route is not None and rep.route.kind == "no-route"
    table = route_parsers.parse_route_print(windows("route_print_no_route.txt"))
    assert table.persistent[0].metric == 0  # "Default"


def test_route_print_unrecognized_or_missing() -> None:
    assert not routes.windows_route_report(ran(probes.ROUTE_PRINT, "Syntaxfehler\r\n")).known
    assert not routes.windows_route_report(missing(probes.ROUTE_PRINT)).known


# -- iptables ------------------------------------------------------------------------------------------------------
ROOT = Packet(uid=0, gid=0)
USER = Packet(uid=1000, gid=1000)
APPS = Packet(uid=1001, gid=998)


def iptables(name: str) -> firewall.FirewallReport:
    return firewall.firewall_report(ran(probes.IPTABLES_SAVE, linux(name)), missing(probes.NFT_RULESET))


def test_iptables_drop_blocks_everyone() -> None:
    fw = iptables("iptables_save_drop.txt")
    for packet in (ROOT, USER):
        verdict = fw.verdict(packet)
        assert verdict.action == "drop" and verdict.certain
        assert verdict.rule is not None and verdict.rule.text == "-A OUTPUT -d 169.254.169.254/32 -j DROP"
    assert fw.verdict(ROOT).rule.delete_command() == "sudo iptables -t filter -D OUTPUT -d 169.254.169.254/32 -j DROP"


def test_iptables_reject_with_counters() -> None:
    fw = iptables("iptables_save_reject.txt")
    verdict = fw.verdict(USER)
    assert verdict.action == "reject"
    assert verdict.rule.delete_command() == ("sudo iptables -t filter -D OUTPUT -d 169.254.169.254/32 -p tcp -m tcp "
                                             "--dport 80 -j REJECT --reject-with icmp-port-unreachable")


def test_walinuxagent_rules_are_about_the_wireserver_not_imds() -> None:
    fw = iptables("iptables_save_walinuxagent.txt")
    assert fw.verdict(USER).action == "accept" and not fw.imds_rules()


def test_owner_chain_allows_root_and_a_group() -> None:
    fw = iptables("iptables_save_owner.txt")
    assert fw.verdict(ROOT).action == "accept"
    assert fw.verdict(APPS).action == "accept"
    blocked = fw.verdict(USER)
    assert blocked.action == "reject" and blocked.rule.chain == "IMDS-GUARD"
    assert fw.owner_ids() == ([0], [998])
    assert [r.chain for r in fw.imds_rules()] == ["OUTPUT"]


def test_negated_owner_on_a_covering_cidr() -> None:
    fw = iptables("iptables_save_owner_negated.txt")
    assert fw.verdict(ROOT).action == "accept" and fw.verdict(USER).action == "drop"
    assert fw.imds_rules()[0].owner_matches[0].negated


def test_nat_redirect_and_policy_drop() -> None:
    verdict = iptables("iptables_save_nat_redirect.txt").verdict(USER)
    assert verdict.action == "redirect" and "10.240.0.4:2579" in verdict.rule.text
    policy = iptables("iptables_save_policy_drop.txt").verdict(Packet(uid=0, gid=0, oif="eth0"))
    assert policy.action == "drop" and policy.rule is None
    lo = iptables("iptables_save_policy_drop.txt").verdict(Packet(uid=0, gid=0, oif="lo"))
    assert lo.action == "accept"


def test_source_address_conditions_need_a_known_source() -> None:
    text = "*filter\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -s 10.0.0.0/8 -d 169.254.169.254/32 -j DROP\nCOMMIT\n"
    fw = firewall.firewall_report(ran(probes.IPTABLES_SAVE, text), missing(probes.NFT_RULESET))
    assert fw.verdict(Packet(uid=0, gid=0, src="10.0.0.4")).action == "drop"
    assert fw.verdict(Packet(uid=0, gid=0, src="192.168.0.4")).action == "accept"
    unknown = fw.verdict(Packet(uid=0, gid=0, src="not-an-ip"))
    assert unknown.action == "accept" and not unknown.certain


def test_unknown_conditions_make_the_verdict_uncertain() -> None:
    text = "*filter\n:OUTPUT ACCEPT [0:0]\n-A OUTPUT -d 169.254.0.0/16 -m mark --mark 0x1 -j DROP\nCOMMIT\n"
    verdict = firewall.firewall_report(ran(probes.IPTABLES_SAVE, text), missing(probes.NFT_RULESET)).verdict(USER)
    assert verdict.action == "accept" and not verdict.certain and len(verdict.uncertain_rules) == 1


# -- nftables ------------------------------------------------------------------------------------------------------
def nft(name: str) -> firewall.FirewallReport:
    return firewall.firewall_report(missing(probes.IPTABLES_SAVE), ran(probes.NFT_RULESET, linux(name)))


def test_nft_owner_rules_with_a_named_set() -> None:
    fw = nft("nft_ruleset_owner.txt")
    assert fw.verdict(Packet(uid=0, gid=0, oif="eth0")).action == "accept"
    assert fw.verdict(Packet(uid=1001, gid=998, oif="eth0")).action == "accept"
    blocked = fw.verdict(Packet(uid=1000, gid=1000, oif="eth0"))
    assert blocked.action == "reject" and blocked.rule.handle == 7
    assert blocked.rule.delete_command() == "sudo nft delete rule inet filter output handle 7"
    assert fw.owner_ids() == ([0], [998])


def test_nft_drop_ignores_ip6_tables() -> None:
    fw = nft("nft_ruleset_drop.txt")
    verdict = fw.verdict(USER)
    assert verdict.action == "drop" and verdict.rule.table == "ip filter" and verdict.certain


def test_nft_policy_drop_and_redirect() -> None:
    assert nft("nft_ruleset_policy_drop.txt").verdict(Packet(uid=0, gid=0, oif="eth0")).action == "drop"
    verdict = nft("nft_ruleset_redirect.txt").verdict(USER)
    assert verdict.action == "redirect" and "dnat to 127.0.0.1:8080" in verdict.rule.text


def test_iptables_nft_tables_are_not_read_twice() -> None:
    ipt = ran(probes.IPTABLES_SAVE, linux("iptables_save_owner.txt"))
    fw = firewall.firewall_report(ipt, ran(probes.NFT_RULESET, linux("nft_ruleset_iptables_nft.txt")))
    assert len(fw.rulesets) == 2 and fw.rulesets[1].rules == []
    alone = nft("nft_ruleset_iptables_nft.txt")
    assert alone.verdict(ROOT).action == "accept" and alone.verdict(USER).action == "drop"


def test_firewall_not_readable_without_root_or_tools() -> None:
    fw = firewall.firewall_report(ran(probes.IPTABLES_SAVE, "", linux("iptables_save_nonroot_stderr.txt"), 4),
                                  ran(probes.NFT_RULESET, "", linux("nft_ruleset_nonroot_stderr.txt"), 1))
    assert not fw.readable and "permission denied" in fw.reason
    gone = firewall.firewall_report(missing(probes.IPTABLES_SAVE), missing(probes.NFT_RULESET))
    assert not gone.readable and gone.reason == "iptables-save missing; nft missing"


@given(st.text(max_size=600))
def test_parsers_never_raise(text: str) -> None:
    route_parsers.parse_ip_route_get_json(text)
    route_parsers.parse_ip_route_get(text)
    route_parsers.parse_ip_route_table_json(text)
    route_parsers.parse_ip_route_table(text)
    route_parsers.parse_proc_net_route(text)
    routes.parse_ip_link_kinds(text)
    route_parsers.parse_route_print(text)
    for ruleset in (firewall_parsers.parse_iptables_save(text), firewall_parsers.parse_nft_ruleset(text)):
        ruleset.verdict(USER)


LINE = st.sampled_from([
    "*filter", "*nat", ":OUTPUT DROP [0:0]", ":OUTPUT ACCEPT [0:0]", ":X - [0:0]", "COMMIT",
    "-A OUTPUT -j X", "-A X -j RETURN", "-A X -g OUTPUT", "-A OUTPUT -d 169.254.169.254/32 -j DROP",
    "-A OUTPUT ! -d 169.254.169.254 -j REJECT", "-A OUTPUT -m owner ! --uid-owner 0-10 -j ACCEPT",
    "-A OUTPUT -p tcp --dport 80:90 -j X", "-A OUTPUT -m comment --comment \"unbalanced -j DROP",
    "table inet t {", "chain c {", "type filter hook output priority filter; policy drop;", "}",
    "ip daddr { 169.254.0.0/16 } jump c", "meta skuid != 0 drop", "ip daddr @s accept", "set s {",
    "elements = { 169.254.169.254 }", "tcp dport { 80, 443 } reject", "goto c", "jump c",
])


@given(st.lists(LINE, max_size=25))
def test_firewall_evaluation_never_raises_on_odd_rulesets(lines) -> None:
    text = "\n".join(lines)
    fw = firewall.firewall_report(ran(probes.IPTABLES_SAVE, text), ran(probes.NFT_RULESET, text))
    for packet in (ROOT, USER, APPS):
        assert fw.verdict(packet).action in ("accept", "drop", "reject", "redirect")
    fw.to_evidence()


# -- containers -------------------------------------------------------------------------------------------------------
def test_container_facts_and_meaning(tmp_path: Path) -> None:
    (tmp_path / "proc/1").mkdir(parents=True)
    (tmp_path / "proc/1/cgroup").write_text("0::/kubepods/besteffort/pod1234/abcd\n")
    (tmp_path / ".dockerenv").write_text("")
    facts = container_facts(tmp_path, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert facts["kubernetes"] and facts["docker"] and facts["cgroup_markers"] == ["kubepods"]
    assert "podLinkLocalAccess" in (container_imds_meaning(facts) or "")
    wi = container_facts(tmp_path, {"AZURE_AUTHORITY_HOST": "https://login.microsoftonline.com/",
                                    "AZURE_TENANT_ID": "t", "AZURE_FEDERATED_TOKEN_FILE": "/var/run/x"})
    assert "never calls IMDS" in (container_imds_meaning(wi) or "")
    (tmp_path / "proc/version").write_text("Linux version 6.6.16-linuxkit (root@buildkitsandbox)\n")
    desktop = container_facts(tmp_path, {})
    assert desktop["docker_desktop"] and "no IMDS here" in (container_imds_meaning(desktop) or "")
    assert container_facts(tmp_path / "nothing", {}) == {} and container_imds_meaning({}) is None
