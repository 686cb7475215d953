"""The ordered registry of checks: discovery, validation of the dependency graph, ordering.

A check is a module with ``SPEC: CheckSpec`` and ``evaluate(ctx) -> Result``. Built-ins come from
``checks/``, users add a directory with ``--checks-dir``, packages add modules through the entry-point
group ``midoctor.checks``. Any problem is a ``RegistryError`` with one line naming the file.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from midoctor.model import CheckSpec, Result
from midoctor.paths import builtin_checks_dir

ENTRY_POINT_GROUP = "midoctor.checks"


class RegistryError(Exception):
    """A broken check definition: exit code 2 with this one-line message."""


@dataclass(frozen=True)
class Check:
    spec: CheckSpec
    evaluate: Callable[..., Result]
    origin: str  # file path or entry point, for error messages

    @property
    def id(self) -> str:
        return self.spec.id


def _load_module(path: Path, prefix: str) -> ModuleType:
    name = f"{prefix}.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RegistryError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise RegistryError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 - a plugin may fail in any way; report it in one line
        sys.modules.pop(name, None)
        raise RegistryError(f"{path}: failed to import: {type(exc).__name__}: {exc}") from None
    return module


def _check_from_module(module: ModuleType, origin: str, expect_stem: Optional[str]) -> Check:
    spec = getattr(module, "SPEC", None)
    evaluate = getattr(module, "evaluate", None)
    if not isinstance(spec, CheckSpec):
        raise RegistryError(f"{origin}: no SPEC = CheckSpec(...) defined")
    if not callable(evaluate):
        raise RegistryError(f"{origin}: no evaluate(ctx) function defined")
    if expect_stem is not None and spec.id.replace("-", "_") != expect_stem:
        raise RegistryError(f"{origin}: check id {spec.id!r} does not match the file name {expect_stem}.py")
    return Check(spec=spec, evaluate=evaluate, origin=origin)


def load_dir(directory: Path, prefix: str) -> List[Check]:
    if not directory.exists():
        raise RegistryError(f"{directory}: checks directory does not exist")
    if not directory.is_dir():
        raise RegistryError(f"{directory}: is not a directory (--checks-dir takes a directory of check modules)")
    found = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            module = _load_module(path, prefix)
            found.append(_check_from_module(module, str(path), path.stem))
        except ValueError as exc:  # CheckSpec validation
            raise RegistryError(f"{path}: {exc}") from None
    return found


def load_entry_points() -> List[Check]:
    from importlib.metadata import entry_points

    eps = entry_points()
    group: Iterable = eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else eps.get(ENTRY_POINT_GROUP, [])
    found = []
    for ep in group:
        origin = f"entry point {ep.name} = {ep.value}"
        try:
            module = ep.load()
        except Exception as exc:  # noqa: BLE001
            raise RegistryError(f"{origin}: failed to import: {type(exc).__name__}: {exc}") from None
        found.append(_check_from_module(module, origin, None))
    return found


def validate(checks: Sequence[Check]) -> List[Check]:
    """Unique ids, known prerequisites, no cycles; returns the checks in registry order."""
    by_id: Dict[str, Check] = {}
    for check in checks:
        if check.id in by_id:
            raise RegistryError(f"{check.origin}: duplicate check id {check.id!r} (also in {by_id[check.id].origin})")
        by_id[check.id] = check
    for check in checks:
        for dep, _ in check.spec.requires:
            if dep not in by_id:
                raise RegistryError(f"{check.origin}: check {check.id!r} requires unknown check {dep!r}")
    _reject_cycles(by_id)
    return order(checks, by_id)


def _reject_cycles(by_id: Dict[str, Check]) -> None:
    state: Dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(node: str, path: List[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            cycle = path[path.index(node):] + [node]
            raise RegistryError(f"{by_id[node].origin}: dependency cycle: {' -> '.join(cycle)}")
        state[node] = 1
        for dep, _ in by_id[node].spec.requires:
            visit(dep, path + [node])
        state[node] = 2

    for node in by_id:
        visit(node, [])


def order(checks: Sequence[Check], by_id: Dict[str, Check]) -> List[Check]:
    """Declared order, except that a check never comes before what it requires."""
    pending = sorted(checks, key=lambda c: (c.spec.order, c.id))
    placed: List[Check] = []
    done = set()
    while pending:
        for index, check in enumerate(pending):
            if all(dep in done for dep, _ in check.spec.requires):
                placed.append(check)
                done.add(check.id)
                del pending[index]
                break
    return placed


def load_registry(extra_dirs: Sequence[Path] = (), use_entry_points: bool = True) -> List[Check]:
    checks = load_dir(builtin_checks_dir(), "midoctor_builtin_checks")
    for index, directory in enumerate(extra_dirs):
        checks += load_dir(Path(directory), f"midoctor_user_checks_{index}")
    if use_entry_points:
        checks += load_entry_points()
    return validate(checks)


def select(checks: Sequence[Check], only: Sequence[str], skip: Sequence[str]) -> List[Check]:
    known = {c.id for c in checks}
    for name in list(only) + list(skip):
        if name not in known:
            raise RegistryError(f"unknown check id {name!r} (known: {', '.join(c.id for c in checks)})")
    chosen = [c for c in checks if (not only or c.id in only) and c.id not in skip]
    return chosen
