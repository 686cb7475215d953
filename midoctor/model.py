"""The report model: what a check declares, what it returns, and the report every renderer reads.

Everything here is plain data with a stable dict form (``to_dict``/``from_dict``) because the JSON report
is a public, versioned contract (``SCHEMA_VERSION``) and ``midoctor render`` rebuilds reports from it.
"""

from __future__ import annotations

import enum
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

SCHEMA_VERSION = "1.0"

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class Status(str, enum.Enum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Severity for --fail-on and for picking the worst result; skip is not a finding."""
        return {"pass": 0, "skip": 0, "warn": 1, "fail": 2, "error": 2}[self.value]


class Condition(str, enum.Enum):
    """When a dependent check may run, given its prerequisite's status."""

    OK = "ok"  # prerequisite passed or warned
    PASSED = "passed"  # prerequisite passed
    DONE = "done"  # prerequisite produced any result (ordering only)

    def allows(self, status: Status) -> bool:
        if self is Condition.DONE:
            return True
        if self is Condition.PASSED:
            return status is Status.PASS
        return status in (Status.PASS, Status.WARN)


@dataclass(frozen=True)
class Command:
    """One exact command a person (or a tool) can run to fix the cause."""

    shell: str  # "az", "bash", "powershell", "cmd"
    text: str

    def to_dict(self) -> Dict[str, str]:
        return {"shell": self.shell, "text": self.text}


@dataclass(frozen=True)
class Fix:
    text: str
    commands: Tuple[Command, ...] = ()
    links: Tuple[str, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        return {
            "text": self.text,
            "commands": [c.to_dict() for c in self.commands],
            "links": list(self.links),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fix:
        return cls(
            text=str(data.get("text", "")),
            commands=tuple(Command(str(c["shell"]), str(c["text"])) for c in data.get("commands", [])),
            links=tuple(str(link) for link in data.get("links", [])),
        )

    def format(self, values: Mapping[str, Any]) -> Fix:
        """Fill ``{placeholders}``; a placeholder with no value stays visible rather than raising. Names that
        come from the machine (a resource group may contain parentheses) are quoted for the command's shell."""
        return Fix(
            text=_fill(self.text, values),
            commands=tuple(Command(c.shell, _fill(c.text, _quoted(values, c.shell))) for c in self.commands),
            links=self.links,
        )


# Placeholders that stand alone as one command-line argument in the built-in fix templates.
SHELL_ARGUMENTS = frozenset({"resource_group", "vm_name", "vmss_name", "target_name", "scope", "object_id"})
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9_./:=@%+,-]+$")


def _quoted(values: Mapping[str, Any], shell: str) -> Mapping[str, Any]:
    if shell not in ("bash", "az", "powershell"):
        return values
    out = dict(values)
    for key in SHELL_ARGUMENTS & set(values):
        text = str(values[key])
        if not text or _SHELL_SAFE.match(text):
            continue
        out[key] = shlex.quote(text) if shell != "powershell" else "'" + text.replace("'", "''") + "'"
    return out


class _Keep(dict):
    def __missing__(self, key: str) -> str:
        return "<" + key + ">"


def _fill(template: str, values: Mapping[str, Any]) -> str:
    try:
        return template.format_map(_Keep({k: v for k, v in values.items() if v not in (None, "")}))
    except (ValueError, IndexError, AttributeError):
        return template


@dataclass(frozen=True)
class Cause:
    """A distinct reason a check can name; documented by ``midoctor explain``."""

    slug: str
    status: Status
    meaning: str
    fix: Optional[Fix] = None


@dataclass(frozen=True)
class CheckSpec:
    id: str
    title: str
    order: int
    explanation: str
    causes: Tuple[Cause, ...]
    requires: Tuple[Tuple[str, Condition], ...] = ()
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if not _SLUG.match(self.id):
            raise ValueError(f"check id {self.id!r} is not a slug (lowercase words joined by '-')")
        slugs = [c.slug for c in self.causes]
        if len(slugs) != len(set(slugs)):
            raise ValueError(f"check {self.id}: duplicate cause slugs")
        for slug in slugs:
            if not _SLUG.match(slug):
                raise ValueError(f"check {self.id}: cause {slug!r} is not a slug")

    def cause(self, slug: str) -> Cause:
        for c in self.causes:
            if c.slug == slug:
                return c
        raise KeyError(f"check {self.id} declares no cause {slug!r}")

    def result(
        self,
        cause: str,
        summary: str,
        evidence: Optional[Mapping[str, Any]] = None,
        *,
        status: Optional[Status] = None,
        fix: Optional[Fix] = None,
        **fix_values: Any,
    ) -> Result:
        """Build a result for one of this check's declared causes, filling its fix template."""
        declared = self.cause(cause)
        chosen_fix = fix if fix is not None else declared.fix
        if chosen_fix is not None:
            chosen_fix = chosen_fix.format(fix_values)
        return Result(
            check_id=self.id,
            status=status or declared.status,
            cause=cause,
            summary=summary,
            evidence=dict(evidence or {}),
            fix=chosen_fix,
        )


@dataclass
class Result:
    check_id: str
    status: Status
    cause: str
    summary: str
    evidence: Dict[str, Any] = field(default_factory=dict)
    fix: Optional[Fix] = None
    title: str = ""
    duration_ms: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return {
            "id": self.check_id,
            "title": self.title,
            "status": self.status.value,
            "cause": self.cause,
            "summary": self.summary,
            "evidence": self.evidence,
            "fix": self.fix.to_dict() if self.fix else None,
            "duration_ms": round(self.duration_ms, 1),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        fix = data.get("fix")
        return cls(
            check_id=str(data["id"]),
            title=str(data.get("title", "")),
            status=Status(data["status"]),
            cause=str(data.get("cause", "")),
            summary=str(data.get("summary", "")),
            evidence=dict(data.get("evidence") or {}),
            fix=Fix.from_dict(fix) if fix else None,
            duration_ms=float(data.get("duration_ms", 0.0)),
        )


@dataclass
class Report:
    tool_version: str
    run_id: str
    started_at: str
    duration_ms: float
    host: Dict[str, Any]
    config: Dict[str, Any]
    checks: List[Result]
    interrupted: bool = False
    schema_version: str = SCHEMA_VERSION

    @property
    def diagnosis(self) -> Optional[Result]:
        """The first check, in registry order, that found a problem: that is where to start."""
        for status in (Status.FAIL, Status.ERROR, Status.WARN):
            for result in self.checks:
                if result.status is status:
                    return result
        return None

    def counts(self) -> Dict[str, int]:
        out = {s.value: 0 for s in Status}
        for result in self.checks:
            out[result.status.value] += 1
        return out

    def to_dict(self) -> Dict[str, Any]:
        diagnosis = self.diagnosis
        return {
            "schema_version": self.schema_version,
            "tool": {"name": "midoctor", "version": self.tool_version},
            "run_id": self.run_id,
            "started_at": self.started_at,
            "duration_ms": round(self.duration_ms, 1),
            "interrupted": self.interrupted,
            "host": self.host,
            "config": self.config,
            "summary": self.counts(),
            "diagnosis": None
            if diagnosis is None
            else {
                "id": diagnosis.check_id,
                "status": diagnosis.status.value,
                "cause": diagnosis.cause,
                "summary": diagnosis.summary,
                "fix": diagnosis.fix.to_dict() if diagnosis.fix else None,
            },
            "checks": [r.to_dict() for r in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        version = str(data.get("schema_version", ""))
        if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
            raise ValueError(f"unsupported report schema_version {version!r} (this midoctor reads {SCHEMA_VERSION})")
        tool = data.get("tool") or {}
        return cls(
            tool_version=str(tool.get("version", "")),
            run_id=str(data["run_id"]),
            started_at=str(data["started_at"]),
            duration_ms=float(data.get("duration_ms", 0.0)),
            host=dict(data.get("host") or {}),
            config=dict(data.get("config") or {}),
            checks=[Result.from_dict(c) for c in data.get("checks", [])],
            interrupted=bool(data.get("interrupted", False)),
            schema_version=version,
        )
