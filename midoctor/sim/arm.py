"""Simulated ARM: effective-permissions API and VM / VMSS reads, served on the same port as IMDS.

Error envelopes and messages follow imds-fidelity.md 4.3 (403) and 4.4 (401). Resource bodies (VM JSON)
are RECONSTRUCTED from the public ARM resource shape; only the `identity` block matters to midoctor.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any, Callable, Optional

from .model import Identity, World
from .request import Request
from .responses import Response, arm_error, arm_response
from .roles import is_granted, scope_covers
from .tokens import decode_claims

PERMISSIONS_SUFFIX = "/providers/microsoft.authorization/permissions"
_COMPUTE_RE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourcegroups/(?P<rg>[^/]+)/providers/microsoft\.compute/"
    r"(?P<type>virtualmachines|virtualmachinescalesets)/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
_READ_ACTIONS = {
    "virtualmachines": ("Microsoft.Compute/virtualMachines", "Microsoft.Compute/virtualMachines/read"),
    "virtualmachinescalesets": (
        "Microsoft.Compute/virtualMachineScaleSets", "Microsoft.Compute/virtualMachineScaleSets/read"),
}


def is_arm_path(path: str) -> bool:
    return path.lower().startswith("/subscriptions/") or path.lower() == "/subscriptions"


# --- authentication (imds-fidelity 4.4) ------------------------------------------------------------


def _challenge(world: World, description: str) -> list[tuple[str, str]]:
    # Header shape VERBATIM (4.4); the authorization_uri host per cloud is RECONSTRUCTED for non-public.
    public = world.cloud.az_environment == "AzurePublicCloud"
    host = "https://login.windows.net" if public else world.cloud.login_host
    value = (f'Bearer authorization_uri="{host}/{world.tenant_id}", error="invalid_token", '
             f'error_description="{description}"')
    return [("WWW-Authenticate", value)]


def authenticate(
    req: Request, world: World, issued: Callable[[str], bool]
) -> tuple[Optional[dict[str, Any]], Optional[Response]]:
    """Claims of the caller's token, or the 401 ARM would send."""
    header = req.header("Authorization")
    if not header:
        # Body RECONSTRUCTED from the message text; challenge header VERBATIM (4.4).
        return None, arm_error(
            401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.",
            _challenge(world, "The authentication failed because of missing 'Authorization' header."))
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None, arm_error(  # RECONSTRUCTED
            401, "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            _challenge(world, "The authentication failed because of invalid 'Authorization' header."))
    claims = decode_claims(token)
    if claims is None or not issued(token):
        # Only tokens this simulator minted are accepted (no signature check, so this stands in for one).
        return None, arm_error(401, "InvalidAuthenticationToken", "The access token is invalid.",
                               _challenge(world, "The access token is invalid."))
    expiry = claims.get("exp")
    if isinstance(expiry, int) and expiry < time.time():
        return None, arm_error(401, "ExpiredAuthenticationToken", _expired_message(expiry))
    aud = claims.get("aud")
    if not isinstance(aud, str) or not world.cloud.is_arm_audience(aud):
        allowed = ",".join(f"'{a}'" for a in world.cloud.arm_audiences)
        return None, arm_error(
            401, "InvalidAuthenticationTokenAudience",
            f"The access token has been obtained for wrong audience or resource '{aud}'. "
            f"It should exactly match with one of the allowed audiences {allowed}.",
            _challenge(world, "The access token has been obtained for wrong audience or resource."))
    return claims, None


def _expired_message(expiry: int) -> str:
    def fmt(ts: float) -> str:
        # .NET's default DateTime format, as in the VERBATIM message (4.4).
        t = time.gmtime(ts)
        hour = t.tm_hour % 12 or 12
        half = "PM" if t.tm_hour >= 12 else "AM"
        return f"{t.tm_mon}/{t.tm_mday}/{t.tm_year} {hour}:{t.tm_min:02d}:{t.tm_sec:02d} {half}"

    return (f"The access token expiry UTC time '{fmt(expiry)}' is earlier than current UTC time "
            f"'{fmt(time.time())}'.")


def authorization_failed(oid: str, action: str, scope: str) -> Response:
    # Current wording (imds-fidelity 4.3); for service principals both quoted values are the object id.
    return arm_error(
        403, "AuthorizationFailed",
        f"The client '{oid}' with object id '{oid}' does not have authorization to perform action "
        f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
        "please refresh your credentials.")


# --- routes ------------------------------------------------------------------------------------------


def handle_arm(req: Request, world: World, issued: Callable[[str], bool]) -> Response:
    claims, rejected = authenticate(req, world, issued)
    if rejected is not None:
        return rejected
    assert claims is not None
    if req.method != "GET":
        return arm_error(405, "MethodNotAllowed",  # RECONSTRUCTED
                         f"The requested resource does not support http method '{req.method}'.")
    if not req.param("api-version"):
        return arm_error(400, "MissingApiVersionParameter",  # RECONSTRUCTED from ARM's usual text
                         "The api-version query parameter (?api-version=) is required for all requests.")
    oid = str(claims.get("oid", ""))
    identity = world.identity_by_principal(oid)
    path = req.path.rstrip("/")
    if path.lower().endswith(PERMISSIONS_SUFFIX):
        return handle_permissions(req, world, identity, oid, path[: -len(PERMISSIONS_SUFFIX)] or "/")
    match = _COMPUTE_RE.match(path)
    if match:
        return handle_compute(world, identity, oid, path, match)
    return arm_error(404, "NotFound",  # RECONSTRUCTED: the simulator serves only the routes midoctor uses
                     f"The resource path '{req.path}' is not served by the midoctor simulator.")


def _grants(identity: Optional[Identity], scope: str) -> list[Any]:
    if identity is None:
        return []
    return [ra.permission for ra in identity.role_assignments if scope_covers(ra.scope, scope)]


def _encode_skip(offset: int) -> str:
    return base64.urlsafe_b64encode(f"midoctor-sim:{offset}".encode()).decode().rstrip("=")


def _decode_skip(token: str) -> Optional[int]:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except ValueError:
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "midoctor-sim" and number.isdigit() else None


def handle_permissions(req: Request, world: World, identity: Optional[Identity], oid: str, scope: str) -> Response:
    """GET {scope}/providers/Microsoft.Authorization/permissions (imds-fidelity 4.1)."""
    if world.permissions_forbidden:
        return authorization_failed(oid, "Microsoft.Authorization/permissions/read", scope)
    entries = [p.to_json() for p in _grants(identity, scope)]
    skip = req.param("$skiptoken")
    offset = 0
    if skip is not None:
        decoded = _decode_skip(skip)
        if decoded is None:
            return arm_error(400, "InvalidSkipToken", "The provided skip token is invalid.")  # RECONSTRUCTED
        offset = decoded
    size = world.permissions_page_size or max(len(entries), 1)
    body: dict[str, Any] = {"value": entries[offset: offset + size]}
    if offset + size < len(entries):
        version = req.param("api-version") or "2022-04-01"
        body["nextLink"] = (f"{req.base_url}{req.path.rstrip('/')}?api-version={version}"
                            f"&$skiptoken={_encode_skip(offset + size)}")
    return arm_response(200, body)


def handle_compute(world: World, identity: Optional[Identity], oid: str, path: str, match: Any) -> Response:
    rtype, action = _READ_ACTIONS[match["type"].lower()]
    if not is_granted(_grants(identity, path), action):
        return authorization_failed(oid, action, path)
    vm = world.vm
    wanted_name = vm.name if rtype.endswith("virtualMachines") else vm.vm_scale_set_name
    same = (match["sub"].lower() == vm.subscription_id.lower() and match["rg"].lower() == vm.resource_group.lower()
            and wanted_name and match["name"].lower() == wanted_name.lower())
    if not same:
        return arm_error(  # RECONSTRUCTED from ARM's ResourceNotFound wording
            404, "ResourceNotFound",
            f"The Resource '{rtype}/{match['name']}' under resource group '{match['rg']}' was not found. "
            "For more details please go to https://aka.ms/ARMResourceNotFoundFix")
    return arm_response(200, compute_resource(world, rtype))


def identity_block(world: World) -> Optional[dict[str, Any]]:
    kinds = (["SystemAssigned"] if world.system else []) + (["UserAssigned"] if world.users else [])
    if not kinds:
        return None
    block: dict[str, Any] = {"type": ", ".join(kinds)}
    if world.system:
        block["principalId"] = world.system.principal_id
        block["tenantId"] = world.tenant_id
    if world.users:
        block["userAssignedIdentities"] = {
            u.resource_id: {"principalId": u.principal_id, "clientId": u.client_id} for u in world.users
        }
    return block


def compute_resource(world: World, rtype: str) -> dict[str, Any]:
    vm = world.vm
    scale_set = rtype.endswith("virtualMachineScaleSets")
    name = vm.vm_scale_set_name if scale_set else vm.name
    resource: dict[str, Any] = {
        "name": name,
        "id": vm.scale_set_id if scale_set else vm.resource_id,
        "type": rtype,
        "location": vm.location,
        "tags": dict(vm.tags),
    }
    identity = identity_block(world)
    if identity is not None:
        resource["identity"] = identity  # ARM omits the block when no identity is enabled
    if vm.zone:
        resource["zones"] = [vm.zone]
    resource["properties"] = _scale_set_properties(world) if scale_set else _vm_properties(world)
    return resource


def _vm_properties(world: World) -> dict[str, Any]:
    vm = world.vm
    linux = vm.os_type.lower() != "windows"
    os_config = ({"linuxConfiguration": {"disablePasswordAuthentication": True, "provisionVMAgent": True}}
                 if linux else {"windowsConfiguration": {"provisionVMAgent": True, "enableAutomaticUpdates": True}})
    return {
        "vmId": vm.vm_id,
        "hardwareProfile": {"vmSize": vm.vm_size},
        "storageProfile": {
            "osDisk": {"osType": vm.os_type, "name": f"{vm.name}_OsDisk_1", "createOption": "FromImage",
                       "caching": "ReadWrite", "managedDisk": {"storageAccountType": "Premium_LRS"},
                       "deleteOption": "Delete", "diskSizeGB": 30},
            "dataDisks": [],
        },
        "osProfile": dict({"computerName": vm.name, "adminUsername": vm.admin_username, "secrets": [],
                           "allowExtensionOperations": True}, **os_config),
        "networkProfile": {"networkInterfaces": [{
            "id": f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"
                  f"/providers/Microsoft.Network/networkInterfaces/{vm.name}-nic"}]},
        "provisioningState": "Succeeded",
        "timeCreated": "2024-01-15T09:30:00.0000000+00:00",
    }


def _scale_set_properties(world: World) -> dict[str, Any]:
    return {
        "orchestrationMode": "Flexible",
        "platformFaultDomainCount": 1,
        "provisioningState": "Succeeded",
        "uniqueId": world.vm.vm_id,
        "timeCreated": "2024-01-15T09:30:00.0000000+00:00",
    }
