"""Registry: discovery, validation of the dependency graph, ordering, one-line errors with exit 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import invoke

from midoctor.registry import RegistryError, load_dir, load_registry, validate

BUILTIN_ORDER = ["imds-reachable", "proxy-route", "identity-attached", "uami-ambiguity", "token-audience",
                 "role-assignment"]


def write_check(directory: Path, check_id: str, *, order: int = 100, requires: str = "()", body: str = "") -> Path:
    path = directory / (check_id.replace("-", "_") + ".py")
    path.write_text(textwrap.dedent(f"""
        from midoctor.model import Cause, CheckSpec, Condition, Result, Status

        SPEC = CheckSpec(id={check_id!r}, title="t", order={order}, explanation="e",
                         causes=(Cause("ok", Status.PASS, "fine"),), requires={requires})

        def evaluate(ctx):
            {body or 'return SPEC.result("ok", "fine")'}
    """))
    return path


def test_builtin_registry_order_is_the_public_contract() -> None:
    ids = [c.id for c in load_registry(use_entry_points=False)]
    assert ids == [i for i in BUILTIN_ORDER if i in ids]
    assert ids[:1] == ["imds-reachable"] and "role-assignment" in ids


def test_user_checks_dir_is_loaded_and_ordered(tmp_path: Path) -> None:
    write_check(tmp_path, "my-extra", order=5, requires='(("imds-reachable", Condition.OK),)')
    ids = [c.id for c in load_registry([tmp_path], use_entry_points=False)]
    # order 5 would put it first, but it requires imds-reachable, so it comes right after.
    assert ids.index("my-extra") == ids.index("imds-reachable") + 1


@pytest.mark.parametrize("case", ["syntax", "duplicate", "cycle", "unknown-dep", "name-mismatch", "no-spec"])
def test_broken_checks_dir_exits_2_with_one_line(tmp_path: Path, case: str) -> None:
    if case == "syntax":
        (tmp_path / "broken.py").write_text("def evaluate(ctx:\n")
        expected = "broken.py:1: syntax error"
    elif case == "duplicate":
        write_check(tmp_path, "imds-reachable")
        expected = "duplicate check id 'imds-reachable'"
    elif case == "cycle":
        write_check(tmp_path, "loop-a", requires='(("loop-b", Condition.OK),)')
        write_check(tmp_path, "loop-b", requires='(("loop-a", Condition.OK),)')
        expected = "dependency cycle: loop-a -> loop-b -> loop-a"
    elif case == "unknown-dep":
        write_check(tmp_path, "orphan", requires='(("nowhere", Condition.OK),)')
        expected = "requires unknown check 'nowhere'"
    elif case == "name-mismatch":
        path = write_check(tmp_path, "right-name")
        path.rename(tmp_path / "wrong_name.py")
        expected = "does not match the file name wrong_name.py"
    else:
        (tmp_path / "empty.py").write_text("X = 1\n")
        expected = "no SPEC"
    run = invoke(["checks", "--checks-dir", str(tmp_path)])
    assert run.exit_code == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert expected in lines[0]
    assert str(tmp_path) in lines[0] or case == "cycle" and "loop-" in lines[0]


def test_missing_checks_dir_is_a_usage_error(tmp_path: Path) -> None:
    run = invoke(["checks", "--checks-dir", str(tmp_path / "absent")])
    assert run.exit_code == 2 and "does not exist" in run.stderr


def test_validate_rejects_cycle_directly(tmp_path: Path) -> None:
    write_check(tmp_path, "self-loop", requires='(("self-loop", Condition.OK),)')
    with pytest.raises(RegistryError, match="cycle"):
        validate(load_dir(tmp_path, "t_self_loop"))


@pytest.mark.parametrize("shape", ["selectable", "dict"])
def test_entry_point_checks_are_discovered(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shape: str) -> None:
    import importlib.metadata as md
    import sys

    write_check(tmp_path, "from-plugin", order=99)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("from_plugin", None)
    ep = md.EntryPoint(name="from-plugin", value="from_plugin", group="midoctor.checks")
    # entry_points() returns an EntryPoints with .select() on Python 3.10+, a dict of group -> entry points
    # on 3.9; load_entry_points reads both. The dict shape runs everywhere, so 3.9's path is always tested.
    if shape == "selectable":
        if not hasattr(md, "EntryPoints"):
            pytest.skip("importlib.metadata.EntryPoints is Python 3.10+")
        found = md.EntryPoints([ep])
    else:
        found = {"midoctor.checks": [ep], "other.group": []}
    monkeypatch.setattr(md, "entry_points", lambda: found)
    ids = [c.id for c in load_registry()]
    assert ids[-1] == "from-plugin"


def test_checks_json_lists_requirements() -> None:
    import json

    run = invoke(["checks", "--json"])
    rows = json.loads(run.stdout)
    by_id = {r["id"]: r for r in rows}
    assert by_id["identity-attached"]["requires"] == [{"id": "imds-reachable", "when": "ok"}]


def test_explain_lists_every_cause_and_fix() -> None:
    from midoctor.registry import load_registry

    for check in load_registry(use_entry_points=False):
        run = invoke(["explain", check.id])
        assert run.exit_code == 0
        for cause in check.spec.causes:
            assert cause.slug in run.stdout
    assert invoke(["explain", "nope"]).exit_code == 2
