"""Routes to 169.254.169.254 (failure-catalog F11): rejecting routes, no route, a VPN capturing it."""

from __future__ import annotations

import pytest

from .netlab import IMDS_IP, AzureVm, Lab

pytestmark = pytest.mark.lab

WALL_BOUND_S = 10.0


@pytest.mark.parametrize("kind", [
    # connect() errors measured in the lab: blackhole → EINVAL, unreachable → EHOSTUNREACH, prohibit → EACCES.
    "blackhole",
    "unreachable",
    "prohibit",
])
def test_rejecting_route(vm: AzureVm, diagnose, kind: str) -> None:
    vm.serve_imds("healthy-system")
    vm.vm.ip("route", "add", kind, f"{IMDS_IP}/32")
    run = diagnose(f"{kind} route to 169.254.169.254", vm.vm)
    assert run.verdict("proxy-route") == ("fail", "route-blackhole")
    assert kind in run.check("proxy-route")["summary"]
    assert run.wall_s < WALL_BOUND_S
    assert run.verdict("imds-reachable") == ("fail", "no-route")


def test_no_route_at_all(lab: Lab, diagnose) -> None:
    # A VM whose network never came up: only lo, no routes (DHCP disabled on the primary NIC, F11).
    bare = lab.netns("vm")
    run = diagnose("no route at all (only lo up)", bare)
    assert run.verdict("imds-reachable") == ("fail", "no-route")
    assert run.verdict("proxy-route") == ("fail", "no-route")
    assert run.wall_s < WALL_BOUND_S


def test_vpn_captures_imds(vm: AzureVm, lab: Lab, diagnose) -> None:
    # OpenVPN-style redirect-gateway def1: 0.0.0.0/1 and 128.0.0.0/1 through the tunnel override the default
    # route without replacing it, so 169.254.169.254 leaves through vpn0 to a far end that never answers
    # (no forwarding there: packets are dropped silently).
    vm.serve_imds("healthy-system")
    far = lab.netns("vpn")
    lab.veth(vm.vm, "vpn0", far, "tun-peer")
    vm.vm.add_address("10.8.0.2/24", "vpn0")
    far.add_address("10.8.0.1/24", "tun-peer")
    for half in ("0.0.0.0/1", "128.0.0.0/1"):
        vm.vm.ip("route", "add", half, "via", "10.8.0.1", "dev", "vpn0")
    run = diagnose("route captured by a VPN interface (vpn0) whose far end does not answer", vm.vm)
    assert run.verdict("imds-reachable") == ("fail", "timed-out")
    status, cause = run.verdict("proxy-route")
    assert cause == "route-not-primary" and status == "fail"
    assert "vpn0" in run.check("proxy-route")["summary"]
    assert "through vpn0, not eth0" in run.check("imds-reachable")["summary"]  # the diagnosis names it too
    assert run.wall_s < WALL_BOUND_S
