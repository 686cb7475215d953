"""Which identities are attached to this VM (or its scale set), read from ARM with the identity's own token.

IMDS only says which identity answered a token request; there is no IMDS endpoint that lists the
attached identities (reference: failure-catalog section 1), so ARM is the only source, and it needs
``Microsoft.Compute/virtualMachines/read`` (or the scale-set equivalent) for the identity itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from midoctor.facts.imds import TokenResult, text_field


@dataclass
class UserAssigned:
    resource_id: str
    client_id: Optional[str]
    principal_id: Optional[str]

    @property
    def name(self) -> str:
        return self.resource_id.rstrip("/").rsplit("/", 1)[-1]

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "resource_id": self.resource_id, "client_id": self.client_id,
                "principal_id": self.principal_id}


@dataclass
class Attached:
    readable: bool
    reason: str = ""  # why the list could not be read
    resource_id: Optional[str] = None
    identity_type: Optional[str] = None
    system_principal_id: Optional[str] = None
    user_assigned: List[UserAssigned] = field(default_factory=list)
    evidence: Dict[str, Any] = field(default_factory=dict)

    @property
    def has_system(self) -> bool:
        return "systemassigned" in (self.identity_type or "").replace(" ", "").lower()

    def to_dict(self) -> Dict[str, Any]:
        if not self.readable:
            return {"readable": False, "reason": self.reason, **self.evidence}
        return {"readable": True, "resource_id": self.resource_id, "type": self.identity_type,
                "system_assigned_principal_id": self.system_principal_id,
                "user_assigned": [u.to_dict() for u in self.user_assigned]}


def identity_host_resource_id(compute: Optional[Dict[str, Any]]) -> Optional[str]:
    """The ARM resource whose ``identity`` applies: the VM, or the scale set for a uniform-mode instance."""
    resource_id = text_field(compute, "resourceId")
    sub = text_field(compute, "subscriptionId")
    group = text_field(compute, "resourceGroupName")
    name = text_field(compute, "name")
    scale_set = text_field(compute, "vmScaleSetName")
    lowered = (resource_id or "").lower()
    if resource_id and "/virtualmachinescalesets/" in lowered and "/virtualmachines/" in lowered:
        # Uniform scale set instance: identities are configured on the scale set.
        return resource_id[: lowered.index("/virtualmachines/")]
    if resource_id:
        return resource_id
    group_id = f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute"
    if sub and group and scale_set:
        return f"{group_id}/virtualMachineScaleSets/{scale_set}"
    if sub and group and name:
        return f"{group_id}/virtualMachines/{name}"
    return None


def read_attached(arm: Any, compute: Optional[Dict[str, Any]], token: Optional[TokenResult]) -> Attached:
    resource_id = identity_host_resource_id(compute)
    if resource_id is None:
        return Attached(False, "instance metadata does not name this VM's resource")
    if token is None or token.bearer is None:
        return Attached(False, "no ARM token could be obtained to read the VM resource", resource_id=resource_id)
    page = arm.get_resource(resource_id, token.bearer)
    if not page.complete:
        if page.error_code:
            reason = f"ARM answered {page.status} {page.error_code}"
            if page.status == 403:
                reason += " (the identity may not read its own VM: it lacks Microsoft.Compute/virtualMachines/read)"
        else:
            reason = page.problem or "ARM did not return the VM resource"
        return Attached(False, reason, resource_id=resource_id, evidence=page.to_evidence())
    return parse_identity_block(resource_id, page.items[0])


def parse_identity_block(resource_id: str, resource: Dict[str, Any]) -> Attached:
    identity = resource.get("identity")
    attached = Attached(True, resource_id=resource_id)
    if not isinstance(identity, dict):
        attached.identity_type = "None"
        return attached
    attached.identity_type = str(identity.get("type") or "None")
    principal = identity.get("principalId")
    attached.system_principal_id = str(principal) if principal else None
    uamis = identity.get("userAssignedIdentities")
    if isinstance(uamis, dict):
        for uami_id, details in uamis.items():
            details = details if isinstance(details, dict) else {}
            attached.user_assigned.append(UserAssigned(
                resource_id=str(uami_id),
                client_id=_opt(details.get("clientId")),
                principal_id=_opt(details.get("principalId")),
            ))
    return attached


def _opt(value: Any) -> Optional[str]:
    return str(value) if value not in (None, "") else None
