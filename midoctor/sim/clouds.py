"""Per-cloud facts the simulator needs: which resources "Entra" knows and which audiences ARM accepts.

Sources: failure-catalog.md section 1.1 (sovereign cloud endpoints), imds-fidelity.md section 4.4 (ARM's
allowed-audience lists, VERBATIM for public and US Gov), section 3.2 (v1 issuer form).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    """What the simulated Entra ID / ARM of one sovereign cloud accepts."""

    az_environment: str
    # ARM's allowed audiences in the order ARM lists them in its 401 message (imds-fidelity 4.4).
    arm_audiences: tuple[str, ...]
    # Resources the simulated Entra tenant can mint tokens for; anything else -> AADSTS500011.
    known_resources: tuple[str, ...]
    # v1 token issuer prefix; the tenant id and a trailing slash are appended (imds-fidelity 3.2).
    sts_prefix: str
    login_host: str
    # ESTS error_uri host in AADSTS bodies. Public cloud value is VERBATIM (imds-fidelity 2.4.6);
    # the sovereign ones are RECONSTRUCTED from the login hosts.
    error_uri_host: str

    def knows_resource(self, resource: str, extra: tuple[str, ...] = ()) -> bool:
        # Entra matches identifier URIs case-insensitively (RECONSTRUCTED: no capture either way).
        wanted = resource.lower()
        return any(wanted == known.lower() for known in self.known_resources + extra)

    def is_arm_audience(self, aud: str) -> bool:
        # ARM says the audience "should exactly match" one of its list (imds-fidelity 4.4).
        return aud in self.arm_audiences

    def issuer(self, tenant_id: str) -> str:
        return f"{self.sts_prefix}{tenant_id}/"


def _both_slash_forms(*uris: str) -> tuple[str, ...]:
    out: list[str] = []
    for uri in uris:
        out.extend([uri, uri + "/"])
    return tuple(out)


PUBLIC = Cloud(
    az_environment="AzurePublicCloud",
    arm_audiences=(
        "https://management.core.windows.net/",
        "https://management.core.windows.net",
        "https://management.azure.com/",
        "https://management.azure.com",
    ),
    known_resources=_both_slash_forms(
        "https://management.azure.com",
        "https://management.core.windows.net",
        "https://storage.azure.com",
        "https://graph.microsoft.com",
        "https://database.windows.net",
    )
    + (
        # Key Vault documents the no-slash form only (failure-catalog 1, L-KV).
        "https://vault.azure.net",
        "https://ossrdbms-aad.database.windows.net",
        "https://servicebus.azure.net",
        "https://eventhubs.azure.net",
        "https://cognitiveservices.azure.com",
        "https://monitor.azure.com",
    ),
    sts_prefix="https://sts.windows.net/",
    login_host="https://login.microsoftonline.com",
    error_uri_host="https://westus2.login.microsoft.com",
)

# US Gov audience list is VERBATIM from the 2024/2025 ARM message (imds-fidelity 4.4); the data-plane
# resources are derived from failure-catalog 1.1 (UNCONFIRMED there for Gov as token audiences).
US_GOVERNMENT = Cloud(
    az_environment="AzureUSGovernmentCloud",
    arm_audiences=(
        "https://management.core.usgovcloudapi.net/",
        "https://management.core.usgovcloudapi.net",
        "https://management.usgovcloudapi.net/",
        "https://management.usgovcloudapi.net",
    ),
    known_resources=_both_slash_forms(
        "https://management.usgovcloudapi.net",
        "https://management.core.usgovcloudapi.net",
        # RECONSTRUCTED: Azure Storage uses the same audience in every cloud.
        "https://storage.azure.com",
        "https://graph.microsoft.us",
        "https://database.usgovcloudapi.net",
    )
    + (
        "https://vault.usgovcloudapi.net",
        "https://ossrdbms-aad.database.usgovcloudapi.net",
    ),
    # RECONSTRUCTED: Gov v1 tokens are issued by the Gov login host, not sts.windows.net.
    sts_prefix="https://login.microsoftonline.us/",
    login_host="https://login.microsoftonline.us",
    error_uri_host="https://login.microsoftonline.us",
)

# RECONSTRUCTED from failure-catalog 1.1 (no ARM 401 capture for China).
CHINA = Cloud(
    az_environment="AzureChinaCloud",
    arm_audiences=(
        "https://management.core.chinacloudapi.cn/",
        "https://management.core.chinacloudapi.cn",
        "https://management.chinacloudapi.cn/",
        "https://management.chinacloudapi.cn",
    ),
    known_resources=_both_slash_forms(
        "https://management.chinacloudapi.cn",
        "https://management.core.chinacloudapi.cn",
        "https://storage.azure.com",
        "https://microsoftgraph.chinacloudapi.cn",
        "https://database.chinacloudapi.cn",
    )
    + (
        "https://vault.azure.cn",
        "https://ossrdbms-aad.database.chinacloudapi.cn",
    ),
    sts_prefix="https://sts.chinacloudapi.cn/",
    login_host="https://login.chinacloudapi.cn",
    error_uri_host="https://login.chinacloudapi.cn",
)

CLOUDS: dict[str, Cloud] = {c.az_environment: c for c in (PUBLIC, US_GOVERNMENT, CHINA)}


def cloud_named(az_environment: str) -> Cloud:
    # IMDS itself has been seen emitting both "AzurePublicCloud" and "AZUREPUBLICCLOUD" (imds-fidelity 1.3).
    for name, cloud in CLOUDS.items():
        if name.lower() == az_environment.lower():
            return cloud
    raise ValueError(
        f"unknown cloud {az_environment!r}; expected one of: {', '.join(sorted(CLOUDS))}"
    )
