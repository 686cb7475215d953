"""Run configuration: flag > environment > default, resolved once and then read-only."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

DEFAULT_IMDS_URL = "http://169.254.169.254"


class ConfigError(ValueError):
    """A usage or configuration problem: exit code 2, one line for the user."""


@dataclass(frozen=True)
class Selector:
    """Which managed identity the application asks for; at most one of the three is set."""

    client_id: Optional[str] = None
    object_id: Optional[str] = None
    msi_res_id: Optional[str] = None
    source: str = ""  # where it came from: "--client-id", "AZURE_CLIENT_ID", ...

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.client_id, self.object_id, self.msi_res_id)) > 1:
            raise ConfigError("--client-id, --object-id and --msi-res-id are mutually exclusive (as in IMDS)")

    @property
    def is_set(self) -> bool:
        return any((self.client_id, self.object_id, self.msi_res_id))

    def query(self) -> Dict[str, str]:
        """The IMDS token query parameter for this selector (IMDS spells the resource id ``msi_res_id``)."""
        if self.client_id:
            return {"client_id": self.client_id}
        if self.object_id:
            return {"object_id": self.object_id}
        if self.msi_res_id:
            return {"msi_res_id": self.msi_res_id}
        return {}

    def describe(self) -> str:
        if self.client_id:
            return f"client_id {self.client_id}"
        if self.object_id:
            return f"object_id {self.object_id}"
        if self.msi_res_id:
            return f"msi_res_id {self.msi_res_id}"
        return "no identity selector"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "client_id": self.client_id,
            "object_id": self.object_id,
            "msi_res_id": self.msi_res_id,
            "source": self.source or None,
        }


NO_SELECTOR = Selector()


@dataclass(frozen=True)
class Config:
    imds_url: str = DEFAULT_IMDS_URL
    arm_url: Optional[str] = None  # None: the ARM endpoint of the cloud the VM reports
    selector: Selector = NO_SELECTOR
    resources: Tuple[str, ...] = ()  # empty: ARM of the detected cloud
    scope: Optional[str] = None  # None: the VM's resource group
    actions: Tuple[str, ...] = ()
    timeout: float = 20.0  # the whole run
    imds_connect_timeout: float = 1.0
    imds_read_timeout: float = 3.0
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """The non-secret settings, for the report header."""
        return {
            "imds_url": self.imds_url,
            "arm_url": self.arm_url,  # validated: no credentials, query or fragment
            "selector": self.selector.to_dict(),
            "resources": list(self.resources),
            "scope": self.scope,
            "actions": list(self.actions),
            "timeout_s": self.timeout,
        }


def selector_from(
    client_id: Optional[str], object_id: Optional[str], msi_res_id: Optional[str], environ: Mapping[str, str]
) -> Selector:
    """Explicit flags win; otherwise ``AZURE_CLIENT_ID``, exactly as the Azure SDKs read it."""
    if sum(bool(v) for v in (client_id, object_id, msi_res_id)) > 1:
        raise ConfigError("--client-id, --object-id and --msi-res-id are mutually exclusive (as in IMDS)")
    if client_id:
        return Selector(client_id=client_id.strip(), source="--client-id")
    if object_id:
        return Selector(object_id=object_id.strip(), source="--object-id")
    if msi_res_id:
        return Selector(msi_res_id=msi_res_id.strip(), source="--msi-res-id")
    env_client_id = (environ.get("AZURE_CLIENT_ID") or "").strip()
    if env_client_id:
        return Selector(client_id=env_client_id, source="AZURE_CLIENT_ID")
    return NO_SELECTOR


def validate_url(value: str, option: str) -> str:
    from urllib.parse import urlsplit

    value = value.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises for a port out of range or not a number
        del port
    except ValueError as exc:
        raise ConfigError(f"{option}: {value!r} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{option} must be an http(s) URL, got {value!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{option} must be a plain base URL (no credentials, query or fragment)")
    return value


_SCOPE = re.compile(r"^/subscriptions/[^/@?#\\\s]+(/[^/@?#\\\s]+)*$", re.I)


def validate_scope(value: str) -> str:
    """An ARM scope is a path below /subscriptions/…; anything else could steer the token elsewhere."""
    value = value.strip().rstrip("/")
    if not _SCOPE.match(value):
        raise ConfigError(f"--scope must be an ARM resource id such as /subscriptions/<id>/resourceGroups/<rg>, "
                          f"got {value!r}")
    return value
