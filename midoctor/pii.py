"""--redact-pii: replace identifying values with stable per-run placeholders, for reports that leave the
organisation. Secrets never reach a report (see ``redact``); this pass also hides who and where: the
subscription, tenant and object ids (every GUID but the run id), resource names in ARM ids, the VM and
resource-group names, and the host name. The same value always gets the same placeholder within a report,
so the report still reads coherently ("<name-1> has no identity ... az vm identity assign -n <name-1>").
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterable, List

from midoctor.model import Report

_GUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_ARM_ID = re.compile(r"(?i)/subscriptions/[^/\s'\"?]+(?:/[^/\s'\"?]+)*")
_NAMED_SEGMENTS = {"resourcegroups", "providers"}


def _walk(value: Any, visit: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return visit(value)
    if isinstance(value, list):
        return [_walk(v, visit) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, visit) for k, v in value.items()}
    return value


def _strings(value: Any) -> Iterable[str]:
    found: List[str] = []
    _walk(value, lambda s: found.append(s) or s)
    return found


def _names_in_arm_id(arm_id: str) -> List[str]:
    """Resource group and resource names in an ARM id (never the namespaces or types)."""
    parts = [p for p in arm_id.split("/") if p]
    names: List[str] = []
    index = 0
    while index < len(parts) - 1:
        key = parts[index].lower()
        if key == "subscriptions":
            index += 2
        elif key == "resourcegroups":
            names.append(parts[index + 1])
            index += 2
        elif key == "providers":
            index += 2  # the namespace, e.g. Microsoft.Compute
            while index < len(parts) - 1 and parts[index].lower() not in _NAMED_SEGMENTS:
                names.append(parts[index + 1])  # type/name pairs
                index += 2
        else:
            index += 1
    return names


class _Placeholders:
    def __init__(self) -> None:
        self.mapping: Dict[str, str] = {}
        self.counters: Dict[str, int] = {}

    def add(self, value: str, kind: str) -> None:
        if len(value) < 3 or value.startswith("<") or value.lower() in self.mapping:
            return
        self.counters[kind] = self.counters.get(kind, 0) + 1
        self.mapping[value.lower()] = f"<{kind}-{self.counters[kind]}>"

    def apply(self, text: str) -> str:
        if not self.mapping:
            return text
        pattern = re.compile("|".join(re.escape(k) for k in sorted(self.mapping, key=len, reverse=True)), re.I)
        return pattern.sub(lambda m: self.mapping[m.group(0).lower()], text)


def redact_report(report: Report) -> Report:
    data = report.to_dict()
    run_id = data["run_id"]
    placeholders = _Placeholders()
    host = data.get("host") or {}
    for key, kind in (("subscriptionId", "subscription"), ("resourceGroupName", "resource-group"),
                      ("name", "vm"), ("vmScaleSetName", "scale-set"), ("hostname", "host")):
        if isinstance(host.get(key), str):
            placeholders.add(host[key], kind)
    texts = list(_strings(data))
    for text in texts:
        for arm_id in _ARM_ID.findall(text):
            for name in _names_in_arm_id(arm_id):
                placeholders.add(name, "name")
    for text in texts:
        for guid in _GUID.findall(text):
            if guid != run_id:
                placeholders.add(guid, "id")
    redacted = _walk({k: v for k, v in data.items() if k != "run_id"}, placeholders.apply)
    redacted["run_id"] = run_id
    redacted.setdefault("config", {})["pii_redacted"] = True
    return Report.from_dict(redacted)
