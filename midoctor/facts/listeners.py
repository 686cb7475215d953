"""Which local process listens where IMDS should be: names the impostor when 169.254.169.254 is local."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


def listeners_on(port: int, addresses: tuple = ("169.254.169.254", "0.0.0.0", "::")) -> List[Dict[str, Any]]:
    """Listening TCP sockets on ``port`` bound to one of ``addresses``, with their process when visible.

    Without root, other users' processes show no pid (psutil returns what the kernel lets it see); the
    entry then says so rather than guessing."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - a declared dependency, but never let a probe crash a check
        return [{"error": "psutil is not installed"}]
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError) as exc:
        return [{"error": f"cannot list sockets: {type(exc).__name__}"}]
    found = []
    for conn in connections:
        if conn.status != psutil.CONN_LISTEN or not conn.laddr or conn.laddr.port != port:
            continue
        if conn.laddr.ip not in addresses:
            continue
        found.append({"address": f"{conn.laddr.ip}:{port}", **_process(psutil, conn.pid)})
    return found


def _process(psutil: Any, pid: Optional[int]) -> Dict[str, Any]:
    if not pid:
        return {"process": "not visible to this user"}
    try:
        proc = psutil.Process(pid)
        cmdline = " ".join(proc.cmdline())[:200]
        return {"pid": pid, "process": proc.name(), "user": proc.username(), "cmdline": cmdline}
    except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
        return {"pid": pid, "process": "exited or not visible"}
