"""Local host facts: is this an Azure VM at all, which OS, which container runtime."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

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


# azure-identity switches ManagedIdentityCredential to WorkloadIdentityCredential when all three are set
# (reference F15c, AI-MIC / AI-CONST WORKLOAD_IDENTITY_VARS): IMDS is then not used at all.
WORKLOAD_IDENTITY_VARS = ("AZURE_AUTHORITY_HOST", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE")


def container_facts(root: Path = Path("/"), environ: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    env = environ if environ is not None else dict(os.environ)
    out: Dict[str, Any] = {}
    if env.get("KUBERNETES_SERVICE_HOST"):
        out["kubernetes"] = True
    if all(env.get(name) for name in WORKLOAD_IDENTITY_VARS):
        out["workload_identity"] = True
    if (root / ".dockerenv").exists():
        out["docker"] = True
    if (root / "run/.containerenv").exists():
        out["podman"] = True
    cgroup = _read(root / "proc/1/cgroup") or ""
    for marker in ("docker", "kubepods", "containerd", "libpod"):
        if marker in cgroup:
            out.setdefault("cgroup_markers", []).append(marker)
    # Docker Desktop runs containers in a LinuxKit VM (macOS/Windows) or WSL2, never on an Azure VM.
    kernel = (_read(root / "proc/version") or "").lower()
    if out and ("linuxkit" in kernel or "microsoft-standard-wsl2" in kernel):
        out["docker_desktop"] = True
    return out


def container_imds_meaning(facts: Mapping[str, Any]) -> Optional[str]:
    """What the container runtime means for reaching IMDS (reference F15), or None outside containers."""
    if not facts:
        return None
    if facts.get("workload_identity"):
        return ("Workload identity variables are set: azure-identity uses WorkloadIdentityCredential and never "
                "calls IMDS, so IMDS reachability is not what decides this app's token (F15c).")
    if facts.get("docker_desktop"):
        return ("Docker Desktop (LinuxKit/WSL2 kernel): there is no IMDS here; Docker Desktop's proxy answers "
                "169.254.169.254 with a 403 containing 'unreachable' (F15b). Use a developer credential.")
    if facts.get("kubernetes") or "kubepods" in facts.get("cgroup_markers", []):
        return ("Kubernetes pod: AKS may block IMDS for pods (podLinkLocalAccess=None), aad-pod-identity's NMI "
                "intercepts 169.254.169.254 through an iptables DNAT, and without workload identity a pod gets "
                "the node pool's identities (F15c). Compare with a probe from the node.")
    return ("Container: with Docker bridge networking traffic to 169.254.169.254 is NATed through the host, so "
            "IMDS is reachable and returns the VM's identities unless the daemon runs with iptables disabled, "
            "rootless/slirp networking, an egress policy, or a proxy baked into the image (F15a, UNCONFIRMED "
            "as an official statement). Compare with a probe on the host; --network host avoids the NAT.")


def gather_host() -> Dict[str, Any]:
    facts: Dict[str, Any] = {
        "hostname": socket.gethostname(),
        "os": platform.system(),
        "os_release": platform.release(),
        "python": platform.python_version(),
    }
    if platform.system() == "Linux":
        facts["dmi"] = dmi_facts()
    elif platform.system() == "Windows":
        from midoctor.facts.windows_host import windows_dmi

        facts["dmi"] = windows_dmi()
    container = container_facts()
    if container:
        facts["container"] = container
    return facts
