"""Local host facts: is this an Azure VM at all, which OS, which container runtime."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any, Dict, Optional

# Azure (Hyper-V) VMs carry this chassis asset tag; reference failure-catalog F16.
AZURE_ASSET_TAG = "7783-7084-3265-9085-8269-3286-77"


def _read(path: Path, limit: int = 4096) -> Optional[str]:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace").strip()
    except OSError:
        return None


def dmi_facts(root: Path = Path("/sys/class/dmi/id")) -> Dict[str, Any]:
    """Linux DMI fields; unreadable fields are reported as unknown, not guessed."""
    out: Dict[str, Any] = {}
    for name in ("sys_vendor", "product_name", "chassis_asset_tag", "chassis_vendor"):
        value = _read(root / name)
        if value is not None:
            out[name] = value
    return out


def looks_like_azure(dmi: Dict[str, Any]) -> Optional[bool]:
    """True/False when DMI says so, None when DMI could not be read (e.g. a container without /sys)."""
    if not dmi:
        return None
    if dmi.get("chassis_asset_tag") == AZURE_ASSET_TAG:
        return True
    vendor = str(dmi.get("sys_vendor", "")).lower()
    if vendor and "microsoft" not in vendor:
        return False
    return None  # Microsoft hardware without Azure's asset tag (on-prem Hyper-V?) or unreadable: cannot tell


def container_facts(root: Path = Path("/"), environ: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    env = environ if environ is not None else dict(os.environ)
    out: Dict[str, Any] = {}
    if env.get("KUBERNETES_SERVICE_HOST"):
        out["kubernetes"] = True
    if (root / ".dockerenv").exists():
        out["docker"] = True
    cgroup = _read(root / "proc/1/cgroup") or ""
    for marker in ("docker", "kubepods", "containerd", "libpod"):
        if marker in cgroup:
            out.setdefault("cgroup_markers", []).append(marker)
    return out


def gather_host() -> Dict[str, Any]:
    facts: Dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "os_release": platform.release(),
        "python": platform.python_version(),
    }
    if platform.system() == "Linux":
        facts["dmi"] = dmi_facts()
    container = container_facts()
    if container:
        facts["container"] = container
    return facts
