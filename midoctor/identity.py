"""Reading token answers: what kind of answer came back, and which identity a token belongs to.

IMDS documents that error descriptions may change, so the outcome is classified by HTTP status and the
``error`` code first and by description text only as a hint (reference: failure-catalog section 1).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Dict, Optional

from midoctor.facts.imds import TokenResult, is_imds_server


class Outcome(str, enum.Enum):
    TOKEN = "token"
    IDENTITY_NOT_FOUND = "identity-not-found"
    MULTIPLE_USER_ASSIGNED = "multiple-user-assigned"
    INVALID_RESOURCE = "invalid-resource"
    MISSING_RESOURCE = "missing-resource"
    METADATA_HEADER = "metadata-header-rejected"
    BAD_REQUEST = "bad-request"
    THROTTLED = "throttled"
    UPDATING = "updating"
    SERVER_ERROR = "server-error"
    NOT_IMDS = "not-imds"
    NO_ANSWER = "no-answer"
    MALFORMED = "malformed"


def outcome_of(result: TokenResult) -> Outcome:
    final = result.exchange.final
    if not final.answered:
        return Outcome.NO_ANSWER
    if not is_imds_server(final):
        return Outcome.NOT_IMDS
    status = final.status or 0
    if status == 200:
        return Outcome.TOKEN if result.token.get("present") else Outcome.MALFORMED
    if status == 429:
        return Outcome.THROTTLED
    if status in (404, 410):
        return Outcome.UPDATING
    if status >= 500:
        return Outcome.SERVER_ERROR
    description = (result.error_description or "").lower()
    if 500011 in result.error_codes or 50001 in result.error_codes or result.error == "invalid_resource":
        return Outcome.INVALID_RESOURCE
    if "identity not found" in description:
        return Outcome.IDENTITY_NOT_FOUND
    if "multiple user assigned identities" in description:
        return Outcome.MULTIPLE_USER_ASSIGNED
    if "'resource' is missing" in description:
        return Outcome.MISSING_RESOURCE
    if "metadata header" in description:
        return Outcome.METADATA_HEADER
    if status == 400 and result.error is None:
        return Outcome.MALFORMED
    return Outcome.BAD_REQUEST


@dataclass(frozen=True)
class IdentityInfo:
    kind: str  # "system-assigned" | "user-assigned" | "unknown"
    client_id: Optional[str]
    object_id: Optional[str]
    resource_id: Optional[str]  # xms_mirid
    tenant_id: Optional[str]

    @property
    def name(self) -> Optional[str]:
        if not self.resource_id:
            return None
        return self.resource_id.rstrip("/").rsplit("/", 1)[-1]

    def describe(self) -> str:
        label = self.kind if self.kind != "unknown" else "an identity"
        parts = [label]
        if self.kind == "user-assigned" and self.name:
            parts.append(repr(self.name))
        if self.client_id:
            parts.append(f"client id {self.client_id}")
        if self.object_id:
            parts.append(f"object id {self.object_id}")
        return " ".join(parts[:2]) + (" (" + ", ".join(parts[2:]) + ")" if len(parts) > 2 else "")

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.kind, "client_id": self.client_id, "object_id": self.object_id,
                "resource_id": self.resource_id, "tenant_id": self.tenant_id}


def identity_of(result: TokenResult) -> IdentityInfo:
    """Which identity answered: ``xms_mirid`` names it (a VM or a userAssignedIdentities resource)."""
    claims = result.claims
    mirid = _str(claims.get("xms_mirid"))
    lowered = (mirid or "").lower()
    if "/microsoft.managedidentity/userassignedidentities/" in lowered:
        kind = "user-assigned"
    elif mirid:
        kind = "system-assigned"
    else:
        kind = "unknown"
    client_id = _str(result.fields.get("client_id")) or _str(claims.get("appid")) or _str(claims.get("azp"))
    return IdentityInfo(kind=kind, client_id=client_id, object_id=_str(claims.get("oid")), resource_id=mirid,
                        tenant_id=_str(claims.get("tid")))


def _str(value: Any) -> Optional[str]:
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    return text or None


def vm_kind_and_name(ctx_compute: Optional[Dict[str, Any]]) -> Dict[str, str]:
    """Resource group and VM or scale-set name from instance metadata, for exact `az` commands."""
    compute = ctx_compute or {}
    scale_set = _str(compute.get("vmScaleSetName"))
    return {
        "resource_group": _str(compute.get("resourceGroupName")) or "<resource-group>",
        "vm_name": _str(compute.get("name")) or "<vm-name>",
        "vmss_name": scale_set or "",
        "subscription": _str(compute.get("subscriptionId")) or "<subscription-id>",
    }
