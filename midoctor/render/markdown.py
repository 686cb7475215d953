"""The Markdown report, for tickets and CI job summaries (GitHub ``$GITHUB_STEP_SUMMARY``).

Diagnosis first (a job summary is read top-down and often only the top), then a table of checks, then each
check's evidence folded in ``<details>``. Machine-supplied text is escaped for the place it lands: Markdown
inline text, a table cell, an HTML ``<summary>``, or a fenced block whose fence is longer than any backtick
run inside it. Long values are cut because GitHub caps a step summary at 1 MiB.
"""

from __future__ import annotations

import html
import re
from typing import Any, List, Optional

from midoctor.model import Fix, Report, Result, Status
from midoctor.render import clean_str, cut, pretty_json, safe_href, visible_controls

SYMBOLS = {"pass": "✔", "warn": "⚠", "fail": "✘", "skip": "⏭", "error": "💥"}
CELL_LIMIT = 500
STRING_LIMIT = 4000  # per evidence string
BLOCK_LIMIT = 20_000  # per evidence block

# Characters with inline meaning anywhere in CommonMark/GFM ('|' for tables, '&' for entities). Parentheses
# and '!' only matter next to '[' ... ']', which are escaped; the rest only at the start of a line.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")
_BLOCK_START = re.compile(r"^(?:[#+=-]|\d+[.)])")  # heading, list item, setext underline, ordered list
_BACKTICKS = re.compile(r"`+")
_INFO_UNSAFE = re.compile(r"[^A-Za-z0-9_+-]")


def inline(text: Any, limit: Optional[int] = CELL_LIMIT) -> str:
    """Text safe in a paragraph or a table cell: one line, Markdown and HTML punctuation escaped."""
    out = visible_controls(cut(clean_str(str(text)), limit))
    out = " ".join(out.split())  # newlines would end the table row (and the paragraph)
    out = _INLINE_SPECIAL.sub(r"\\\1", out)
    match = _BLOCK_START.match(out)
    if match:  # escape the marker's punctuation so the text stays a paragraph
        end = match.end() - 1
        out = out[:end] + "\\" + out[end:]
    return out


def code_span(text: Any, limit: Optional[int] = 200, *, in_table: bool = False) -> str:
    """Inline code whose delimiter is longer than any backtick run inside it (CommonMark's rule)."""
    out = " ".join(visible_controls(cut(clean_str(str(text)), limit)).split())
    longest = max((len(m) for m in _BACKTICKS.findall(out)), default=0)
    ticks = "`" * (longest + 1)
    if in_table:
        # GFM splits table rows on '|' before parsing code spans; its escape works inside them too.
        out = out.replace("|", "\\|")
    if not out or out.startswith("`") or out.endswith("`"):
        out = f" {out} "  # CommonMark strips one space each side, so a backtick at an edge stays content
    return f"{ticks}{out}{ticks}"


def fenced(body: str, info: str = "") -> List[str]:
    """A fenced code block that nothing inside it can close."""
    text = visible_controls(clean_str(body))
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + _INFO_UNSAFE.sub("", info)[:20], text, fence]


def _status(status: str) -> str:
    return f"{SYMBOLS[status]} **{status}**"


def _fix(fix: Optional[Fix]) -> List[str]:
    if fix is None:
        return []
    lines = [f"**Fix:** {inline(fix.text, STRING_LIMIT)}" if fix.text else "**Fix:**", ""]
    for command in fix.commands:
        lines.extend(fenced(cut(command.text, STRING_LIMIT), command.shell))
        lines.append("")
    for link in fix.links:
        # Only an http(s) URL becomes an autolink; anything else (javascript:, data:) stays escaped text,
        # never [label](url), because not every Markdown viewer sanitises links.
        href = safe_href(link)
        lines.append(f"- <{href}>" if href else f"- {inline(link, 2000)}")
    return lines + ([""] if fix.links else [])


def _diagnosis(report: Report) -> List[str]:
    found = report.diagnosis
    if found is None:
        note = " The run was interrupted, so not every check finished." if report.interrupted else ""
        return [f"### {SYMBOLS['pass']} No problem found", "", f"Every check passed or was skipped.{note}", ""]
    lines = [
        f"### Diagnosis: {_status(found.status.value)} {code_span(found.check_id)}",
        "",
        f"> {inline(found.summary, STRING_LIMIT)}",
        "",
        f"Cause: {code_span(found.cause)}",
        "",
    ]
    return lines + _fix(found.fix)


def _table(report: Report) -> List[str]:
    lines = ["| Check | Status | Summary |", "| --- | --- | --- |"]
    for result in report.checks:
        cells = (code_span(result.check_id, in_table=True), _status(result.status.value), inline(result.summary))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _details(result: Result) -> List[str]:
    status = result.status.value
    label = html.escape(f"{SYMBOLS[status]} {status} · {cut(clean_str(result.check_id), 200)}: "
                        f"{cut(clean_str(' '.join(result.summary.split())), CELL_LIMIT)}")
    body = cut(pretty_json(result.evidence, max_str=STRING_LIMIT), BLOCK_LIMIT)
    # The blank line after <summary> lets GitHub parse the fenced block as Markdown inside the HTML block.
    lines = ["<details>", f"<summary>{visible_controls(label)}</summary>", ""]
    lines.append(f"Cause: {code_span(result.cause)}")
    lines.append("")
    lines.extend(fenced(body, "json"))
    if result.fix is not None and result.status is not Status.PASS:
        lines.append("")
        lines.extend(_fix(result.fix))
    if lines[-1]:
        lines.append("")
    return lines + ["</details>", ""]


def _run_facts(report: Report) -> List[str]:
    host = report.host or {}
    facts = [
        ("midoctor", report.tool_version),
        ("run id", report.run_id),
        ("started", report.started_at),
        ("duration", f"{report.duration_ms:.0f} ms"),
        ("host", host.get("hostname", "")),
        ("VM", host.get("name", "")),
    ]
    shown = [f"{name}: {code_span(value)}" for name, value in facts if value not in ("", None)]
    return [" · ".join(shown), ""]


def render(report: Report, *, color: bool = False, verbose: bool = False) -> str:
    """``color``/``verbose`` are accepted for a uniform signature; evidence is always included, folded."""
    del color, verbose
    counts = report.counts()
    lines = ["## midoctor report", ""]
    if report.interrupted:
        lines += ["> **Run interrupted:** some checks did not finish; results are incomplete.", ""]
    lines += _diagnosis(report)
    lines += ["#### Checks", "", " · ".join(f"{SYMBOLS[s.value]} {counts[s.value]} {s.value}" for s in Status), ""]
    lines += _table(report)
    lines += ["#### Evidence", ""]
    for result in report.checks:
        lines += _details(result)
    lines += _run_facts(report)
    return "\n".join(lines)
