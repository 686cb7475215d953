"""proxy-route: nothing on this machine stands between the application and IMDS.

Runbook step (failure-catalog §5 step 2 and F08, F11, F12, F14, F15): for ``http://169.254.169.254``
ask, per HTTP client family, whether the proxy settings it reads would send the request to a proxy; ask
the kernel which route it would use; read the local firewall and see who may connect; note what running
in a container means. Nothing is sent to IMDS here (``imds-reachable`` does that): this check explains
*why* a probe would fail or be answered by something else.

Inputs come only through the probe seam (``midoctor.facts.probes.command`` / ``file_text`` and the
memoized ``proxy.settings``, ``network.route``, ``network.firewall``, ``host.identity``,
``host.container`` facts), so every branch is testable with recorded outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, TypeVar
from urllib.parse import urlsplit

from midoctor.context import Context
from midoctor.facts import firewall, firewall_rules, probes, proxy, proxy_sources, route_parsers, routes
from midoctor.facts.host import container_facts, container_imds_meaning
from midoctor.facts.listeners import listeners_on
from midoctor.model import Cause, CheckSpec, Command, Fix, Result, Status
from midoctor.redact import scrub_text

T = TypeVar("T")

IMDS_URL = "http://169.254.169.254"

_NO_PROXY_FIX = Fix(
    text=(
        "IMDS must never be proxied (Microsoft: calls via proxy or gateway are not supported by IMDS). Add the "
        "exact address 169.254.169.254 to NO_PROXY and no_proxy wherever the application gets its environment "
        "(shell profile, systemd unit, container image, /etc/environment). Use the exact IP: it is the only "
        "form every client honours (a CIDR is ignored by httpx, urllib, .NET and curl ≤ 7.85; ':80' is ignored "
        "by all but Go). In Python, ManagedIdentityCredential(use_env_settings=False) also keeps "
        "azure-identity off environment proxies. On Windows add it to the user's ProxyOverride too."
    ),
    commands=(
        Command("bash", 'export NO_PROXY="{no_proxy}" no_proxy="{no_proxy}"'),
        Command("bash", "sudo mkdir -p /etc/systemd/system/{unit}.service.d && printf '[Service]\\n"
                        'Environment="NO_PROXY={no_proxy}" "no_proxy={no_proxy}"\\n\' | sudo tee '
                        "/etc/systemd/system/{unit}.service.d/imds-no-proxy.conf && sudo systemctl daemon-reload "
                        "&& sudo systemctl restart {unit}.service"),
        Command("powershell", "[Environment]::SetEnvironmentVariable('NO_PROXY', '{no_proxy}', 'Machine')"),
        Command("powershell", "Set-ItemProperty -Path 'HKCU:\\Software\\Microsoft\\Windows\\CurrentVersion\\"
                              "Internet Settings' -Name ProxyOverride -Value '{proxy_override}'"),
    ),
    links=("https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service#proxies",),
)

_ROUTE_ADD = Command("bash", "sudo ip route replace 169.254.169.254/32 via {gateway} dev {primary_if} src {primary_ip}")
_WINDOWS_ROUTE_ADD = Command("cmd", "route add 169.254.169.254 mask 255.255.255.255 {gateway} -p")
_ROUTE_LINK = "https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service#errors-and-debugging"

SPEC = CheckSpec(
    id="proxy-route",
    title="Proxy and route to IMDS",
    order=20,
    explanation=(
        "Checks what lies between this machine and http://169.254.169.254 without contacting it: for each HTTP "
        "client family (Python requests — azure-identity's default — httpx and urllib, curl, Go, .NET, and "
        "WinHTTP on Windows) whether its proxy settings and its own NO_PROXY rules would send the IMDS request "
        "to a proxy; the route the kernel would choose (blackhole, missing, through a VPN or another NIC); "
        "local firewall rules (iptables, nftables) that drop the traffic or allow only some users; and what "
        "running in a container means for IMDS. The most severe finding is the result; the others are listed "
        "in the evidence."
    ),
    causes=(
        Cause("no-interference", Status.PASS,
              "No proxy applies to IMDS for any client family, the route leaves through the primary interface, "
              "and no readable firewall rule blocks it."),
        Cause("route-blackhole", Status.FAIL,
              "A blackhole, unreachable, prohibit or throw route covers 169.254.169.254: the kernel refuses the "
              "connection before a packet leaves (F11).",
              Fix("Delete the rejecting route, make sure IMDS routes through the primary NIC, then persist the "
                  "change in netplan/NetworkManager (a reboot or DHCP renewal may otherwise bring it back).",
                  (Command("bash", "sudo ip route del {reject_route}"), _ROUTE_ADD), (_ROUTE_LINK,))),
        Cause("no-route", Status.FAIL,
              "No route covers 169.254.169.254: connections fail with 'Network is unreachable' (F11).",
              Fix("Add a route for 169.254.169.254/32 through the primary NIC's gateway (the first address of its "
                  "subnet on Azure) and make sure DHCP is enabled on the primary NIC: IMDS requires it.",
                  (_ROUTE_ADD, _WINDOWS_ROUTE_ADD), (_ROUTE_LINK,))),
        Cause("firewall-blocks", Status.FAIL,
              "A local firewall rule drops or rejects connections to 169.254.169.254 for every user (F12).",
              Fix("Remove the rule (and from whatever installs it: firewalld, cloud-init, an EDR agent); on "
                  "Debian/Ubuntu persist with 'sudo netfilter-persistent save'.",
                  (Command("bash", "{firewall_delete}"),))),
        Cause("firewall-owner-only", Status.FAIL,
              "Owner-match firewall rules let only some users or groups reach IMDS (a deliberate allow-list, F12); "
              "an application running as another user times out or is refused.",
              Fix("Run the application as an allowed user, or allow its user explicitly before the blocking rule.",
                  (Command("bash", "{owner_allow}"),))),
        Cause("proxy-intercepts-imds", Status.FAIL,
              "A proxy is configured and its bypass list does not cover 169.254.169.254, so the token request "
              "goes to the proxy, which answers with its own error page or cannot reach IMDS (F08).",
              _NO_PROXY_FIX),
        Cause("route-not-primary", Status.WARN,
              "The route to 169.254.169.254 leaves through another interface or source address than the primary "
              "NIC, or through a tunnel/VPN (then a failure): IMDS only answers the primary NIC's primary IP (F11).",
              Fix("Route 169.254.169.254/32 through the primary NIC (and exclude it from the VPN's routes).",
                  (_ROUTE_ADD, Command("cmd", "route delete 169.254.169.254"), _WINDOWS_ROUTE_ADD), (_ROUTE_LINK,))),
        Cause("imds-address-local", Status.WARN,
              "169.254.169.254 is an address of this machine (route type local): a local process, not IMDS, "
              "would answer (F14).",
              Fix("Find what owns the address and remove it, unless it is a deliberate test double.",
                  (Command("bash", "sudo ss -ltnp | grep -F 169.254.169.254"),
                   Command("bash", "sudo ip addr del 169.254.169.254/32 dev {route_dev}")))),
        Cause("nat-redirect", Status.WARN,
              "A NAT rule redirects IMDS traffic elsewhere (aad-pod-identity's NMI, a transparent proxy or "
              "another interceptor, F14/F15c): whatever it points to answers instead of IMDS.",
              Fix("If the interceptor is not intended, remove the rule.", (Command("bash", "{firewall_delete}"),))),
        Cause("no-proxy-partial", Status.WARN,
              "NO_PROXY covers 169.254.169.254 for some client families but not for others, which match it with "
              "different rules (CIDR, ports, wildcards): the named families still send IMDS requests to the proxy.",
              _NO_PROXY_FIX),
        Cause("proxy-env-file", Status.WARN,
              "/etc/environment sets a proxy that does not bypass 169.254.169.254 but this process does not have "
              "it: PAM login sessions (ssh, su -) and cron on Debian/Ubuntu get it, systemd units only with "
              "EnvironmentFile=/etc/environment — 'works in my shell, fails in the service' (F10).",
              Fix("Add 169.254.169.254 to NO_PROXY and no_proxy in /etc/environment (the last assignment wins).",
                  (Command("bash", "printf 'NO_PROXY={etc_no_proxy}\\nno_proxy={etc_no_proxy}\\n' | sudo tee -a "
                                   "/etc/environment"),))),
        Cause("winhttp-proxy", Status.WARN,
              "The machine-wide WinHTTP proxy (netsh winhttp) does not bypass 169.254.169.254: Windows services and "
              "agents that use the WinHTTP API send IMDS requests to it (Python does not read it, F08).",
              Fix("Reset the WinHTTP proxy or add 169.254.169.254 to its bypass list (elevated prompt).",
                  (Command("cmd", 'netsh winhttp set proxy proxy-server="{winhttp_server}" '
                                  'bypass-list="{winhttp_bypass}"'),
                   Command("cmd", "netsh winhttp reset proxy")))),
        Cause("container", Status.WARN,
              "This runs inside a container: whether IMDS is reachable, and which identities it returns, depends "
              "on the container network and the orchestrator (F15).",
              Fix("Compare with the same probe on the host (or node).",
                  (Command("bash", "curl -sS -m 5 --noproxy '*' -H Metadata:true "
                                   "'http://169.254.169.254/metadata/instance?api-version=2021-02-01'"),))),
        Cause("cannot-inspect", Status.SKIP,
              "The route to IMDS could not be determined: the tools are missing and the routing table is not "
              "readable. The reason is in the evidence.",
              Fix("Install iproute2 (ip), or run where /proc/net/route (Linux) or 'route print' (Windows) works.",
                  (Command("bash", "sudo apt-get install -y iproute2 || sudo dnf install -y iproute"),))),
    ),
    requires=(),
    timeout=5.0,
)

# Most severe first among equal statuses: the order in which a person should fix things.
_PRIORITY = ("route-blackhole", "no-route", "firewall-blocks", "firewall-owner-only", "proxy-intercepts-imds",
             "route-not-primary", "imds-address-local", "nat-redirect", "no-proxy-partial", "proxy-env-file",
             "winhttp-proxy", "container")
_WINDOWS_SHELLS = ("powershell", "cmd")


@dataclass
class Finding:
    cause: str
    summary: str
    values: Dict[str, Any] = field(default_factory=dict)
    status: Optional[Status] = None

    @property
    def effective_status(self) -> Status:
        return self.status or SPEC.cause(self.cause).status


def _target(ctx: Context) -> Tuple[str, int]:
    """The endpoint under diagnosis: 169.254.169.254:80 unless --imds-url points elsewhere (a simulator)."""
    parts = urlsplit(ctx.config.imds_url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 80
    return parts.hostname or proxy.IMDS_HOST, port


def evaluate(ctx: Context) -> Result:
    os_name = _os_name(ctx)
    windows = os_name.lower().startswith("win")
    host, port = _target(ctx)
    evidence: Dict[str, Any] = {"target": f"http://{host}:{port}", "os": os_name}
    problems: List[str] = []
    findings: List[Finding] = []

    settings = _safely(problems, "proxy settings", lambda: proxy.inspect_proxy(ctx, os_name))
    if settings is not None:
        decisions = _safely(problems, "proxy evaluation", lambda: proxy.decide_all(settings, host, port), [])
        findings.extend(_safely(problems, "proxy evaluation",
                                lambda: proxy_findings(settings, decisions, f"http://{host}:{port}"), []))
        evidence["clients"] = [d.to_evidence() for d in decisions]
        evidence["proxy_settings"] = settings.to_evidence()

    if (host, port) != (proxy.IMDS_HOST, proxy.IMDS_PORT):
        # Routes, firewall rules and container networking are about 169.254.169.254; judging them for
        # another address (a simulator on loopback) would describe a path the application does not take.
        evidence["not_inspected"] = ("route, firewall and container networking: they concern "
                                     "169.254.169.254 and --imds-url points elsewhere")
        if problems:
            evidence["probe_errors"] = problems
        if not findings:
            return _result("no-interference", f"No proxy applies to http://{host}:{port} for any client family "
                           "(route and firewall not inspected: --imds-url is not the default endpoint).",
                           evidence, windows)
        return _conclude(findings, None, evidence, windows)

    route = _safely(problems, "route", lambda: routes.inspect_route(ctx, os_name))
    if route is not None:
        findings.extend(_safely(problems, "route evaluation", lambda: route_findings(route), []))
        evidence["route"] = route.to_evidence()

    if not windows:
        local_firewall = _safely(problems, "firewall", lambda: firewall.inspect_firewall(ctx))
        if local_firewall is not None:
            who = _safely(problems, "identity", lambda: firewall.identity(ctx))
            found, verdicts = _safely(problems, "firewall evaluation",
                                      lambda: firewall_findings(local_firewall, who, route), ([], {}))
            findings.extend(found)
            evidence["firewall"] = dict(local_firewall.to_evidence(), verdicts=verdicts)
        container = _safely(problems, "container",
                            lambda: ctx.fact("host.container", lambda: container_facts(environ=ctx.environ)), {})
        meaning = container_imds_meaning(container or {})
        if meaning:
            evidence["container"] = dict(container, meaning=meaning)
            findings.append(Finding("container", meaning))
    if problems:
        evidence["probe_errors"] = problems
    return _conclude(findings, route, evidence, windows)


def _conclude(findings: List[Finding], route: Optional[routes.RouteReport], evidence: Dict[str, Any],
              windows: bool) -> Result:
    if not findings:
        if route is None or not route.known:
            why = "; ".join(route.probes) if route is not None else "route inspection failed"
            return _result("cannot-inspect", f"Could not determine the route to 169.254.169.254 ({why}); no proxy "
                           "applies to it.", evidence, windows)
        firewall_seen = (evidence.get("firewall") or {}).get("readable")
        if windows:
            tail = "Windows Firewall rules are not inspected by midoctor"
        elif firewall_seen:
            tail = "no readable firewall rule blocks it"
        else:
            tail = "the local firewall rules could not be read (run as root to include them)"
        return _result("no-interference", "No proxy applies to 169.254.169.254 for any client family, the route "
                       f"leaves through the primary interface and {tail}.", evidence, windows)
    findings.sort(key=lambda f: (-f.effective_status.rank, _PRIORITY.index(f.cause)))
    worst, others = findings[0], findings[1:]
    if others:
        evidence["other_findings"] = [{"cause": f.cause, "status": f.effective_status.value, "summary": f.summary}
                                      for f in others]
    if route is not None and not route.known:
        evidence["route_unknown"] = "; ".join(route.probes)
    return _result(worst.cause, worst.summary, evidence, windows, worst.status, **worst.values)


def _result(cause: str, summary: str, evidence: Dict[str, Any], windows: bool, status: Optional[Status] = None,
            **values: Any) -> Result:
    declared = SPEC.cause(cause).fix
    fix = None
    if declared is not None:
        keep = [c for c in declared.commands if (c.shell in _WINDOWS_SHELLS) == windows]
        fix = Fix(declared.text, tuple(keep), declared.links)
    return SPEC.result(cause, summary, evidence, status=status, fix=fix, **values)


def _os_name(ctx: Context) -> str:
    try:
        return str(ctx.host_facts().get("os") or "Linux")
    except Exception:  # noqa: BLE001 - an unknown OS is diagnosed as Linux, the common case
        return "Linux"


def _safely(problems: List[str], what: str, produce: Callable[[], T], default: Any = None) -> Any:
    """Run one inspection; a crash becomes evidence instead of a check error."""
    try:
        return produce()
    except Exception as exc:  # noqa: BLE001 - the check must never raise on odd machines
        problems.append(f"{what}: {type(exc).__name__}: {scrub_text(str(exc))[:200]}")
        return default


# -- proxy ------------------------------------------------------------------------------------------------------
def proxy_findings(settings: proxy.ProxySettings, decisions: Sequence[proxy.ClientDecision],
                   target_url: str = IMDS_URL) -> List[Finding]:
    """requests is azure-identity's default transport, so a proxied requests fails the check whatever the
    other families do; otherwise a bypass that works for some families only is a warning."""
    findings: List[Finding] = []
    families = [d for d in decisions if d.client != "winhttp"]
    proxied = [d for d in families if d.proxied]
    bypassing = [d for d in families if not d.proxied and d.bypass_source]
    values = _no_proxy_values(settings)
    if proxied:
        names = ", ".join(d.client for d in proxied)
        target = proxied[0].proxy or "a proxy"
        requests_hit = any(d.client == "requests" for d in proxied)
        if requests_hit or not bypassing:
            summary = (f"A request to {target_url} would go through proxy {target} for {names}"
                       f" ({proxied[0].reason}).")
            if bypassing:
                summary += f" Bypassed only for {', '.join(d.client for d in bypassing)}."
            findings.append(Finding("proxy-intercepts-imds", summary, values))
        else:
            findings.append(Finding(
                "no-proxy-partial",
                f"NO_PROXY bypasses IMDS for {', '.join(d.client for d in bypassing)} but not for {names}: "
                f"their rules do not match the entry form ({_quoted_no_proxy(settings)}); they would use proxy "
                f"{target}.", values))
    env_file = _env_file_finding(settings)
    if env_file is not None:
        findings.append(env_file)
    winhttp = next((d for d in decisions if d.client == "winhttp" and d.proxied), None)
    if winhttp is not None and settings.winhttp is not None:
        findings.append(Finding(
            "winhttp-proxy",
            f"The WinHTTP proxy {winhttp.proxy} has no bypass for 169.254.169.254 "
            f"(bypass list: {settings.winhttp.bypass_list or 'none'}).",
            {"winhttp_server": settings.winhttp.proxy_server,
             "winhttp_bypass": proxy.suggested_override(settings.winhttp.bypass_list)}))
    return findings


def _env_file_finding(settings: proxy.ProxySettings) -> Optional[Finding]:
    etc = settings.etc_environment or {}
    proxy_names = [k for k in etc if k.lower() in ("http_proxy", "all_proxy") and etc[k]]
    if not proxy_names or all(settings.environ.get(k) == etc[k] for k in proxy_names):
        return None
    affected = [d.client for d in proxy.etc_environment_decisions(settings) if d.proxied]
    if not affected:
        return None
    current = etc.get("no_proxy") or etc.get("NO_PROXY")
    return Finding(
        "proxy-env-file",
        f"/etc/environment sets {', '.join(sorted(proxy_names))} without a bypass for 169.254.169.254 that "
        f"{', '.join(affected)} honour; this process does not have it, but login sessions and cron jobs do.",
        {"etc_no_proxy": proxy.suggested_no_proxy(current)})


def _current_no_proxy(settings: proxy.ProxySettings) -> Optional[str]:
    env = settings.environ
    return env.get("no_proxy") or env.get("NO_PROXY")


def _quoted_no_proxy(settings: proxy.ProxySettings) -> str:
    value = _current_no_proxy(settings)
    return f"NO_PROXY={value!r}" if value else "no NO_PROXY"


def _no_proxy_values(settings: proxy.ProxySettings) -> Dict[str, Any]:
    override = settings.wininet.proxy_override if settings.wininet else None
    return {"no_proxy": proxy.suggested_no_proxy(_current_no_proxy(settings)),
            "proxy_override": proxy.suggested_override(override)}


# -- route -------------------------------------------------------------------------------------------------------
def route_findings(report: routes.RouteReport) -> List[Finding]:
    route = report.route
    if route is None:
        return []
    values = _route_values(report)
    if route.kind in route_parsers.REJECT_KINDS:
        entry = report.rejecting_entry()
        reject = entry.text if entry is not None and entry.text else f"{route.kind} 169.254.169.254" + (
            f" table {route.table}" if route.table else "")
        values["reject_route"] = reject
        return [Finding("route-blackhole", f"The kernel has a {route.kind} route for 169.254.169.254 ({reject}): "
                        f"connections fail before leaving the machine ({route.detail or route.kind}).", values)]
    if route.kind == "no-route":
        return [Finding("no-route", f"No route covers 169.254.169.254 ({route.detail or 'no matching entry'}).",
                        values)]
    if route.kind == "local":
        holders = [entry for entry in listeners_on(80) if "process" in entry or "pid" in entry]
        who = ", ".join(f"{h.get('process')} (pid {h.get('pid', '?')}, {h['address']})" for h in holders)
        return [Finding("imds-address-local", f"169.254.169.254 is a local address here (dev {route.dev}): a local "
                        f"listener, not IMDS, answers{': ' + who if who else ''}.", values)]
    findings: List[Finding] = []
    if report.tunnel:
        findings.append(Finding("route-not-primary", f"IMDS traffic would leave through {route.dev}: "
                                f"{report.tunnel}; IMDS is only reachable through the primary NIC.", values,
                                Status.FAIL))
    elif report.off_primary and report.primary is not None:
        primary = report.primary
        findings.append(Finding(
            "route-not-primary",
            f"IMDS traffic would leave through {route.dev or '?'} (source {route.src or '?'}) instead of the primary "
            f"interface {primary.dev or '?'} ({primary.ip or 'primary IP unknown'})"
            + (" — primary assumed to be eth0" if primary.assumed else "") + ".", values))
    return findings


def _route_values(report: routes.RouteReport) -> Dict[str, Any]:
    primary = report.primary
    route = report.route
    return {
        "gateway": primary.gateway if primary else None,
        "primary_if": primary.dev if primary and not report.os_name.lower().startswith("win") else None,
        "primary_ip": primary.ip if primary else None,
        "route_dev": route.dev if route else None,
    }


# -- firewall ----------------------------------------------------------------------------------------------------
_NOBODY = 65534


def firewall_findings(report: firewall.FirewallReport, who: Optional[firewall.Identity],
                      route: Optional[routes.RouteReport]) -> Tuple[List[Finding], Dict[str, str]]:
    """Evaluate a new connection to IMDS for root, this process and every uid/gid the rules name."""
    if not report.readable:
        return [], {}
    oif = route.route.dev if route is not None and route.route is not None else None
    src = route.route.src if route is not None and route.route is not None else None
    subjects = _subjects(report, who)
    verdicts: Dict[str, firewall_rules.Verdict] = {}
    for label, (uid, gid, groups) in subjects.items():
        verdicts[label] = report.verdict(firewall_rules.Packet(uid=uid, gid=gid, groups=groups, oif=oif, src=src))
    shown = {label: verdict.describe() for label, verdict in verdicts.items()}
    findings: List[Finding] = []
    redirect = next((v for v in verdicts.values() if v.action == "redirect"), None)
    if redirect is not None and redirect.rule is not None:
        findings.append(Finding("nat-redirect", f"A NAT rule redirects IMDS traffic: {redirect.rule.text} "
                                f"({redirect.rule.table} {redirect.rule.chain}).",
                                {"firewall_delete": redirect.rule.delete_command()}))
    blocked = {label: v for label, v in verdicts.items() if v.blocked}
    if not blocked:
        return findings, shown
    me = _self_label(who)
    if len(blocked) == len(verdicts):
        verdict = blocked.get(me) or next(iter(blocked.values()))
        rule = verdict.rule
        fix = rule.delete_command() if rule else ("sudo iptables -I OUTPUT 1 -d 169.254.169.254/32 -p tcp --dport "
                                                  "80 -j ACCEPT")
        what = f"{rule.text} ({rule.source} {rule.table} {rule.chain})" if rule else "the OUTPUT chain policy"
        findings.append(Finding("firewall-blocks", f"The local firewall blocks connections to 169.254.169.254 for "
                                f"every user: {verdict.action} by {what}.", {"firewall_delete": fix}))
        return findings, shown
    allowed = [label for label in verdicts if label not in blocked]
    deciding = next(iter(blocked.values())).rule
    me_blocked = me in blocked
    summary = (f"Firewall owner rules let only {', '.join(allowed)} reach 169.254.169.254; blocked: "
               f"{', '.join(blocked)}. This process is {'BLOCKED' if me_blocked else 'allowed'}; the "
               "application's user may differ.")
    findings.append(Finding("firewall-owner-only", summary,
                            {"owner_allow": _owner_allow_command(deciding, who)},
                            None if me_blocked else Status.WARN))
    return findings, shown


def _self_label(who: Optional[firewall.Identity]) -> str:
    if who is None:
        return "this process"
    name = f"{who.user}, " if who.user else ""
    return f"uid {who.uid} ({name}this process)"


def _subjects(report: firewall.FirewallReport, who: Optional[firewall.Identity]) -> Dict[str, Tuple[int, int, Tuple[
        int, ...]]]:
    subjects: Dict[str, Tuple[int, int, Tuple[int, ...]]] = {}
    if who is not None:
        subjects[_self_label(who)] = (who.uid, who.gid, who.groups)
    uids, gids = report.owner_ids()
    if who is None or who.uid != 0:
        subjects["uid 0 (root)"] = (0, 0, ())
    for uid in uids:
        if uid != 0 and (who is None or uid != who.uid):
            subjects.setdefault(f"uid {uid}", (uid, _NOBODY, ()))
    for gid in gids:
        subjects.setdefault(f"gid {gid}", (_NOBODY, gid, (gid,)))
    subjects.setdefault(f"uid {_NOBODY} (any other user)", (_NOBODY, _NOBODY, ()))
    return subjects


def _owner_allow_command(rule: Optional[firewall_rules.FirewallRule], who: Optional[firewall.Identity]) -> str:
    uid = str(who.uid) if who is not None and who.uid != 0 else "<app-uid>"
    if rule is not None and rule.source == "nft":
        family, _, table = rule.table.partition(" ")
        return (f"sudo nft insert rule {family} {table} {rule.chain} ip daddr 169.254.169.254 tcp dport 80 "
                f"meta skuid {uid} accept")
    table, chain = (rule.table, rule.chain) if rule is not None else ("filter", "OUTPUT")
    return (f"sudo iptables -t {table} -I {chain} 1 -d 169.254.169.254/32 -p tcp --dport 80 -m owner "
            f"--uid-owner {uid} -j ACCEPT")


def probe_commands(os_name: str) -> Sequence[Tuple[str, ...]]:
    """Every command this check may run on ``os_name`` (for labs and tests that seed them all)."""
    if os_name.lower().startswith("win"):
        return probes.WINDOWS_COMMANDS + proxy_sources.WINDOWS_COMMANDS
    return probes.LINUX_COMMANDS
