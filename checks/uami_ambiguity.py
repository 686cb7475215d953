"""uami-ambiguity: will the SDK pick the identity the application meant?

Runbook step: request a token the way the application does (with its AZURE_CLIENT_ID or client_id, or with
nothing) and compare the identity that answers with the one intended and with what is attached in ARM.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from midoctor.config import NO_SELECTOR, Selector
from midoctor.context import Context
from midoctor.facts.attached import Attached
from midoctor.identity import IdentityInfo, Outcome, identity_of, outcome_of, vm_kind_and_name
from midoctor.model import Cause, CheckSpec, Command, Condition, Fix, Result, Status

UAMI_DOC = ("https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/"
            "how-to-use-vm-token#get-a-token-using-http")
SDK_DOC = "https://learn.microsoft.com/python/api/azure-identity/azure.identity.managedidentitycredential"

SELECT_ONE = Fix(
    "Tell the SDK which identity to use: set AZURE_CLIENT_ID for the process (or pass client_id= to "
    "ManagedIdentityCredential / managed_identity_client_id= to DefaultAzureCredential).",
    (Command("bash", "export AZURE_CLIENT_ID={suggested_client_id}"),
     Command("powershell", "[Environment]::SetEnvironmentVariable('AZURE_CLIENT_ID', '{suggested_client_id}', "
                           "'Machine')"),
     Command("az", "az {az_group} identity show -g {resource_group} -n {target_name} "
                   "--query userAssignedIdentities -o json")),
    (UAMI_DOC, SDK_DOC),
)

# Which property of `az identity list` a selector names: client id, principal (object) id, or resource id.
_SELECTOR_FIELD = {"client_id": "clientId", "object_id": "principalId", "msi_res_id": "id"}

SPEC = CheckSpec(
    id="uami-ambiguity",
    title="The intended identity is the one used",
    order=40,
    timeout=10.0,
    requires=(("identity-attached", Condition.OK),),
    explanation=(
        "Requests a token the way the application does: with the configured --client-id/--object-id/"
        "--msi-res-id, or AZURE_CLIENT_ID as the Azure SDKs read it, or with nothing. It names the identity that "
        "answers, compares it with the one intended, and reads the VM (or scale set) through ARM to list the "
        "identities actually attached. Several user-assigned identities with no selector fail; a selector that "
        "is not attached fails; system- and user-assigned identities with no selector warn, because the "
        "system-assigned one silently wins."
    ),
    causes=(
        Cause("selected-identity", Status.PASS, "The configured selector answers with the intended identity."),
        Cause("default-identity", Status.PASS, "No selector is set and exactly one identity can answer."),
        Cause("default-identity-unverified", Status.PASS,
              "No selector is set and the system-assigned identity answers; whether user-assigned identities are "
              "attached too (and silently lose to it) could not be read from ARM.",
              Fix("To let midoctor verify, give the identity read access to its own VM, or list them yourself.",
                  (Command("az", "az {az_group} identity show -g {resource_group} -n {target_name}"),))),
        Cause("multiple-no-selector", Status.FAIL,
              "Several user-assigned identities are attached and the application names none.", SELECT_ONE),
        Cause("selector-not-attached", Status.FAIL,
              "The configured identity (client id, object id or resource id) is not attached to this VM.",
              Fix("Attach that identity to the VM, or correct the selector (AZURE_CLIENT_ID or the client_id "
                  "argument) to an identity that is attached.",
                  (Command("az", "az {az_group} identity assign -g {resource_group} -n {target_name} --identities "
                                 "<user-assigned-identity-resource-id>"),
                   Command("az", "az identity list --query \"[?{selector_field}=='{selector_value}']\" -o table"),
                   Command("az", "az {az_group} identity show -g {resource_group} -n {target_name}")),
                  (UAMI_DOC,))),
        Cause("system-wins-silently", Status.WARN,
              "System- and user-assigned identities are attached and no selector is set: the system-assigned "
              "identity is used, which may not be the one that was granted access.", SELECT_ONE),
        Cause("selector-mismatch", Status.FAIL,
              "The configured selector is answered by a different identity than the one it names.",
              Fix("Check the selector value: a client id, object id and resource id are different values for "
                  "the same identity; pass the right one in the right parameter.",
                  (Command("az", "az identity show --ids <user-assigned-identity-resource-id> "
                                 "--query \"{{clientId:clientId, principalId:principalId, id:id}}\""),),
                  (UAMI_DOC,))),
        Cause("selector-request-failed", Status.FAIL,
              "The token request with the configured selector failed for a reason other than the identity.",
              Fix("Read the evidence: the request was rejected, throttled or not answered by IMDS.")),
    ),
)


def evaluate(ctx: Context) -> Result:
    selector = ctx.config.selector
    where = vm_kind_and_name(ctx.compute())
    on_scale_set = bool(where["vmss_name"])
    values: Dict[str, Any] = {**where, "selector_value": _selector_value(selector),
                              "selector_field": _selector_field(selector),
                              "az_group": "vmss" if on_scale_set else "vm",
                              "target_name": where["vmss_name"] if on_scale_set else where["vm_name"],
                              "suggested_client_id": "<client-id-from-the-az-command-below>"}
    evidence: Dict[str, Any] = {"selector": selector.to_dict()}
    resource = ctx.arm_resource()
    if selector.is_set:
        return _with_selector(ctx, selector, resource, evidence, values)
    return _without_selector(ctx, resource, evidence, values)


def _selector_field(selector: Selector) -> str:
    for key, field_name in _SELECTOR_FIELD.items():
        if getattr(selector, key):
            return field_name
    return "clientId"


def _selector_value(selector: Selector) -> str:
    return selector.client_id or selector.object_id or selector.msi_res_id or ""


def _attached(ctx: Context, usable_token: Any, evidence: Dict[str, Any]) -> Attached:
    attached = ctx.attached(usable_token)
    evidence["attached_identities"] = attached.to_dict()
    return attached


def _suggest(attached: Attached, values: Dict[str, Any]) -> str:
    """A client id the user can paste, and the list of candidates in words."""
    if attached.readable and attached.user_assigned:
        first = next((u.client_id for u in attached.user_assigned if u.client_id), None)
        if first:
            values["suggested_client_id"] = first
        names = ", ".join(f"{u.name} (client id {u.client_id or '?'})" for u in attached.user_assigned)
        return f" Attached user-assigned identities: {names}."
    if not attached.readable:
        return f" The attached identities could not be listed: {attached.reason}."
    return ""


def _with_selector(ctx: Context, selector: Selector, resource: str, evidence: Dict[str, Any],
                   values: Dict[str, Any]) -> Result:
    result = ctx.token(resource, selector)
    outcome = outcome_of(result)
    evidence["token_request"] = result.to_evidence()
    origin = f" (from {selector.source})" if selector.source else ""
    if outcome is Outcome.IDENTITY_NOT_FOUND:
        default = ctx.token(resource, NO_SELECTOR)
        attached = _attached(ctx, default if outcome_of(default) is Outcome.TOKEN else None, evidence)
        hint = _suggest(attached, values)
        return SPEC.result("selector-not-attached",
                           f"The identity with {selector.describe()}{origin} is not attached to this VM: IMDS "
                           f"answered 'Identity not found'.{hint}", evidence, **values)
    if outcome is not Outcome.TOKEN:
        return SPEC.result("selector-request-failed",
                           f"The token request with {selector.describe()}{origin} failed: {outcome.value} "
                           f"({result.error or result.exchange.final.error or result.exchange.final.status}).",
                           evidence, **values)
    who = identity_of(result)
    evidence["identity"] = who.to_dict()
    if not _matches(selector, who):
        return SPEC.result("selector-mismatch",
                           f"Asked for {selector.describe()}{origin} but the token belongs to {who.describe()}.",
                           evidence, **values)
    return SPEC.result("selected-identity", f"{selector.describe()}{origin} answers as intended: the "
                                            f"{who.describe()}.", evidence, **values)


def _matches(selector: Selector, who: IdentityInfo) -> bool:
    def same(a: Optional[str], b: Optional[str]) -> bool:
        return bool(a) and bool(b) and a.strip().lower().rstrip("/") == b.strip().lower().rstrip("/")

    if selector.client_id:
        return same(selector.client_id, who.client_id)
    if selector.object_id:
        return same(selector.object_id, who.object_id)
    return same(selector.msi_res_id, who.resource_id)


def _without_selector(ctx: Context, resource: str, evidence: Dict[str, Any], values: Dict[str, Any]) -> Result:
    result = ctx.token(resource, NO_SELECTOR)
    outcome = outcome_of(result)
    evidence["token_request"] = result.to_evidence()
    if outcome is Outcome.MULTIPLE_USER_ASSIGNED:
        attached = _attached(ctx, None, evidence)
        hint = _suggest(attached, values)
        return SPEC.result("multiple-no-selector",
                           "Several user-assigned identities are attached and no AZURE_CLIENT_ID or client_id is "
                           f"set: IMDS refuses to choose, so the SDK gets no token.{hint}", evidence, **values)
    if outcome is not Outcome.TOKEN:
        return SPEC.result("selector-request-failed",
                           f"The token request without a selector failed: {outcome.value}.", evidence, **values)
    who = identity_of(result)
    evidence["identity"] = who.to_dict()
    attached = _attached(ctx, result, evidence)
    if who.kind == "system-assigned" and attached.readable and attached.user_assigned:
        hint = _suggest(attached, values)
        return SPEC.result("system-wins-silently",
                           f"No selector is set, so tokens come from the {who.describe()} although user-assigned "
                           f"identities are attached too.{hint}", evidence, **values)
    if attached.readable or who.kind == "user-assigned":
        # A user-assigned identity answering an unselected request proves it is the only identity: with a
        # system-assigned one, that would have answered; with two user-assigned ones, IMDS would refuse.
        listed = f" ARM lists identity type {attached.identity_type!r}." if attached.readable else ""
        return SPEC.result("default-identity", f"No selector is set; tokens come from the {who.describe()}."
                                               f"{listed}", evidence, **values)
    return SPEC.result("default-identity-unverified",
                       f"No selector is set; tokens come from the {who.describe()}. Whether user-assigned "
                       f"identities are attached too could not be read: {attached.reason}.", evidence, **values)
