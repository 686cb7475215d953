"""Typed, validated view of a scenario file (the schema is documented in README.md next to this file).

Parsing is strict: unknown keys are errors, so a typo in a hand-written scenario fails loudly at load
time instead of silently simulating something else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from .clouds import Cloud, cloud_named
from .roles import BUILTIN_ROLES, Permission

DEFAULT_IMDS_SERVER = "IMDS/150.870.65.1854"  # newest observed value (imds-fidelity 1.8)
IMPOSTORS = ("proxy", "docker-desktop")
FAULT_TARGETS = ("identity", "instance")

_TOP_KEYS = {
    "name", "description", "cloud", "tenant", "vm", "identities", "permissions_page_size",
    "permissions_forbidden", "extra_resources", "imds_server", "limits", "faults", "impostor",
    "token", "demo",
}
_DEMO_KEYS = {"client_id", "resources", "actions", "scope"}


@dataclass(frozen=True)
class RoleAssignment:
    role: str
    scope: str
    permission: Permission


@dataclass(frozen=True)
class Identity:
    kind: str  # "system" or "user"
    name: str
    client_id: str  # = JWT appid
    principal_id: str  # = JWT oid/sub, ARM principalId, IMDS object_id selector
    resource_id: str  # ARM id with ARM's canonical "resourceGroups" casing
    mirid: str  # xms_mirid claim: same id with lowercase "resourcegroups" (imds-fidelity 3.2)
    role_assignments: tuple[RoleAssignment, ...] = ()


@dataclass(frozen=True)
class Vm:
    subscription_id: str
    resource_group: str
    name: str
    vm_id: str
    location: str
    os_type: str
    vm_size: str
    zone: str
    vm_scale_set_name: str
    admin_username: str
    private_ip: str
    subnet_address: str
    subnet_prefix: str
    mac_address: str
    tags: tuple[tuple[str, str], ...]
    compute_overrides: Mapping[str, Any]

    @property
    def resource_id(self) -> str:
        return arm_id(self.subscription_id, self.resource_group, "Microsoft.Compute/virtualMachines", self.name)

    @property
    def scale_set_id(self) -> str:
        if not self.vm_scale_set_name:
            return ""
        return arm_id(
            self.subscription_id, self.resource_group, "Microsoft.Compute/virtualMachineScaleSets",
            self.vm_scale_set_name,
        )


@dataclass(frozen=True)
class Step:
    """One scripted answer. status None means "answer normally"."""

    status: Optional[int] = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0


OK_STEP = Step()


@dataclass(frozen=True)
class Fault:
    delay_seconds: float = 0.0
    hang: bool = False
    sequence: tuple[Step, ...] = ()
    then: Step = OK_STEP


NO_FAULT = Fault()


@dataclass(frozen=True)
class World:
    name: str
    cloud: Cloud
    tenant_id: str
    tenant_name: str
    tenant_created: str
    vm: Vm
    system: Optional[Identity]
    users: tuple[Identity, ...]
    permissions_page_size: Optional[int]
    permissions_forbidden: bool
    extra_resources: tuple[str, ...]
    imds_server: str
    identity_max_concurrent: Optional[int]
    faults: Mapping[str, Fault]
    impostor: Optional[str]
    xms_az_rid: bool

    @property
    def identities(self) -> tuple[Identity, ...]:
        return ((self.system,) if self.system else ()) + self.users

    def identity_by_principal(self, principal_id: str) -> Optional[Identity]:
        for ident in self.identities:
            if ident.principal_id.lower() == principal_id.lower():
                return ident
        return None

    def fault(self, target: str) -> Fault:
        return self.faults.get(target, NO_FAULT)


def arm_id(subscription: str, resource_group: str, rtype: str, name: str, rg_segment: str = "resourceGroups") -> str:
    return f"/subscriptions/{subscription}/{rg_segment}/{resource_group}/providers/{rtype}/{name}"


def fake_guid(seed: str) -> str:
    # Deterministic per scenario so reruns and docs stay stable; the 51a0 group marks it as simulated.
    raw = uuid.uuid5(uuid.NAMESPACE_URL, "midoctor-sim:" + seed).hex
    return f"{raw[:8]}-51a0-4000-8000-{raw[20:32]}"


# --- parsing helpers --------------------------------------------------------------------------


def _obj(raw: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected an object")
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")
    return raw


def _str(raw: Mapping[str, Any], key: str, default: str, where: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{where}.{key}: expected a string")
    return value


def _num(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{where}.{key}: expected a non-negative number")
    return float(value)


def _opt_int(raw: Mapping[str, Any], key: str, where: str) -> Optional[int]:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{where}.{key}: expected a positive integer or null")
    return value


def _bool(raw: Mapping[str, Any], key: str, default: bool, where: str) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{where}.{key}: expected true or false")
    return value


# --- sections ---------------------------------------------------------------------------------

_VM_KEYS = {
    "subscription_id", "resource_group", "name", "vm_id", "location", "os_type", "vm_size", "zone",
    "vm_scale_set_name", "admin_username", "private_ip", "subnet_address", "subnet_prefix",
    "mac_address", "tags", "compute_overrides",
}


def _parse_vm(raw: Any, seed: str) -> Vm:
    where = "vm"
    vm = _obj(raw, where, _VM_KEYS)
    tags = vm.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise ValueError("vm.tags: expected an object of string values")
    overrides = vm.get("compute_overrides", {})
    if not isinstance(overrides, dict):
        raise ValueError("vm.compute_overrides: expected an object")
    return Vm(
        subscription_id=_str(vm, "subscription_id", fake_guid(seed + "/subscription"), where),
        resource_group=_str(vm, "resource_group", "rg-midoctor-sim", where),
        name=_str(vm, "name", "vm-midoctor-sim", where),
        vm_id=_str(vm, "vm_id", fake_guid(seed + "/vmId"), where),
        location=_str(vm, "location", "eastus", where),
        os_type=_str(vm, "os_type", "Linux", where),
        vm_size=_str(vm, "vm_size", "Standard_B2s", where),
        zone=_str(vm, "zone", "", where),
        vm_scale_set_name=_str(vm, "vm_scale_set_name", "", where),
        admin_username=_str(vm, "admin_username", "azureuser", where),
        private_ip=_str(vm, "private_ip", "10.0.0.4", where),
        subnet_address=_str(vm, "subnet_address", "10.0.0.0", where),
        subnet_prefix=_str(vm, "subnet_prefix", "24", where),
        mac_address=_str(vm, "mac_address", "000D3A5C1A04", where),
        tags=tuple(tags.items()),
        compute_overrides=overrides,
    )


def _parse_assignments(raw: Any, where: str) -> tuple[RoleAssignment, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"{where}: expected a list")
    out = []
    for i, item in enumerate(raw):
        here = f"{where}[{i}]"
        entry = _obj(item, here, {"role", "scope", "permissions"})
        role = _str(entry, "role", "", here)
        scope = _str(entry, "scope", "", here)
        if not scope.startswith("/"):
            raise ValueError(f"{here}.scope: expected an ARM scope starting with '/'")
        if "permissions" in entry:
            permission = Permission.from_json(_obj(entry["permissions"], here + ".permissions",
                                                   {"actions", "notActions", "dataActions", "notDataActions"}),
                                              here + ".permissions")
        elif role in BUILTIN_ROLES:
            permission = BUILTIN_ROLES[role]
        else:
            raise ValueError(
                f"{here}: role {role!r} is not built in ({', '.join(sorted(BUILTIN_ROLES))}); "
                "give an inline 'permissions' block"
            )
        out.append(RoleAssignment(role=role or "Custom", scope=scope, permission=permission))
    return tuple(out)


def _parse_system(raw: Any, vm: Vm, seed: str) -> Optional[Identity]:
    if raw is None:
        return None
    where = "identities.system_assigned"
    ident = _obj(raw, where, {"client_id", "principal_id", "role_assignments"})
    return Identity(
        kind="system",
        name=vm.name,
        client_id=_str(ident, "client_id", fake_guid(seed + "/system/client"), where),
        principal_id=_str(ident, "principal_id", fake_guid(seed + "/system/principal"), where),
        resource_id=vm.resource_id,
        mirid=arm_id(vm.subscription_id, vm.resource_group, "Microsoft.Compute/virtualMachines", vm.name,
                     rg_segment="resourcegroups"),
        role_assignments=_parse_assignments(ident.get("role_assignments"), where + ".role_assignments"),
    )


def _parse_user(raw: Any, index: int, vm: Vm, seed: str) -> Identity:
    where = f"identities.user_assigned[{index}]"
    ident = _obj(raw, where, {"name", "resource_group", "subscription_id", "client_id", "principal_id",
                              "role_assignments"})
    name = _str(ident, "name", f"id-midoctor-sim-{index + 1}", where)
    rg = _str(ident, "resource_group", vm.resource_group, where)
    sub = _str(ident, "subscription_id", vm.subscription_id, where)
    rtype = "Microsoft.ManagedIdentity/userAssignedIdentities"
    return Identity(
        kind="user",
        name=name,
        client_id=_str(ident, "client_id", fake_guid(f"{seed}/user/{name}/client"), where),
        principal_id=_str(ident, "principal_id", fake_guid(f"{seed}/user/{name}/principal"), where),
        resource_id=arm_id(sub, rg, rtype, name),
        mirid=arm_id(sub, rg, rtype, name, rg_segment="resourcegroups"),
        role_assignments=_parse_assignments(ident.get("role_assignments"), where + ".role_assignments"),
    )


def _parse_step(raw: Any, where: str) -> Step:
    if raw == "ok":
        return OK_STEP
    step = _obj(raw, where, {"status", "body", "headers", "delay_seconds"})
    status = step.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"{where}.status: expected an HTTP status code (or use the string \"ok\")")
    headers = step.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError(f"{where}.headers: expected an object of string values")
    body = step.get("body")
    if body is not None and not isinstance(body, (str, dict, list)):
        raise ValueError(f"{where}.body: expected a string (sent as-is) or JSON object/array")
    return Step(status=status, body=body, headers=headers, delay_seconds=_num(step, "delay_seconds", where))


def _parse_fault(raw: Any, where: str) -> Fault:
    fault = _obj(raw, where, {"delay_seconds", "hang", "sequence", "then"})
    sequence = fault.get("sequence", [])
    if not isinstance(sequence, list):
        raise ValueError(f"{where}.sequence: expected a list")
    return Fault(
        delay_seconds=_num(fault, "delay_seconds", where),
        hang=_bool(fault, "hang", False, where),
        sequence=tuple(_parse_step(s, f"{where}.sequence[{i}]") for i, s in enumerate(sequence)),
        then=_parse_step(fault.get("then", "ok"), where + ".then"),
    )


def _parse_identities(raw: Any, vm: Vm, seed: str) -> tuple[Optional[Identity], tuple[Identity, ...]]:
    block = _obj(raw, "identities", {"system_assigned", "user_assigned"})
    users_raw = block.get("user_assigned", [])
    if not isinstance(users_raw, list):
        raise ValueError("identities.user_assigned: expected a list")
    users = tuple(_parse_user(u, i, vm, seed) for i, u in enumerate(users_raw))
    return _parse_system(block.get("system_assigned"), vm, seed), users


def validate_demo(raw: Any) -> dict[str, Any]:
    demo = dict(_obj(raw, "demo", _DEMO_KEYS))
    for key in ("resources", "actions"):
        if key in demo and (not isinstance(demo[key], list) or not all(isinstance(v, str) for v in demo[key])):
            raise ValueError(f"demo.{key}: expected a list of strings")
    for key in ("client_id", "scope"):
        if key in demo and not isinstance(demo[key], str):
            raise ValueError(f"demo.{key}: expected a string")
    return demo


def build_world(data: Mapping[str, Any]) -> World:
    """Validate scenario data and resolve defaults. Raises ValueError with a path-like location."""
    top = _obj(data, "scenario", _TOP_KEYS)
    name = _str(top, "name", "", "scenario")
    if not name:
        raise ValueError("scenario.name: required")
    _str(top, "description", "", "scenario")
    tenant = _obj(top.get("tenant"), "tenant", {"id", "display_name", "created"})
    vm = _parse_vm(top.get("vm"), name)
    system, users = _parse_identities(top.get("identities"), vm, name)
    faults_raw = _obj(top.get("faults"), "faults", set(FAULT_TARGETS))
    limits = _obj(top.get("limits"), "limits", {"identity_max_concurrent"})
    token = _obj(top.get("token"), "token", {"xms_az_rid"})
    impostor = top.get("impostor")
    if impostor is not None and impostor not in IMPOSTORS:
        raise ValueError(f"impostor: expected null or one of {list(IMPOSTORS)}")
    extra = top.get("extra_resources", [])
    if not isinstance(extra, list) or not all(isinstance(v, str) for v in extra):
        raise ValueError("extra_resources: expected a list of strings")
    validate_demo(top.get("demo"))
    return World(
        name=name,
        cloud=cloud_named(_str(top, "cloud", "AzurePublicCloud", "scenario")),
        tenant_id=_str(tenant, "id", fake_guid(name + "/tenant"), "tenant"),
        tenant_name=_str(tenant, "display_name", "Contoso", "tenant"),
        tenant_created=_str(tenant, "created", "1589910443", "tenant"),
        vm=vm,
        system=system,
        users=users,
        permissions_page_size=_opt_int(top, "permissions_page_size", "scenario"),
        permissions_forbidden=_bool(top, "permissions_forbidden", False, "scenario"),
        extra_resources=tuple(extra),
        imds_server=_str(top, "imds_server", DEFAULT_IMDS_SERVER, "scenario"),
        identity_max_concurrent=_opt_int(limits, "identity_max_concurrent", "limits"),
        faults={k: _parse_fault(v, f"faults.{k}") for k, v in faults_raw.items()},
        impostor=impostor,
        xms_az_rid=_bool(token, "xms_az_rid", True, "token"),
    )
