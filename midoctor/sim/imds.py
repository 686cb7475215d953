"""IMDS routes: /metadata/instance, /metadata/versions, /metadata/identity/{oauth2/token,info}.

Bodies are byte-exact where imds-fidelity.md has a VERBATIM capture (section 0 cheat sheet); everything
marked RECONSTRUCTED below is a best guess that the reference also marks as unconfirmed.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from .model import Identity, Step, World
from .request import Request
from .responses import JSON_TYPE, TEXT_TYPE, Response, compact_json, http_date, imds_response
from .tokens import mint

TOKEN_PATH = "/metadata/identity/oauth2/token"
INFO_PATH = "/metadata/identity/info"

# imds-fidelity 1.1, newest first.
API_VERSIONS = (
    "2025-04-07", "2024-07-17", "2024-03-15", "2023-11-15", "2023-07-01", "2021-12-13", "2021-11-15",
    "2021-11-01", "2021-10-01", "2021-08-01", "2021-05-01", "2021-03-01", "2021-02-01", "2021-01-01",
    "2020-12-01", "2020-10-01", "2020-09-01", "2020-07-15", "2020-06-01", "2019-11-01", "2019-08-15",
    "2019-08-01", "2019-06-04", "2019-06-01", "2019-04-30", "2019-03-11", "2019-02-01", "2018-10-01",
    "2018-04-02", "2018-02-01", "2017-12-01", "2017-10-01", "2017-08-01", "2017-04-02", "2017-03-01",
)
IDENTITY_MIN_VERSION = "2018-02-01"  # "/metadata/identity ... 2018-02-01" (imds-fidelity 1.1)

# --- exact bodies (imds-fidelity section 0) -------------------------------------------------------
# Instance endpoint errors are space-padded, unlike the compact OAuth-style identity errors (1.7).
INSTANCE_NO_METADATA = b'{ "error": "Bad request: . Required metadata header not specified" }'
# RECONSTRUCTED: behaviour documented, body modelled on the missing-header one (1.7).
INSTANCE_XFF = b'{ "error": "Bad request: . X-Forwarded-For header is not allowed" }'
# RECONSTRUCTED: docs only say duplicates "will be rejected" (1.1).
INSTANCE_DUPLICATE = b'{ "error": "Bad request: . Duplicate query parameter names are not allowed" }'
# RECONSTRUCTED: status 400 per the doc's status table (1.7), body unknown.
INSTANCE_LEAF_NEEDS_TEXT = b'{ "error": "Bad request: . Querying a leaf node requires format=text" }'
INSTANCE_BAD_FORMAT = b'{ "error": "Bad request: . Unsupported format" }'  # RECONSTRUCTED
INSTANCE_NOT_FOUND = b'{ "error": "Not found" }'  # RECONSTRUCTED (404 "element doesn't exist", 1.7)
INSTANCE_METHOD = b'{ "error": "Method not allowed" }'  # RECONSTRUCTED (405 row of the 1.7 table)
API_VERSION_ERROR = json.dumps({
    "error": "Bad request. api-version is invalid or was not specified in the request. "
             "For more information refer to aka.ms/azureimds",
    "newest-versions": list(API_VERSIONS[:3]),
}).encode("utf-8")  # wording VERBATIM (1.7); single-line spacing RECONSTRUCTED

IDENTITY_NO_METADATA = compact_json(
    {"error": "invalid_request", "error_description": "Required metadata header not specified"})
IDENTITY_NOT_FOUND = compact_json({"error": "invalid_request", "error_description": "Identity not found"})
MULTIPLE_UAMI = compact_json({
    "error": "invalid_request",
    "error_description": "Multiple user assigned identities exist, please specify the clientId / resourceId "
                         "of the identity in the token request",
})
MISSING_RESOURCE = compact_json(
    {"error": "invalid_request", "error_description": "Required query variable 'resource' is missing"})
# RECONSTRUCTED: XFF / duplicate / several-selector bodies on the identity endpoint (see F09, F28).
IDENTITY_XFF = compact_json(
    {"error": "invalid_request", "error_description": "X-Forwarded-For header is not allowed"})
IDENTITY_DUPLICATE = compact_json({
    "error": "invalid_request",
    "error_description": "The request includes a parameter more than once",
})
IDENTITY_SELECTORS = compact_json({
    "error": "invalid_request",
    "error_description": "Only one of client_id, object_id or msi_res_id can be specified",
})
# Spec placeholder bodies (2.4.7), used for unknown identity paths and non-GET verbs.
IDENTITY_NOT_FOUND_PATH = compact_json({"error": "not_found", "error_description": "Not found"})
IDENTITY_METHOD = compact_json({"error": "method_not_allowed", "error_description": "Not allowed"})

# Scripted-fault bodies. 429/410/500 are the reference's RECONSTRUCTED suggestions (2.4.7);
# 404 and 405 are the spec placeholders.
_IDENTITY_STATUS_BODIES = {
    400: ("invalid_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Not allowed"),
    410: ("service_unavailable", "IMDS is updating"),
    429: ("too_many_requests", "Too many requests"),
    500: ("server_error", "Server error"),
    503: ("service_unavailable", "Service unavailable"),
}
_INSTANCE_STATUS_TEXT = {
    404: "Not found", 410: "IMDS is updating", 429: "Too many requests", 500: "Internal server error",
    503: "Service unavailable",
}

SELECTORS = ("client_id", "object_id", "msi_res_id", "mi_res_id")


def is_identity_path(path: str) -> bool:
    return path.lower().startswith("/metadata/identity")


def kind_of(path: str) -> str:
    """Fault target and error-body flavour for a /metadata path."""
    return "identity" if is_identity_path(path) else "instance"


def _send(world: World, status: int, body: bytes, kind: str, content_type: str = JSON_TYPE) -> Response:
    return imds_response(status, body, world.imds_server, content_type, request_id=(kind == "instance"))


# --- request validation ---------------------------------------------------------------------------


def validate(req: Request, world: World, needs_version: bool, min_version: str = "") -> Optional[Response]:
    """Header/query checks every IMDS endpoint performs before doing any work."""
    kind = kind_of(req.path)
    if req.method != "GET":
        return _send(world, 405, IDENTITY_METHOD if kind == "identity" else INSTANCE_METHOD, kind)
    # "This value must be set to "true", in all lower case" (imds-fidelity 2.1).
    if req.header("Metadata") != "true":
        return _send(world, 400, IDENTITY_NO_METADATA if kind == "identity" else INSTANCE_NO_METADATA, kind)
    if req.has_header("X-Forwarded-For"):
        return _send(world, 400, IDENTITY_XFF if kind == "identity" else INSTANCE_XFF, kind)
    if req.duplicate_param():
        return _send(world, 400, IDENTITY_DUPLICATE if kind == "identity" else INSTANCE_DUPLICATE, kind)
    if needs_version:
        version = req.param("api-version")
        if version not in API_VERSIONS or (min_version and version < min_version):
            # Cheat sheet: the same newest-versions body for "any versioned endpoint". (2.4.5 guesses a
            # different body for the identity endpoint; both are unconfirmed.)
            return _send(world, 400, API_VERSION_ERROR, kind)
    return None


def scripted(step: Step, world: World, kind: str) -> Response:
    """Answer for a scripted fault step with a non-ok status."""
    status = step.status or 500
    if isinstance(step.body, str):
        body, ctype = step.body.encode("utf-8"), TEXT_TYPE
    elif step.body is not None:
        body, ctype = compact_json(step.body), JSON_TYPE
    else:
        body, ctype = default_fault_body(status, kind), JSON_TYPE
    extra = [("Retry-After", "1")] if status == 429 else []
    resp = imds_response(status, body, world.imds_server, ctype, request_id=(kind == "instance"), extra=extra)
    for name, value in step.headers.items():
        _set_header(resp, name, value)
    return resp


def default_fault_body(status: int, kind: str) -> bytes:
    if kind == "identity":
        default = ("invalid_request", "Bad request") if status < 500 else ("server_error", "Server error")
        error, description = _IDENTITY_STATUS_BODIES.get(status, default)
        return compact_json({"error": error, "error_description": description})
    text = _INSTANCE_STATUS_TEXT.get(status, "Bad request" if status < 500 else "Internal server error")
    return ('{ "error": ' + json.dumps(text) + " }").encode("utf-8")


def _set_header(resp: Response, name: str, value: str) -> None:
    for i, (key, _) in enumerate(resp.headers):
        if key.lower() == name.lower():
            resp.headers[i] = (key, value)
            return
    resp.headers.insert(len(resp.headers) - 2, (name, value))  # keep Date, Content-Length last


def too_many_requests(world: World) -> Response:
    return scripted(Step(status=429), world, "identity")


# --- /metadata/versions ----------------------------------------------------------------------------


def handle_versions(req: Request, world: World) -> Response:
    # Full list RECONSTRUCTED (oldest first, like the doc fragment in 1.9).
    body = compact_json({"apiVersions": sorted(API_VERSIONS)})
    return _send(world, 200, body, "instance")


# --- /metadata/instance ------------------------------------------------------------------------------

# When each top-level compute key appeared (imds-fidelity 1.1 table) so old api-versions see old shapes.
_COMPUTE_SINCE = {
    "azEnvironment": "2018-10-01", "customData": "2019-02-01", "evictionPolicy": "2020-12-01",
    "isHostCompatibilityLayerVm": "2020-06-01", "licenseType": "2020-09-01", "osProfile": "2020-07-15",
    "placementGroupId": "2017-08-01", "plan": "2018-04-02", "priority": "2020-12-01", "provider": "2018-10-01",
    "publicKeys": "2018-04-02", "resourceGroupName": "2017-08-01", "resourceId": "2019-03-11",
    "securityProfile": "2020-06-01", "storageProfile": "2019-06-01", "subscriptionId": "2017-08-01",
    "tags": "2017-08-01", "tagsList": "2019-06-04", "userData": "2021-01-01", "vmScaleSetName": "2017-12-01",
    "zone": "2017-12-01", "extendedLocation": "2021-03-01", "virtualMachineScaleSet": "2021-03-01",
    "platformSubFaultDomain": "2021-10-01", "additionalCapabilities": "2021-11-01", "host": "2021-11-15",
    "hostGroup": "2021-11-15", "physicalZone": "2023-11-15",
}

_LINUX_KEY = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQDSIMULATEDxKEYxFORxMIDOCTORxDEMOxONLYxNOTxAxREALxKEYxxxxxxx\r\n"
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/ generated-by-azure\r\n"
)


def _image(world: World) -> dict[str, str]:
    if world.vm.os_type.lower() == "windows":
        return {"offer": "WindowsServer", "publisher": "MicrosoftWindowsServer",
                "sku": "2022-datacenter-azure-edition", "version": "20348.2227.240104"}
    return {"offer": "0001-com-ubuntu-server-jammy", "publisher": "canonical", "sku": "22_04-lts-gen2",
            "version": "22.04.202401050"}


def _storage_profile(world: World, version: str) -> dict[str, Any]:
    vm, image = world.vm, _image(world)
    disk = f"{vm.name}_OsDisk_1_{uuid.uuid5(uuid.NAMESPACE_URL, vm.vm_id).hex}"
    image_ref: dict[str, str] = {"id": "", "offer": image["offer"], "publisher": image["publisher"],
                                 "sku": image["sku"], "version": "latest"}
    if version >= "2023-07-01":
        image_ref.update(communityGalleryImageId="", sharedGalleryImageId="", exactVersion=image["version"])
    profile: dict[str, Any] = {
        "dataDisks": [],
        "imageReference": image_ref,
        "osDisk": {
            "caching": "ReadWrite", "createOption": "FromImage", "diffDiskSettings": {"option": ""},
            "diskSizeGB": "30", "encryptionSettings": {"enabled": "false"}, "image": {"uri": ""},
            "managedDisk": {
                "id": f"/subscriptions/{vm.subscription_id}/resourceGroups/{vm.resource_group}"
                      f"/providers/Microsoft.Compute/disks/{disk}",
                "storageAccountType": "Premium_LRS",
            },
            "name": disk, "osType": vm.os_type, "vhd": {"uri": ""}, "writeAcceleratorEnabled": "false",
        },
    }
    if version >= "2021-02-01":
        profile["resourceDisk"] = {"size": "8192"}
    return profile


def compute_document(world: World, version: str) -> dict[str, Any]:
    """`compute` shaped like live capture #1 (imds-fidelity 1.2): every primitive a string."""
    vm, image = world.vm, _image(world)
    linux = vm.os_type.lower() != "windows"
    security: dict[str, str] = {"secureBootEnabled": "true", "virtualTpmEnabled": "true"}
    if version >= "2021-11-01":
        security["encryptionAtHost"] = "false"
    if version >= "2021-12-13":
        security["securityType"] = "TrustedLaunch"
    compute: dict[str, Any] = {
        "additionalCapabilities": {"hibernationEnabled": "false"},
        "azEnvironment": world.cloud.az_environment,
        "customData": "",
        "evictionPolicy": "",
        "extendedLocation": {"name": "", "type": ""},
        "host": {"id": ""},
        "hostGroup": {"id": ""},
        "isHostCompatibilityLayerVm": "false",
        "licenseType": "",
        "location": vm.location,
        "name": vm.name,
        "offer": image["offer"],
        "osProfile": {"adminUsername": vm.admin_username, "computerName": vm.name,
                      "disablePasswordAuthentication": "true" if linux else ""},
        "osType": vm.os_type,
        "physicalZone": "",
        "placementGroupId": "",
        "plan": {"name": "", "product": "", "publisher": ""},
        "platformFaultDomain": "0",
        "platformSubFaultDomain": "",
        "platformUpdateDomain": "0",
        "priority": "",
        "provider": "Microsoft.Compute",
        "publicKeys": [{"keyData": _LINUX_KEY, "path": f"/home/{vm.admin_username}/.ssh/authorized_keys"}]
        if linux else [],
        "publisher": image["publisher"],
        "resourceGroupName": vm.resource_group,
        "resourceId": vm.resource_id,
        "securityProfile": security,
        "sku": image["sku"],
        "storageProfile": _storage_profile(world, version),
        "subscriptionId": vm.subscription_id,
        "tags": ";".join(f"{k}:{v}" for k, v in vm.tags),
        "tagsList": [{"name": k, "value": v} for k, v in vm.tags],
        "userData": "",
        "version": image["version"],
        "virtualMachineScaleSet": {"id": vm.scale_set_id},
        "vmId": vm.vm_id,
        "vmScaleSetName": vm.vm_scale_set_name,
        "vmSize": vm.vm_size,
        "zone": vm.zone,
    }
    _deep_merge(compute, vm.compute_overrides)
    for key, since in _COMPUTE_SINCE.items():
        if version < since:
            compute.pop(key, None)
    # Live captures emit keys alphabetically (imds-fidelity 1.3 observations).
    return dict(sorted(compute.items()))


def network_document(world: World) -> dict[str, Any]:
    vm = world.vm
    return {"interface": [{
        "ipv4": {
            "ipAddress": [{"privateIpAddress": vm.private_ip, "publicIpAddress": ""}],
            "subnet": [{"address": vm.subnet_address, "prefix": vm.subnet_prefix}],
        },
        "ipv6": {"ipAddress": []},
        "macAddress": vm.mac_address,
    }]}


def instance_document(world: World, version: str) -> dict[str, Any]:
    return {"compute": compute_document(world, version), "network": network_document(world)}


def _deep_merge(base: dict[str, Any], overrides: Any) -> None:
    for key, value in dict(overrides).items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


_MISSING = object()


def _walk(node: Any, segments: list[str]) -> Any:
    for segment in segments:
        if isinstance(node, dict):
            if segment in node:
                node = node[segment]
                continue
            folded = {k.lower(): k for k in node}
            if segment.lower() not in folded:
                return _MISSING
            node = node[folded[segment.lower()]]
        elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
            node = node[int(segment)]
        else:
            return _MISSING
    return node


def _as_text(node: Any) -> str:
    if isinstance(node, dict):
        # RECONSTRUCTED (imds-fidelity 1.6): one child per line, containers with a trailing "/".
        return "\n".join(k + ("/" if isinstance(v, (dict, list)) else "") for k, v in node.items())
    if isinstance(node, list):
        return "\n".join(f"{i}/" if isinstance(v, (dict, list)) else str(i) for i, v in enumerate(node))
    return str(node)


def handle_instance(req: Request, world: World) -> Response:
    version = req.param("api-version") or ""
    segments = [s for s in req.path.split("/")[3:] if s]  # after "", "metadata", "instance"
    node = _walk(instance_document(world, version), segments)
    if node is _MISSING:
        return _send(world, 404, INSTANCE_NOT_FOUND, "instance")
    fmt = (req.param("format") or "json").lower()
    leaf = not isinstance(node, (dict, list))
    if fmt == "text":
        return _send(world, 200, _as_text(node).encode("utf-8"), "instance", TEXT_TYPE)
    if fmt != "json":
        return _send(world, 400, INSTANCE_BAD_FORMAT, "instance")
    if leaf:
        # "When filtering to a leaf node, format=json doesn't work" (imds-fidelity 1.1).
        return _send(world, 400, INSTANCE_LEAF_NEEDS_TEXT, "instance")
    return _send(world, 200, compact_json(node), "instance")


# --- /metadata/identity ---------------------------------------------------------------------------


def _select_identity(req: Request, world: World) -> tuple[Optional[Identity], Optional[bytes]]:
    """IMDS identity selection (imds-fidelity 2.1, 2.4.2-2.4.4; failure-catalog section 1)."""
    # An empty selector (client_id=) counts as absent: real clients never send one (RECONSTRUCTED).
    given = [(name, req.param(name)) for name in SELECTORS if req.param(name)]
    if len(given) > 1:
        return None, IDENTITY_SELECTORS
    if given:
        name, value = given[0]
        for ident in world.identities:
            if _selector_matches(ident, name, value or ""):
                return ident, None
        # Unknown client_id is VERBATIM "Identity not found"; object_id / msi_res_id RECONSTRUCTED (2.4.3).
        return None, IDENTITY_NOT_FOUND
    if world.system:
        return world.system, None
    if len(world.users) == 1:
        return world.users[0], None
    return None, (MULTIPLE_UAMI if world.users else IDENTITY_NOT_FOUND)


def _selector_matches(ident: Identity, name: str, value: str) -> bool:
    if name == "client_id":
        return ident.client_id.lower() == value.lower()
    if name == "object_id":
        return ident.principal_id.lower() == value.lower()
    # msi_res_id (documented) and mi_res_id (also observed by IMDS, 2.1) name user-assigned identities.
    return ident.kind == "user" and ident.resource_id.lower() == value.rstrip("/").lower()


def invalid_resource_body(world: World, resource: str) -> bytes:
    """Entra's AADSTS500011 passed through by IMDS (imds-fidelity 2.4.6), fresh ids and timestamp."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS500011: The resource principal named {resource} was not found in the tenant named "
        f"{world.tenant_name}. This can happen if the application has not been installed by the administrator "
        "of the tenant or consented to by any user in the tenant. You might have sent your authentication "
        f"request to the wrong tenant.\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
    )
    return compact_json({
        "error": "invalid_resource",
        "error_description": description,
        "error_codes": [500011],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"{world.cloud.error_uri_host}/error?code=500011",
    })


def handle_token(req: Request, world: World, on_issue: Callable[[str], None]) -> Response:
    resource = req.param("resource")
    if not resource:
        return _send(world, 400, MISSING_RESOURCE, "identity")
    identity, error = _select_identity(req, world)
    if identity is None:
        return _send(world, 400, error or IDENTITY_NOT_FOUND, "identity")
    # Entra is asked only after IMDS picked an identity, so identity errors win over resource errors.
    if not world.cloud.knows_resource(resource, world.extra_resources):
        return _send(world, 400, invalid_resource_body(world, resource), "identity")
    minted = mint(world, identity, resource)
    on_issue(minted.access_token)
    return _send(world, 200, compact_json(minted.response_body(identity.client_id, resource)), "identity")


def handle_info(req: Request, world: World) -> Response:
    # Spec-only shape (imds-fidelity 2.5); the no-system-identity error is RECONSTRUCTED there.
    if world.system is None:
        return _send(world, 400, IDENTITY_NOT_FOUND, "identity")
    return _send(world, 200, compact_json({"tenantId": world.tenant_id}), "identity")


def _route(path: str) -> tuple[str, bool, str]:
    """(route name, needs api-version, minimum api-version) for a lower-cased /metadata path."""
    if path == TOKEN_PATH:
        return "token", True, IDENTITY_MIN_VERSION
    if path == INFO_PATH:
        return "info", True, IDENTITY_MIN_VERSION
    if path == "/metadata/versions":
        # Unversioned; whether it needs the Metadata header is undocumented, assume yes (1.9).
        return "versions", False, ""
    if path == "/metadata/instance" or path.startswith("/metadata/instance/"):
        return "instance", True, ""
    return "unknown", False, ""


def _normalized(path: str) -> str:
    return path.rstrip("/").lower() or "/"


def is_token_path(path: str) -> bool:
    return _normalized(path) == TOKEN_PATH


def preflight(req: Request, world: World) -> Optional[Response]:
    """The checks IMDS makes before doing any work; scripted faults only see requests that pass."""
    _, needs_version, min_version = _route(_normalized(req.path))
    return validate(req, world, needs_version, min_version)


def handle_metadata(req: Request, world: World, on_issue: Callable[[str], None]) -> Response:
    """Answer a /metadata request that already passed preflight() and fault injection."""
    route, _, _ = _route(_normalized(req.path))
    if route == "token":
        return handle_token(req, world, on_issue)
    if route == "info":
        return handle_info(req, world)
    if route == "versions":
        return handle_versions(req, world)
    if route == "instance":
        return handle_instance(req, world)
    # Unknown categories (attested, scheduledevents, IMDSv2 getPlatformMetadata...) -> 404 so clients fall
    # back, as the reference suggests for the v2 paths (2.6).
    kind = kind_of(req.path)
    return _send(world, 404, IDENTITY_NOT_FOUND_PATH if kind == "identity" else INSTANCE_NOT_FOUND, kind)


def not_found(world: World) -> Response:
    """Paths outside /metadata and /subscriptions (RECONSTRUCTED: IMDS-flavoured 404)."""
    return _send(world, 404, INSTANCE_NOT_FOUND, "instance")


def head_response(world: World) -> Response:
    """HEAD is answered by the IIS front end, not the JSON handler (imds-fidelity 1.7, VERBATIM headers)."""
    return Response(status=400, body=b"", headers=[
        ("Content-Length", "323"), ("Content-Type", "text/xml; charset=utf-8"),
        ("Server", "Microsoft-IIS/10.0"), ("Date", http_date()),
    ])
