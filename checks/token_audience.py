"""token-audience: is the token for the audience the target service accepts?

Runbook step: for each resource the application asks for, check its form (a scope is not a resource, a
trailing slash matters to some services, the cloud must be the VM's), request the token, and compare the
``aud`` claim of the token actually issued with what the service expects.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from midoctor.context import Context
from midoctor.facts import clouds
from midoctor.identity import Outcome, outcome_of
from midoctor.model import Cause, CheckSpec, Command, Condition, Fix, Result, Status
from midoctor.parallel import parallel_map

SERVICES_DOC = ("https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/"
                "managed-identities-status")
SCOPES_DOC = "https://learn.microsoft.com/entra/identity-platform/scopes-oidc#trailing-slash-and-default"

# Which spellings each service accepts as `aud`. ARM's list is confirmed by its own 401 body (reference F26:
# both hosts, with and without the slash). Key Vault documents https://vault.azure.net without a slash
# (reference 1: "with no trailing slash"); whether it rejects the slashed form is UNCONFIRMED, so it warns.
# Storage, Graph and SQL slash handling is UNCONFIRMED: no check is made beyond the exact `aud` echo.
STRICT_NO_SLASH = frozenset({"keyvault"})

SPEC = CheckSpec(
    id="token-audience",
    title="Tokens are for the right audience",
    order=50,
    timeout=10.0,
    requires=(("uami-ambiguity", Condition.OK),),
    explanation=(
        "For each --resource (default: Azure Resource Manager of the VM's cloud) this checks the string itself "
        "(a '/.default' scope passed where IMDS wants a resource, a trailing slash a service does not accept, a "
        "resource of another cloud than the VM's azEnvironment), then requests the token as the application "
        "would and compares the 'aud' claim with what the service expects. AADSTS500011 from Entra means the "
        "resource principal does not exist in the tenant: a typo, a host-specific URL or the wrong cloud."
    ),
    causes=(
        Cause("audience-ok", Status.PASS, "Every requested resource yields a token with the expected audience."),
        Cause("scope-as-resource", Status.WARN,
              "A scope ('…/.default') was given where IMDS expects a resource.",
              Fix("Pass the resource to IMDS, or the scope to the SDK's get_token() (which strips '/.default'). "
                  "Use exactly: {suggested}", (), (SCOPES_DOC,))),
        Cause("trailing-slash", Status.WARN,
              "The resource's trailing slash differs from the form the service documents.",
              Fix("Request the documented form exactly: {suggested}", (), (SCOPES_DOC,))),
        Cause("wrong-cloud", Status.FAIL,
              "The resource belongs to another Azure cloud than the one this VM runs in.",
              Fix("Use the resource of the VM's cloud ({vm_cloud}): {suggested}. Cloud-specific URIs are listed by "
                  "`az cloud show`.", (Command("az", "az cloud show --name {vm_cloud_az} --query endpoints"),),
                  (SERVICES_DOC,))),
        Cause("resource-not-found", Status.FAIL,
              "Entra has no resource principal with that name in the identity's tenant (AADSTS500011).",
              Fix("Use the service's documented resource URI (not a host-specific URL such as "
                  "https://<name>.vault.azure.net), in the VM's cloud. Closest known: {suggested}", (),
                  (SERVICES_DOC,))),
        Cause("audience-mismatch", Status.WARN,
              "The token's 'aud' claim differs from the resource that was requested.",
              Fix("Services compare 'aud' exactly. Request the audience the service expects: {suggested}", (),
                  (SCOPES_DOC,))),
        Cause("token-request-failed", Status.FAIL,
              "The token request for the resource failed for another reason; see the evidence.",
              Fix("Read the error in the evidence; the earlier checks name transport and identity problems.")),
    ),
)


@dataclass
class Finding:
    resource: str
    cause: str
    note: str
    suggested: Optional[str] = None
    evidence: Dict[str, Any] = field(default_factory=dict)
    status: Optional[Status] = None  # when it differs from the cause's usual status

    @property
    def effective_status(self) -> Status:
        return self.status or SPEC.cause(self.cause).status


def evaluate(ctx: Context) -> Result:
    vm_cloud = ctx.cloud()
    # In parallel: the IMDS client caps identity requests below IMDS's limit of 5 concurrent per VM.
    findings = parallel_map(lambda resource: _examine(ctx, resource, vm_cloud), list(ctx.resources()), workers=4)
    worst = max(findings, key=lambda f: (f.effective_status.rank, f.cause != "audience-ok"))
    evidence = {
        "vm_cloud": vm_cloud.name,
        "resources": [{"resource": f.resource, "verdict": f.cause, "note": f.note, "suggested": f.suggested,
                       **f.evidence} for f in findings],
    }
    values = {"suggested": worst.suggested or "<the service's documented resource URI>", "vm_cloud": vm_cloud.name,
              "vm_cloud_az": vm_cloud.az_name}
    if worst.cause == "audience-ok":
        summary = "; ".join(f.note for f in findings)
    else:
        summary = f"{worst.resource}: {worst.note}"
        others = [f for f in findings if f is not worst and f.cause != "audience-ok"]
        if others:
            summary += f" (and {len(others)} more resource(s) with findings)"
    return SPEC.result(worst.cause, summary, evidence, status=worst.effective_status, **values)


def _examine(ctx: Context, given: str, vm_cloud: clouds.Cloud) -> Finding:
    resource = given.strip()
    scope_form = resource.endswith("/.default")
    if scope_form:
        # azure-identity turns "X/.default" into resource "X"; "https://x//.default" into "https://x/".
        resource = resource[: -len("/.default")]
    token = ctx.token(resource, ctx.config.selector)
    outcome = outcome_of(token)
    evidence = {"token_request": token.to_evidence()}
    resource_cloud = clouds.cloud_of_resource(resource)
    if resource_cloud is not None and resource_cloud is not vm_cloud:
        suggested = clouds.equivalent_audience(resource, vm_cloud)
        entra = f" Entra answered: {_aadsts(token.error_description)}" if outcome is Outcome.INVALID_RESOURCE else ""
        return Finding(given, "wrong-cloud",
                       f"belongs to {resource_cloud.name} but this VM runs in {vm_cloud.name}.{entra}", suggested,
                       evidence)
    if outcome is Outcome.INVALID_RESOURCE and _other_slash_form_known(resource, vm_cloud):
        other = resource.rstrip("/") if resource.endswith("/") else resource + "/"
        return Finding(given, "trailing-slash",
                       f"Entra rejected this form ({_aadsts(token.error_description)}); the service is known as "
                       f"{other!r}.", other, evidence, status=Status.FAIL)
    if outcome is Outcome.INVALID_RESOURCE:
        return Finding(given, "resource-not-found",
                       f"Entra rejected it: {token.error} {_aadsts(token.error_description)}".strip() + ".",
                       _closest(resource, vm_cloud), evidence)
    if outcome is not Outcome.TOKEN:
        return Finding(given, "token-request-failed", f"the token request failed ({outcome.value}).", None, evidence)

    aud = str(token.claims.get("aud", ""))
    evidence["aud"] = aud
    if scope_form:
        return Finding(given, "scope-as-resource",
                       f"is a scope; IMDS wants the resource {resource!r} (a token for it was issued, aud {aud!r}).",
                       resource, evidence)
    if aud != resource:
        return Finding(given, "audience-mismatch", f"the token's aud is {aud!r}, not the requested {resource!r}.",
                       resource, evidence)
    service = clouds.service_of(resource)
    if service and service[1] in STRICT_NO_SLASH and resource.endswith("/"):
        return Finding(given, "trailing-slash",
                       f"the service documents {resource.rstrip('/')!r} without the trailing slash.",
                       resource.rstrip("/"), evidence)
    return Finding(given, "audience-ok", f"{resource} → token with aud {aud!r}", None, evidence)


def _other_slash_form_known(resource: str, cloud: clouds.Cloud) -> bool:
    known = set(cloud.known_audiences) | set(cloud.arm_audiences)
    other = resource.rstrip("/") if resource.endswith("/") else resource + "/"
    return resource not in known and other in known


def _aadsts(description: Optional[str]) -> str:
    """The first line of an Entra error, without its trace and correlation ids."""
    if not description:
        return ""
    return description.replace("\\r\\n", "\n").splitlines()[0][:240]


def _closest(resource: str, cloud: clouds.Cloud) -> Optional[str]:
    candidates: List[str] = list(cloud.known_audiences) + list(cloud.arm_audiences)
    lowered = resource.lower()
    host_specific = [c for c in candidates if _host_suffix(c) and lowered.split("/")[2:3]
                     and lowered.split("/")[2].endswith("." + _host_suffix(c))]
    if host_specific:  # https://myvault.vault.azure.net -> https://vault.azure.net
        return host_specific[0]
    match = difflib.get_close_matches(resource, candidates, n=1, cutoff=0.6)
    return match[0] if match else None


def _host_suffix(audience: str) -> str:
    parts = audience.split("/")
    return parts[2].lower() if len(parts) > 2 else ""
