"""Redaction at the point evidence is recorded: what is dropped here can never reach a report."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any, Dict, Mapping, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-identity-header", "secret", "cookie", "set-cookie"}
)
SECRET_QUERY_KEYS = frozenset(
    {"sig", "se", "sp", "sv", "sr", "st", "skoid", "sktid", "skt", "ske", "sks", "skv", "client_secret",
     "assertion", "client_assertion", "code", "access_token", "refresh_token", "password", "token"}
)
_SECRET_ENV_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|KEY|CONNECTION_STRING|CREDENTIAL|SAS", re.I)
_ALWAYS_SECRET_ENV = frozenset({"IDENTITY_HEADER", "MSI_SECRET", "AZURE_FEDERATED_TOKEN_FILE_CONTENT"})
MASK = "***"

# Claims that identify but do not authorize; everything else in a token stays out of reports.
SAFE_CLAIMS = ("aud", "iss", "tid", "oid", "appid", "azp", "xms_mirid", "idtyp", "iat", "nbf", "exp", "ver", "sub")


class Secret:
    """Holds a credential for the one call that needs it; prints as ``***`` everywhere else."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not serialisable")


_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)?[^\s/@:'\"()<>]+:[^\s/@'\"()<>]*@(?=[\w.\[-])")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_SECRET_FIELD = re.compile(r"(?i)([\"']?(?:access_token|refresh_token|client_secret|assertion|password|secret)[\"']?"
                           r"\s*[:=]\s*[\"']?)([^\"'\s,&}]+)")


def scrub_text(text: str) -> str:
    """Mask credentials inside free text: exception messages and body excerpts can quote a proxy URL with
    its password, a bearer token or a token response, and they come from places redaction never saw."""
    if not text:
        return text
    text = _USERINFO.sub(lambda m: (m.group(1) or "") + MASK + "@", text)
    text = _JWT.sub(MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + " " + MASK, text)
    return _SECRET_FIELD.sub(lambda m: m.group(1) + MASK, text)


def redact_url(url: str) -> str:
    """Drop userinfo credentials and SAS-style query secrets from a URL, keep the rest readable."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if k.lower() in SECRET_QUERY_KEYS else v) for k, v in pairs], safe="/:*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_headers(headers: Mapping[str, str]) -> Dict[str, str]:
    return {k: (MASK if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def env_name_is_secret(name: str) -> bool:
    return name.upper() in _ALWAYS_SECRET_ENV or bool(_SECRET_ENV_NAME.search(name))


def redact_env_value(name: str, value: str) -> str:
    """Secret-looking variables are shown as ``set``; URLs lose their credentials."""
    if env_name_is_secret(name):
        return "set" if value else "set (empty)"
    if "://" in value:
        return ",".join(redact_url(part) if "://" in part else part for part in value.split(","))
    return value


def _b64url_json(segment: str) -> Optional[Dict[str, Any]]:
    try:
        padded = segment + "=" * (-len(segment) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, TypeError):
        return None
    return value if isinstance(value, dict) else None


def token_summary(token: Any) -> Dict[str, Any]:
    """What a report may say about an access token: its size, a fingerprint and the non-secret claims."""
    if not isinstance(token, str) or not token:
        return {"present": False}
    summary: Dict[str, Any] = {
        "present": True,
        "length": len(token),
        "sha256_prefix": hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:12],
    }
    parts = token.split(".")
    claims = _b64url_json(parts[1]) if len(parts) == 3 else None
    if claims is None:
        summary["claims_error"] = "not a decodable JWT"
        return summary
    summary["claims"] = {k: _claim_value(claims[k]) for k in SAFE_CLAIMS if k in claims}
    return summary


def _claim_value(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = str(value)
    return text if len(text) <= 512 else text[:512] + "…"
