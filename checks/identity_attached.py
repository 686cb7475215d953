"""identity-attached: does this VM have any managed identity at all?

Runbook step: ask IMDS for an ARM token with no identity selector. A token means some identity is attached
(and tells which one answered); "Identity not found" means none is.
"""

from __future__ import annotations

from typing import Any, Dict

from midoctor.config import NO_SELECTOR
from midoctor.context import Context
from midoctor.identity import Outcome, identity_of, outcome_of, vm_kind_and_name
from midoctor.model import Cause, CheckSpec, Command, Condition, Fix, Result, Status

CONFIGURE_DOC = ("https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/"
                 "how-to-configure-managed-identities")

ASSIGN_VM = Fix(
    "Enable the system-assigned identity on the VM, or attach a user-assigned identity, then grant it a role.",
    (Command("az", "az vm identity assign -g {resource_group} -n {vm_name}"),
     Command("az", "az vm identity assign -g {resource_group} -n {vm_name} --identities <user-assigned-identity-id>")),
    (CONFIGURE_DOC,),
)
ASSIGN_VMSS = Fix(
    "Enable the system-assigned identity on the scale set (or attach a user-assigned one); instances pick it up "
    "after an update.",
    (Command("az", "az vmss identity assign -g {resource_group} -n {vmss_name}"),
     Command("az", "az vmss update-instances -g {resource_group} -n {vmss_name} --instance-ids '*'")),
    (CONFIGURE_DOC,),
)

SPEC = CheckSpec(
    id="identity-attached",
    title="A managed identity is attached",
    order=30,
    timeout=8.0,
    requires=(("imds-reachable", Condition.OK),),
    explanation=(
        "Asks IMDS for a token for Azure Resource Manager without choosing an identity, as an application does "
        "when it sets no client id. IMDS then uses the system-assigned identity, or the only user-assigned one; "
        "'Identity not found' means the VM has no identity at all. Other rejections (a missing or invalid "
        "resource) are not 'no identity' and are named as such."
    ),
    causes=(
        Cause("system-assigned", Status.PASS, "The system-assigned identity answered."),
        Cause("user-assigned", Status.PASS, "The only user-assigned identity answered."),
        Cause("recovered-after-retries", Status.WARN,
              "An identity answered, but only after IMDS throttled, was updating or failed first.",
              Fix("Usually transient. Clients retry these answers with backoff, which can take the SDK tens of "
                  "seconds (410: up to 70 s). If it repeats, look for processes hammering IMDS.")),
        Cause("several-user-assigned", Status.PASS,
              "Several user-assigned identities are attached and none is chosen by default (see uami-ambiguity)."),
        Cause("no-identity", Status.FAIL, "The VM has no managed identity: IMDS answered 'Identity not found'.",
              ASSIGN_VM),
        Cause("resource-rejected", Status.WARN,
              "The token request was rejected for its resource, not for the identity: this is not 'no identity'.",
              Fix("Check the audience with the token-audience check; the identity question stays open.")),
        Cause("request-rejected", Status.FAIL,
              "IMDS rejected the token request itself (a header or parameter problem), not the identity.",
              Fix("Something on the path alters the request (strips Metadata: true, adds X-Forwarded-For, "
                  "duplicates parameters). Compare with the curl command.",
                  (Command("bash", "curl -sS --noproxy '*' -m 5 -H Metadata:true '{imds_url}/metadata/identity/"
                                   "oauth2/token?api-version=2018-02-01&resource={resource}'"),))),
        Cause("imds-unavailable", Status.FAIL,
              "The identity endpoint answered with throttling, an update or a server error on every attempt.",
              Fix("Retry in a minute; if it persists, look for processes hammering IMDS (20 identity requests per "
                  "second, 5 at once, per VM).")),
        Cause("no-answer", Status.FAIL,
              "The identity endpoint did not answer, or something that is not IMDS answered it.",
              Fix("See the imds-reachable and proxy-route checks: the identity path is intercepted or blocked.")),
        Cause("malformed-reply", Status.FAIL, "IMDS answered the token request with something unusable.",
              Fix("Re-run; if it repeats, something on the path alters answers.")),
    ),
)


def evaluate(ctx: Context) -> Result:
    resource = ctx.arm_resource()
    result = ctx.token(resource, NO_SELECTOR)
    outcome = outcome_of(result)
    evidence: Dict[str, Any] = {"token_request": result.to_evidence()}
    where = vm_kind_and_name(ctx.compute())
    values = {**where, "imds_url": ctx.config.imds_url, "resource": resource}

    if outcome is Outcome.TOKEN:
        who = identity_of(result)
        evidence["identity"] = who.to_dict()
        cause = "user-assigned" if who.kind == "user-assigned" else "system-assigned"
        if result.exchange.retried:
            sequence = " → ".join(result.exchange.sequence)
            return SPEC.result("recovered-after-retries", f"The {who.describe()} answered, but only after retries: "
                                                          f"{sequence}.", evidence, **values)
        if who.kind == "unknown":
            summary = ("IMDS issued a token, but it does not say which identity (no xms_mirid claim); "
                       f"client id {who.client_id or 'unknown'}.")
        else:
            summary = f"An identity is attached: the {who.describe()} answered."
        return SPEC.result(cause, summary, evidence, **values)
    if outcome is Outcome.MULTIPLE_USER_ASSIGNED:
        return SPEC.result("several-user-assigned",
                           "Several user-assigned identities are attached and the VM has no system-assigned one.",
                           evidence, **values)
    if outcome is Outcome.IDENTITY_NOT_FOUND:
        on_scale_set = bool(where["vmss_name"])
        target = f"scale set {where['vmss_name']!r}" if on_scale_set else f"VM {where['vm_name']!r}"
        return SPEC.result("no-identity", f"The {target} has no managed identity: IMDS answered 'Identity not "
                                          "found' for a request that names no identity.", evidence,
                           fix=ASSIGN_VMSS if on_scale_set else ASSIGN_VM, **values)
    if outcome in (Outcome.INVALID_RESOURCE, Outcome.MISSING_RESOURCE):
        return SPEC.result("resource-rejected",
                           f"IMDS rejected the resource {resource!r} ({result.error}): that says nothing about "
                           "whether an identity is attached.", evidence, **values)
    if outcome in (Outcome.METADATA_HEADER, Outcome.BAD_REQUEST):
        return SPEC.result("request-rejected", f"IMDS rejected the token request: {result.error} "
                                               f"{result.error_description or ''}".strip() + ".", evidence, **values)
    if outcome in (Outcome.THROTTLED, Outcome.UPDATING, Outcome.SERVER_ERROR):
        sequence = " → ".join(result.exchange.sequence)
        return SPEC.result("imds-unavailable", f"The identity endpoint is unavailable ({outcome.value}: {sequence}).",
                           evidence, **values)
    if outcome in (Outcome.NO_ANSWER, Outcome.NOT_IMDS):
        final = result.exchange.final
        what = final.error if not final.answered else f"HTTP {final.status} from {final.server or 'not IMDS'}"
        return SPEC.result("no-answer", f"The identity endpoint did not answer as IMDS ({what}).", evidence,
                           **values)
    return SPEC.result("malformed-reply", "IMDS answered the token request with HTTP "
                                          f"{result.exchange.final.status} but no usable token or error.",
                       evidence, **values)
