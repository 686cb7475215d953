"""Scenario files: discovery, loading and validation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from .model import World, build_world, validate_demo

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    data: dict[str, Any]
    demo: dict[str, Any] = field(default_factory=dict)
    path: Optional[Path] = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: Optional[Path] = None) -> Scenario:
        """Validate `data` (see README.md for the schema) and wrap it. Raises ValueError."""
        if not isinstance(data, Mapping):
            raise ValueError("scenario: expected a JSON object")
        plain = json.loads(json.dumps(data))  # detach from the caller's objects
        build_world(plain)
        description = plain.get("description", "")
        if "\n" in description:
            raise ValueError("scenario.description: must be one line")
        return cls(name=plain["name"], description=description, data=plain,
                   demo=validate_demo(plain.get("demo")), path=path)

    def world(self) -> World:
        return build_world(self.data)


def _shipped() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SCENARIO_DIR.glob("*.json"))}


def _read(path: Path) -> Scenario:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return Scenario.from_dict(data, path)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def list_scenarios() -> list[Scenario]:
    """Every shipped scenario, sorted by name."""
    return [_read(path) for path in _shipped().values()]


def load_scenario(name_or_path: str) -> Scenario:
    """A shipped scenario by name, or a scenario JSON file by path."""
    shipped = _shipped()
    if name_or_path in shipped:
        return _read(shipped[name_or_path])
    candidate = Path(name_or_path)
    if candidate.suffix.lower() == ".json" or candidate.is_file():
        if not candidate.is_file():
            raise ValueError(f"scenario file not found: {name_or_path}")
        return _read(candidate)
    raise ValueError(f"unknown scenario {name_or_path!r}; valid names: {', '.join(shipped)}")
