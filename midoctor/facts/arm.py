"""ARM calls made with the identity's own token, through the configured proxy like the SDK's own ARM calls.

Only what midoctor needs: the identity's effective permissions at a scope (paged via ``nextLink``) and the
VM or scale-set resource (its ``identity`` block lists the attached identities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

import httpx

from midoctor.facts.http import Observation, request
from midoctor.redact import Secret, redact_url, scrub_text

PERMISSIONS_API_VERSION = "2022-04-01"
COMPUTE_API_VERSION = "2024-07-01"
MAX_PAGES = 20
ARM_TIMEOUT_S = 5.0


@dataclass
class ArmPage:
    observations: List[Observation] = field(default_factory=list)
    items: List[Dict[str, Any]] = field(default_factory=list)
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    complete: bool = False
    problem: Optional[str] = None  # why the listing is not complete, in words

    @property
    def final(self) -> Observation:
        return self.observations[-1]

    @property
    def status(self) -> Optional[int]:
        return self.final.status if self.observations else None

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"requests": [o.to_evidence() for o in self.observations[:5]]}
        if len(self.observations) > 5:
            out["more_requests"] = len(self.observations) - 5
        if self.error_code or self.error_message:
            out["arm_error"] = {"code": self.error_code, "message": self.error_message}
        if self.problem:
            out["problem"] = self.problem
        return out


def arm_error(body: Any) -> Dict[str, Optional[str]]:
    """ARM's ``{"error": {"code", "message"}}`` envelope, tolerating any other shape."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        return {"code": _text(err.get("code")), "message": _text(err.get("message"))}
    return {"code": None, "message": None}


def _text(value: Any, limit: int = 1000) -> Optional[str]:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit]


class ArmClient:
    def __init__(self, base_url: str, environ: Mapping[str, str]) -> None:
        self.base_url = base_url.rstrip("/")
        # ARM calls go through the proxy the application would use (unlike IMDS calls).
        proxy = _proxy_for(self.base_url, environ)
        self.proxy_used = proxy
        self.setup_error: Optional[str] = None
        self._client: Optional[httpx.Client] = None
        try:
            self._client = httpx.Client(
                trust_env=False,
                proxy=proxy,
                follow_redirects=False,
                timeout=httpx.Timeout(ARM_TIMEOUT_S),
                # Certificates are verified for ARM over HTTPS; a plain-HTTP endpoint (the simulator) needs no
                # CA bundle loaded.
                verify=self.base_url.lower().startswith("https:"),
            )
        except Exception as exc:  # noqa: BLE001 - an unusable proxy setting is a finding, not a crash
            self.setup_error = f"cannot use proxy {redact_url(proxy or '')}: {scrub_text(str(exc))[:200]}"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _get(self, url: str, bearer: Secret, params: Optional[Dict[str, str]] = None) -> Observation:
        if self._client is None:
            return Observation(method="GET", url=redact_url(url), error="bad-proxy",
                               error_detail=self.setup_error or "no HTTP client")
        if not self._same_origin(url):
            # A scope or resource id (partly user- or metadata-controlled) must never send the token elsewhere.
            return Observation(method="GET", url=redact_url(url), error="refused-origin",
                               error_detail=f"not sent: the URL leaves the ARM endpoint {self.base_url}")
        headers = {"Authorization": "Bearer " + bearer.reveal(), "Accept": "application/json"}
        return request(self._client, "GET", url, params=params, headers=headers, deadline_s=ARM_TIMEOUT_S + 1)

    def get_resource(self, resource_id: str, bearer: Secret, api_version: str = COMPUTE_API_VERSION) -> ArmPage:
        page = ArmPage()
        obs = self._get(self.base_url + resource_id, bearer, {"api-version": api_version})
        page.observations.append(obs)
        _note_error(page, obs)
        if obs.status == 200 and isinstance(obs.json, dict):
            page.items.append(obs.json)
            page.complete = True
        return page

    def permissions(self, scope: str, bearer: Secret) -> ArmPage:
        """Every page of ``{scope}/providers/Microsoft.Authorization/permissions``."""
        page = ArmPage()
        url: Optional[str] = f"{self.base_url}{scope.rstrip('/')}/providers/Microsoft.Authorization/permissions"
        params: Optional[Dict[str, str]] = {"api-version": PERMISSIONS_API_VERSION}
        for _ in range(MAX_PAGES):
            assert url is not None
            obs = self._get(url, bearer, params)
            page.observations.append(obs)
            if obs.status != 200 or not isinstance(obs.json, dict):
                _note_error(page, obs)
                return page
            value = obs.json.get("value")
            if not isinstance(value, list):
                page.problem = "the permissions response has no 'value' list"
                return page
            page.items.extend(item for item in value if isinstance(item, dict))
            next_link = obs.json.get("nextLink")
            if not next_link:
                page.complete = True
                return page
            if not isinstance(next_link, str) or not self._same_origin(next_link):
                # A token must never be sent to a host other than the ARM endpoint it was meant for.
                page.problem = "nextLink points outside the ARM endpoint; not followed"
                return page
            url, params = next_link, None
        page.problem = f"more than {MAX_PAGES} pages of permissions; stopped reading"
        return page

    def _same_origin(self, url: str) -> bool:
        try:
            ours, theirs = urlsplit(self.base_url), urlsplit(url)
            return (ours.scheme, ours.netloc.lower()) == (theirs.scheme, theirs.netloc.lower()) and \
                "@" not in theirs.netloc
        except ValueError:
            return False


def _note_error(page: ArmPage, obs: Observation) -> None:
    if obs.status is None:
        page.problem = f"no answer from ARM: {obs.error} ({obs.error_detail})"
    elif obs.status != 200:
        err = arm_error(obs.json)
        page.error_code, page.error_message = err["code"], err["message"]
        if not page.error_code:
            page.problem = f"ARM answered {obs.status} without an ARM error body"
    elif not isinstance(obs.json, dict):
        page.problem = f"ARM answered 200 with a body that is not a JSON object ({obs.json_error})"


def _proxy_for(url: str, environ: Mapping[str, str]) -> Optional[str]:
    """The proxy the application's HTTP stack would use for ``url`` (httpx/urllib semantics)."""
    from urllib.request import proxy_bypass_environment

    scheme = urlsplit(url).scheme
    lower = {k.lower(): v for k, v in environ.items() if k.lower().endswith("_proxy") and v}
    proxy = (lower.get(f"{scheme}_proxy") or lower.get("all_proxy") or "").strip()
    if not proxy:
        return None
    if "://" not in proxy:
        proxy = "http://" + proxy  # what requests and urllib assume for "host:port"
    host = urlsplit(url).hostname or ""
    if proxy_bypass_environment(host, {"no": lower.get("no_proxy", "")}):
        return None
    return proxy
