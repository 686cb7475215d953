"""Fixtures of the network-namespace lab (see netlab.py for the harness itself).

Composition: ``lab`` (an empty Lab: namespaces, links, processes, all removed afterwards) → ``vm`` (the
Azure-like VM and host namespaces, IMDS not served yet) → ``diagnose`` (midoctor and azure-identity run
in a namespace, recorded for docs/lab-results.md). Requirements are separate fixtures (``need_iptables``,
``need_tinyproxy``, ``need_nobody``) so each test skips with exactly one reason.

azure-identity needs up to 40 s in some scenarios (DROP: ~13 s, retried 5xx: ~24 s, a hang: forever) while
midoctor needs one or two. So the SDK runs in the background: a test asserts on midoctor and ends, its
lab stays alive (the SDK still talks to its simulator) until the SDK is done, and the session waits for
the stragglers before it writes the results table.
"""

from __future__ import annotations

import atexit
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import pytest

from .netlab import (
    NOBODY,
    REPO,
    ROOT,
    SDK_TIMEOUT_S,
    AzureVm,
    Lab,
    LabError,
    Launcher,
    MidoctorRun,
    Netns,
    SdkRun,
    User,
    azure_vm,
    delete_netns,
    lab_env,
    new_run_id,
    sh,
    sweep,
)

DOCS_ENV = "MIDOCTOR_LAB_WRITE_DOCS"
RESULTS_NAME = "lab-results.md"
FOCUS = ("imds-reachable", "proxy-route")

_interrupted = False
_xfailed: List[Tuple[str, str]] = []  # (test id, reason): midoctor's known wrong diagnoses, for the table


def pytest_runtest_logreport(report: Any) -> None:
    if report.when == "call" and getattr(report, "wasxfail", None):
        _xfailed.append((report.nodeid, str(report.wasxfail)))


def pytest_keyboard_interrupt(excinfo: Any) -> None:
    # Ctrl-C: stop background azure-identity runs at once instead of waiting up to 40 s for them.
    global _interrupted
    _interrupted = True


# -- what the machine offers ----------------------------------------------------------------------------------
def _lab_unavailable() -> Optional[str]:
    """None when namespaces can be created here, else the one reason the whole lab skips."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the network lab needs root (it creates network namespaces)"
    for tool in ("ip", "ss", "setpriv"):
        if shutil.which(tool) is None:
            return f"the network lab needs '{tool}' (iproute2 / util-linux)"
    probe = new_run_id() + "-probe"
    try:
        sh(["ip", "netns", "add", probe])
    except (LabError, OSError) as exc:
        return f"'ip netns add' does not work here: {exc}"
    finally:
        delete_netns(probe)
    return None


def _iptables_unavailable() -> Optional[str]:
    if shutil.which("iptables") is None:
        return "iptables is not installed"
    probe = Netns(new_run_id() + "-iptprobe")
    try:
        sh(["ip", "netns", "add", probe.name])
        probe.iptables("-A", "OUTPUT", "-d", "192.0.2.1", "-j", "DROP")
    except (LabError, OSError) as exc:
        return f"iptables does not work in a network namespace here: {exc}"
    finally:
        delete_netns(probe.name)
    return None


def _nobody_unavailable(launcher: Launcher) -> Optional[str]:
    """Can `nobody` run this Python with midoctor and azure-identity (after the launcher's exposure)?"""
    probe = Netns(new_run_id() + "-userprobe")
    code = "import midoctor, azure.identity"
    try:
        sh(["ip", "netns", "add", probe.name])
        done = sh(launcher.argv(probe, ["-c", code], NOBODY), check=False, timeout=30)
    except (LabError, OSError) as exc:
        return f"cannot start a process as nobody in a namespace: {exc}"
    finally:
        delete_netns(probe.name)
    if done.returncode != 0:
        return f"'nobody' cannot run {launcher.python} with midoctor and azure-identity: {done.stderr.strip()[-300:]}"
    return None


# -- the results table ------------------------------------------------------------------------------------------
@dataclass
class Row:
    scenario: str
    user: str
    checks: List[Tuple[str, str, str, str]]  # (id, status, cause, summary) of the focus checks
    exit_code: Optional[int]
    midoctor_s: float
    run_ms: Optional[float]  # midoctor's own duration_ms (without interpreter start)
    sdk: Optional[SdkRun]
    note: str = ""


@dataclass
class Collector:
    rows: List[Row] = field(default_factory=list)

    def add(self, scenario: str, user: User, run: MidoctorRun, sdk: Optional[SdkRun], focus: Sequence[str],
            note: str = "") -> None:
        checks: List[Tuple[str, str, str, str]] = []
        for check_id in focus:
            if run.has(check_id):
                item = run.check(check_id)
                checks.append((check_id, item["status"], item.get("cause") or "", item.get("summary") or ""))
        run_ms = run.report.get("duration_ms") if run.report else None
        self.rows.append(Row(scenario, user.name, checks, run.exit_code, run.wall_s, run_ms, sdk, note))

    def markdown(self, started: float, header: Mapping[str, str]) -> str:
        lines = [
            "# Network lab results",
            "",
            "Generated by `MIDOCTOR_LAB_WRITE_DOCS=1 python -m pytest tests/lab -m lab` (tests/lab/conftest.py).",
            "Every scenario runs the real `midoctor run --format json` (default endpoint "
            "`http://169.254.169.254`, no `--imds-url`) and the real azure-identity "
            "`ManagedIdentityCredential().get_token(\"https://management.azure.com/.default\")` in the same "
            "network namespace, as the same user, with the same environment. midoctor time is wall-clock "
            "including interpreter start (midoctor's own `duration_ms` in parentheses); azure-identity time "
            "is the `get_token()` call.",
            "",
        ]
        lines += [f"- {key}: {value}" for key, value in header.items()]
        lines += [f"- total lab wall time: {time.monotonic() - started:.1f} s", ""]
        lines += ["| scenario | midoctor diagnosis | midoctor summary | midoctor time | azure-identity says | "
                  "SDK time |", "|---|---|---|---|---|---|"]
        for row in self.rows:
            lines.append("| " + " | ".join(_cells(row)) + " |")
        if _xfailed:
            lines += ["", "## Known wrong diagnoses (strict xfail in the lab)", ""]
            lines += [f"- `{node.split('::', 1)[-1]}`: {_md(reason)}" for node, reason in _xfailed]
        lines.append("")
        return "\n".join(lines)


def _cells(row: Row) -> List[str]:
    diagnosis = "<br>".join(f"`{c}` {s} `{cause}`" for c, s, cause, _ in row.checks) or "no report"
    if row.exit_code is not None:
        diagnosis += f"<br>exit {row.exit_code}"
    primary = next((c for c in row.checks if c[1] != "pass"), row.checks[0] if row.checks else None)
    summary = _md(primary[3][:200]) if primary else ""
    run = f" ({row.run_ms / 1000:.2f} s)" if row.run_ms is not None else ""
    outcome = row.sdk.outcome if row.sdk is not None else None
    if outcome is None:
        sdk_text, sdk_time = "not run", ""
    else:
        sdk_text = _md(outcome.describe(160))
        sdk_time = f"{outcome.elapsed_s:.1f} s" if outcome.elapsed_s is not None else f">{SDK_TIMEOUT_S:g} s"
    scenario = _md(row.scenario) + (f" (as {row.user})" if row.user != "root" else "")
    if row.note:
        scenario += f"<br>*{_md(row.note)}*"
    return [scenario, diagnosis, summary, f"{row.midoctor_s:.1f} s{run}", sdk_text, sdk_time]


def _md(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import midoctor

    out = {"date (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
           "machine": f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs",
           "python": platform.python_version(), "midoctor": midoctor.__version__}
    packages = []
    for name in ("azure-identity", "azure-core", "msal", "requests", "httpx"):
        try:
            packages.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            packages.append(f"{name} missing")
    out["python packages"] = ", ".join(packages)
    tools = []
    for argv in (["ip", "-V"], ["iptables", "--version"], ["tinyproxy", "-v"]):
        try:
            tools.append(sh(argv, check=False).stdout.strip().splitlines()[0])
        except (LabError, OSError, IndexError):
            tools.append(f"{argv[0]} unavailable")
    out["tools"] = "; ".join(tools)
    return out


# -- the session ------------------------------------------------------------------------------------------------
class LabSession:
    """One pytest session's labs: ids, the launcher, the collector and the labs still finishing."""

    def __init__(self, run_id: str, directory: Path) -> None:
        self.run_id = run_id
        self.started = time.monotonic()
        self.dir = directory
        self.launcher = Launcher(directory)
        self.collector = Collector()
        self.pending: List[Lab] = []
        self._index = 0
        self._requirements: Dict[str, Optional[str]] = {}

    def requirement(self, name: str, probe: Callable[[], Optional[str]]) -> Optional[str]:
        if name not in self._requirements:
            self._requirements[name] = probe()
        return self._requirements[name]

    def new_lab(self) -> Lab:
        self.reap()
        self._index += 1
        return Lab(self.run_id, self._index, self.launcher)

    def release(self, lab: Lab) -> None:
        if lab.busy and not _interrupted:
            self.pending.append(lab)
        else:
            lab.close(wait=not _interrupted)

    def reap(self) -> None:
        for lab in [lab for lab in self.pending if not lab.busy]:
            self.pending.remove(lab)
            lab.close()

    def drain(self) -> None:
        """Wait (bounded by the SDK timeout) for background runs, then close every remaining lab. Ctrl-C
        while waiting stops the remaining runs at once."""
        global _interrupted
        deadline = time.monotonic() + SDK_TIMEOUT_S + 5
        try:
            for _ in range(int((SDK_TIMEOUT_S + 5) / 0.2) + 1):
                self.reap()
                if not self.pending or _interrupted or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        except KeyboardInterrupt:
            _interrupted = True
            raise
        finally:
            for lab in self.pending:
                lab.close(wait=not _interrupted)
            self.pending.clear()

    def write_results(self, basetemp: Path) -> Path:
        target = REPO / "docs" / RESULTS_NAME if os.environ.get(DOCS_ENV) == "1" else basetemp / RESULTS_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.collector.markdown(self.started, _versions()))
        return target


_results_path: List[Path] = []


# Package scope: the lab drains and cleans up as soon as its last test ran, not at the end of the whole suite.
@pytest.fixture(scope="package")
def lab_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabSession]:
    reason = _lab_unavailable()
    if reason:
        pytest.skip(reason)
    sweep()  # namespaces and dirs left by aborted runs (older than netlab.STALE_AFTER_S, mdl- prefix only)
    run_id = new_run_id()
    directory = Path(tempfile.mkdtemp(prefix=f"{run_id}-session-"))
    directory.chmod(0o755)  # the launcher's files must be readable before setpriv drops to nobody
    session = LabSession(run_id, directory)
    atexit.register(sweep, session.run_id)  # last resort if the finalizer below never runs
    try:
        yield session
    finally:
        try:
            session.drain()
            if session.collector.rows and not _interrupted:
                _results_path.append(session.write_results(tmp_path_factory.getbasetemp()))
        finally:
            sweep(session.run_id)
            shutil.rmtree(directory, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for path in _results_path:
        terminalreporter.write_line(f"lab results table: {path}")


@pytest.fixture
def lab(lab_session: LabSession) -> Iterator[Lab]:
    lab = lab_session.new_lab()
    try:
        yield lab
    finally:
        lab_session.release(lab)


@pytest.fixture
def need_iptables(lab_session: LabSession) -> None:
    reason = lab_session.requirement("iptables", _iptables_unavailable)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def need_tinyproxy(lab_session: LabSession) -> None:
    if shutil.which("tinyproxy") is None:
        pytest.skip("tinyproxy is not installed (Debian package 'tinyproxy')")


@pytest.fixture
def need_nobody(lab_session: LabSession) -> None:
    reason = lab_session.requirement("nobody", lambda: _nobody_unavailable(lab_session.launcher))
    if reason:
        pytest.skip(reason)


@pytest.fixture
def vm(lab: Lab) -> AzureVm:
    """The healthy VM's network (primary NIC, default route, IMDS address on the host side); no IMDS yet."""
    return azure_vm(lab)


Diagnose = Callable[..., MidoctorRun]


@pytest.fixture
def diagnose(lab_session: LabSession, lab: Lab) -> Diagnose:
    """``diagnose(scenario, ns, env=..., user=..., sdk="concurrent"|"after"|"none")``: run midoctor in ``ns``
    (and azure-identity alongside it, or after it when the two must not overlap), record both for the results
    table, return midoctor's run."""

    def run(scenario: str, ns: Netns, *, env: Optional[Mapping[str, str]] = None, user: User = ROOT,
            sdk: str = "concurrent", focus: Sequence[str] = FOCUS, extra: Sequence[str] = (),
            note: str = "") -> MidoctorRun:
        full_env = lab_env(lab.home, env)
        background = lab.start_sdk(ns, full_env, user) if sdk == "concurrent" else None
        result = lab.midoctor(ns, full_env, user, extra)
        if sdk == "after":
            background = lab.start_sdk(ns, full_env, user)
        lab_session.collector.add(scenario, user, result, background, focus, note)
        return result

    return run


# -- expectations shared by the test modules -----------------------------------------------------------------------
def _host_is_container() -> bool:
    # The lab's "VM" shares the filesystem of the machine running pytest; if that machine is a container
    # (/.dockerenv, cgroup markers), midoctor truthfully says so in proxy-route. Same function midoctor uses.
    from midoctor.facts.host import container_facts

    return bool(container_facts(environ={}))


@pytest.fixture(scope="session")
def clean_path() -> Tuple[str, str]:
    """proxy-route's verdict when nothing is in the way: pass, or the container warning on a container host."""
    return ("warn", "container") if _host_is_container() else ("pass", "no-interference")


