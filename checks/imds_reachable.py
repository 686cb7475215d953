"""imds-reachable: can this process talk to the real IMDS, directly, right now?

Runbook step: `curl -s --noproxy '*' -H Metadata:true "http://169.254.169.254/metadata/instance?api-version=2021-02-01"`
and read what came back — or what did not.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from midoctor.config import DEFAULT_IMDS_URL
from midoctor.context import Context
from midoctor.facts import firewall, routes
from midoctor.facts.firewall_rules import Packet
from midoctor.facts.host import looks_like_azure
from midoctor.facts.imds import Exchange, is_imds_server
from midoctor.facts.route_parsers import REJECT_KINDS
from midoctor.model import Cause, CheckSpec, Command, Fix, Result, Status

# azure-identity's DefaultAzureCredential probe gives up after 1 s (reference: failure-catalog 4.1).
SDK_PROBE_TIMEOUT_MS = 1000.0

IMDS_DOC = "https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service"
TROUBLESHOOT_DOC = "https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service#errors-and-debugging"

_CURL = Command("bash", "curl -sS --noproxy '*' -m 5 -H Metadata:true "
                        "'{imds_url}/metadata/instance?api-version=2021-02-01'")
_PS = Command("powershell", "Invoke-RestMethod -NoProxy -Headers @{{Metadata='true'}} -TimeoutSec 5 "
                            "-Uri '{imds_url}/metadata/instance?api-version=2021-02-01'")

SPEC = CheckSpec(
    id="imds-reachable",
    title="IMDS is reachable",
    order=10,
    timeout=8.0,
    explanation=(
        "Every managed-identity token on an Azure VM comes from the Instance Metadata Service at "
        "http://169.254.169.254. This check calls it directly (no proxy, no redirects, header Metadata: true, "
        "1 s to connect) and tells apart: not an Azure VM, connection refused, packets silently dropped, no route, "
        "something that is not IMDS answering, IMDS answering with an error, and a slow or retried success."
    ),
    causes=(
        Cause("healthy", Status.PASS, "IMDS answered promptly with instance metadata."),
        Cause("slow", Status.WARN,
              "IMDS answered, but slower than the SDKs' probe timeout: the SDK gives up where midoctor waited.",
              Fix("Find what delays the request (an inspecting firewall or EDR agent, a saturated VM, IMDS "
                  "maintenance) and re-run. If it persists, pass a longer timeout to the SDK or avoid "
                  "DefaultAzureCredential's probe by using ManagedIdentityCredential directly.",
                  (_CURL,), (IMDS_DOC,))),
        Cause("recovered-after-retries", Status.WARN,
              "IMDS answered only after retries (throttling, an update or a transient error).",
              Fix("Usually transient. If it repeats, look for processes hammering IMDS (the limit is 5 requests "
                  "per second for metadata, 20 per second and 5 concurrent for identity, per VM) and cache tokens.",
                  (), (IMDS_DOC,))),
        Cause("not-azure-vm", Status.FAIL,
              "This machine is not an Azure VM, so there is no IMDS to talk to.",
              Fix("Run the application on an Azure VM, or use another credential here (Azure Arc for on-premises "
                  "servers, a service principal or workload identity elsewhere).", (),
                  ("https://learn.microsoft.com/azure/azure-arc/servers/managed-identity-authentication",))),
        Cause("refused", Status.FAIL,
              "The connection to IMDS was refused: something on this machine or network rejects port 80 there.",
              Fix("Look for a local firewall REJECT rule, a local process bound to 169.254.169.254, or a container "
                  "network that does not forward to the host. Run the proxy-route check's commands.",
                  (Command("bash", "ip route get 169.254.169.254; sudo iptables-save | grep -n 169.254.169.254"),
                   Command("powershell", "Test-NetConnection 169.254.169.254 -Port 80; route print 169.254.169.254")),
                  (TROUBLESHOOT_DOC,))),
        Cause("timed-out", Status.FAIL,
              "Packets to IMDS are silently dropped: no answer within the connect timeout.",
              Fix("A firewall (local iptables/nftables/Windows Firewall/EDR), an NSG rule denying the "
                  "AzurePlatformIMDS service tag, or a route through the wrong interface drops the traffic.",
                  (Command("bash", "ip route get 169.254.169.254; sudo iptables-save | grep -n 169.254.169.254"),
                   Command("az", "az network nic list-effective-nsg -g <resource-group> -n <nic-name>")),
                  (TROUBLESHOOT_DOC,))),
        Cause("no-route", Status.FAIL,
              "The kernel has no usable route to 169.254.169.254 (network or host unreachable).",
              Fix("Restore the route through the primary NIC (DHCP must be enabled on it).",
                  (Command("bash", "sudo ip route replace 169.254.169.254/32 via <gateway> dev <primary-if>"),
                   Command("cmd", "route add 169.254.169.254 mask 255.255.255.255 <gateway> -p")),
                  (TROUBLESHOOT_DOC,))),
        Cause("blocked-locally", Status.FAIL,
              "The operating system refused to send the packet (a local firewall rule for this user or process).",
              Fix("List the local firewall rules that mention 169.254.169.254; owner-match rules may allow only "
                  "some users.", (Command("bash", "sudo iptables-save | grep -n 169.254.169.254"),),
                  (TROUBLESHOOT_DOC,))),
        Cause("no-answer", Status.FAIL,
              "Something accepted the connection to IMDS but never answered (a hung interceptor or proxy).",
              Fix("Find the process or appliance that terminates connections to 169.254.169.254:80 (transparent "
                  "proxy, security agent, a sidecar such as aad-pod-identity NMI).",
                  (Command("bash", "sudo ss -tnp dst 169.254.169.254; sudo iptables -t nat -S | grep 169.254"),),
                  (TROUBLESHOOT_DOC,))),
        Cause("impostor", Status.FAIL,
              "Something that is not IMDS answered on 169.254.169.254 (no 'Server: IMDS/…' header).",
              Fix("A proxy, gateway or container runtime answers in IMDS's place. Calls through a proxy or gateway "
                  "are not supported by IMDS: remove the interception for 169.254.169.254.",
                  (Command("bash", "sudo iptables -t nat -S | grep 169.254.169.254"),), (TROUBLESHOOT_DOC,))),
        Cause("redirected", Status.FAIL,
              "The request was answered with a redirect; IMDS never redirects, so something intercepts it.",
              Fix("Remove the captive portal, proxy or gateway rule that redirects 169.254.169.254.", (),
                  (TROUBLESHOOT_DOC,))),
        Cause("throttled", Status.FAIL,
              "IMDS is throttling this VM (HTTP 429): more than its rate limit of requests.",
              Fix("Find the process that calls IMDS too often and make it cache tokens; the limits are per VM.",
                  (Command("bash", "sudo ss -tnp dst 169.254.169.254"),), (IMDS_DOC,))),
        Cause("updating", Status.FAIL,
              "IMDS is being updated (HTTP 410 or 404); it should be back within about 70 seconds.",
              Fix("Wait a minute and run midoctor again; clients should retry 410 with backoff.", (), (IMDS_DOC,))),
        Cause("server-error", Status.FAIL, "IMDS answered with a server error (HTTP 5xx).",
              Fix("Transient on the platform side; retry after a few seconds. If it persists, open a support case "
                  "with this report.", (), (IMDS_DOC,))),
        Cause("request-rejected", Status.FAIL,
              "IMDS rejected midoctor's request (HTTP 4xx): a header or api-version problem on the path.",
              Fix("Something on the path rewrites requests (strips the Metadata header, adds X-Forwarded-For). "
                  "Compare with the curl command below.", (_CURL, _PS), (IMDS_DOC,))),
        Cause("malformed-reply", Status.FAIL,
              "IMDS's answer could not be understood (not JSON, or no instance metadata in it).",
              Fix("Re-run; if it repeats, something between this process and IMDS alters answers.", (_CURL,),
                  (IMDS_DOC,))),
        Cause("transport-error", Status.ERROR,
              "The request failed in a way midoctor cannot classify; the evidence has the exact error.",
              Fix("Run the curl command below and compare.", (_CURL, _PS), (IMDS_DOC,))),
    ),
)

_CONNECT_FAILURES = {
    "refused": "refused",
    "connect-timeout": "timed-out",
    "network-unreachable": "no-route",
    "host-unreachable": "no-route",
    "address-not-available": "no-route",
    "invalid-argument": "no-route",  # connect() returns EINVAL for a blackhole route
    "permission-denied": "blocked-locally",
    "read-timeout": "no-answer",
    "slow-body": "no-answer",
    "reset": "refused",
    "bad-response": "impostor",
}


def evaluate(ctx: Context) -> Result:
    exchange = ctx.instance()
    final = exchange.final
    evidence: Dict[str, Any] = {"imds_url": ctx.config.imds_url, "request": exchange.to_evidence()}
    values = {"imds_url": ctx.config.imds_url}

    if not final.answered or final.error == "slow-body":
        return _no_answer(ctx, exchange, evidence, values)
    if not is_imds_server(final) or 300 <= (final.status or 0) < 400:
        return _impostor(exchange, evidence, values)
    return _imds_answered(exchange, evidence, values)


def _no_answer(ctx: Context, exchange: Exchange, evidence: Dict[str, Any], values: Dict[str, str]) -> Result:
    final = exchange.final
    dmi = ctx.host_facts().get("dmi") or {}
    azure = looks_like_azure(dmi)
    if dmi:
        evidence["dmi"] = dmi
    if azure is False:
        return SPEC.result("not-azure-vm",
                           f"No IMDS here ({final.error}), and the hardware says this is not an Azure VM "
                           f"(vendor {dmi.get('sys_vendor', 'unknown')!r}).", evidence, **values)
    cause = _CONNECT_FAILURES.get(final.error or "", "transport-error")
    seconds = final.elapsed_ms / 1000.0
    summaries = {
        "refused": f"Connection to {ctx.config.imds_url} was refused after {seconds:.2f} s.",
        "timed-out": f"No answer from {ctx.config.imds_url} within {seconds:.1f} s: packets are silently dropped.",
        "no-route": f"The network says there is no route to {ctx.config.imds_url} ({final.error}).",
        "blocked-locally": f"The operating system refused to send to {ctx.config.imds_url} ({final.error_detail}).",
        "no-answer": f"{ctx.config.imds_url} accepted the connection but sent no complete answer within "
                     f"{seconds:.1f} s.",
        "impostor": f"{ctx.config.imds_url} answered with something that is not HTTP ({final.error_detail}).",
        "transport-error": f"The request to {ctx.config.imds_url} failed: {final.error_detail}.",
    }
    summary = summaries[cause]
    if ctx.config.imds_url.rstrip("/") == DEFAULT_IMDS_URL and cause != "impostor":
        cause, summary = _explain_locally(ctx, cause, summary, evidence)
    if azure is None and not dmi and cause in ("timed-out", "refused", "no-route"):
        summary += " (Whether this is an Azure VM could not be read from the hardware.)"
    return SPEC.result(cause, summary, evidence, **values)


def _explain_locally(ctx: Context, cause: str, summary: str, evidence: Dict[str, Any]) -> Tuple[str, str]:
    """The socket error alone misleads: a prohibit route gives EACCES like a firewall, an admin-prohibited
    REJECT gives EHOSTUNREACH like a missing route. The route and the firewall rules tell them apart."""
    report = _route_report(ctx, evidence)
    route = report.route if report is not None else None
    if route is not None and route.kind in REJECT_KINDS + ("no-route",):
        what = "there is no route" if route.kind == "no-route" else f"its route is of type {route.kind!r}"
        return "no-route", (f"The kernel refuses to send to 169.254.169.254: {what} "
                            f"({route.detail or route.source or 'ip route get'}) — see proxy-route.")
    blocked, note = _firewall_note(ctx, evidence)
    if blocked and cause == "no-route" and route is not None and route.kind == "unicast":
        return "blocked-locally", (f"The connection was rejected as unreachable although the route via "
                                   f"{route.dev or '?'} is usable:{note}")
    if report is not None and route is not None and (report.tunnel or report.off_primary):
        primary = report.primary.dev if report.primary is not None else "the primary interface"
        note += (f" The route leaves through {route.dev or '?'}, not {primary}: IMDS answers only on the primary "
                 "NIC — see proxy-route.")
    if cause in ("timed-out", "refused", "blocked-locally", "no-answer", "no-route"):
        return cause, summary + note
    return cause, summary


def _route_report(ctx: Context, evidence: Dict[str, Any]) -> Optional[routes.RouteReport]:
    try:
        report = routes.inspect_route(ctx, str(ctx.host_facts().get("os") or "Linux"))
    except Exception as exc:  # noqa: BLE001 - a route read failure must not cost the reachability verdict
        evidence["route"] = f"could not be read: {type(exc).__name__}"
        return None
    if report.route is not None:
        evidence["route"] = report.route.to_evidence()
    return report


def _firewall_note(ctx: Context, evidence: Dict[str, Any]) -> Tuple[bool, str]:
    """Name the local firewall rule when one is readable and decides this process's connection."""
    try:
        report = firewall.inspect_firewall(ctx)
        if not report.readable:
            evidence["firewall"] = "rules not readable (needs root or the tools)"
            return False, " Local firewall rules could not be read to confirm or rule out a block."
        who = firewall.identity(ctx)
        packet = Packet(uid=who.uid, gid=who.gid, groups=who.groups) if who else Packet(0, 0)
        verdict = report.verdict(packet)
    except Exception as exc:  # noqa: BLE001 - a firewall read failure must not cost the reachability verdict
        evidence["firewall"] = f"could not evaluate: {type(exc).__name__}"
        return False, ""
    if not verdict.blocked:
        return False, ""
    rule = verdict.rule
    evidence["firewall_rule"] = rule.text if rule else "chain policy"
    where = f"{rule.text} ({rule.table} {rule.chain})" if rule else "the OUTPUT chain policy"
    return True, f" A local firewall rule {verdict.action.upper()}s it: {where} — see proxy-route."


def _impostor(exchange: Exchange, evidence: Dict[str, Any], values: Dict[str, str]) -> Result:
    final = exchange.final
    if final.status is not None and 300 <= final.status < 400:
        location = final.headers.get("location", "?")
        return SPEC.result("redirected", f"The request was redirected (HTTP {final.status} to {location}); "
                                         "the redirect was not followed.", evidence, **values)
    who = final.server or final.headers.get("via") or "no Server header"
    kind = "HTML" if "html" in final.content_type.lower() else (final.content_type or "no content type")
    return SPEC.result("impostor", f"HTTP {final.status} from {who!r} ({kind}) answered instead of IMDS: "
                                   "a proxy, gateway or look-alike is on the path.", evidence, **values)


def _imds_answered(exchange: Exchange, evidence: Dict[str, Any], values: Dict[str, str]) -> Result:
    final = exchange.final
    status = final.status or 0
    sequence = " → ".join(exchange.sequence)
    if status == 429:
        return SPEC.result("throttled", f"IMDS answered 429 Too Many Requests on every attempt ({sequence}).",
                           evidence, **values)
    if status in (404, 410):
        return SPEC.result("updating", f"IMDS answered {status} (updating) on every attempt ({sequence}).",
                           evidence, **values)
    if status >= 500:
        return SPEC.result("server-error", f"IMDS answered {status} on every attempt ({sequence}).", evidence,
                           **values)
    if status != 200:
        message = _error_text(final.json)
        return SPEC.result("request-rejected", f"IMDS rejected the request with HTTP {status}: {message}",
                           evidence, **values)
    if not isinstance(final.json, dict) or not isinstance(final.json.get("compute"), dict):
        why = final.json_error or "no 'compute' object in the answer"
        return SPEC.result("malformed-reply", f"IMDS answered 200 but the instance metadata is unusable: {why}.",
                           evidence, **values)
    if exchange.retried:
        return SPEC.result("recovered-after-retries",
                           f"IMDS answered only after retries: {sequence}. The SDK retries too, but slowly.",
                           evidence, **values)
    if final.elapsed_ms > SDK_PROBE_TIMEOUT_MS:
        return SPEC.result("slow", f"IMDS took {final.elapsed_ms / 1000:.2f} s to answer; azure-identity's "
                                   f"probe gives up after {SDK_PROBE_TIMEOUT_MS / 1000:g} s.", evidence, **values)
    return SPEC.result("healthy", f"IMDS answered in {final.elapsed_ms:.0f} ms ({final.server}).", evidence,
                       **values)


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        description = body.get("error_description")
        text = " ".join(str(part) for part in (error, description) if part)
        return text[:300] or "no error text"
    return "no JSON error body"
