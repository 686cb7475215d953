"""A small network-namespace lab: a fake Azure VM whose IMDS is the project's simulator.

Everything the lab creates is named ``mdl-<8 hex>-<nn>-<role>`` (namespaces) or lives in a private temp
directory, and ``Lab.close()`` removes it. Namespaces are created with ``ip netns add`` and configured
with ``ip -n`` / ``ip netns exec`` only, so no command ever runs against the root namespace's links,
routes or firewall. Programs started in a namespace (simulator, proxy, midoctor, azure-identity) go
through ``ip netns exec``, which also gives them a private mount namespace: the few bind mounts the
launcher makes (a VM's DMI, an empty ``/etc/environment``, a readable Python for ``nobody``) vanish with
the process.

Typical use (see conftest.py for the fixtures that wrap this):

    lab = Lab(new_run_id(), 1, Launcher(session_dir))
    vm = azure_vm(lab)                       # vm ns (eth0 10.0.0.4/24, default via 10.0.0.1) + host ns
    vm.serve_imds("healthy-system")          # simulator on 169.254.169.254:80 inside the host ns
    vm.vm.iptables("-A", "OUTPUT", ...)      # the scenario's fault, inside the vm ns
    env = lab_env(lab.home, {"HTTP_PROXY": lab.tinyproxy(vm.vm).url})
    sdk = lab.start_sdk(vm.vm, env)          # azure-identity in the background, same ns, env and user
    run = lab.midoctor(vm.vm, env, NOBODY)   # `midoctor run --format json` (no --imds-url) in the vm ns
    run.verdict("imds-reachable")            # ("fail", "timed-out")
    sdk.finish().describe()                  # "CredentialUnavailableError: ..."
    lab.close()                              # processes, namespaces, files: all gone
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

PREFIX = "mdl-"
REPO = Path(__file__).resolve().parents[2]
SDK_PROBE = Path(__file__).resolve().with_name("sdk_probe.py")
IMDS_IP = "169.254.169.254"
IMDS_URL = f"http://{IMDS_IP}"
NETNS_DIR = Path("/run/netns")

CMD_TIMEOUT_S = 10.0  # any single ip/iptables/ss command
READY_TIMEOUT_S = 10.0  # a server started in a namespace must listen within this
MIDOCTOR_TIMEOUT_S = 30.0  # hard kill for one `midoctor run` (it has --timeout 20 of its own)
SDK_TIMEOUT_S = 40.0  # hard kill for azure-identity (13 s on DROP, 24 s on retried 5xx, forever on a hang)
STOP_GRACE_S = 2.0
STALE_AFTER_S = 15 * 60  # another run's namespace is only swept when older than this and empty

# A fixed PATH: midoctor's route/firewall probes need ip, iptables-save and nft (sbin on Debian).
LAB_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What Azure's Hyper-V firmware reports (reference failure-catalog F16); shown to midoctor only where the
# host has DMI at all, so the lab looks like an Azure VM on any CI hardware.
AZURE_DMI = {
    "sys_vendor": "Microsoft Corporation",
    "product_name": "Virtual Machine",
    "chassis_vendor": "Microsoft Corporation",
    "chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77",
}


class LabError(RuntimeError):
    """A lab command failed: the lab is broken, not midoctor."""


def new_run_id() -> str:
    return PREFIX + secrets.token_hex(4)


def sh(argv: Sequence[str], *, timeout: float = CMD_TIMEOUT_S, check: bool = True) -> subprocess.CompletedProcess:
    """Run a lab command (ip, iptables, ss) with a deadline; raise LabError on failure when ``check``."""
    env = dict(os.environ, LC_ALL="C")
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{shlex.join(argv)}: no exit within {timeout:g} s") from exc
    if check and done.returncode != 0:
        raise LabError(f"{shlex.join(argv)}: exit {done.returncode}: {done.stderr.strip()[:400]}")
    return done


# -- users ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    uid: int
    gid: int
    name: str


ROOT = User(0, 0, "root")
NOBODY = User(65534, 65534, "nobody")


# -- processes --------------------------------------------------------------------------------------------
@dataclass
class Proc:
    """A process started in a namespace, in its own session so the whole group can be stopped."""

    name: str
    popen: subprocess.Popen
    stdout: Path
    stderr: Path
    started: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        if self.popen.poll() is not None:
            return
        _signal_group(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(self.popen.pid, signal.SIGKILL)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass  # unkillable (D state): `ip netns pids` in close() gets another try

    def output(self) -> str:
        return _tail(self.stdout) + _tail(self.stderr)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # our own session leader: only what we started
    except ProcessLookupError:
        pass


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


# -- namespaces -------------------------------------------------------------------------------------------
@dataclass
class Netns:
    name: str

    def ip(self, *args: str) -> str:
        return sh(["ip", "-n", self.name, *args]).stdout

    def argv(self, *cmd: str) -> List[str]:
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = CMD_TIMEOUT_S) -> subprocess.CompletedProcess:
        return sh(self.argv(*cmd), check=check, timeout=timeout)

    def iptables(self, *args: str) -> None:
        # -w: wait for the xtables lock instead of failing when another lab namespace holds it.
        self.run("iptables", "-w", "5", *args)

    def add_address(self, cidr: str, dev: str) -> None:
        self.ip("addr", "add", cidr, "dev", dev)

    def up(self, dev: str) -> None:
        self.ip("link", "set", dev, "up")

    def listening(self, address: str, port: int) -> bool:
        """Is a TCP socket listening on address:port here? Reads socket tables only (no packet sent)."""
        out = self.run("ss", "-Hltn", check=False).stdout
        wanted = {f"{address}:{port}", f"0.0.0.0:{port}", f"*:{port}"}
        return any(len(line.split()) >= 4 and line.split()[3] in wanted for line in out.splitlines())

    def network_state(self) -> Dict[str, str]:
        """Routes, rules and firewall of this namespace, for before/after comparisons."""
        rules = self.run("iptables-save", check=False).stdout
        return {
            "routes": self.ip("route", "show", "table", "all"),
            "rules": self.ip("rule", "show"),
            "addresses": self.ip("-br", "addr"),
            # iptables-save stamps each table with the current time; the stamps are not state.
            "iptables": "\n".join(line for line in rules.splitlines() if not line.startswith("#")),
        }


# -- launching Python as a VM process ---------------------------------------------------------------------
class Launcher:
    """Builds the argv that runs this Python inside a namespace, as a given user, seeing a VM-like host.

    One small shell script (``enter.sh`` in a session directory) runs first, as root, inside the private
    mount namespace ``ip netns exec`` creates: it shows Azure DMI where the host has DMI, hides the host's
    ``/etc/environment`` (its proxy settings are not the scenario's) and, for an unprivileged user, makes
    this Python readable when it lives under a private directory such as ``/root`` (pyenv). Then it
    ``exec``s the command, so the pid Popen sees is the Python process itself.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        # Not the realpath: a venv's python is a symlink and only its own path finds pyvenv.cfg.
        self.python = sys.executable
        self.script = directory / "enter.sh"
        self.exposed = _blocked_ancestors(self._needed_paths())
        self._write()

    def _needed_paths(self) -> List[str]:
        paths = {self.python, os.path.realpath(self.python), sys.prefix, sys.base_prefix, str(REPO)}
        return sorted(os.path.realpath(p) for p in paths)

    def _write(self) -> None:
        dmi = self.dir / "dmi"
        dmi.mkdir(mode=0o755, exist_ok=True)
        for name, value in AZURE_DMI.items():
            (dmi / name).write_text(value + "\n")
        empty_env = self.dir / "environment"
        empty_env.write_text("")
        # DNS stays inside the namespace: lookups (e.g. http.server's getfqdn() on bind) get an instant
        # "refused" from the namespace's own loopback instead of waiting for the host's resolver.
        resolv = self.dir / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        lines = [
            "#!/bin/sh",
            "# Generated by tests/lab/netlab.py. Runs as root inside `ip netns exec` (a private mount",
            "# namespace, slave of the host's): nothing mounted here reaches the host.",
            "set -eu",
            'who="$1"; shift',
            f"if [ -d /sys/class/dmi/id ]; then mount --bind {shlex.quote(str(dmi))} /sys/class/dmi/id; fi",
            f"if [ -e /etc/environment ]; then mount --bind {shlex.quote(str(empty_env))} /etc/environment; fi",
            f"if [ -e /etc/resolv.conf ]; then mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf; fi",
            'if [ "$who" != root ]; then',
            "  :",
        ]
        lines += self._expose_lines()
        lines += ["fi", 'exec "$@"', ""]
        self.script.write_text("\n".join(lines))
        self.script.chmod(0o755)

    def _expose_lines(self) -> List[str]:
        """Keep each needed child reachable, cover its private parent with a world-readable tmpfs (once per
        parent), put the children back: the unprivileged process sees only the paths it needs."""
        lines: List[str] = []
        staged: List[Tuple[str, str]] = []
        for index, (_, child) in enumerate(self.exposed):
            stage = self.dir / f"stage{index}"
            stage.mkdir(mode=0o755, exist_ok=True)
            staged.append((shlex.quote(str(child)), shlex.quote(str(stage))))
            lines.append(f"  mount --bind {staged[-1][0]} {staged[-1][1]}")
        for blocked in dict.fromkeys(str(blocked) for blocked, _ in self.exposed):
            lines.append(f"  mount -t tmpfs -o mode=0755,size=64k mdl-expose {shlex.quote(blocked)}")
        for child, stage in staged:
            lines += [f"  mkdir -p {child}", f"  mount --bind {stage} {child}"]
        return lines

    def argv(self, ns: Netns, args: Sequence[str], user: User = ROOT) -> List[str]:
        """This Python with ``args``, in ``ns``, as ``user``."""
        return self.wrap(ns, [self.python, *args], user)

    def wrap(self, ns: Netns, command: Sequence[str], user: User = ROOT) -> List[str]:
        """Any command in ``ns`` as ``user``, after the VM-like mounts."""
        command = list(command)
        if user.uid != 0:
            command = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", *command]
        return ns.argv("/bin/sh", str(self.script), user.name if user.uid else "root", *command)


def _blocked_ancestors(paths: Iterable[str]) -> List[Tuple[Path, Path]]:
    """(private dir, child on the way) for the first ancestor of each path that others cannot enter."""
    found: List[Tuple[Path, Path]] = []
    for path in paths:
        parts = Path(path).parts
        for depth in range(1, len(parts) - 1):
            directory = Path(*parts[: depth + 1])
            try:
                mode = directory.stat().st_mode
            except OSError:
                break
            if not mode & stat.S_IXOTH:
                pair = (directory, Path(*parts[: depth + 2]))
                if pair not in found:
                    found.append(pair)
                break
    return found


def lab_env(home: Path, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The whole environment of a VM process: nothing inherited from the shell running pytest (no proxy,
    no AZURE_*), bytecode not written into the repository."""
    env = {"PATH": LAB_PATH, "HOME": str(home), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra or {})
    return env


# -- results of the two clients ---------------------------------------------------------------------------
@dataclass
class MidoctorRun:
    exit_code: Optional[int]  # None: killed after MIDOCTOR_TIMEOUT_S
    stdout: str
    stderr: str
    wall_s: float
    report: Optional[Dict[str, Any]]

    def check(self, check_id: str) -> Dict[str, Any]:
        assert self.report is not None, f"no JSON report (exit {self.exit_code}): {self.stderr[-2000:]}"
        for item in self.report["checks"]:
            if item["id"] == check_id:
                return item
        raise AssertionError(f"no check {check_id!r} in the report: {[c['id'] for c in self.report['checks']]}")

    def verdict(self, check_id: str) -> Tuple[str, str]:
        item = self.check(check_id)
        return item["status"], item.get("cause") or ""

    def has(self, check_id: str) -> bool:
        return self.report is not None and any(c["id"] == check_id for c in self.report["checks"])


@dataclass
class SdkOutcome:
    ok: bool
    exception: Optional[str]
    message: str
    elapsed_s: Optional[float]  # get_token() itself
    wall_s: float  # including interpreter start and imports
    killed: bool = False

    def describe(self, limit: int = 160) -> str:
        if self.killed:
            return f"no result: still blocked after {SDK_TIMEOUT_S:g} s (killed)"
        if self.ok:
            return "token obtained"
        text = " ".join(self.message.split())
        return f"{self.exception}: {text[:limit]}"


class SdkRun:
    """azure-identity running in the background; ``finish()`` collects (or kills) it."""

    def __init__(self, proc: Proc) -> None:
        self.proc = proc
        self.outcome: Optional[SdkOutcome] = None

    @property
    def overdue(self) -> bool:
        return time.monotonic() - self.proc.started > SDK_TIMEOUT_S

    @property
    def done(self) -> bool:
        return not self.proc.alive()

    def finish(self, wait: bool = True) -> SdkOutcome:
        """The outcome; waits up to the SDK timeout (``wait``) or kills a run still going (not ``wait``)."""
        if self.outcome is not None:
            return self.outcome
        killed = False
        remaining = SDK_TIMEOUT_S - (time.monotonic() - self.proc.started) if wait else 0.0
        try:
            self.proc.popen.wait(timeout=max(remaining, 0.0))
        except subprocess.TimeoutExpired:
            self.proc.stop()
            killed = True
        wall = time.monotonic() - self.proc.started
        self.outcome = _parse_sdk(self.proc, wall, killed)
        return self.outcome


def _parse_sdk(proc: Proc, wall: float, killed: bool) -> SdkOutcome:
    if killed:
        return SdkOutcome(False, None, "", None, wall, killed=True)
    for line in reversed(_tail(proc.stdout).splitlines()):
        if line.startswith("{"):
            data = json.loads(line)
            return SdkOutcome(bool(data["ok"]), data.get("exception"), data.get("message", ""),
                              data.get("elapsed_s"), wall)
    return SdkOutcome(False, "ProbeCrashed", _tail(proc.stderr, 600), None, wall)


# -- the lab ----------------------------------------------------------------------------------------------
class Lab:
    """Namespaces, links and processes of one scenario; ``close()`` removes all of them."""

    def __init__(self, run_id: str, index: int, launcher: Launcher) -> None:
        self.prefix = f"{run_id}-{index:02d}"
        self.launcher = launcher
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix + "-"))
        self.dir.chmod(0o755)  # mkdtemp makes it private; processes run as nobody must enter it
        self.home = self.dir / "home"
        self.home.mkdir()
        self.home.chmod(0o777)  # HOME of every VM process, root or nobody
        self.namespaces: List[Netns] = []
        self.procs: List[Proc] = []
        self.sdk_runs: List[SdkRun] = []
        self._count = 0

    # building
    def netns(self, role: str) -> Netns:
        ns = Netns(f"{self.prefix}-{role}")
        sh(["ip", "netns", "add", ns.name])
        self.namespaces.append(ns)
        # IPv4 only: IMDS is IPv4, and IPv6 link-local setup (DAD) would keep changing the routing tables
        # for a second after a link comes up, which the before/after comparisons must not see.
        ns.run("sh", "-c", "for f in all default; do echo 1 > /proc/sys/net/ipv6/conf/$f/disable_ipv6; done",
               check=False)
        ns.up("lo")
        return ns

    def veth(self, a: Netns, a_dev: str, b: Netns, b_dev: str) -> None:
        """A veth pair created directly inside ``a`` with its peer in ``b`` (never in the root namespace)."""
        a.ip("link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b.name)
        a.up(a_dev)
        b.up(b_dev)

    # processes
    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> Proc:
        self._count += 1
        out = self.dir / f"{self._count:02d}-{name}.out"
        err = self.dir / f"{self._count:02d}-{name}.err"
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            popen = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                     env=dict(env), cwd=str(REPO), start_new_session=True)
        proc = Proc(name, popen, out, err)
        self.procs.append(proc)
        return proc

    def serve(self, ns: Netns, name: str, argv: Sequence[str], address: str, port: int) -> Proc:
        """Start a server in ``ns`` and wait (bounded) until it listens on address:port."""
        proc = self.spawn(name, argv, lab_env(self.home))
        deadline = time.monotonic() + READY_TIMEOUT_S
        for _ in range(200):  # 200 × ≥ 50 ms ≥ READY_TIMEOUT_S: the loop is bounded either way
            if not proc.alive():
                raise LabError(f"{name} exited with {proc.popen.returncode}: {proc.output()}")
            if ns.listening(address, port):
                return proc
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        proc.stop()
        raise LabError(f"{name} did not listen on {address}:{port} within {READY_TIMEOUT_S:g} s: {proc.output()}")

    def serve_imds(self, ns: Netns, scenario: str, address: str = IMDS_IP, port: int = 80) -> Proc:
        argv = self.launcher.argv(ns, ["-m", "midoctor", "sim", "--scenario", scenario, "--host", address,
                                       "--port", str(port)])
        return self.serve(ns, f"sim-{scenario}", argv, address, port)

    def tinyproxy(self, ns: Netns, port: int = 3128) -> TinyProxy:
        """A real forwarding proxy on 127.0.0.1:port in ``ns``, logging every request to a file."""
        proxy = TinyProxy(self.dir / f"tinyproxy-{port}", port)
        proxy.write_config()
        binary = shutil.which("tinyproxy") or "tinyproxy"
        argv = self.launcher.wrap(ns, [binary, "-d", "-c", str(proxy.config)])
        self.serve(ns, f"tinyproxy-{port}", argv, "127.0.0.1", port)
        return proxy

    def midoctor(self, ns: Netns, env: Mapping[str, str], user: User = ROOT,
                 extra: Sequence[str] = ()) -> MidoctorRun:
        """`midoctor run --format json` in ``ns`` with the default IMDS endpoint (no --imds-url)."""
        args = ["-m", "midoctor", "run", "--format", "json", "--arm-url", IMDS_URL, "--timeout", "20", *extra]
        proc = self.spawn("midoctor", self.launcher.argv(ns, args, user), env)
        try:
            proc.popen.wait(timeout=MIDOCTOR_TIMEOUT_S)
            code: Optional[int] = proc.popen.returncode
        except subprocess.TimeoutExpired:
            proc.stop()
            code = None
        wall = time.monotonic() - proc.started
        stdout = proc.stdout.read_text(errors="replace")
        report = json.loads(stdout) if stdout.lstrip().startswith("{") else None
        return MidoctorRun(code, stdout, _tail(proc.stderr), wall, report)

    def start_sdk(self, ns: Netns, env: Mapping[str, str], user: User = ROOT) -> SdkRun:
        proc = self.spawn("azure-identity", self.launcher.argv(ns, [str(SDK_PROBE)], user), env)
        run = SdkRun(proc)
        self.sdk_runs.append(run)
        return run

    # teardown
    @property
    def busy(self) -> bool:
        """Still waiting for a background azure-identity run (its namespace must stay up until it ends)."""
        return any(not run.done and not run.overdue for run in self.sdk_runs)

    def close(self, wait: bool = True) -> None:
        """Collect background runs (``wait``: let them finish, bounded), stop every process, delete the
        namespaces and the directory. Never raises."""
        for run in self.sdk_runs:
            try:
                run.finish(wait)
            except Exception:  # noqa: BLE001 - teardown goes on; the outcome stays None
                pass
        for proc in reversed(self.procs):
            proc.stop()
        for ns in reversed(self.namespaces):
            delete_netns(ns.name)
        self.namespaces.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class TinyProxy:
    base: Path
    port: int

    @property
    def config(self) -> Path:
        return self.base.with_suffix(".conf")

    @property
    def log(self) -> Path:
        return self.base.with_suffix(".log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> None:
        # No Upstream: the proxy connects itself, from the VM namespace, like a forward proxy on the VM.
        # XTinyproxy off so no client-address header is added; the Via header stays on (squid-like).
        self.config.write_text("\n".join([
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 5",
            "MaxClients 8",
            "Allow 127.0.0.1",
            "DisableViaHeader No",
            "XTinyproxy No",
            f'LogFile "{self.log}"',
            "LogLevel Info",
            "",
        ]))

    def requests(self) -> List[str]:
        """The request lines tinyproxy logged (``GET http://host/path HTTP/1.1``)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return []
        return [line.split("): ", 1)[1] for line in text.splitlines() if "Request (file descriptor" in line
                and "): " in line]


# -- a realistic VM -------------------------------------------------------------------------------------------
@dataclass
class AzureVm:
    """``vm``: the VM (eth0 10.0.0.4/24, default via 10.0.0.1). ``host``: the Azure host side, owning
    10.0.0.1 and 169.254.169.254 (on its lo), where the IMDS simulator runs."""

    lab: Lab
    vm: Netns
    host: Netns

    def serve_imds(self, scenario: str) -> Proc:
        return self.lab.serve_imds(self.host, scenario)


def azure_vm(lab: Lab, *, default_route: bool = True) -> AzureVm:
    vm = lab.netns("vm")
    host = lab.netns("host")
    lab.veth(vm, "eth0", host, "hv0")
    vm.add_address("10.0.0.4/24", "eth0")
    host.add_address("10.0.0.1/24", "hv0")
    host.add_address(f"{IMDS_IP}/32", "lo")
    if default_route:
        # Azure's DHCP gives the default route; 169.254.169.254 leaves through it (F11's healthy case).
        vm.ip("route", "add", "default", "via", "10.0.0.1", "dev", "eth0")
    return AzureVm(lab, vm, host)


# -- cleanup of the machine --------------------------------------------------------------------------------
def delete_netns(name: str) -> None:
    """Kill what still runs inside one of *our* namespaces (by pid), then delete it. Never raises."""
    if not name.startswith(PREFIX):
        return
    try:
        pids = sh(["ip", "netns", "pids", name], check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        sh(["ip", "netns", "del", name], check=False)
    except (LabError, OSError):
        pass


def lab_namespaces() -> List[str]:
    try:
        out = sh(["ip", "netns", "list"], check=False).stdout
    except (LabError, OSError):
        return []
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def sweep(run_prefix: Optional[str] = None, stale_after_s: float = STALE_AFTER_S) -> List[str]:
    """Delete this run's namespaces and directories (``run_prefix``) and other ``mdl-`` ones left by aborted
    runs: only those older than ``stale_after_s``, so a lab running in parallel is never disturbed."""
    removed: List[str] = []
    now = time.time()

    def doomed(name: str, path: Path) -> bool:
        if run_prefix is not None and name.startswith(run_prefix + "-"):
            return True
        try:
            return now - path.stat().st_mtime > stale_after_s  # nsfs: the namespace's creation time
        except OSError:
            return False

    for name in lab_namespaces():
        if doomed(name, NETNS_DIR / name):
            delete_netns(name)
            removed.append(name)
    for path in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        if path.is_dir() and not path.is_symlink() and doomed(path.name, path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    return removed
