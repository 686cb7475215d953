"""midoctor's performance figures, measured on this machine in one run (numbers, not assertions).

    python benchmarks/bench.py            # loopback figures; as root also the network-namespace ones
    python benchmarks/bench.py --quick    # fewer repetitions

Prints: CLI import time, `--help` wall time, a full healthy run against the simulator (wall, requests,
peak memory), `midoctor demo` wall time, and time to a verdict when IMDS refuses, drops packets or is slow,
next to the real azure-identity ManagedIdentityCredential on the same setup.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PROBE = ROOT / "tests" / "oracle" / "sdk_probe.py"
PY = sys.executable
CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.lower().endswith("_proxy") and not k.startswith(("AZURE_", "MIDOCTOR_"))}
CLEAN_ENV["NO_COLOR"] = "1"


def timed(argv: Sequence[str], env: Optional[Dict[str, str]] = None,
          timeout: float = 120) -> Tuple[float, int, int, str]:
    """(wall seconds, exit code, peak RSS in KiB, stdout) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env or CLEAN_ENV)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    wall = time.perf_counter() - started
    rss = _child_rss(proc)
    return wall, proc.returncode, rss, out


def _child_rss(proc: subprocess.Popen) -> int:
    try:
        import resource

        return int(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    except (ImportError, OSError):
        return 0


def median(values: List[float]) -> float:
    return statistics.median(values) if values else float("nan")


def import_time(runs: int) -> Tuple[float, float]:
    bare = [timed([PY, "-c", "pass"])[0] for _ in range(runs)]
    cli = [timed([PY, "-c", "import midoctor.cli"])[0] for _ in range(runs)]
    return median(cli) - median(bare), median(bare)


def help_time(runs: int) -> Tuple[float, Optional[float]]:
    module = median([timed([PY, "-m", "midoctor", "--help"])[0] for _ in range(runs)])
    script = shutil.which("midoctor")
    if script and Path(script).resolve().parent == Path(PY).resolve().parent:
        return module, median([timed([script, "--help"])[0] for _ in range(runs)])
    return module, None


def healthy_run(runs: int) -> Dict[str, Any]:
    from midoctor.sim import Simulator

    walls, requests, code = [], 0, None
    with Simulator("healthy-system") as sim:
        for _ in range(runs):
            sim.reset()
            wall, code, _, _ = timed([PY, "-m", "midoctor", "run", "--imds-url", sim.url, "--arm-url", sim.url,
                                      "--format", "json"])
            walls.append(wall)
            requests = len(sim.requests)
    peak = _peak_rss_of_one_run()
    return {"wall_s": median(walls), "exit": code, "requests": requests, "peak_rss_mib": peak}


def _peak_rss_of_one_run() -> float:
    """Peak RSS of a single healthy run, measured in a fresh child so earlier children do not count."""
    script = ("import resource, subprocess, sys\n"
              "from midoctor.sim import Simulator\n"
              "with Simulator('healthy-system') as sim:\n"
              "    subprocess.run([sys.executable, '-m', 'midoctor', 'run', '--imds-url', sim.url, '--arm-url',"
              " sim.url, '--format', 'json'], stdout=subprocess.DEVNULL)\n"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([PY, "-c", script], capture_output=True, text=True, env=CLEAN_ENV, cwd=str(ROOT)).stdout
    try:
        return round(int(out.strip().splitlines()[-1]) / 1024, 1)
    except (ValueError, IndexError):
        return float("nan")


def demo_time(runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return median([timed([PY, "-m", "midoctor", "demo", "--output", tmp])[0] for _ in range(runs)])


def verdict(argv_prefix: Sequence[str], imds_url: Optional[str], env: Dict[str, str]) -> Dict[str, Any]:
    args = list(argv_prefix) + [PY, "-m", "midoctor", "run", "--format", "json", "--only", "imds-reachable"]
    if imds_url:
        args += ["--imds-url", imds_url]
    wall, _, _, out = timed(args, env=env, timeout=60)
    try:
        check = json.loads(out)["checks"][0]
        said = f"{check['status']} {check['cause']}"
    except (ValueError, KeyError, IndexError):
        said = "no report"
    return {"wall_s": wall, "said": said}


def sdk_verdict(argv_prefix: Sequence[str], env: Dict[str, str]) -> Dict[str, Any]:
    args = list(argv_prefix) + [PY, str(PROBE), "azure-identity", "https://management.azure.com/"]
    wall, _, _, out = timed(args, env=env, timeout=90)
    try:
        result = json.loads(out.strip().splitlines()[-1])
        said = "token" if result["ok"] else result["message"][:90]
        return {"wall_s": result["seconds"], "said": said, "process_wall_s": wall}
    except (ValueError, KeyError, IndexError):
        return {"wall_s": wall, "said": "no result (timed out)", "process_wall_s": wall}


def loopback_verdicts() -> List[Tuple[str, Dict[str, Any], Dict[str, Any]]]:
    """Refused and slow on loopback (dropped packets need a namespace: see namespace_verdicts)."""
    import socket

    from midoctor.sim import Simulator

    rows = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    env = {**CLEAN_ENV, "AZURE_POD_IDENTITY_AUTHORITY_HOST": closed}
    rows.append(("refused (loopback)", verdict([], closed, env), sdk_verdict([], env)))
    with Simulator("slow") as sim:
        env = {**CLEAN_ENV, "AZURE_POD_IDENTITY_AUTHORITY_HOST": sim.url}
        rows.append(("slow, 1.6 s per answer (loopback)", verdict([], sim.url, env), sdk_verdict([], env)))
    return rows


def namespace_verdicts() -> List[Tuple[str, Dict[str, Any], Dict[str, Any]]]:
    """Dropped / refused at the real 169.254.169.254 inside a throwaway network namespace (root only)."""
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("iptables"):
        return []
    import uuid

    ns = f"mdb-{uuid.uuid4().hex[:8]}"
    rows = []

    def sh(*argv: str) -> None:
        subprocess.run(list(argv), check=True, capture_output=True)

    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", "169.254.169.254/32", "dev", "lo")
        prefix = ["ip", "netns", "exec", ns]
        rows.append(("refused at 169.254.169.254 (namespace)", verdict(prefix, None, CLEAN_ENV),
                     sdk_verdict(prefix, CLEAN_ENV)))
        sh(*prefix, "iptables", "-A", "OUTPUT", "-d", "169.254.169.254", "-p", "tcp", "-j", "DROP")
        rows.append(("dropped by iptables DROP (namespace)", verdict(prefix, None, CLEAN_ENV),
                     sdk_verdict(prefix, CLEAN_ENV)))
    except subprocess.CalledProcessError as exc:
        print(f"  (namespace figures unavailable: {' '.join(exc.cmd)} failed)")
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    runs = 3 if parser.parse_args().quick else 7
    # As installed by pip: bytecode compiled once. (Some environments set PYTHONDONTWRITEBYTECODE, which
    # would otherwise make every run recompile midoctor's own modules and measure the compiler.)
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "midoctor"), str(ROOT / "checks")], check=False)
    import azure.identity

    print(f"midoctor benchmarks — Python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"azure-identity {azure.identity.__version__}, median of {runs} runs where repeated\n")
    imports, bare = import_time(runs)
    print(f"CLI import time (import midoctor.cli, minus bare interpreter {bare * 1000:.0f} ms): "
          f"{imports * 1000:.0f} ms")
    module_help, script_help = help_time(runs)
    print(f"`python -m midoctor --help` wall: {module_help * 1000:.0f} ms")
    if script_help is not None:
        print(f"`midoctor --help` wall (console script): {script_help * 1000:.0f} ms")
    healthy = healthy_run(runs)
    print(f"full healthy run vs simulator (all checks, interpreter start included): {healthy['wall_s']:.2f} s, "
          f"exit {healthy['exit']}, {healthy['requests']} requests, peak RSS {healthy['peak_rss_mib']} MiB")
    print(f"`midoctor demo` wall: {demo_time(max(1, runs // 2)):.2f} s\n")
    print(f"{'time to a verdict':<42} {'midoctor':>9}  {'azure-identity':>14}   what each said")
    for label, ours, sdk in namespace_verdicts() + loopback_verdicts():
        print(f"{label:<42} {ours['wall_s']:>8.2f}s  {sdk['wall_s']:>13.2f}s   "
              f"midoctor: {ours['said']} | SDK: {sdk['said']}")


if __name__ == "__main__":
    main()
