"""Every renderer against every status, plus the hostile values a broken machine can hand us."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midoctor.model import Command, Fix, Report, Result, Status
from midoctor.paths import schema_path
from midoctor.render import _MODULES, Format, render
from midoctor.render import text as text_render
from midoctor.render.html import _environment

ALL_STATUSES: Tuple[str, ...] = ("pass", "warn", "fail", "skip", "error")
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_ATTR = '"><img src=x onerror=alert(1)>'

_SUMMARIES = {
    "pass": "IMDS answered in 3 ms.",
    "warn": "HTTP_PROXY is set but 169.254.169.254 is in NO_PROXY for curl only.",
    "fail": "No managed identity is assigned to this VM.",
    "skip": "Skipped: needs imds-reachable to succeed.",
    "error": "The check did not finish within its 10 s budget.",
}
_CAUSES = {
    "pass": "ok",
    "warn": "proxy-partial-bypass",
    "fail": "no-identity-assigned",
    "skip": "prerequisite-not-met",
    "error": "timed-out",
}


def _fix(status: str) -> Optional[Fix]:
    if status in ("pass", "skip"):
        return None
    return Fix(
        text=f"Fix for {status}: assign an identity to the VM.",
        commands=(
            Command("az", "az vm identity assign --resource-group rg1 --name vm1"),
            Command("bash", "curl -s -H Metadata:true 'http://169.254.169.254/metadata/instance?api-version=2021-02-01'"),
        ),
        links=("https://learn.microsoft.com/azure/active-directory/managed-identities-azure-resources/",),
    )


def sample_report(
    statuses: Sequence[str] = ALL_STATUSES,
    *,
    summary: Optional[str] = None,
    evidence: Optional[Dict[str, Any]] = None,
    fix: Optional[Fix] = None,
    interrupted: bool = False,
) -> Report:
    """One check per entry in ``statuses`` (ids ``check-0-<status>``...), each with evidence and, for a
    finding, a fix; ``summary``/``evidence``/``fix`` override every check's own."""
    checks: List[Result] = []
    for index, status in enumerate(statuses):
        checks.append(Result(
            check_id=f"check-{index}-{status}",
            title=f"Check {index} ({status})",
            status=Status(status),
            cause=_CAUSES[status],
            summary=summary if summary is not None else _SUMMARIES[status],
            evidence=evidence if evidence is not None else {
                "url": "http://169.254.169.254/metadata/identity/oauth2/token",
                "http": {"status": 400, "headers": {"content-type": "application/json"}},
                "attempts": [1, 2],
            },
            fix=fix if fix is not None else _fix(status),
            duration_ms=12.5 * (index + 1),
        ))
    return Report(
        tool_version="0.1.0",
        run_id="3f6c1c9e-0000-4000-8000-000000000000",
        started_at="2024-05-01T12:00:00+00:00",
        duration_ms=321.0,
        host={"hostname": "web-01", "name": "vm1", "os": "Linux", "dmi": {"sys_vendor": "Microsoft Corporation"}},
        config={"imds_endpoint": "http://169.254.169.254", "timeout_s": 5, "client_id": None},
        checks=checks,
        interrupted=interrupted,
    )


def _deep(depth: int) -> Dict[str, Any]:
    node: Dict[str, Any] = {"leaf": "bottom"}
    for level in range(depth):
        node = {f"level{level}": node}
    return node


def hostile_report() -> Report:
    evidence = {
        "huge": "x" * 1_000_000,
        "surrogates": "bad \ud800 and \udcff bytes",
        "controls": "nul\x00 esc\x1b[2J bell\x07 del\x7f c1\x85",
        "deep": _deep(50),
        "raw_bytes": b"\xff\xfe\x00abc",
        "not_a_number": float("nan"),
        "a_set": {"b", "a"},
        XSS_SCRIPT: XSS_ATTR,
        "\ud800key": "value",
    }
    fix = Fix(
        text=f"Run this {XSS_SCRIPT} ```",
        commands=(Command("bash`x\n# h", "echo ```` `` `x` ```````"), Command(XSS_ATTR, XSS_SCRIPT)),
        links=("javascript:alert(1)", "java\tscript:alert(2)", "https://example.com/a_b?c=1&d=2"),
    )
    report = sample_report(summary=f"{XSS_SCRIPT} | {XSS_ATTR} \ud800 \x00\x1b]0;owned\x07\n# heading",
                           evidence=evidence, fix=fix)
    report.checks[0].title = XSS_ATTR
    report.host["name"] = XSS_SCRIPT + "\ud800"
    return report


# -- every format ---------------------------------------------------------------------------------


def test_every_format_has_a_renderer() -> None:
    assert set(_MODULES) == set(Format)
    for fmt in Format:
        out = render(sample_report(), fmt)
        assert isinstance(out, str) and out.strip(), fmt


@pytest.mark.parametrize("fmt", list(Format))
def test_every_format_shows_every_check(fmt: Format) -> None:
    out = render(sample_report(), fmt.value)  # the plain string form is accepted too
    for status in ALL_STATUSES:
        assert f"check-{ALL_STATUSES.index(status)}-{status}" in out


@pytest.mark.parametrize("fmt", list(Format))
@pytest.mark.parametrize("verbose", [False, True])
def test_hostile_values_render_as_valid_utf8(fmt: Format, verbose: bool) -> None:
    out = render(hostile_report(), fmt, color=True, verbose=verbose)
    out.encode("utf-8")  # strict: a lone surrogate left anywhere would raise here
    assert "\x00" not in out


@pytest.mark.parametrize("fmt", list(Format))
def test_cyclic_and_very_deep_evidence_render(fmt: Format) -> None:
    cycle: Dict[str, Any] = {}
    cycle["self"] = cycle
    for evidence in (cycle, _deep(1500)):
        assert render(sample_report(("fail",), evidence=evidence), fmt, verbose=True)


@pytest.mark.parametrize("fmt", [Format.TEXT, Format.HTML, Format.MARKDOWN])
def test_interrupted_run_is_flagged(fmt: Format) -> None:
    assert "interrupted" in render(sample_report(("pass",), interrupted=True), fmt)


@pytest.mark.parametrize("fmt", list(Format))
def test_empty_report_renders(fmt: Format) -> None:
    assert render(sample_report(()), fmt)


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="choose from text, json, html, markdown, junit"):
        render(sample_report(), "yaml")


def test_text_and_json_do_not_import_jinja2() -> None:
    code = (
        "import sys\n"
        "from midoctor.model import Report\n"
        "from midoctor.render import render\n"
        "r = Report('0', 'id', 't', 0.0, {}, {}, [])\n"
        "render(r, 'text'); render(r, 'json')\n"
        "assert 'jinja2' not in sys.modules, 'jinja2 imported'\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# -- text -----------------------------------------------------------------------------------------


def test_text_marks_every_status() -> None:
    out = text_render.render(sample_report(), marks=text_render.UNICODE_MARKS)
    for mark in ("✔ pass", "! warn", "✘ fail", "- skip", "E error"):
        assert mark in out


def test_text_ascii_marks_are_ascii() -> None:
    out = text_render.render(sample_report(), marks=text_render.ASCII_MARKS, verbose=True)
    out.encode("ascii")
    assert "x fail" in out and "+ pass" in out


@pytest.mark.parametrize(("encoding", "expected"), [
    ("utf-8", "UNICODE_MARKS"), ("UTF8", "UNICODE_MARKS"), ("ascii", "ASCII_MARKS"),
    ("cp1252", "ASCII_MARKS"), (None, "ASCII_MARKS"), ("no-such-codec", "ASCII_MARKS"),
])
def test_marks_follow_the_encoding(encoding: Optional[str], expected: str) -> None:
    assert text_render.marks_for(encoding) is getattr(text_render, expected)


def test_text_header_names_version_host_and_vm() -> None:
    first = text_render.render(sample_report()).splitlines()[0]
    assert "midoctor 0.1.0" in first and "web-01" in first and "vm1" in first


def test_text_diagnosis_is_last_and_names_the_first_failure() -> None:
    out = text_render.render(sample_report(), marks=text_render.UNICODE_MARKS)
    diagnosis = out[out.index("DIAGNOSIS"):]
    assert all(out.index(f"check-{i}-") < out.index("DIAGNOSIS") for i in range(5))
    assert "check-2-fail" in diagnosis  # fail wins over the earlier warn
    assert _SUMMARIES["fail"] in diagnosis and "no-identity-assigned" in diagnosis
    assert "Fix for fail" in diagnosis
    assert "az vm identity assign --resource-group rg1 --name vm1" in diagnosis
    assert "\n    az vm identity" in diagnosis  # the command alone on its line, copyable as shown


def test_text_healthy_report_says_no_problem() -> None:
    out = text_render.render(sample_report(("pass", "skip", "pass")))
    assert out.rstrip().splitlines()[-1].startswith("No problem found")


def test_text_colour_only_when_asked() -> None:
    report = hostile_report()
    assert "\x1b" not in text_render.render(report, verbose=True)
    assert "\\x1b" in text_render.render(report)  # the summary's escape is shown, not obeyed
    coloured = text_render.render(sample_report(), color=True)
    assert "\x1b[1;31m" in coloured and "\x1b[0m" in coloured


def test_text_verbose_shows_flattened_cut_evidence() -> None:
    plain_out = text_render.render(sample_report())
    assert "http.status" not in plain_out
    out = text_render.render(sample_report(evidence={"http": {"status": 400}, "long": "y" * 5000}), verbose=True)
    assert "    http.status: 400" in out
    long_line = next(line for line in out.splitlines() if line.startswith("    long: "))
    assert len(long_line) < 320 and "more characters" in long_line


def test_progress_line() -> None:
    marks = text_render.ASCII_MARKS
    running = text_render.progress_line("imds-reachable", None, marks=marks)
    assert "imds-reachable" in running and "run" in running
    done = sample_report(("fail",)).checks[0]
    line = text_render.progress_line("imds-reachable", done, marks=marks)
    assert "x fail" in line and "12 ms" in line and "\n" not in line and "\r" not in line


# -- json -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> Dict[str, Any]:
    data = json.loads(schema_path().read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(data)
    return data


def _validate(schema: Dict[str, Any], out: str) -> Dict[str, Any]:
    data = json.loads(out)
    jsonschema.Draft202012Validator(schema).validate(data)
    return data


def test_json_round_trips_and_validates(schema: Dict[str, Any]) -> None:
    report = sample_report()
    out = render(report, Format.JSON)
    assert out.endswith("}\n")
    data = _validate(schema, out)
    assert data == report.to_dict()
    assert Report.from_dict(data).to_dict() == data


@pytest.mark.parametrize("statuses", [(), ("pass",), ("pass", "skip"), ALL_STATUSES])
def test_json_validates_for_any_mix(schema: Dict[str, Any], statuses: Sequence[str]) -> None:
    _validate(schema, render(sample_report(statuses), Format.JSON))


def test_json_hostile_values_are_valid_and_kept(schema: Dict[str, Any]) -> None:
    out = render(hostile_report(), Format.JSON)
    data = _validate(schema, out)
    evidence = data["checks"][0]["evidence"]
    assert len(evidence["huge"]) == 1_000_000  # the JSON report never cuts
    assert evidence["surrogates"] == "bad \ufffd and \ufffd bytes"
    assert evidence["controls"].startswith("nul\x00")  # escaped by json, kept exactly
    assert "\\u0000" in out


def test_schema_describes_exactly_what_to_dict_emits(schema: Dict[str, Any]) -> None:
    data = sample_report().to_dict()
    assert set(schema["properties"]) == set(data)
    assert set(schema["$defs"]["check"]["properties"]) == set(data["checks"][0])
    assert set(schema["$defs"]["fix"]["properties"]) == set(data["checks"][1]["fix"])
    bad = json.loads(json.dumps(data))
    bad["checks"][0]["surprise"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(bad)


# -- html -----------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: List[Tuple[str, List[Tuple[str, Optional[str]]]]] = []
        self.styles: List[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        self.tags.append((tag, attrs))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def _parse_html(out: str) -> _Tags:
    parser = _Tags()
    parser.feed(out)
    parser.close()
    return parser


def _assert_inert(out: str) -> _Tags:
    parsed = _parse_html(out)
    names = {tag for tag, _ in parsed.tags}
    assert not names & {"script", "img", "link", "iframe", "object", "embed", "base", "form"}
    for tag, attrs in parsed.tags:
        for name, value in attrs:
            assert name != "src" and not name.startswith("on"), (tag, name)
            if name == "href":
                assert value and (value.startswith("#") or re.match(r"https?://", value)), value
    css = "".join(parsed.styles)
    assert "@import" not in css and "url(" not in css
    assert not re.search(r"(src=|<link|@import|url\()\s*[\"']?https?:", out, re.I)
    return parsed


def test_html_is_self_contained_and_ordered() -> None:
    out = render(sample_report(), Format.HTML)
    parsed = _assert_inert(out)
    assert out.index("Diagnosis") < out.index("<table>")
    assert _SUMMARIES["fail"] in out
    assert "<pre><code>az vm identity assign" in out
    doc_link = "https://learn.microsoft.com/azure/active-directory/managed-identities-azure-resources/"
    assert ("a", [("href", doc_link), ("rel", "noopener noreferrer")]) in parsed.tags
    for fact in ("3f6c1c9e-0000-4000-8000-000000000000", "2024-05-01T12:00:00+00:00", "321 ms", "0.1.0",
                 "dmi.sys_vendor", "imds_endpoint"):
        assert fact in out


def test_html_healthy_report() -> None:
    out = render(sample_report(("pass", "skip")), Format.HTML)
    assert "no problem found" in out


def test_html_escapes_hostile_values() -> None:
    out = render(hostile_report(), Format.HTML)
    _assert_inert(out)
    assert XSS_SCRIPT not in out and "<img" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in out
    assert 'href="javascript' not in out.lower()
    assert "javascript:alert(1)" in out  # still shown, as text
    assert 'href="https://example.com/a_b?c=1&amp;d=2"' in out


def test_html_environment_forces_autoescape() -> None:
    assert _environment().autoescape is True


# -- markdown -------------------------------------------------------------------------------------


def _table_rows(out: str) -> List[str]:
    return [line for line in out.splitlines() if line.startswith("| ")]


def _cells(row: str) -> int:
    return len(re.findall(r"(?<!\\)\|", row)) - 1


def test_markdown_layout() -> None:
    out = render(sample_report(), Format.MARKDOWN)
    assert out.index("Diagnosis") < out.index("| Check | Status | Summary |")
    assert "```az\naz vm identity assign --resource-group rg1 --name vm1\n```" in out
    assert out.count("<details>") == 5 and out.count("</details>") == 5
    assert '```json\n{\n  "url"' in out
    assert "- <https://learn.microsoft.com/" in out


def test_markdown_hostile_cells_keep_the_table() -> None:
    out = render(hostile_report(), Format.MARKDOWN)
    rows = _table_rows(out)
    assert len(rows) == 2 + 5
    assert all(_cells(row) == 3 for row in rows)
    assert "\\<script\\>" in out and XSS_SCRIPT not in out.split("```")[0]
    assert "<javascript:" not in out and "](javascript" not in out


def test_markdown_fence_outruns_backticks() -> None:
    out = render(hostile_report(), Format.MARKDOWN)
    assert "````````bashxh\necho ```` `` `x` ```````\n````````" in out


def test_markdown_healthy() -> None:
    assert "No problem found" in render(sample_report(("pass",)), Format.MARKDOWN)


# -- junit ----------------------------------------------------------------------------------------


def _junit(report: Report) -> ET.Element:
    return ET.fromstring(render(report, Format.JUNIT).encode("utf-8"))


def test_junit_counts_and_outcomes() -> None:
    root = _junit(sample_report(("pass", "warn", "fail", "skip", "error", "fail")))
    suites = root.findall("testsuite")
    assert len(suites) == 1 and suites[0].get("name") == "midoctor"
    suite = suites[0]
    totals = [suite.get(name) for name in ("tests", "failures", "errors", "skipped")]
    assert totals == ["6", "2", "1", "1"]
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [f"check-{i}-{s}" for i, s in
                                               enumerate(("pass", "warn", "fail", "skip", "error", "fail"))]
    assert all(c.get("classname") == "midoctor.checks" for c in cases)
    assert cases[0].get("time") == "0.013" and list(cases[0]) == []
    assert "WARNING:" in (cases[1].findtext("system-out") or "")
    failure = cases[2].find("failure")
    assert failure is not None and failure.get("type") == "no-identity-assigned"
    assert failure.get("message") == _SUMMARIES["fail"]
    assert "az vm identity assign" in (failure.text or "") and "Fix for fail" in (failure.text or "")
    assert cases[3].find("skipped") is not None
    assert cases[4].find("error") is not None


def test_junit_strips_characters_illegal_in_xml() -> None:
    report = sample_report(evidence={"c": "\x00\x1b\x0b\ufffe\uffff", "s": "\ud800"},
                           summary="nul\x00 surrogate\ud800")
    root = _junit(report)
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and '"c": "\\u0000\\u001b\\u000b\ufffd\ufffd"' in (failure.text or "")
    assert failure.get("message") == "nul\\x00 surrogate\ufffd"


@settings(max_examples=30, deadline=None)
@given(st.text(), st.dictionaries(st.text(max_size=5), st.text() | st.integers() | st.none(), max_size=3))
def test_any_text_gives_parseable_junit_and_valid_json(summary: str, evidence: Dict[str, Any]) -> None:
    report = sample_report(("fail", "warn"), summary=summary, evidence=evidence)
    ET.fromstring(render(report, Format.JUNIT).encode("utf-8"))
    json.loads(render(report, Format.JSON).encode("utf-8"))
    _assert_inert(render(report, Format.HTML))
