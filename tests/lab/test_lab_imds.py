"""What answers (or does not) on 169.254.169.254:80: healthy, nothing, slow, throttled, impostors, a hang."""

from __future__ import annotations

from typing import Tuple

import pytest

from .netlab import IMDS_IP, AzureVm, Lab

pytestmark = pytest.mark.lab

# The benchmark measures speed; this only proves midoctor never hangs like the SDK does.
WALL_BOUND_S = 10.0


def test_healthy_vm(vm: AzureVm, diagnose, clean_path: Tuple[str, str]) -> None:
    vm.serve_imds("healthy-system")
    run = diagnose("healthy VM", vm.vm, focus=("imds-reachable", "proxy-route", "identity-attached"))
    assert run.exit_code == 0, run.stderr[-2000:] or run.stdout[-3000:]
    assert run.verdict("imds-reachable") == ("pass", "healthy")
    assert run.verdict("identity-attached") == ("pass", "system-assigned")
    assert run.verdict("proxy-route") == clean_path
    # The kernel's answer for the healthy route, as midoctor saw it: via the gateway on the primary NIC.
    route = run.check("proxy-route")["evidence"].get("route", {}).get("route", {})
    assert (route.get("dev"), route.get("gateway")) == ("eth0", "10.0.0.1"), route
    assert run.wall_s < WALL_BOUND_S


def test_nothing_listening_is_refused(vm: AzureVm, diagnose, clean_path: Tuple[str, str]) -> None:
    # The host side owns 169.254.169.254 but no IMDS process listens: its kernel answers the SYN with RST.
    run = diagnose("nothing listening on 169.254.169.254:80", vm.vm)
    assert run.verdict("imds-reachable") == ("fail", "refused")
    assert run.verdict("proxy-route") == clean_path
    assert run.exit_code == 1
    assert run.wall_s < WALL_BOUND_S


def test_slow_imds_warns(vm: AzureVm, diagnose) -> None:
    vm.serve_imds("slow")  # 1.6 s per answer, longer than azure-identity's 1 s probe
    run = diagnose("IMDS slow (1.6 s per answer)", vm.vm, focus=("imds-reachable", "identity-attached"))
    assert run.verdict("imds-reachable") == ("warn", "slow")
    assert run.wall_s < WALL_BOUND_S


def test_throttled_imds_fails_identity(vm: AzureVm, diagnose) -> None:
    vm.serve_imds("throttled")  # every token request: 429 with Retry-After: 1
    run = diagnose("IMDS throttling (429)", vm.vm, focus=("imds-reachable", "identity-attached"))
    assert run.verdict("imds-reachable") == ("pass", "healthy")
    status, cause = run.verdict("identity-attached")
    assert status == "fail" and cause == "imds-unavailable"
    assert "429" in run.check("identity-attached")["summary"]
    assert run.wall_s < WALL_BOUND_S


def test_impostor_on_the_path(vm: AzureVm, diagnose, clean_path: Tuple[str, str]) -> None:
    # Something else owns 169.254.169.254 beyond the VM: a squid-like proxy answering 502 HTML.
    vm.serve_imds("impostor")
    run = diagnose("proxy answers for 169.254.169.254 (502 HTML, Server: squid)", vm.vm)
    assert run.verdict("imds-reachable") == ("fail", "impostor")
    assert "502" in run.check("imds-reachable")["summary"]
    assert run.verdict("proxy-route") == clean_path
    assert run.wall_s < WALL_BOUND_S


def test_local_impostor_bound_on_the_vm(vm: AzureVm, lab: Lab, diagnose) -> None:
    # A local process owns the address (a sidecar or interceptor on the VM itself): `ip route get` says local.
    vm.vm.add_address(f"{IMDS_IP}/32", "lo")
    lab.serve_imds(vm.vm, "impostor")
    run = diagnose("local impostor bound to 169.254.169.254 on the VM", vm.vm)
    assert run.verdict("imds-reachable") == ("fail", "impostor")
    assert run.verdict("proxy-route") == ("warn", "imds-address-local")
    assert "python" in run.check("proxy-route")["summary"]  # the listening process is named (psutil)
    assert run.wall_s < WALL_BOUND_S


def test_hung_listener(vm: AzureVm, diagnose) -> None:
    vm.serve_imds("hang")  # accepts, never answers (F14): azure-identity blocks for minutes
    run = diagnose("listener accepts but never answers", vm.vm)
    assert run.verdict("imds-reachable") == ("fail", "no-answer")
    assert run.wall_s < WALL_BOUND_S


def test_arm_name_that_does_not_resolve_is_named_as_dns(vm: AzureVm, diagnose) -> None:
    # The lab's resolv.conf points at 127.0.0.1 inside the namespace, where no DNS server listens: the real
    # ARM host cannot be resolved, and no packet leaves the namespace.
    vm.serve_imds("healthy-system")
    run = diagnose("ARM host does not resolve (no DNS server)", vm.vm, sdk="none", focus=("role-assignment",),
                   extra=("--arm-url", "https://management.azure.com", "--only", "role-assignment"))
    result = run.check("role-assignment")
    assert (result["status"], result["cause"]) == ("error", "arm-unreachable")
    assert "DNS" in result["summary"] and "127.0.0.1" in result["summary"]
    assert result["evidence"]["dns"]["host"] == "management.azure.com"
    assert run.wall_s < WALL_BOUND_S
