"""Shared fixtures: the project's own IMDS simulator on loopback and an in-process midoctor runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest
from click.testing import CliRunner

from midoctor.cli import main
from midoctor.sim import Simulator, load_scenario

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "reports" / "report.schema.json"


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    report: Optional[Dict[str, Any]]

    def check(self, check_id: str) -> Dict[str, Any]:
        assert self.report is not None, self.stdout + self.stderr
        for item in self.report["checks"]:
            if item["id"] == check_id:
                return item
        raise AssertionError(f"no check {check_id} in report")


def _runner() -> CliRunner:
    """Separate stdout and stderr on every click: click < 8.2 mixes stderr into stdout unless told not to
    (and then ``result.stderr`` raises); click 8.2 always separates them and removed ``mix_stderr``."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def invoke(args: List[str], env: Optional[Dict[str, str]] = None) -> Run:
    """Run the CLI in-process with a clean environment (no proxy or AZURE_* leaking in from the shell)."""
    clean = {k: None for k in ("AZURE_CLIENT_ID", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
                               "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy", "MIDOCTOR_IMDS_URL",
                               "MIDOCTOR_ARM_URL")}
    clean.update(env or {})
    result = _runner().invoke(main, args, env=clean, catch_exceptions=False)
    report = None
    if "--format" in args and args[args.index("--format") + 1] == "json" and result.stdout.startswith("{"):
        report = json.loads(result.stdout)
    return Run(result.exit_code, result.stdout, result.stderr, report)


def run_against(sim: Simulator, *extra: str, env: Optional[Dict[str, str]] = None, scenario_args: bool = True) -> Run:
    """`midoctor run` against a simulator, with the scenario's own demo arguments unless told otherwise."""
    args = ["run", "--imds-url", sim.url, "--arm-url", sim.url, "--format", "json"]
    if scenario_args:
        args += demo_args(sim.scenario.demo)
    return invoke(args + list(extra), env=env)


def demo_args(demo: Dict[str, Any]) -> List[str]:
    out: List[str] = []
    for key, flag in (("client_id", "--client-id"), ("object_id", "--object-id"), ("msi_res_id", "--msi-res-id"),
                      ("scope", "--scope")):
        if demo.get(key):
            out += [flag, str(demo[key])]
    for resource in demo.get("resources") or []:
        out += ["--resource", resource]
    for action in demo.get("actions") or []:
        out += ["--action", action]
    return out


@pytest.fixture
def simulator() -> Iterator[Any]:
    """Factory: `simulator("healthy-system")` starts one on a free loopback port; all stop at teardown."""
    started: List[Simulator] = []

    def start(scenario: Any) -> Simulator:
        loaded = load_scenario(scenario) if isinstance(scenario, str) else scenario
        sim = Simulator(loaded, host="127.0.0.1", port=0).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(scope="session")
def report_schema() -> Dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def validate_report(report: Dict[str, Any], schema: Dict[str, Any]) -> None:
    import jsonschema

    jsonschema.validate(report, schema)
