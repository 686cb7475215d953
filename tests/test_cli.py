"""The CLI contract: exit codes one by one, every format, report files, sim/demo/render commands."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import invoke, run_against, validate_report


def test_exit_0_when_healthy(simulator) -> None:
    assert run_against(simulator("healthy-system")).exit_code == 0


def test_exit_1_on_fail(simulator) -> None:
    assert run_against(simulator("no-identity")).exit_code == 1


def test_fail_on_warn_turns_a_warning_into_exit_1(simulator) -> None:
    sim = simulator("system-and-user")
    assert run_against(sim, scenario_args=False).exit_code == 0
    assert run_against(sim, "--fail-on", "warn", scenario_args=False).exit_code == 1


def test_exit_2_on_usage_errors(simulator) -> None:
    assert invoke(["run", "--imds-url", "ftp://nope"]).exit_code == 2
    assert invoke(["run", "--client-id", "a", "--object-id", "b", "--imds-url", "http://127.0.0.1:9"]).exit_code == 2
    assert invoke(["run", "--only", "no-such-check"]).exit_code == 2
    assert invoke(["run", "--format", "yaml"]).exit_code == 2
    assert invoke(["demo", "--scenario", "no-such-scenario"]).exit_code == 2


def test_exit_3_when_a_check_errors_and_nothing_failed(simulator, tmp_path: Path) -> None:
    (tmp_path / "explodes.py").write_text(textwrap.dedent("""
        from midoctor.model import Cause, CheckSpec, Status

        SPEC = CheckSpec(id="explodes", title="t", order=99, explanation="e",
                         causes=(Cause("ok", Status.PASS, "fine"),))

        def evaluate(ctx):
            raise RuntimeError("kaboom")
    """))
    run = run_against(simulator("healthy-system"), "--checks-dir", str(tmp_path))
    assert run.exit_code == 3
    assert run.check("explodes")["status"] == "error"
    assert all(c["status"] == "pass" for c in run.report["checks"] if c["id"] != "explodes")


def test_exit_3_when_the_run_deadline_cuts_checks(simulator) -> None:
    sim = simulator("slow")
    run = run_against(sim, "--timeout", "0.5", scenario_args=False)
    assert run.exit_code == 3
    assert any(c["cause"] == "run-deadline" for c in run.report["checks"])


@pytest.mark.parametrize("fmt", ["text", "json", "html", "markdown", "junit"])
def test_every_format_on_stdout(simulator, fmt: str) -> None:
    sim = simulator("missing-role")
    run = invoke(["run", "--imds-url", sim.url, "--arm-url", sim.url, "--format", fmt, "--only", "imds-reachable",
                  "--only", "identity-attached", "--only", "role-assignment", "--action", "data:x/y/read"])
    assert run.exit_code == 1
    assert "role-assignment" in run.stdout
    for token in sim.issued_tokens:
        assert token not in run.stdout


def test_output_dir_gets_three_private_reports(simulator, tmp_path: Path, report_schema) -> None:
    out = tmp_path / "out"
    run = run_against(simulator("multiple-user"), "--output", str(out))
    assert run.exit_code == 1
    names = sorted(p.name for p in out.iterdir())
    assert names == ["report.html", "report.json", "report.md"]
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    validate_report(json.loads((out / "report.json").read_text()), report_schema)
    html = (out / "report.html").read_text()
    assert "http://" not in html.split("<body")[0].lower().replace("http://www.w3.org", "")


def _in_private_mount(setup: str, sim_url: str, out: Path) -> subprocess.CompletedProcess[str]:
    """Run midoctor in a private mount namespace where `setup` makes `out` read-only or tiny."""
    script = (f"{setup} && exec {sys.executable} -m midoctor run --imds-url {sim_url} --arm-url {sim_url} "
              f"--format json --output {out}")
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "NO_COLOR": "1"})


needs_root_mounts = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="read-only and full-disk cases need root and unshare(1) for a private mount namespace")


@needs_root_mounts
def test_read_only_disk_is_exit_2_with_report_shown(simulator, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    done = _in_private_mount(f"mount --bind {out} {out} && mount -o remount,bind,ro {out}",
                             simulator("healthy-system").url, out)
    assert done.returncode == 2, done.stderr
    assert "Read-only file system" in done.stderr and done.stderr.count("\n") <= 2
    assert json.loads(done.stdout)["diagnosis"] is None  # the report still reached stdout
    assert list(out.iterdir()) == []  # nothing half-written left behind


@needs_root_mounts
def test_full_disk_is_exit_2_and_leaves_no_partial_file(simulator, tmp_path: Path) -> None:
    out = tmp_path / "full"
    out.mkdir()
    done = _in_private_mount(f"mount -t tmpfs -o size=4k tmpfs {out}", simulator("healthy-system").url, out)
    assert done.returncode == 2, done.stderr
    assert "disk full" in done.stderr
    assert "Traceback" not in done.stderr


def test_output_path_that_is_a_file_or_symlink_is_exit_2(simulator, tmp_path: Path) -> None:
    sim = simulator("healthy-system")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = run_against(sim, "--output", str(blocker))
    assert run.exit_code == 2 and "not a directory" in run.stderr
    assert run.report is not None  # the report still reached stdout
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    run = run_against(sim, "--output", str(link))
    assert run.exit_code == 2 and "symbolic link" in run.stderr


def test_render_rerenders_a_saved_report(simulator, tmp_path: Path) -> None:
    run_against(simulator("no-identity"), "--output", str(tmp_path))
    for fmt, marker in (("html", "<html"), ("markdown", "identity-attached"), ("junit", "<testsuite"),
                        ("text", "DIAGNOSIS")):
        result = invoke(["render", str(tmp_path / "report.json"), "--format", fmt])
        assert result.exit_code == 0 and marker in result.stdout
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": "9.0"}')
    result = invoke(["render", str(bad)])
    assert result.exit_code == 2 and "not a midoctor report" in result.stderr


def test_sim_list_names_every_scenario_with_a_description() -> None:
    from midoctor.sim import list_scenarios

    run = invoke(["sim", "--list"])
    assert run.exit_code == 0
    for scenario in list_scenarios():
        assert scenario.name in run.stdout and scenario.description in run.stdout


def test_demo_writes_reports_and_exits_with_the_contract_code(tmp_path: Path, report_schema) -> None:
    out = tmp_path / "demo"
    run = invoke(["demo", "--output", str(out)])
    assert run.exit_code == 1  # the default demo scenario shows a real failure
    assert "DIAGNOSIS" in run.stdout and "uami-ambiguity" in run.stdout
    validate_report(json.loads((out / "report.json").read_text()), report_schema)
    assert "<script" not in (out / "report.html").read_text()


def test_demo_ignores_the_callers_identity_variables(tmp_path: Path) -> None:
    run = invoke(["demo", "--scenario", "multiple-user", "--output", str(tmp_path), "--format", "json"],
                 env={"AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000000"})
    assert run.report["diagnosis"]["cause"] == "multiple-no-selector"


def test_version_and_help() -> None:
    assert invoke(["--version"]).stdout.startswith("midoctor ")
    assert "run" in invoke(["--help"]).stdout


def test_run_without_arm_url_uses_the_vm_cloud_and_finishes(simulator) -> None:
    """The default ARM endpoint comes from instance metadata; ARM traffic goes to a closed loopback proxy."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    sim = simulator("healthy-system")
    started = __import__("time").monotonic()
    run = invoke(["run", "--imds-url", sim.url, "--format", "json", "--timeout", "10"],
                 env={"HTTPS_PROXY": f"http://127.0.0.1:{closed}", "NO_PROXY": "127.0.0.1"})
    assert __import__("time").monotonic() - started < 10
    role = run.check("role-assignment")
    assert (role["status"], role["cause"]) == ("error", "arm-unreachable")
    assert "https://management.azure.com" in role["summary"]
    assert run.exit_code == 3


def test_scope_and_urls_are_validated() -> None:
    for args in (["--scope", "@127.0.0.1:18080/x"], ["--scope", "garbage"], ["--imds-url", "http://[::1"],
                 ["--imds-url", "http://127.0.0.1:99999"], ["--arm-url", "http://user:pw@127.0.0.1:1"]):
        run = invoke(["run", *args])
        assert run.exit_code == 2, args
        assert "pw" not in run.stderr


def test_unexpected_internal_error_is_exit_3_without_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import midoctor.runner

    def explode(*args, **kwargs):
        raise RuntimeError("boom http://u:secretpw@proxy:1")

    monkeypatch.setattr(midoctor.runner, "run", explode)
    from click.testing import CliRunner

    from midoctor.cli import main

    result = CliRunner().invoke(main, ["run", "--imds-url", "http://127.0.0.1:9"])
    assert result.exit_code == 3
    assert "internal error" in result.output and "secretpw" not in result.output
    assert "Traceback" not in result.output
