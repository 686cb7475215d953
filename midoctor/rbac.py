"""Evaluate Azure RBAC operations against effective permissions (actions / notActions / dataActions /
notDataActions) the way ARM does: case-insensitive, ``*`` matches any run of characters including ``/``,
and control-plane and data-plane permissions are separate (``*`` in actions grants no data action)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

# Why a note on some operations: the permissions API can only answer for the plane we evaluate, so when a
# name exists in both planes (or is granted outside Azure RBAC) the evidence says so instead of implying
# a certainty the tool does not have.
_ALSO_CONTROL_PLANE = ("The same name is also a control-plane action (ARM templates); prefix 'action:' to "
                       "check that one instead.")
_ALSO_DATA_PLANE = ("The same name is also a data action (the service's data plane); prefix 'data:' to check "
                    "that one instead.")
_COSMOS_SQL_RBAC = ("Cosmos DB data actions are granted by Cosmos DB SQL role assignments (az cosmosdb sql role "
                    "assignment create), which the Azure RBAC permissions API does not list: 'not granted' here "
                    "does not mean the identity lacks them.")


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    note: Optional[str] = None


def _rule(regex: str, note: Optional[str] = None, *, case_sensitive: bool = False) -> _Rule:
    return _Rule(re.compile(regex, 0 if case_sensitive else re.I), note)


# Data actions cannot be told from their name alone in general (a few names exist in both planes); these
# rules cover the services a managed identity typically reaches and follow the DataAction tables of
# Microsoft's "Azure permissions" reference (learn.microsoft.com/azure/role-based-access-control/permissions/).
# Each rule is anchored on the resource-type path so that a sibling control-plane action (listKeys,
# containers/read, registries/pull/read...) is never taken for a data action: a data action evaluated
# against actions (or the reverse) gives a false "not granted". A user can force the kind with a "data:"
# or "action:" prefix.
_DATA_ACTION_RULES: Tuple[_Rule, ...] = (
    # Storage: blob, queue-message, file and table-entity operations; the services, containers, queues,
    # shares and tables themselves (and generateUserDelegationKey) are control-plane.
    _rule(r"^Microsoft\.Storage/storageAccounts/blobServices/containers/blobs/"),
    _rule(r"^Microsoft\.Storage/storageAccounts/queueServices/queues/messages/"),
    _rule(r"^Microsoft\.Storage/storageAccounts/fileServices/fileshares/files/"),
    _rule(r"^Microsoft\.Storage/storageAccounts/fileServices/(readFileBackupSemantics|writeFileBackupSemantics|"
          r"takeOwnership|runAsBuiltInFileAdministrator)/action$"),
    _rule(r"^Microsoft\.Storage/storageAccounts/tableServices/tables/entities/"),
    # Key Vault: secrets/read, secrets/write, keys/write and keys/versions/read are control-plane (ARM);
    # every secrets/keys "<verb>/action" and delete is data-plane, and certificates, issuers, contacts,
    # rotation policies and managed storage accounts exist only in the data plane.
    _rule(r"^Microsoft\.KeyVault/vaults/(secrets|keys)/(delete|[^/]+/action)$"),
    _rule(r"^Microsoft\.KeyVault/vaults/(certificates|certificatecas|certificatecontacts|keyrotationpolicies|"
          r"storageaccounts)/"),
    # Service Bus and Event Hubs: messages, user delegation keys, Event Hubs schema registry contents
    # (namespaces/schemagroups is the control-plane resource).
    _rule(r"^Microsoft\.(ServiceBus|EventHub)/namespaces/messages/(send|receive)/action$"),
    _rule(r"^Microsoft\.(ServiceBus|EventHub)/namespaces/(generateUserDelegationKey|revokeUserDelegationKeys)/"
          r"action$"),
    _rule(r"^Microsoft\.EventHub/namespaces/schemas/(read|write|delete)$"),
    # App Configuration: keyValues/read is data-only; keyValues/write and /delete exist in both planes
    # (the ARM keyValues resource), the data plane is what an application uses. keyValues/action is ARM.
    _rule(r"^Microsoft\.AppConfiguration/configurationStores/keyValues/read$"),
    _rule(r"^Microsoft\.AppConfiguration/configurationStores/keyValues/(write|delete)$", _ALSO_CONTROL_PLANE),
    _rule(r"^Microsoft\.AppConfiguration/configurationStores/snapshots/(read|write|archive/action)$"),
    # Event Grid: only these four are data actions; topics/listKeys/action, namespaces/topics/... are ARM.
    _rule(r"^Microsoft\.EventGrid/events/(send|receive)/action$"),
    _rule(r"^Microsoft\.EventGrid/topicSpaces/(publish|subscribe)/action$"),
    # Cognitive Services: data actions sit under a capitalised service segment (accounts/OpenAI/...,
    # accounts/SpeechServices/...); the control-plane children are camelCase (accounts/read, listKeys/action,
    # deployments/, raiPolicies/...). Known services match in any case; an unlisted service is recognised by
    # its capital first letter as written in Microsoft's tables (case-sensitive on that segment only) when
    # something other than a bare "action" follows, so a capitalised control-plane verb such as
    # ".../PrivateEndpointConnectionsApproval/action" stays control-plane.
    _rule(r"^Microsoft\.CognitiveServices/accounts/(OpenAI|AIServices|SpeechServices|TextAnalytics|Language|"
          r"LanguageAuthoring|TextTranslation|ComputerVision|FormRecognizer|ContentSafety|ContentModerator|Face|"
          r"CustomVision|ImmersiveReader|AnomalyDetector|MetricsAdvisor|Personalizer|LUIS|QnAMaker|"
          r"AudioContentCreation|Autosuggest)/"),
    _rule(r"^(?i:Microsoft\.CognitiveServices/accounts/)[A-Z][A-Za-z]*/(?!action$)", case_sensitive=True),
    # Cosmos DB (NoSQL): sqlDatabases/read, sqlDatabases/containers/read... are ARM.
    _rule(r"^Microsoft\.DocumentDB/databaseAccounts/(readMetadata|sqlDatabases/containers/(items/.+|executeQuery|"
          r"readChangeFeed|executeStoredProcedure|manageConflicts))$", _COSMOS_SQL_RBAC),
    # Azure Monitor ingestion (Metrics/Read is control-plane).
    _rule(r"^Microsoft\.Insights/(Metrics|Telemetry)/Write$"),
    _rule(r"^Microsoft\.Insights/DataCollectionRules/Data/Write$"),
    # Container Registry: registries/pull/read, push/write, artifacts/delete, metadata/read are ARM actions
    # (AcrPull, AcrPush); the ABAC-mode repository permissions are data actions.
    _rule(r"^Microsoft\.ContainerRegistry/registries/repositories/(content|metadata)/(read|write|delete)$"),
    _rule(r"^Microsoft\.ContainerRegistry/registries/(quarantinedArtifacts/(read|write)|trustedCollections/write)$"),
    # UNCONFIRMED: the "Container Registry Repository Catalog Lister" data action; not in the 2024 snapshot of
    # the permissions reference, and no control-plane action of that name exists there.
    _rule(r"^Microsoft\.ContainerRegistry/registries/catalog/read$"),
)

# Names that are a control-plane action *and* a data action: evaluated as control-plane (ARM's default
# reading of a bare name), with a note saying how to ask about the other plane.
_BOTH_PLANES_CONTROL_DEFAULT: Tuple[_Rule, ...] = (
    _rule(r"^Microsoft\.KeyVault/vaults/keys/read$", _ALSO_DATA_PLANE),
)

# Built-in roles that grant an operation, per plane: only a suggestion for the fix command, so each entry
# names a role whose definition does grant every operation its pattern matches. Nothing is suggested
# rather than a role that may not grant it (e.g. Cosmos DB data actions: their "Built-in Data Reader" is a
# Cosmos SQL role, not an Azure role that `az role assignment create` can assign).
_DATA_ROLE_HINTS: Tuple[Tuple[str, str], ...] = (
    (r"^Microsoft\.Storage/storageAccounts/blobServices/containers/blobs/read$", "Storage Blob Data Reader"),
    (r"^Microsoft\.Storage/storageAccounts/blobServices/containers/blobs/(write|delete|add/action|move/action)$",
     "Storage Blob Data Contributor"),
    (r"^Microsoft\.Storage/storageAccounts/blobServices/containers/blobs/", "Storage Blob Data Owner"),
    (r"^Microsoft\.Storage/storageAccounts/queueServices/queues/messages/read$", "Storage Queue Data Reader"),
    (r"^Microsoft\.Storage/storageAccounts/queueServices/queues/messages/add/action$",
     "Storage Queue Data Message Sender"),
    (r"^Microsoft\.Storage/storageAccounts/queueServices/queues/messages/", "Storage Queue Data Contributor"),
    (r"^Microsoft\.Storage/storageAccounts/tableServices/tables/entities/read$", "Storage Table Data Reader"),
    (r"^Microsoft\.Storage/storageAccounts/tableServices/tables/entities/", "Storage Table Data Contributor"),
    (r"^Microsoft\.KeyVault/vaults/secrets/(getSecret|readMetadata)/action$", "Key Vault Secrets User"),
    (r"^Microsoft\.KeyVault/vaults/secrets/", "Key Vault Secrets Officer"),
    (r"^Microsoft\.KeyVault/vaults/keys/(read|(update|backup|encrypt|decrypt|wrap|unwrap|sign|verify)/action)$",
     "Key Vault Crypto User"),
    (r"^Microsoft\.KeyVault/vaults/(keys|keyrotationpolicies)/", "Key Vault Crypto Officer"),
    (r"^Microsoft\.KeyVault/vaults/certificates/read$", "Key Vault Certificate User"),
    (r"^Microsoft\.KeyVault/vaults/(certificates|certificatecas|certificatecontacts)/",
     "Key Vault Certificates Officer"),
    (r"^Microsoft\.ServiceBus/namespaces/messages/send/action$", "Azure Service Bus Data Sender"),
    (r"^Microsoft\.ServiceBus/namespaces/messages/receive/action$", "Azure Service Bus Data Receiver"),
    (r"^Microsoft\.EventHub/namespaces/messages/send/action$", "Azure Event Hubs Data Sender"),
    (r"^Microsoft\.EventHub/namespaces/messages/receive/action$", "Azure Event Hubs Data Receiver"),
    (r"^Microsoft\.EventGrid/events/send/action$", "EventGrid Data Sender"),
    (r"^Microsoft\.EventGrid/events/receive/action$", "EventGrid Data Receiver"),
    (r"^Microsoft\.EventGrid/topicSpaces/publish/action$", "EventGrid TopicSpaces Publisher"),
    (r"^Microsoft\.EventGrid/topicSpaces/subscribe/action$", "EventGrid TopicSpaces Subscriber"),
    (r"^Microsoft\.AppConfiguration/configurationStores/[^/]+/read$", "App Configuration Data Reader"),
    (r"^Microsoft\.AppConfiguration/configurationStores/", "App Configuration Data Owner"),
    (r"^Microsoft\.ContainerRegistry/registries/repositories/(content|metadata)/read$",
     "Container Registry Repository Reader"),
    (r"^Microsoft\.ContainerRegistry/registries/repositories/(content|metadata)/write$",
     "Container Registry Repository Writer"),
    (r"^Microsoft\.ContainerRegistry/registries/repositories/", "Container Registry Repository Contributor"),
    # Inference and reads only: the OpenAI User role does not grant every OpenAI data action.
    (r"^Microsoft\.CognitiveServices/accounts/OpenAI/(.+/read|deployments/(chat/completions|completions|"
     r"embeddings)/action)$", "Cognitive Services OpenAI User"),
    (r"^Microsoft\.CognitiveServices/accounts/OpenAI/", "Cognitive Services OpenAI Contributor"),
    # Cognitive Services User's dataActions are "Microsoft.CognitiveServices/*": any other service's data action.
    (r"^Microsoft\.CognitiveServices/accounts/[^/]+/", "Cognitive Services User"),
    (r"^Microsoft\.Insights/Metrics/Write$", "Monitoring Metrics Publisher"),
)
_CONTROL_ROLE_HINTS: Tuple[Tuple[str, str], ...] = (
    (r"^Microsoft\.ContainerRegistry/registries/pull/read$", "AcrPull"),
    (r"^Microsoft\.ContainerRegistry/registries/push/write$", "AcrPush"),
    (r"^[^/]+/.*/read$", "Reader"),  # Reader's actions are "*/read": every control-plane read
)


@dataclass(frozen=True)
class Operation:
    name: str
    is_data: bool
    kind_source: str  # "prefix" | "known pattern" | "assumed control-plane"
    note: Optional[str] = None  # why the verdict may not be the whole story (see the _ALSO_* notes)


_PREFIXES = (("data:", True), ("action:", False))


def parse_operation(text: str) -> Operation:
    """Classify an operation as a data action or a control-plane action.

    Raises ValueError when a ``data:``/``action:`` prefix is followed by nothing (a usage error, exit 2).
    A ``*`` in the operation is legal but is *not* a wildcard on this side: the operation is compared as
    literal text against each grant's pattern, so ``*`` is granted only by a grant that covers any name
    (``*``) and asks "is everything granted?", not "is anything granted?".
    """
    raw = text.strip()
    lowered = raw.lower()
    for prefix, is_data in _PREFIXES:
        if lowered.startswith(prefix):
            name = raw[len(prefix):].strip()
            if not name:
                example = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"
                raise ValueError(f"nothing follows the '{prefix}' prefix (expected e.g. {prefix}{example})")
            return Operation(name, is_data, "prefix")
    for rule in _DATA_ACTION_RULES:
        if rule.pattern.search(raw):
            return Operation(raw, True, "known pattern", rule.note)
    note = next((r.note for r in _BOTH_PLANES_CONTROL_DEFAULT if r.pattern.search(raw)), None)
    return Operation(raw, False, "assumed control-plane", note)


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
        out = {"operation": self.operation.name, "data_action": self.operation.is_data,
               "kind_from": self.operation.kind_source, "allowed": self.allowed, "granted_by": self.granted_by,
               "excluded_by": self.excluded_by}
        if self.operation.note:
            out["note"] = self.operation.note
        return out


def decide(operation: Operation, entries: Sequence[Dict[str, Any]]) -> Decision:
    """Allowed when one permission entry grants it and the same entry does not exclude it.

    ARM subtracts notActions/notDataActions per entry (per role assignment), not globally: a notActions in
    one entry never removes what another entry grants.
    """
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


def suggest_role(operation: Union[str, Operation]) -> Optional[str]:
    """A built-in role granting the operation, for the fix command; None rather than a wrong guess.

    Pass the parsed Operation when there is one: a bare name is re-classified, which loses a
    ``data:``/``action:`` prefix the user gave.
    """
    if isinstance(operation, str):
        try:
            operation = parse_operation(operation)
        except ValueError:
            return None
    hints = _DATA_ROLE_HINTS if operation.is_data else _CONTROL_ROLE_HINTS
    for pattern, role in hints:
        if re.search(pattern, operation.name, re.I):
            return role
    return None


def summarize(entries: Sequence[Dict[str, Any]], limit: int = 25) -> Dict[str, Any]:
    actions = sorted({a for e in entries for a in _strings(e, "actions")})
    data_actions = sorted({a for e in entries for a in _strings(e, "dataActions")})
    return {"entries": len(entries), "actions": actions[:limit], "data_actions": data_actions[:limit],
            "actions_total": len(actions), "data_actions_total": len(data_actions)}
