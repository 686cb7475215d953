"""Bounded cost: a healthy run stays far below IMDS's per-VM limits, and Ctrl-C stops promptly while still
writing what was found so far."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import run_against

# IMDS limits per VM (reference, failure-catalog section 1): 5 requests/s for metadata,
# 20 requests/s and 5 concurrent for identity.
HEALTHY_RUN_MAX_REQUESTS = 6


def test_healthy_run_request_budget(simulator) -> None:
    sim = simulator("healthy-system")
    run = run_against(sim)
    assert run.exit_code == 0
    imds = [r for r in sim.requests if r.path.startswith("/metadata")]
    identity = [r for r in imds if r.path == "/metadata/identity/oauth2/token"]
    metadata = [r for r in imds if r not in identity]
    assert len(metadata) == 1  # instance metadata once, shared by every check
    assert len(identity) <= 2  # the demo resource plus ARM, each once
    assert len(imds) <= HEALTHY_RUN_MAX_REQUESTS
    assert sim.max_concurrent_identity <= 5


def test_many_resources_never_exceed_five_concurrent_identity_requests(simulator) -> None:
    from midoctor.sim import Scenario, load_scenario

    data = json.loads(json.dumps(load_scenario("healthy-system").data))
    data["name"] = "slow-identity"
    data["faults"] = {"identity": {"delay_seconds": 0.3}}  # long enough for requests to overlap
    sim = simulator(Scenario.from_dict(data))
    resources = [f"https://{name}" for name in ("vault.azure.net", "storage.azure.com", "storage.azure.com/",
                                                 "graph.microsoft.com", "graph.microsoft.com/",
                                                 "database.windows.net/", "ossrdbms-aad.database.windows.net",
                                                 "management.core.windows.net/")]
    args = [arg for r in resources for arg in ("--resource", r)]
    run = run_against(sim, *args, scenario_args=False)
    assert run.check("token-audience")["status"] == "pass", run.check("token-audience")["summary"]
    assert 1 < sim.max_concurrent_identity <= 5  # asked in parallel, never beyond IMDS's limit


def test_ctrl_c_stops_promptly_and_writes_what_was_found(simulator, tmp_path: Path) -> None:
    sim = simulator("hang")
    out = tmp_path / "partial"
    proc = subprocess.Popen([sys.executable, "-m", "midoctor", "run", "--imds-url", sim.url, "--arm-url", sim.url,
                             "--format", "json", "--output", str(out), "--timeout", "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1"})
    time.sleep(1.2)  # the IMDS probe is now waiting on the hung server
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - started < 2
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(stdout)
    assert report["interrupted"] is True
    assert any(c["cause"] == "interrupted" for c in report["checks"])
    assert json.loads((out / "report.json").read_text())["interrupted"] is True
