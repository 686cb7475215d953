"""JWT-shaped managed-identity access tokens (unsigned: the signature is random bytes).

Shape follows the decoded live tokens in imds-fidelity.md 3.1/3.2; timing rules from 2.2:
iat = nbf, back-dated a few minutes; exp - iat = 86700; expires_in = exp - now; ext_expires_in 86399.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional

from .model import Identity, World, arm_id

TOKEN_LIFETIME = 86700  # exp - iat in every live capture (imds-fidelity 2.2)
EXT_EXPIRES_IN = "86399"
BACKDATE_SECONDS = 420  # live nbf lay 382-596 s before the response Date (imds-fidelity 2.2)
# A fixed signing-key thumbprint, like a real tenant's current key (shape of x5t/kid in 3.1).
KEY_ID = "Mr5-SIMULATEDxKEYxIDxxxxxx0"


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _compact(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class MintedToken:
    access_token: str
    claims: dict[str, Any]
    now: int

    def response_body(self, client_id: str, resource: str) -> dict[str, str]:
        # Every value a string, keys alphabetical, no refresh_token: live captures (imds-fidelity 2.2).
        exp = self.claims["exp"]
        return {
            "access_token": self.access_token,
            "client_id": client_id,
            "expires_in": str(exp - self.now),
            "expires_on": str(exp),
            "ext_expires_in": EXT_EXPIRES_IN,
            "not_before": str(self.claims["nbf"]),
            "resource": resource,
            "token_type": "Bearer",
        }


def _rh(tenant_id: str) -> str:
    # Opaque internal claim; real values are "0.A" + base64url of binary ids + "." (imds-fidelity 3.1).
    try:
        tenant_bytes = uuid.UUID(tenant_id).bytes_le
    except ValueError:
        tenant_bytes = hashlib.sha256(tenant_id.encode()).digest()[:16]
    return "0.A" + b64url(b"\x1a\x00" + tenant_bytes + hashlib.sha256(b"arm").digest()[:16] + b"\x1a\x00\x00") + "."


def mint(world: World, identity: Identity, resource: str, now: Optional[float] = None) -> MintedToken:
    moment = int(time.time() if now is None else now)
    issued = moment - BACKDATE_SECONDS
    issuer = world.cloud.issuer(world.tenant_id)
    # Claim order as in the decoded live tokens (imds-fidelity 3.1/3.2).
    claims: dict[str, Any] = {
        "aud": resource,
        "iss": issuer,
        "iat": issued,
        "nbf": issued,
        "exp": issued + TOKEN_LIFETIME,
        "aio": base64.b64encode(os.urandom(22)).decode("ascii"),
        "appid": identity.client_id,
        "appidacr": "2",
        "idp": issuer,
        "idtyp": "app",
        "oid": identity.principal_id,
        "rh": _rh(world.tenant_id),
        "sub": identity.principal_id,
        "tid": world.tenant_id,
        "uti": b64url(os.urandom(16)),
        "ver": "1.0",
    }
    if world.xms_az_rid:
        # Newer tokens name the compute resource too (imds-fidelity 3.4); lowercase segment like xms_mirid.
        claims["xms_az_rid"] = identity_host_mirid(world)
    claims["xms_mirid"] = identity.mirid
    claims["xms_tcdt"] = world.tenant_created
    header = {"typ": "JWT", "alg": "RS256", "x5t": KEY_ID, "kid": KEY_ID}
    token = ".".join([b64url(_compact(header)), b64url(_compact(claims)), b64url(os.urandom(256))])
    return MintedToken(access_token=token, claims=claims, now=moment)


def identity_host_mirid(world: World) -> str:
    vm = world.vm
    return arm_id(vm.subscription_id, vm.resource_group, "Microsoft.Compute/virtualMachines", vm.name,
                  rg_segment="resourcegroups")


def decode_claims(token: str) -> Optional[dict[str, Any]]:
    """Payload of a JWT-shaped string, or None if it is not one. No signature check, by design."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None
