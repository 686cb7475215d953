"""IMDS probes: instance metadata and identity tokens, direct, bounded, retried only where IMDS says so.

Facts observe and never judge: they return what IMDS (or whatever answered) said; checks decide.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from midoctor.config import Selector
from midoctor.facts.http import Observation, direct_client, request
from midoctor.redact import Secret, token_summary

INSTANCE_API_VERSION = "2021-02-01"
TOKEN_API_VERSION = "2018-02-01"  # what azure-identity and MSAL Python send (reference: failure-catalog 1)

# IMDS guidance: retry 410 (updating, back within 70 s), 429 (throttled), 404 (updating) and 5xx.
# midoctor retries briefly and reports the sequence; it is a diagnosis, not a client that must succeed.
RETRY_STATUSES = frozenset({404, 410, 429} | set(range(500, 600)))
MAX_ATTEMPTS = 3
BACKOFF_S = (0.25, 0.5)
RETRY_AFTER_CAP_S = 1.0

# IMDS allows 5 concurrent identity requests per VM; stay below it so midoctor never causes a 429.
IDENTITY_CONCURRENCY = 4


def is_imds_server(obs: Observation) -> bool:
    """Real IMDS answers carry ``Server: IMDS/<build>``; a proxy or look-alike does not."""
    return obs.server.startswith("IMDS/")


@dataclass
class Exchange:
    """A logical IMDS request and every attempt made for it (retries included)."""

    attempts: List[Observation] = field(default_factory=list)

    @property
    def final(self) -> Observation:
        return self.attempts[-1]

    @property
    def sequence(self) -> List[str]:
        return [str(a.status) if a.status is not None else (a.error or "?") for a in self.attempts]

    @property
    def retried(self) -> bool:
        return len(self.attempts) > 1

    def to_evidence(self) -> Dict[str, Any]:
        out = self.final.to_evidence()
        if self.retried:
            out["sequence"] = self.sequence
        return out


@dataclass
class TokenResult:
    """The outcome of one identity token request, with the token itself already reduced to a summary."""

    resource: str
    selector: Selector
    exchange: Exchange
    token: Dict[str, Any] = field(default_factory=dict)  # token_summary(): never the token
    fields: Dict[str, Any] = field(default_factory=dict)  # non-secret response fields
    error: Optional[str] = None
    error_description: Optional[str] = None
    error_codes: Tuple[int, ...] = ()
    bearer: Optional[Secret] = field(default=None, repr=False, compare=False)  # for ARM calls only

    @property
    def ok(self) -> bool:
        return self.exchange.final.status == 200 and bool(self.token.get("present"))

    @property
    def claims(self) -> Dict[str, Any]:
        return dict(self.token.get("claims") or {})

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "resource": self.resource,
            "selector": self.selector.describe(),
            "response": self.exchange.to_evidence(),
        }
        if self.token.get("present"):
            out["token"] = self.token
        if self.fields:
            out["fields"] = self.fields
        if self.error or self.error_description:
            out["error"] = self.error
            out["error_description"] = self.error_description
        return out


_SAFE_TOKEN_FIELDS = ("client_id", "object_id", "msi_res_id", "expires_in", "expires_on", "not_before", "resource",
                      "token_type")


class ImdsClient:
    """Talks to IMDS directly. Thread-safe; shared by all checks of a run."""

    def __init__(self, base_url: str, connect_timeout: float, read_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.read_timeout = read_timeout
        self._client = direct_client(connect_timeout, read_timeout, tls=self.base_url.lower().startswith("https:"))
        self._identity_slots = threading.BoundedSemaphore(IDENTITY_CONCURRENCY)
        self.request_count = 0
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: Dict[str, str], headers: Dict[str, str]) -> Exchange:
        exchange = Exchange()
        for attempt in range(MAX_ATTEMPTS):
            with self._count_lock:
                self.request_count += 1
            obs = request(self._client, "GET", self.base_url + path, params=params, headers=headers,
                          deadline_s=self.read_timeout + 1.0)
            exchange.attempts.append(obs)
            if obs.status not in RETRY_STATUSES or attempt == MAX_ATTEMPTS - 1:
                break
            time.sleep(_retry_delay(obs, attempt))
        return exchange

    def instance(self) -> Exchange:
        return self._get("/metadata/instance", {"api-version": INSTANCE_API_VERSION}, {"Metadata": "true"})

    def token(self, resource: str, selector: Selector) -> TokenResult:
        params = {"api-version": TOKEN_API_VERSION, "resource": resource, **selector.query()}
        with self._identity_slots:
            exchange = self._get("/metadata/identity/oauth2/token", params, {"Metadata": "true"})
        return parse_token_response(resource, selector, exchange)


def _retry_delay(obs: Observation, attempt: int) -> float:
    retry_after = obs.headers.get("retry-after", "")
    try:
        seconds = float(retry_after)
    except ValueError:
        seconds = float("nan")
    if not math.isfinite(seconds):  # absent, an HTTP date, or "nan"/"inf" from a broken server
        return BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def parse_token_response(resource: str, selector: Selector, exchange: Exchange) -> TokenResult:
    """Reduce a token response to non-secret facts; tolerate any shape a broken server may send."""
    result = TokenResult(resource=resource, selector=selector, exchange=exchange)
    body = exchange.final.json
    if not isinstance(body, dict):
        return result
    if exchange.final.status == 200:
        access_token = body.get("access_token")
        result.token = token_summary(access_token)
        if isinstance(access_token, str) and access_token:
            result.bearer = Secret(access_token)
        result.fields = {k: _short(body[k]) for k in _SAFE_TOKEN_FIELDS if k in body}
    error = body.get("error")
    if isinstance(error, dict):  # ARM-style {"error": {"code":..., "message":...}}
        result.error = _short(error.get("code"))
        result.error_description = _short(error.get("message"))
    elif error is not None:
        result.error = _short(error)
        result.error_description = _short(body.get("error_description"))
    codes = body.get("error_codes")
    if isinstance(codes, list):
        result.error_codes = tuple(c for c in codes if isinstance(c, int) and not isinstance(c, bool))[:10]
    return result


def _short(value: Any, limit: int = 1000) -> Optional[str]:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compute_section(exchange: Exchange) -> Optional[Dict[str, Any]]:
    """The ``compute`` object of a genuine instance-metadata answer, or None."""
    final = exchange.final
    if final.status != 200 or not isinstance(final.json, dict):
        return None
    compute = final.json.get("compute")
    return compute if isinstance(compute, dict) else None


def text_field(compute: Optional[Dict[str, Any]], key: str, limit: int = 512) -> Optional[str]:
    """A compute field as text; IMDS sends strings, a broken server may not."""
    if not compute:
        return None
    value = compute.get(key)
    if value is None or isinstance(value, (dict, list)):
        return None
    text = str(value).strip()
    if not text:
        return None
    return text if len(text) <= limit else text[:limit] + "…"
