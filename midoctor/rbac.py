"""Evaluate Azure RBAC operations against effective permissions (actions / notActions / dataActions /
notDataActions) the way ARM does: case-insensitive, ``*`` matches any run of characters including ``/``,
and control-plane and data-plane permissions are separate (``*`` in actions grants no data action)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

# Data actions cannot be told from their name alone in general; these patterns cover the services a
# managed identity typically reaches. A user can force the kind with a "data:" or "action:" prefix.
_DATA_ACTION_PATTERNS = tuple(re.compile(p, re.I) for p in (
    r"^Microsoft\.Storage/storageAccounts/(blobServices/containers/blobs|queueServices/queues/messages|"
    r"fileServices/fileshares/files|tableServices/tables/entities)/",
    r"^Microsoft\.KeyVault/vaults/(secrets|keys|certificates|storage)/[^/]+/action$",
    r"^Microsoft\.KeyVault/vaults/(secrets|keys|certificates)/(readMetadata|getSecret|setSecret)/action$",
    r"^Microsoft\.KeyVault/vaults/(secrets|keys|certificates)/(delete|backup|restore|purge|recover)/action$",
    r"^Microsoft\.(ServiceBus|EventHub)/namespaces/messages/",
    r"^Microsoft\.DocumentDB/databaseAccounts/(sqlDatabases|readMetadata)",
    r"^Microsoft\.AppConfiguration/configurationStores/keyValues/",
    r"^Microsoft\.EventGrid/(topics|domains|events)/.*/action$",
    r"^Microsoft\.CognitiveServices/accounts/",
    r"^Microsoft\.Insights/(Telemetry|Metrics)/Write$",
    r"^Microsoft\.ContainerRegistry/registries/(pull|push)/",
))

# Built-in roles that grant common operations: only a suggestion for the fix command.
_ROLE_HINTS: Tuple[Tuple[str, str], ...] = (
    (r"^Microsoft\.Storage/storageAccounts/blobServices/containers/blobs/(read|.*/read)$", "Storage Blob Data Reader"),
    (r"^Microsoft\.Storage/storageAccounts/blobServices/containers/blobs/", "Storage Blob Data Contributor"),
    (r"^Microsoft\.Storage/storageAccounts/queueServices/", "Storage Queue Data Contributor"),
    (r"^Microsoft\.KeyVault/vaults/secrets/(getSecret|readMetadata)/action$", "Key Vault Secrets User"),
    (r"^Microsoft\.KeyVault/vaults/secrets/", "Key Vault Secrets Officer"),
    (r"^Microsoft\.KeyVault/vaults/keys/", "Key Vault Crypto User"),
    (r"^Microsoft\.KeyVault/vaults/certificates/", "Key Vault Certificate User"),
    (r"^Microsoft\.ServiceBus/namespaces/messages/send/action$", "Azure Service Bus Data Sender"),
    (r"^Microsoft\.ServiceBus/namespaces/messages/receive/action$", "Azure Service Bus Data Receiver"),
    (r"^Microsoft\.EventHub/namespaces/messages/send/action$", "Azure Event Hubs Data Sender"),
    (r"^Microsoft\.EventHub/namespaces/messages/receive/action$", "Azure Event Hubs Data Receiver"),
    (r"^Microsoft\.ContainerRegistry/registries/pull/", "AcrPull"),
    (r"^[^/]+/.*/read$", "Reader"),
)


@dataclass(frozen=True)
class Operation:
    name: str
    is_data: bool
    kind_source: str  # "prefix" | "known pattern" | "assumed control-plane"


def parse_operation(text: str) -> Operation:
    raw = text.strip()
    lowered = raw.lower()
    if lowered.startswith("data:"):
        return Operation(raw[5:].strip(), True, "prefix")
    if lowered.startswith("action:"):
        return Operation(raw[7:].strip(), False, "prefix")
    if any(p.search(raw) for p in _DATA_ACTION_PATTERNS):
        return Operation(raw, True, "known pattern")
    return Operation(raw, False, "assumed control-plane")


@functools.lru_cache(maxsize=512)
def _pattern(grant: str) -> re.Pattern[str]:
    return re.compile("^" + ".*".join(re.escape(part) for part in grant.split("*")) + "$", re.I)


def _matches_any(operation: str, grants: Iterable[Any]) -> Optional[str]:
    for grant in grants:
        if isinstance(grant, str) and _pattern(grant.strip()).match(operation):
            return grant
    return None


def _strings(entry: Dict[str, Any], key: str) -> List[str]:
    value = entry.get(key)
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


@dataclass
class Decision:
    operation: Operation
    allowed: bool
    granted_by: Optional[str] = None  # the pattern that grants it
    excluded_by: Optional[str] = None  # a notActions/notDataActions pattern that removed it from an entry

    def to_dict(self) -> Dict[str, Any]:
        return {"operation": self.operation.name, "data_action": self.operation.is_data,
                "kind_from": self.operation.kind_source, "allowed": self.allowed, "granted_by": self.granted_by,
                "excluded_by": self.excluded_by}


def decide(operation: Operation, entries: Sequence[Dict[str, Any]]) -> Decision:
    """Allowed when one permission entry grants it and the same entry does not exclude it."""
    grant_key, deny_key = ("dataActions", "notDataActions") if operation.is_data else ("actions", "notActions")
    excluded: Optional[str] = None
    for entry in entries:
        granted = _matches_any(operation.name, _strings(entry, grant_key))
        if not granted:
            continue
        denied = _matches_any(operation.name, _strings(entry, deny_key))
        if denied:
            excluded = excluded or denied
            continue
        return Decision(operation, True, granted_by=granted)
    return Decision(operation, False, excluded_by=excluded)


def suggest_role(operation: str) -> Optional[str]:
    for pattern, role in _ROLE_HINTS:
        if re.search(pattern, operation, re.I):
            return role
    return None


def summarize(entries: Sequence[Dict[str, Any]], limit: int = 25) -> Dict[str, Any]:
    actions = sorted({a for e in entries for a in _strings(e, "actions")})
    data_actions = sorted({a for e in entries for a in _strings(e, "dataActions")})
    return {"entries": len(entries), "actions": actions[:limit], "data_actions": data_actions[:limit],
            "actions_total": len(actions), "data_actions_total": len(data_actions)}
