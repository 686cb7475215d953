"""Golden example reports in reports/examples/: rendered from simulator scenarios, valid against the schema,
and still what midoctor says today. Regenerate with MIDOCTOR_WRITE_DOCS=1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import invoke, validate_report

from midoctor.model import Report
from midoctor.render import render

EXAMPLES = Path(__file__).resolve().parent.parent / "reports" / "examples"
SCENARIOS = ("healthy-system", "multiple-user", "no-identity", "missing-role", "impostor")


def _verdicts(report: dict) -> list:
    return [(c["id"], c["status"], c["cause"]) for c in report["checks"]]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_example_is_current_and_valid(scenario: str, tmp_path: Path, report_schema) -> None:
    fresh = invoke(["demo", "--scenario", scenario, "--output", str(tmp_path), "--format", "json"]).report
    assert fresh is not None
    target = EXAMPLES / f"{scenario}.json"
    if os.environ.get("MIDOCTOR_WRITE_DOCS") == "1":
        EXAMPLES.mkdir(exist_ok=True)
        target.write_text(json.dumps(fresh, indent=2, ensure_ascii=False) + "\n")
        report = Report.from_dict(fresh)
        (EXAMPLES / f"{scenario}.html").write_text(render(report, "html"))
        (EXAMPLES / f"{scenario}.md").write_text(render(report, "markdown"))
    example = json.loads(target.read_text())
    validate_report(example, report_schema)
    assert _verdicts(example) == _verdicts(fresh), "regenerate with MIDOCTOR_WRITE_DOCS=1"
