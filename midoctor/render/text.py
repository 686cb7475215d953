"""The terminal report: one line per check in registry order, then the diagnosis where the eye lands last.

Every status is shown as a mark *and* its word, so the report reads the same without colour (``NO_COLOR``,
a pasted ticket, a colour-blind reader). Colour is plain ANSI SGR and only when the caller asks; the CLI
decides (a TTY and no ``NO_COLOR``). Everything that came from the machine is passed through
:func:`_safe`, so a hostile value cannot move the cursor or retitle the terminal.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Mapping, Optional, Tuple

from midoctor.model import Command, Fix, Report, Result, Status
from midoctor.render import clean_str, compact_json, cut, flatten, visible_controls

Marks = Mapping[str, str]  # keyed by Status value, plus "running" for the progress line

UNICODE_MARKS: Marks = {
    "pass": "✔ pass",
    "warn": "! warn",
    "fail": "✘ fail",
    "skip": "- skip",
    "error": "E error",
    "running": "… run",
}
# For consoles whose encoding cannot show the symbols (cp437, ascii, a C locale): the words carry the meaning.
ASCII_MARKS: Marks = {
    "pass": "+ pass",
    "warn": "! warn",
    "fail": "x fail",
    "skip": "- skip",
    "error": "E error",
    "running": ". run",
}

_SGR: Dict[str, str] = {
    "pass": "32",  # green
    "warn": "33",  # yellow
    "fail": "1;31",  # bold red: the thing to act on
    "skip": "2",  # dim: not a finding
    "error": "1;35",  # bold magenta: the check itself broke, which is not the same as a fail
    "running": "36",  # cyan
    "heading": "1",
}

EVIDENCE_VALUE_LIMIT = 200
_SUMMARY_LIMIT = 2000  # a one-sentence summary; anything longer is a bug upstream, not worth a screenful
_INDENT = "    "
_LINE_LIMIT = 5000  # fix text and commands are meant to be read whole; this only stops a runaway value


def marks_for(encoding: Optional[str]) -> Marks:
    """The Unicode marks if ``encoding`` can encode all of them, else the ASCII fallback."""
    try:
        "".join(UNICODE_MARKS.values()).encode(encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return ASCII_MARKS
    return UNICODE_MARKS


def _default_marks() -> Marks:
    return marks_for(getattr(sys.stdout, "encoding", None))


def _paint(text: str, style: str, color: bool) -> str:
    if not color:
        return text
    return f"\x1b[{_SGR[style]}m{text}\x1b[0m"


def _safe(text: Any, limit: Optional[int] = _SUMMARY_LIMIT, *, one_line: bool = True) -> str:
    out = cut(clean_str(str(text)), limit)
    if one_line:
        out = out.replace("\r\n", "\n").replace("\r", "\n").replace("\n", " ").replace("\t", " ")
    return visible_controls(out)


def _mark(status: str, marks: Marks, color: bool) -> str:
    width = max(len(m) for m in marks.values())
    return _paint(marks[status].ljust(width), status, color)


# -- header and check lines -----------------------------------------------------------------------


def _header(report: Report) -> List[str]:
    parts = [f"midoctor {_safe(report.tool_version)}"]
    host = report.host or {}
    if host.get("hostname"):
        parts.append(f"host {_safe(host['hostname'], 200)}")
    if host.get("name"):
        parts.append(f"VM {_safe(host['name'], 200)}")
    parts.append(f"run {_safe(report.run_id, 200)}")
    if report.started_at:
        parts.append(_safe(report.started_at, 200))
    lines = [" | ".join(parts)]
    if report.interrupted:
        lines.append("Run interrupted: some checks did not finish; results are incomplete.")
    return lines


def _check_line(result: Result, id_width: int, marks: Marks, color: bool) -> str:
    return f"{_mark(result.status.value, marks, color)}  {_safe(result.check_id, 200).ljust(id_width)}  " \
           f"{_safe(result.summary)}"


def _evidence_lines(result: Result) -> List[str]:
    lines = []
    if result.status is not Status.PASS and result.cause:
        lines.append(f"{_INDENT}cause: {_safe(result.cause, 200)}")
    if not result.evidence:
        return lines
    for key, value in flatten(result.evidence):
        shown = value if isinstance(value, str) else compact_json(value, max_str=EVIDENCE_VALUE_LIMIT)
        lines.append(f"{_INDENT}{_safe(key, EVIDENCE_VALUE_LIMIT)}: {_safe(shown, EVIDENCE_VALUE_LIMIT)}")
    return lines


def _counts_line(report: Report) -> str:
    counts = report.counts()
    detail = ", ".join(f"{counts[s.value]} {s.value}" for s in Status)
    return f"{len(report.checks)} checks: {detail}"


# -- diagnosis ------------------------------------------------------------------------------------


def _block(text: str, indent: str) -> List[str]:
    """Multi-line text (a fix, a here-string command) kept as lines, each indented and made safe."""
    return [indent + _safe(line, _LINE_LIMIT, one_line=False) for line in clean_str(text).splitlines() or [""]]


def _command_lines(commands: Tuple[Command, ...]) -> List[str]:
    # The shell goes on its own line so the command line below it can be copied exactly as shown.
    lines: List[str] = []
    for command in commands:
        lines.append(f"  {_safe(command.shell, 40)}:")
        lines.extend(_block(command.text, _INDENT))
    return lines


def _fix_lines(fix: Optional[Fix]) -> List[str]:
    if fix is None:
        return []
    lines = ["Fix:"]
    if fix.text:
        lines.extend(_block(fix.text, "  "))
    lines.extend(_command_lines(fix.commands))
    lines.extend(f"  See: {_safe(link, 500)}" for link in fix.links)
    return lines


def _diagnosis(report: Report, marks: Marks, color: bool) -> List[str]:
    heading = _paint("DIAGNOSIS", "heading", color)
    found = report.diagnosis
    if found is None:
        verdict = _paint("No problem found", "pass", color)
        note = " (but the run was interrupted)" if report.interrupted else ""
        return [heading, f"{verdict}: every check passed or was skipped{note}."]
    lines = [
        f"{heading}  {_mark(found.status.value, marks, color).rstrip()}  {_safe(found.check_id, 200)}"
        f"  (cause: {_safe(found.cause, 200)})",
        _safe(found.summary),
    ]
    lines.extend(_fix_lines(found.fix))
    return lines


# -- public ---------------------------------------------------------------------------------------


def render(report: Report, *, color: bool = False, verbose: bool = False, marks: Optional[Marks] = None) -> str:
    """The terminal report. ``marks`` defaults to what ``sys.stdout`` can encode (see :func:`marks_for`)."""
    chosen = marks if marks is not None else _default_marks()
    lines = _header(report)
    lines.append("")
    id_width = max((len(_safe(r.check_id, 200)) for r in report.checks), default=0)
    for result in report.checks:
        lines.append(_check_line(result, id_width, chosen, color))
        if verbose:
            lines.extend(_evidence_lines(result))
    lines.append("")
    lines.append(_counts_line(report))
    lines.append("")
    lines.extend(_diagnosis(report, chosen, color))
    return "\n".join(lines) + "\n"


def progress_line(
    check_id: str,
    result: Optional[Result] = None,
    *,
    color: bool = False,
    marks: Optional[Marks] = None,
) -> str:
    """One line for the stderr progress display: ``running`` when ``result`` is None, else its mark and
    duration. No newline or carriage return: the caller owns cursor handling."""
    chosen = marks if marks is not None else marks_for(getattr(sys.stderr, "encoding", None))
    if result is None:
        return f"{_mark('running', chosen, color)}  {_safe(check_id, 200)}"
    return f"{_mark(result.status.value, chosen, color)}  {_safe(check_id, 200)}  ({result.duration_ms:.0f} ms)"
