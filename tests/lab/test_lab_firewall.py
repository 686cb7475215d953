"""Local firewall rules in the VM's OUTPUT chain (failure-catalog F12): for everyone, and owner-only."""

from __future__ import annotations

from typing import Any, Sequence, Tuple

import pytest

from .netlab import IMDS_IP, NOBODY, ROOT, AzureVm

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("need_iptables")]

WALL_BOUND_S = 10.0
TO_IMDS = ("-d", f"{IMDS_IP}/32", "-p", "tcp", "--dport", "80")


def _case(label: str, target: Sequence[str], expected: Tuple[str, str], **marks: Any) -> Any:
    return pytest.param(label, tuple(target), expected, id=label, **marks)


@pytest.mark.parametrize(("label", "target", "expected"), [
    # A locally generated SYN dropped in OUTPUT does not fail connect() (TCP ignores the local EPERM and
    # retransmits): the client sees a plain connect timeout, like an NSG drop.
    _case("DROP", ("-j", "DROP"), ("fail", "timed-out")),
    # The REJECT answer is addressed to the VM itself and delivered locally: ECONNREFUSED either way.
    _case("REJECT icmp-port-unreachable", ("-j", "REJECT", "--reject-with", "icmp-port-unreachable"),
          ("fail", "refused")),
    _case("REJECT tcp-reset", ("-j", "REJECT", "--reject-with", "tcp-reset"), ("fail", "refused")),
    # firewalld's reject type. ICMP "administratively prohibited" reaches the socket as EHOSTUNREACH.
    _case("REJECT icmp-admin-prohibited", ("-j", "REJECT", "--reject-with", "icmp-admin-prohibited"),
          ("fail", "blocked-locally")),
])
def test_firewall_for_everyone(vm: AzureVm, diagnose, label: str, target: Sequence[str],
                               expected: Tuple[str, str]) -> None:
    vm.serve_imds("healthy-system")
    vm.vm.iptables("-A", "OUTPUT", *TO_IMDS, *target)
    run = diagnose(f"firewall {label} on 169.254.169.254 (OUTPUT)", vm.vm)
    assert run.verdict("imds-reachable") == expected
    # Rules are readable as root: both checks name the rule, so the fix can delete exactly it.
    assert target[1] in run.check("imds-reachable")["summary"], run.check("imds-reachable")["summary"]
    assert run.verdict("proxy-route") == ("fail", "firewall-blocks")
    summary = run.check("proxy-route")["summary"]
    assert IMDS_IP in summary and target[1] in summary, summary
    assert run.wall_s < WALL_BOUND_S


def _owner_rule(vm: AzureVm, target: Sequence[str]) -> None:
    # A deliberate allow-list (the IMDS docs suggest restricting IMDS to some processes): only root passes.
    vm.serve_imds("healthy-system")
    vm.vm.iptables("-A", "OUTPUT", *TO_IMDS, "-m", "owner", "!", "--uid-owner", "0", *target)


@pytest.mark.usefixtures("need_nobody")
@pytest.mark.parametrize(("label", "target", "expected"), [
    _case("DROP", ("-j", "DROP"), ("fail", "timed-out")),
    _case("REJECT", ("-j", "REJECT"), ("fail", "refused")),
])
def test_owner_rule_only_root_gets_through(vm: AzureVm, diagnose, label: str, target: Sequence[str],
                                           expected: Tuple[str, str]) -> None:
    _owner_rule(vm, target)
    scenario = f"owner rule: only root may reach IMDS ({label})"
    as_nobody = diagnose(scenario, vm.vm, user=NOBODY)
    as_root = diagnose(scenario, vm.vm, user=ROOT)
    # The F12 proof: the application's user fails while root, in the same namespace, succeeds.
    assert as_nobody.verdict("imds-reachable") == expected
    assert as_nobody.wall_s < WALL_BOUND_S
    # As nobody the ruleset is not readable (iptables-save needs CAP_NET_ADMIN): midoctor must say so ...
    firewall = as_nobody.check("proxy-route")["evidence"]["firewall"]
    assert firewall["readable"] is False and "permission" in firewall["reason"].lower(), firewall
    summaries = " ".join(as_nobody.check(c)["summary"] for c in ("imds-reachable", "proxy-route"))
    assert "firewall rules could not be read" in summaries.lower(), summaries
    # ... and not guess: no verdict about rules it could not see.
    assert as_nobody.verdict("proxy-route")[1] not in ("firewall-blocks", "firewall-owner-only")
    assert as_root.verdict("imds-reachable") == ("pass", "healthy")
    assert as_root.exit_code == 0
    # Root can read the rules: allowed itself, it warns that other users are not.
    assert as_root.verdict("proxy-route") == ("warn", "firewall-owner-only")
    summary = as_root.check("proxy-route")["summary"]
    assert "uid 0" in summary and "65534" in summary, summary
    assert as_root.wall_s < WALL_BOUND_S
