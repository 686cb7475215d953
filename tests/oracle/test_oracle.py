"""Oracle tests: the real azure-identity and msal clients against the same simulated VM as midoctor.

Where an SDK gets a token, midoctor's transport and identity checks must not fail; where it fails,
midoctor's diagnosis must name the cause the SDK's error came from. The table of outcomes is written to
docs/oracle.md when MIDOCTOR_WRITE_DOCS=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import run_against

from midoctor.sim import Simulator, list_scenarios

PROBE = Path(__file__).with_name("sdk_probe.py")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "oracle.md"
SDK_TIMEOUT_S = 12.0  # the "hang" scenario would hold azure-identity for 300 s x 4 read attempts
CLIENTS = ("azure-identity", "msal")
TRANSPORT_AND_IDENTITY = ("imds-reachable", "identity-attached", "uami-ambiguity")

# The SDK's error text -> midoctor causes that explain it.
MESSAGE_TO_CAUSES: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    ("Multiple user assigned identities", ("multiple-no-selector",)),
    ("Identity not found", ("no-identity", "selector-not-attached")),
    ("AADSTS500011", ("wrong-cloud", "resource-not-found", "trailing-slash")),
    ("too_many_requests", ("throttled", "imds-unavailable")),
    ("Too many requests", ("throttled", "imds-unavailable")),
)


def _scenario_inputs(demo: Dict[str, Any]) -> Tuple[str, Optional[str]]:
    resources = demo.get("resources") or ["https://management.azure.com/"]
    return resources[0], demo.get("client_id")


def probe_sdk(scenario: str, client: str) -> Dict[str, Any]:
    """One SDK call against a fresh simulator (scripted sequences start from the beginning)."""
    with Simulator(scenario) as sim:
        resource, client_id = _scenario_inputs(sim.scenario.demo)
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("AZURE_")}
        env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = sim.url
        started = time.monotonic()
        try:
            done = subprocess.run([sys.executable, str(PROBE), client, resource, client_id or ""], env=env,
                                  capture_output=True, text=True, timeout=SDK_TIMEOUT_S)
            result = json.loads(done.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            result = {"ok": False, "exception": "Timeout", "message": f"no result after {SDK_TIMEOUT_S:g} s",
                      "seconds": round(time.monotonic() - started, 1)}
        result["issued_tokens"] = list(sim.issued_tokens)
        return result


@pytest.fixture(scope="module")
def sdk_outcomes() -> Dict[Tuple[str, str], Dict[str, Any]]:
    jobs = [(s.name, c) for s in list_scenarios() for c in CLIENTS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: probe_sdk(*job), jobs))
    return dict(zip(jobs, results))


@pytest.fixture(scope="module")
def table_rows() -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    yield rows
    if os.environ.get("MIDOCTOR_WRITE_DOCS") == "1" and rows:
        write_table(sorted(rows, key=lambda r: r["scenario"]))


def expected_causes(message: str) -> Optional[Tuple[str, ...]]:
    for needle, causes in MESSAGE_TO_CAUSES:
        if needle in message:
            return causes
    return None


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [s.name for s in list_scenarios()])
def test_midoctor_agrees_with_the_sdks(scenario: str, simulator, sdk_outcomes, table_rows) -> None:
    sim = simulator(scenario)
    run = run_against(sim)
    assert run.report is not None
    diagnosis = run.report["diagnosis"]
    by_id = {c["id"]: c for c in run.report["checks"]}
    for client in CLIENTS:
        outcome = sdk_outcomes[(scenario, client)]
        if outcome["ok"]:
            for check_id in TRANSPORT_AND_IDENTITY:
                assert by_id[check_id]["status"] != "fail", (client, check_id, by_id[check_id]["summary"])
        else:
            assert diagnosis is not None and diagnosis["status"] in ("fail", "warn"), (client, outcome)
            wanted = expected_causes(outcome["message"])
            if wanted is not None:
                assert diagnosis["cause"] in wanted, (client, outcome["message"], diagnosis)
            else:
                # No error JSON reached the SDK (not IMDS, no answer, retries exhausted): midoctor must blame
                # the transport, never the identity.
                assert diagnosis["id"] in ("imds-reachable", "identity-attached"), (client, outcome, diagnosis)
    table_rows.append({
        "scenario": scenario,
        "sdk": {c: sdk_outcomes[(scenario, c)] for c in CLIENTS},
        "diagnosis": diagnosis,
        "midoctor_ms": run.report["duration_ms"],
    })


def _sdk_cell(outcome: Dict[str, Any]) -> str:
    if outcome["ok"]:
        return f"token ({outcome['seconds']} s)"
    message = outcome["message"]
    if "Token request error:" in message:  # azure-identity >= 1.25.1 puts the IMDS error last
        message = "… " + message[message.index("Token request error:"):]
    text = message[:140].replace("|", "\\|")
    return f"{outcome['exception']}: {text} ({outcome['seconds']} s)"


def write_table(rows: List[Dict[str, Any]]) -> None:
    import azure.identity
    import msal

    lines = [
        "# Oracle: midoctor vs the real Azure SDKs",
        "",
        "Generated by `MIDOCTOR_WRITE_DOCS=1 pytest tests/oracle` against the project's IMDS simulator "
        f"(azure-identity {azure.identity.__version__}, msal {msal.__version__}, Python "
        f"{sys.version.split()[0]}). SDK time is wall time of one `get_token` / `acquire_token_for_client` call "
        f"including retries (capped at {SDK_TIMEOUT_S:g} s), measured with 8 probes in parallel on 2 cores; "
        "midoctor time is its whole run (all checks).",
        "",
        "| scenario | azure-identity | msal | midoctor diagnosis | midoctor run |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        diagnosis = row["diagnosis"]
        verdict = "healthy" if diagnosis is None else \
            f"{diagnosis['status']} `{diagnosis['id']}` / `{diagnosis['cause']}`"
        lines.append(f"| {row['scenario']} | {_sdk_cell(row['sdk']['azure-identity'])} | "
                     f"{_sdk_cell(row['sdk']['msal'])} | {verdict} | {row['midoctor_ms'] / 1000:.2f} s |")
    DOCS.parent.mkdir(exist_ok=True)
    DOCS.write_text("\n".join(lines) + "\n")
