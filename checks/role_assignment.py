"""role-assignment: may the identity do what the application needs, where it needs it?

Runbook step: with the identity's own ARM token, read its effective permissions at the scope
(`{scope}/providers/Microsoft.Authorization/permissions`, every page) and evaluate each needed operation.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from midoctor import rbac
from midoctor.context import Context
from midoctor.identity import Outcome, identity_of, outcome_of
from midoctor.model import Cause, CheckSpec, Command, Condition, Fix, Result, Status

RBAC_DOC = "https://learn.microsoft.com/azure/role-based-access-control/role-assignments-cli"
RBAC_TROUBLESHOOT = "https://learn.microsoft.com/azure/role-based-access-control/troubleshooting"

PROPAGATION_NOTE = ("If the application is still denied: a new role assignment can take up to 10 minutes to take "
                    "effect (hours through a group), and a token issued before the grant stays cached for up to "
                    "24 h by the platform; a restart only clears the application's own cache.")
SHORT_PROPAGATION_NOTE = "If still denied: new roles take up to 10 min; a cached token lives up to 24 h."

GRANT = Fix(
    "Assign a role that grants {operation} to the identity at the scope (or a parent scope).",
    (Command("az", "az role assignment create --assignee-object-id {object_id} --assignee-principal-type "
                   "ServicePrincipal --role \"{role}\" --scope {scope}"),
     Command("az", "az role assignment list --assignee {object_id} --all -o table")),
    (RBAC_DOC, RBAC_TROUBLESHOOT),
)

SPEC = CheckSpec(
    id="role-assignment",
    title="The identity has the roles it needs",
    order=60,
    timeout=12.0,
    requires=(("uami-ambiguity", Condition.OK),),
    explanation=(
        "With the identity's own ARM token, reads its effective permissions at --scope (default: the VM's "
        "resource group) and evaluates each --action against actions/notActions and dataActions/notDataActions, "
        "wildcards included; '*' in actions grants no data action. Without --action it reports what the "
        "identity can do there. A 403 on the permissions call means midoctor cannot tell, not that the role is "
        "missing. Calls go to --arm-url through the configured proxy, like the SDK's own ARM calls."
    ),
    causes=(
        Cause("actions-granted", Status.PASS, "Every requested operation is granted at the scope."),
        Cause("permissions-listed", Status.PASS, "The identity holds permissions at the scope (no --action given)."),
        Cause("no-permissions", Status.WARN, "The identity can do nothing at the scope: no role is assigned there.",
              GRANT),
        Cause("action-not-granted", Status.FAIL, "A requested operation is not granted at the scope.", GRANT),
        Cause("cannot-determine", Status.SKIP,
              "The identity may not read its own permissions at the scope (403): cannot tell, not 'missing'.",
              Fix("Check from a workstation with an account that can read role assignments.",
                  (Command("az", "az role assignment list --assignee {object_id} --scope {scope} "
                                 "--include-inherited -o table"),), (RBAC_TROUBLESHOOT,))),
        Cause("arm-rejected-token", Status.FAIL, "ARM rejected the identity's token (HTTP 401).",
              Fix("Read ARM's error code in the evidence: a wrong audience, an expired token or a service "
                  "principal missing from the tenant.", (), (RBAC_TROUBLESHOOT,))),
        Cause("arm-unreachable", Status.ERROR, "ARM could not be reached to read the permissions.",
              Fix("The VM needs outbound HTTPS to the ARM endpoint ({arm_url}), directly or through the proxy "
                  "the application uses.", (Command("bash", "curl -sS -o /dev/null -w '%{{http_code}}\\n' "
                                                           "{arm_url}/"),))),
        Cause("no-scope", Status.SKIP, "No scope to evaluate: --scope not given and instance metadata has none."),
        Cause("no-arm-token", Status.SKIP, "No ARM token could be obtained for the identity, so nothing to read."),
    ),
)


def default_scope(ctx: Context) -> Optional[str]:
    sub, group = ctx.compute_field("subscriptionId"), ctx.compute_field("resourceGroupName")
    return f"/subscriptions/{sub}/resourceGroups/{group}" if sub and group else None


def evaluate(ctx: Context) -> Result:
    scope = ctx.config.scope or default_scope(ctx)
    values: Dict[str, Any] = {"arm_url": ctx.arm_url(), "scope": scope or "<scope>"}
    if not scope:
        return SPEC.result("no-scope", "No scope to evaluate: pass --scope (instance metadata names no resource "
                                       "group).", {}, **values)
    token = ctx.token(ctx.arm_resource(), ctx.config.selector)
    if outcome_of(token) is not Outcome.TOKEN or token.bearer is None:
        return SPEC.result("no-arm-token", f"No ARM token for {ctx.config.selector.describe()}, so permissions "
                                           "cannot be read.", {"token_request": token.to_evidence()}, **values)
    who = identity_of(token)
    values["object_id"] = who.object_id or "<principal-id>"
    page = ctx.arm.permissions(scope, token.bearer)
    evidence: Dict[str, Any] = {"scope": scope, "identity": who.to_dict(), "permissions_call": page.to_evidence()}
    if ctx.arm.proxy_used:
        from midoctor.redact import redact_url

        evidence["arm_proxy"] = redact_url(ctx.arm.proxy_used)

    if page.status is None:
        summary = f"ARM at {ctx.arm_url()} did not answer: {page.problem}."
        if page.final.error == "dns" and not ctx.arm.proxy_used:
            summary += _dns_explanation(ctx, evidence)
        return SPEC.result("arm-unreachable", summary, evidence, **values)
    if page.status == 403:
        return SPEC.result("cannot-determine", f"The {who.describe()} may not read its permissions at {scope} "
                                               f"({page.error_code or 'HTTP 403'}): cannot tell whether a role "
                                               "is missing.", evidence, **values)
    if page.status == 401:
        return SPEC.result("arm-rejected-token", f"ARM rejected the token: {page.error_code or 'HTTP 401'} "
                                                 f"{(page.error_message or '')[:200]}".strip(), evidence, **values)
    if page.status != 200 or page.problem:
        return SPEC.result("arm-unreachable", f"Could not read the permissions at {scope}: "
                                              f"{page.problem or page.error_code or page.status}.", evidence,
                           **values)

    entries = page.items
    evidence["permissions"] = rbac.summarize(entries)
    if not ctx.config.actions:
        return _without_actions(who.describe(), scope, entries, evidence, values)
    return _with_actions(ctx.config.actions, who.describe(), scope, entries, evidence, values)


def _granted_outside_arm(operation: rbac.Operation) -> bool:
    """Cosmos DB data actions come from `az cosmosdb sql role assignment`, invisible to ARM permissions."""
    return operation.is_data and operation.name.lower().startswith("microsoft.documentdb/")


def _dns_explanation(ctx: Context, evidence: Dict[str, Any]) -> str:
    """Which resolver said what: 'does not exist' and 'no DNS server answers' need different fixes."""
    from urllib.parse import urlsplit

    from midoctor.facts.dns_lookup import is_ip_literal, resolve

    host = urlsplit(ctx.arm_url()).hostname or ""
    if not host or is_ip_literal(host):
        return ""
    answer = ctx.fact(("dns", host), lambda: resolve(host))
    evidence["dns"] = answer.to_evidence()
    servers = ", ".join(answer.nameservers) or "no configured resolver"
    if answer.resolved:
        return f" DNS resolves {host} now ({', '.join(answer.addresses[:2])}); the failure may be intermittent."
    return f" DNS: {answer.detail or answer.error} (resolvers: {servers})."


def _without_actions(who: str, scope: str, entries: List[Dict[str, Any]], evidence: Dict[str, Any],
                     values: Dict[str, Any]) -> Result:
    summary = rbac.summarize(entries)
    if not summary["actions_total"] and not summary["data_actions_total"]:
        values.update(operation="what the application needs", role="<role>")
        return SPEC.result("no-permissions", f"The {who} has no permissions at {scope}: no role is assigned there "
                                             "or above it.", evidence, **values)
    shown = ", ".join((summary["actions"] + summary["data_actions"])[:6])
    return SPEC.result("permissions-listed",
                       f"The {who} holds {summary['actions_total']} action and {summary['data_actions_total']} data "
                       f"action permission(s) at {scope} (e.g. {shown}). Pass --action to test a specific operation.",
                       evidence, **values)


def _with_actions(actions: Any, who: str, scope: str, entries: List[Dict[str, Any]], evidence: Dict[str, Any],
                  values: Dict[str, Any]) -> Result:
    decisions = [rbac.decide(rbac.parse_operation(a), entries) for a in actions]
    evidence["decisions"] = [d.to_dict() for d in decisions]
    denied = [d for d in decisions if not d.allowed]
    invisible = [d for d in denied if _granted_outside_arm(d.operation)]
    if invisible and len(invisible) == len(denied):
        names = ", ".join(d.operation.name for d in invisible)
        return SPEC.result("cannot-determine", f"{names}: Cosmos DB data access is granted by Cosmos DB's own "
                                               "role assignments, which ARM's permissions API does not list; "
                                               "cannot tell from here.", evidence, **values)
    if denied:
        first = denied[0].operation
        values.update(operation=first.name, role=rbac.suggest_role(first) or "<a role granting it>")
        names = ", ".join(d.operation.name for d in denied)
        kind = "a data action" if first.is_data else "a control-plane action"
        excluded = f" (excluded by {denied[0].excluded_by})" if denied[0].excluded_by else ""
        return SPEC.result("action-not-granted", f"The {who} may not perform {names} at {scope}{excluded}; "
                                                 f"the first is {kind}.", evidence, **values)
    granted = ", ".join(f"{d.operation.name} (by {d.granted_by})" for d in decisions)
    evidence["if_still_denied"] = PROPAGATION_NOTE
    return SPEC.result("actions-granted", f"Granted at {scope}: {granted}. {SHORT_PROPAGATION_NOTE}", evidence,
                       **values)
