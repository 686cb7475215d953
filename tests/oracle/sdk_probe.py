"""Ask the real Azure SDKs for a managed-identity token and print what happened as one JSON line.

Run as a subprocess so that each probe has its own environment (AZURE_POD_IDENTITY_AUTHORITY_HOST points
azure-identity and MSAL at the simulator) and its own hard timeout.
usage: sdk_probe.py azure-identity|msal RESOURCE [CLIENT_ID]
"""

from __future__ import annotations

import json
import sys
import time


def azure_identity(resource: str, client_id: str | None) -> str:
    from azure.identity import ManagedIdentityCredential

    credential = ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    scope = resource if resource.endswith("/.default") else resource.rstrip("/") + "/.default"
    if resource.endswith("/") and not resource.endswith("//.default"):
        scope = resource + "/.default"  # keep the trailing slash as the application asked for it
    return credential.get_token(scope).token


def msal_client(resource: str, client_id: str | None) -> str:
    import msal
    import requests

    identity = (msal.UserAssignedManagedIdentity(client_id=client_id) if client_id
                else msal.SystemAssignedManagedIdentity())
    session = requests.Session()
    session.trust_env = False
    client = msal.ManagedIdentityClient(identity, http_client=session)
    result = client.acquire_token_for_client(resource=resource)
    if "access_token" not in result:
        raise RuntimeError(f"({result.get('error')}) {result.get('error_description')}")
    return result["access_token"]


def main() -> None:
    which, resource = sys.argv[1], sys.argv[2]
    client_id = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
    started = time.monotonic()
    try:
        token = (azure_identity if which == "azure-identity" else msal_client)(resource, client_id)
        out = {"ok": True, "token_sha_prefix": __import__("hashlib").sha256(token.encode()).hexdigest()[:12]}
    except Exception as exc:  # noqa: BLE001 - the message is the observation
        out = {"ok": False, "exception": type(exc).__name__, "message": " ".join(str(exc).split())[:400]}
    out["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
