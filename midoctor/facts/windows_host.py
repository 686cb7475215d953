"""Windows equivalents of Linux DMI: is this machine an Azure VM?

`reg query HKLM\\HARDWARE\\DESCRIPTION\\System\\BIOS` gives the manufacturer and product; the chassis asset
tag Azure stamps on its VMs comes from WMI (Win32_SystemEnclosure.SMBIOSAssetTag). Parsers are pure so they
are tested on recorded outputs; the probes run the tools with short timeouts and report why they could not.
"""

from __future__ import annotations

import re
from typing import Dict, List

from midoctor.facts.probes import run_command

_REG_VALUE = re.compile(r"^\s+(\S+)\s+(REG_[A-Z_]+)\s*(.*)$")

REG_BIOS = ["reg", "query", r"HKLM\HARDWARE\DESCRIPTION\System\BIOS"]
ASSET_TAG = ["powershell", "-NoProfile", "-NonInteractive", "-Command",
             "(Get-CimInstance -ClassName Win32_SystemEnclosure).SMBIOSAssetTag"]


def parse_reg_values(text: str) -> Dict[str, str]:
    """`reg query` output: lines of `    Name    REG_TYPE    value` under a key header."""
    values: Dict[str, str] = {}
    for line in text.splitlines():
        match = _REG_VALUE.match(line)
        if match:
            values[match.group(1)] = match.group(3).strip()
    return values


def dmi_from_windows(reg_bios: str, asset_tag: str) -> Dict[str, str]:
    """Map to the Linux DMI names so that one judgement (``looks_like_azure``) serves both systems."""
    values = parse_reg_values(reg_bios)
    out: Dict[str, str] = {}
    for source, target in (("SystemManufacturer", "sys_vendor"), ("SystemProductName", "product_name"),
                           ("BIOSVendor", "bios_vendor")):
        if values.get(source):
            out[target] = values[source]
    tag = next((line.strip() for line in asset_tag.splitlines() if line.strip()), "")
    if tag:
        out["chassis_asset_tag"] = tag
    return out


def _stdout(argv: List[str]) -> str:
    # A tool that is missing, slow or failing leaves its fields out: the DMI answer stays "unknown".
    done = run_command(argv, timeout=3.0)
    return done.stdout if done.ran and done.returncode == 0 else ""


def windows_dmi() -> Dict[str, str]:
    return dmi_from_windows(_stdout(REG_BIOS), _stdout(ASSET_TAG))
