"""The wheel: carries the checks, templates, schema and scenarios inside the package, installs no generic
top-level names, and works from a fresh virtual environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{done.stderr[-2000:]}")
    (path,) = out.glob("midoctor-*.whl")
    return path


def test_wheel_layout(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"midoctor"}, top_level
    for required in ("midoctor/_checks/imds_reachable.py", "midoctor/_checks/role_assignment.py",
                     "midoctor/_reports/report.schema.json", "midoctor/_reports/templates/report.html.j2",
                     "midoctor/sim/scenarios/healthy-system.json"):
        assert required in names, required


@pytest.mark.slow
def test_wheel_runs_from_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], capture_output=True,
                             text=True, timeout=600, env=clean_env)
    if install.returncode != 0:
        pytest.fail(f"installing the wheel failed:\n{install.stderr[-2000:]}")
    midoctor = env_dir / "bin" / "midoctor"
    listed = subprocess.run([str(midoctor), "checks", "--json"], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path, env=clean_env)
    assert listed.returncode == 0, listed.stderr
    assert [c["id"] for c in json.loads(listed.stdout)][0] == "imds-reachable"
    # Where does the package come from? Not from this source tree.
    origin = subprocess.run([str(python), "-c", "import midoctor, sys; print(midoctor.__file__)"],
                            capture_output=True, text=True, cwd=tmp_path, env=clean_env).stdout
    assert str(env_dir) in origin
    demo = subprocess.run([str(midoctor), "demo", "--output", str(tmp_path / "r")], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=clean_env)
    assert demo.returncode == 1, demo.stderr  # the default demo scenario shows a real failure
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["report.html", "report.json", "report.md"]
    html = (tmp_path / "r" / "report.html").read_text()
    assert "<style" in html and "<link" not in html
