"""JUnit XML, so CI systems (GitHub, GitLab, Azure DevOps, Jenkins) show each check as a test case.

Mapping, per check (``classname="midoctor.checks"``, ``name`` = check id, ``time`` in seconds):

- pass  -> a plain passing test case.
- fail  -> ``<failure message=summary type=cause>``; the body holds the fix text, commands and evidence.
- error -> ``<error>`` with the same attributes and body: the check could not decide (crash, timeout),
  which CI tools show differently from a failure.
- skip  -> ``<skipped message=summary>``.
- warn  -> a *passing* test case with ``<system-out>`` carrying the warning, fix and evidence. JUnit has no
  "warning" outcome, and failing the CI job on a warning is the CLI's ``--fail-on`` decision, not the
  renderer's; a passing case with output keeps the warning visible without changing the verdict.

ElementTree escapes ``<&>"`` but happily writes characters XML 1.0 forbids (most C0 controls, lone
surrogates, U+FFFE/U+FFFF), which makes the whole file unparseable; :func:`xml_text` replaces them first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional

from midoctor.model import Fix, Report, Result, Status
from midoctor.render import clean_str, cut, pretty_json, visible_controls

CLASSNAME = "midoctor.checks"
STRING_LIMIT = 20_000  # per evidence string
BODY_LIMIT = 100_000  # per failure/error/system-out body: CI viewers choke on more

# Outside XML 1.0's Char production, after clean_str has already turned lone surrogates into U+FFFD.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: Any, limit: Optional[int] = STRING_LIMIT) -> str:
    """Text every XML 1.0 parser accepts: controls shown as ``\\xNN``, other non-characters as U+FFFD."""
    text = visible_controls(cut(clean_str(str(value)), limit))
    return _NOT_XML_CHAR.sub("\ufffd", text)


def _seconds(ms: float) -> str:
    return f"{max(ms, 0.0) / 1000:.3f}"


def _fix_lines(fix: Optional[Fix]) -> List[str]:
    if fix is None:
        return []
    lines = ["", "Fix:", fix.text]
    for command in fix.commands:
        lines += [f"  [{command.shell}]", "    " + command.text.replace("\n", "\n    ")]
    lines += [f"  See: {link}" for link in fix.links]
    return lines


def _body(result: Result) -> str:
    lines = [result.summary, f"Cause: {result.cause}"]
    lines += _fix_lines(result.fix)
    if result.evidence:
        lines += ["", "Evidence:", pretty_json(result.evidence, max_str=STRING_LIMIT)]
    return xml_text("\n".join(lines), BODY_LIMIT)


def _testcase(parent: ET.Element, result: Result) -> None:
    case = ET.SubElement(parent, "testcase", {
        "classname": CLASSNAME,
        "name": xml_text(result.check_id, 200),
        "time": _seconds(result.duration_ms),
    })
    status = result.status
    if status is Status.FAIL or status is Status.ERROR:
        tag = "failure" if status is Status.FAIL else "error"
        outcome = ET.SubElement(case, tag, {"message": xml_text(result.summary, 2000),
                                            "type": xml_text(result.cause, 200)})
        outcome.text = _body(result)
    elif status is Status.SKIP:
        ET.SubElement(case, "skipped", {"message": xml_text(result.summary, 2000)})
    elif status is Status.WARN:
        ET.SubElement(case, "system-out").text = "WARNING: " + _body(result)


def _properties(parent: ET.Element, report: Report) -> None:
    host = report.host or {}
    facts: Dict[str, Any] = {
        "midoctor.version": report.tool_version,
        "run_id": report.run_id,
        "schema_version": report.schema_version,
        "interrupted": "true" if report.interrupted else "false",
        "host.hostname": host.get("hostname", ""),
        "host.vm_name": host.get("name", ""),
    }
    props = ET.SubElement(parent, "properties")
    for name, value in facts.items():
        if value not in ("", None):
            ET.SubElement(props, "property", {"name": name, "value": xml_text(value, 500)})


def render(report: Report, *, color: bool = False, verbose: bool = False) -> str:
    """``color``/``verbose`` are accepted for a uniform signature; the XML always has everything."""
    del color, verbose
    counts = report.counts()
    totals = {
        "tests": str(len(report.checks)),
        "failures": str(counts[Status.FAIL.value]),
        "errors": str(counts[Status.ERROR.value]),
        "skipped": str(counts[Status.SKIP.value]),
        "time": _seconds(report.duration_ms),
    }
    root = ET.Element("testsuites", {"name": "midoctor", **totals})
    suite = ET.SubElement(root, "testsuite", {
        "name": "midoctor",
        **totals,
        "timestamp": xml_text(report.started_at, 100),
        "hostname": xml_text((report.host or {}).get("hostname", ""), 200),
    })
    _properties(suite, report)
    for result in report.checks:
        _testcase(suite, result)
    ET.indent(root)  # people open these artifacts too
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
