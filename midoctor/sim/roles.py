"""Role definitions and ARM-style permission evaluation for the simulated ARM.

Permission blocks follow imds-fidelity.md 4.1: one `Permission` per applicable role assignment, key
order actions / notActions / dataActions / notDataActions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Permission:
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    def to_json(self) -> dict[str, list[str]]:
        return {
            "actions": list(self.actions),
            "notActions": list(self.not_actions),
            "dataActions": list(self.data_actions),
            "notDataActions": list(self.not_data_actions),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], where: str) -> Permission:
        allowed = {"actions", "notActions", "dataActions", "notDataActions"}
        unknown = set(raw) - allowed
        if unknown:
            raise ValueError(f"{where}: unknown permission keys {sorted(unknown)}")
        return cls(
            actions=_str_tuple(raw.get("actions", []), f"{where}.actions"),
            not_actions=_str_tuple(raw.get("notActions", []), f"{where}.notActions"),
            data_actions=_str_tuple(raw.get("dataActions", []), f"{where}.dataActions"),
            not_data_actions=_str_tuple(raw.get("notDataActions", []), f"{where}.notDataActions"),
        )

    def allows(self, action: str, data: bool = False) -> bool:
        # An action is granted when a permission's allow-list matches it and the same permission's
        # deny-list does not (imds-fidelity 4.1, 2015 doc paraphrase).
        allow, deny = (self.data_actions, self.not_data_actions) if data else (self.actions, self.not_actions)
        return any(action_matches(p, action) for p in allow) and not any(
            action_matches(p, action) for p in deny
        )


def _str_tuple(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: expected a list of strings")
    return tuple(value)


# Built-in roles. Reader, Contributor, Owner, Key Vault Secrets User are from imds-fidelity 4.1
# (Reader's data arrays RECONSTRUCTED there). Storage Blob Data Reader and Reader and Data Access are
# RECONSTRUCTED from the public built-in roles list (not in the reference).
BUILTIN_ROLES: dict[str, Permission] = {
    "Owner": Permission(actions=("*",)),
    "Contributor": Permission(
        actions=("*",),
        not_actions=(
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
        ),
    ),
    "Reader": Permission(actions=("*/read",)),
    "Key Vault Secrets User": Permission(
        data_actions=(
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        )
    ),
    "Storage Blob Data Reader": Permission(
        actions=(
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ),
        data_actions=("Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",),
    ),
    "Reader and Data Access": Permission(
        actions=(
            "Microsoft.Storage/storageAccounts/listKeys/action",
            "Microsoft.Storage/storageAccounts/ListAccountSas/action",
            "Microsoft.Storage/storageAccounts/read",
        )
    ),
}


def action_matches(pattern: str, action: str) -> bool:
    # ARM wildcards: "*" spans any characters including "/", comparison is case-insensitive
    # ("Microsoft.Authorization/*/Write" denies ".../roleAssignments/write").
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, action, flags=re.IGNORECASE) is not None


def normalize_scope(scope: str) -> str:
    return "/" + scope.strip("/").lower() if scope.strip("/") else "/"


def scope_covers(grant_scope: str, target_scope: str) -> bool:
    """True when a grant at `grant_scope` is inherited by `target_scope` (same or a child scope)."""
    grant, target = normalize_scope(grant_scope), normalize_scope(target_scope)
    return grant == "/" or target == grant or target.startswith(grant + "/")


def is_granted(permissions: Iterable[Permission], action: str, data: bool = False) -> bool:
    return any(p.allows(action, data) for p in permissions)
