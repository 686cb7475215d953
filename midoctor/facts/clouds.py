"""Sovereign-cloud endpoints and audiences (reference: failure-catalog.md section 1.1).

Key Vault, Storage and Graph audiences for US Government and China are derived from the clouds' DNS
suffixes; they are UNCONFIRMED as token audiences (the reference says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Cloud:
    name: str  # IMDS azEnvironment value
    az_name: str  # `az cloud set --name`
    arm_url: str
    arm_audiences: Tuple[str, ...]
    services: Dict[str, str]  # service -> the audience to request, e.g. "keyvault" -> "https://vault.azure.net"
    host_suffixes: Tuple[str, ...]  # hosts that belong to this cloud

    @property
    def arm_resource(self) -> str:
        # azure-identity strips "/.default" from "https://management.azure.com/.default": no trailing slash.
        return self.arm_url.rstrip("/")

    @property
    def known_audiences(self) -> Tuple[str, ...]:
        return tuple(self.services.values())


PUBLIC = Cloud(
    name="AzurePublicCloud",
    az_name="AzureCloud",
    arm_url="https://management.azure.com",
    arm_audiences=("https://management.azure.com", "https://management.azure.com/",
                   "https://management.core.windows.net", "https://management.core.windows.net/"),
    services={"keyvault": "https://vault.azure.net", "storage": "https://storage.azure.com",
              "graph": "https://graph.microsoft.com", "sql": "https://database.windows.net/",
              "postgres-mysql": "https://ossrdbms-aad.database.windows.net",
              "servicebus": "https://servicebus.azure.net", "eventhubs": "https://eventhubs.azure.net",
              "cosmos": "https://cosmos.azure.com", "monitor": "https://monitor.azure.com"},
    host_suffixes=("azure.com", "azure.net", "windows.net", "microsoft.com", "microsoftonline.com"),
)

US_GOV = Cloud(
    name="AzureUSGovernmentCloud",
    az_name="AzureUSGovernment",
    arm_url="https://management.usgovcloudapi.net",
    arm_audiences=("https://management.usgovcloudapi.net", "https://management.usgovcloudapi.net/",
                   "https://management.core.usgovcloudapi.net", "https://management.core.usgovcloudapi.net/"),
    # UNCONFIRMED as token audiences: derived from DNS suffixes (reference 1.1).
    services={"keyvault": "https://vault.usgovcloudapi.net", "storage": "https://storage.azure.com",
              "graph": "https://graph.microsoft.us", "sql": "https://database.usgovcloudapi.net/"},
    host_suffixes=("usgovcloudapi.net", "microsoft.us", "microsoftonline.us", "azure.us"),
)

CHINA = Cloud(
    name="AzureChinaCloud",
    az_name="AzureChinaCloud",
    arm_url="https://management.chinacloudapi.cn",
    arm_audiences=("https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn/",
                   "https://management.core.chinacloudapi.cn", "https://management.core.chinacloudapi.cn/"),
    # UNCONFIRMED as token audiences: derived from DNS suffixes (reference 1.1).
    services={"keyvault": "https://vault.azure.cn", "storage": "https://storage.azure.com",
              "graph": "https://microsoftgraph.chinacloudapi.cn", "sql": "https://database.chinacloudapi.cn/"},
    host_suffixes=("chinacloudapi.cn", "azure.cn"),
)

CLOUDS: Dict[str, Cloud] = {c.name.lower(): c for c in (PUBLIC, US_GOV, CHINA)}
# azure-identity and az name the clouds differently from IMDS; accept every spelling.
CLOUDS.update({c.az_name.lower(): c for c in (PUBLIC, US_GOV, CHINA)})


def cloud_named(az_environment: Optional[str]) -> Optional[Cloud]:
    """IMDS reports e.g. ``AzurePublicCloud``; older captures vary in case."""
    if not az_environment:
        return None
    return CLOUDS.get(az_environment.strip().lower())


def cloud_of_resource(resource: str) -> Optional[Cloud]:
    """Which cloud a resource URI belongs to, judged by its host; None when it cannot be told."""
    host = (urlsplit(resource).hostname or "").lower()
    if not host or host == "storage.azure.com":  # one storage audience for every cloud (reference 1.1)
        return None
    for cloud in (US_GOV, CHINA, PUBLIC):
        for suffix in cloud.host_suffixes:
            if host == suffix or host.endswith("." + suffix):
                return cloud
    return None


def service_of(resource: str) -> Optional[Tuple[Cloud, str]]:
    """(cloud, service key) of a known audience, ignoring a trailing slash."""
    normalized = resource.rstrip("/").lower()
    for cloud in (PUBLIC, US_GOV, CHINA):
        if normalized in {a.rstrip("/").lower() for a in cloud.arm_audiences}:
            return cloud, "arm"
        for key, audience in cloud.services.items():
            if audience.rstrip("/").lower() == normalized:
                return cloud, key
    return None


def equivalent_audience(resource: str, target: Cloud) -> Optional[str]:
    """The same service's audience in ``target`` cloud, when the service is known there."""
    found = service_of(resource)
    if found is None:
        return None
    _, key = found
    if key == "arm":
        return target.arm_resource
    return target.services.get(key)
