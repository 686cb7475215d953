"""The HTML report: one self-contained file to attach to a ticket or open from a CI artifact.

No script, no external resource of any kind (styles are inline, the Content-Security-Policy forbids
loading anything), so it opens offline, prints well, and is inert even if a value slipped past escaping.
The template only lays out; this module turns the report into plain, already-cleaned strings first, so
the template never has to reason about hostile data beyond jinja2's autoescape.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Dict, List, Optional, Tuple

from midoctor.model import Fix, Report, Result, Status
from midoctor.paths import templates_dir
from midoctor.render import clean_str, cut, flatten, plain, pretty_json, safe_href, visible_controls

TEMPLATE = "report.html.j2"
STRING_LIMIT = 20_000  # per value: a person reads this; the JSON report keeps everything

SYMBOLS = {"pass": "✔", "warn": "!", "fail": "✘", "skip": "–", "error": "E"}
_ANCHOR_UNSAFE = re.compile(r"[^a-z0-9-]+")


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2  # here, not at module top: only the html format pays for it

    # autoescape=True, not select_autoescape(): the template is named *.j2, which select_autoescape would
    # not recognise as HTML, silently turning escaping off.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _text(value: Any, limit: Optional[int] = STRING_LIMIT) -> str:
    return visible_controls(cut(clean_str(str(value)), limit))


def _anchor(check_id: str) -> str:
    return "check-" + (_ANCHOR_UNSAFE.sub("-", check_id.lower()).strip("-") or "unnamed")


def _duration(ms: float) -> str:
    return f"{ms:.0f} ms" if ms < 1000 else f"{ms / 1000:.2f} s"


def _fix(fix: Optional[Fix]) -> Optional[Dict[str, Any]]:
    if fix is None:
        return None
    return {
        "text": _text(fix.text),
        "commands": [{"shell": _text(c.shell, 40), "text": _text(c.text)} for c in fix.commands],
        "links": [{"text": _text(link, 2000), "href": safe_href(link)} for link in fix.links],
    }


def _evidence(evidence: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Top-level keys as a definition list; nested values as pretty JSON rather than nested markup, which
    stays readable (and within the recursion limit) however deep the data goes."""
    rows = []
    for key, value in plain(evidence, max_str=STRING_LIMIT).items():
        if isinstance(value, (dict, list)):
            rows.append({"key": _text(key), "value": None, "json": pretty_json(value)})
        else:
            shown = value if isinstance(value, str) else pretty_json(value)
            rows.append({"key": _text(key), "value": _text(shown, None), "json": None})
    return rows


def _pairs(data: Dict[str, Any]) -> List[Tuple[str, str]]:
    out = []
    for key, value in flatten(plain(data, max_str=STRING_LIMIT)):
        shown = value if isinstance(value, str) else pretty_json(value)
        out.append((_text(key), _text(shown, None)))
    return out


def _check(result: Result) -> Dict[str, Any]:
    status = result.status.value
    return {
        "id": _text(result.check_id, 200),
        "anchor": _anchor(result.check_id),
        "title": _text(result.title, 500),
        "status": status,
        "symbol": SYMBOLS[status],
        "cause": _text(result.cause, 200),
        "summary": _text(result.summary),
        "duration": _duration(result.duration_ms),
        "evidence": _evidence(result.evidence),
        "fix": _fix(result.fix),
    }


def context(report: Report) -> Dict[str, Any]:
    """Everything the template shows, as plain cleaned strings, lists and dicts."""
    checks = [_check(r) for r in report.checks]
    found = report.diagnosis
    diagnosis = None if found is None else next(c for c, r in zip(checks, report.checks) if r is found)
    counts = report.counts()
    return {
        "tool_version": _text(report.tool_version, 100),
        "schema_version": _text(report.schema_version, 100),
        "run_id": _text(report.run_id, 200),
        "started_at": _text(report.started_at, 200),
        "duration": _duration(report.duration_ms),
        "interrupted": report.interrupted,
        "host_name": _text(report.host.get("hostname", ""), 200) if report.host else "",
        "vm_name": _text(report.host.get("name", ""), 200) if report.host else "",
        "counts": [{"status": s.value, "symbol": SYMBOLS[s.value], "n": counts[s.value]} for s in Status],
        "diagnosis": diagnosis,
        "checks": checks,
        "host": _pairs(report.host or {}),
        "config": _pairs(report.config or {}),
    }


def render(report: Report, *, color: bool = False, verbose: bool = False) -> str:
    """``color``/``verbose`` are accepted for a uniform signature: HTML is always styled and complete."""
    del color, verbose
    return _environment().get_template(TEMPLATE).render(**context(report))
