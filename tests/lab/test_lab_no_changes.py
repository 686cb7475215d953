"""midoctor only observes: a run leaves routes, policy rules, the firewall and the file system as it found them."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Dict, List

import pytest

from .netlab import IMDS_IP, AzureVm, Lab

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("need_iptables")]


def _files(root: Path) -> List[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def _assert_same(before: Dict[str, str], after: Dict[str, str]) -> None:
    for key in before:
        diff = "\n".join(difflib.unified_diff(before[key].splitlines(), after[key].splitlines(), "before", "after",
                                               lineterm=""))
        assert not diff, f"{key} changed:\n{diff}"


def test_midoctor_changes_nothing(vm: AzureVm, lab: Lab, diagnose) -> None:
    vm.serve_imds("healthy-system")
    # Something for midoctor to read in every table it inspects: a policy rule and a firewall rule.
    vm.vm.ip("rule", "add", "to", f"{IMDS_IP}/32", "lookup", "main", "priority", "100")
    vm.vm.iptables("-A", "OUTPUT", "-d", f"{IMDS_IP}/32", "-p", "tcp", "--dport", "80", "-j", "ACCEPT")
    output = lab.dir / "reports"
    output.mkdir()
    home_before = _files(lab.home)
    before = vm.vm.network_state()

    run = diagnose("healthy VM, with --output (nothing else may change)", vm.vm, extra=("--output", str(output)),
                   focus=("imds-reachable", "proxy-route"))

    assert run.exit_code == 0, run.stderr
    _assert_same(before, vm.vm.network_state())
    assert _files(lab.home) == home_before
    assert _files(output) == ["report.html", "report.json", "report.md"]
    assert all(os.path.getsize(output / name) > 0 for name in _files(output))
