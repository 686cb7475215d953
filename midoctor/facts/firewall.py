"""Who may reach IMDS through the local firewall, read (never exercised) from iptables-save and nft.

``inspect_firewall`` memoizes the ``network.firewall`` fact; ``identity`` memoizes ``host.identity``, the
uid/gid a packet from this process would carry.

Reference: failure-catalog F12 (local firewall, owner-match allow-lists) and F14 (iptables DNAT/REDIRECT).
WALinuxAgent's owner-match rules protect 168.63.129.16 (the WireServer), not IMDS: they are read like any
rule and only count when they cover 169.254.169.254.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from midoctor.facts.firewall_parsers import IPTABLES_TABLE_PRIORITY, parse_iptables_save, parse_nft_ruleset
from midoctor.facts.firewall_rules import FirewallRule, Packet, Ruleset, Verdict
from midoctor.facts.probes import IPTABLES_SAVE, NFT_RULESET, CommandOutput, command, prefetch

if TYPE_CHECKING:
    from midoctor.context import Context


@dataclass(frozen=True)
class FirewallReport:
    readable: bool
    rulesets: Tuple[Ruleset, ...] = ()
    probes: Tuple[str, ...] = ()
    reason: str = ""  # why nothing could be read

    def verdict(self, packet: Packet) -> Verdict:
        """Every readable ruleset applies in turn; the first block wins."""
        maybe: List[FirewallRule] = []
        for ruleset in self.rulesets:
            result = ruleset.verdict(packet)
            maybe.extend(result.uncertain_rules)
            if result.action != "accept":
                return Verdict(result.action, result.rule, not maybe, tuple(maybe))
        return Verdict("accept", None, not maybe, tuple(maybe))

    def imds_rules(self) -> List[FirewallRule]:
        return [rule for ruleset in self.rulesets for rule in ruleset.rules if rule.mentions_imds]

    def owner_ids(self) -> Tuple[List[int], List[int]]:
        """uids and gids named by owner matches in rules that touch IMDS (directly or in chains they jump to)."""
        uids: List[int] = []
        gids: List[int] = []
        for ruleset in self.rulesets:
            relevant = _reachable_rules(ruleset)
            for rule in relevant:
                for match in rule.owner_matches:
                    for value in match.values:
                        if isinstance(value, tuple):
                            (uids if match.kind == "uid" else gids).append(value[0])
        return sorted(set(uids)), sorted(set(gids))

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"readable": self.readable, "probes": list(self.probes)}
        if not self.readable:
            out["reason"] = self.reason
        rules = self.imds_rules()
        if rules:
            out["rules_for_imds"] = [r.to_evidence() for r in rules][:20]
        return out


def _reachable_rules(ruleset: Ruleset) -> List[FirewallRule]:
    """Rules on the path of IMDS traffic: rules naming IMDS and every rule in chains they jump to."""
    out: List[FirewallRule] = []
    seen: set = set()
    todo = [r for r in ruleset.rules if r.mentions_imds]
    while todo:
        rule = todo.pop()
        if id(rule) in seen:
            continue
        seen.add(id(rule))
        out.append(rule)
        todo.extend(ruleset.chains.get((rule.table, rule.target), ()))
    return out


def _permission_problem(output: CommandOutput) -> Optional[str]:
    text = output.output.lower()
    if output.returncode not in (0, None) and any(s in text for s in ("permission denied", "must be root",
                                                                      "operation not permitted")):
        return "permission denied (run as root to read the firewall)"
    return None


def firewall_report(iptables: CommandOutput, nft: CommandOutput) -> FirewallReport:
    """Read both tools: iptables-save (legacy or nft backend) and native nftables tables. If neither can
    be read the answer is "not readable" with the reason — never a guess."""
    rulesets: List[Ruleset] = []
    probes: List[str] = []
    reasons: List[str] = []
    skip: List[str] = []
    for output in (iptables, nft):
        name = " ".join(output.argv)
        if not output.ran:
            probes.append(f"{name}: {output.reason}")
            reasons.append(f"{output.argv[0]} {output.reason}")
            continue
        problem = _permission_problem(output)
        if problem:
            probes.append(f"{name}: {problem}")
            reasons.append(f"{output.argv[0]}: {problem}")
            continue
        if output.returncode not in (0, None):
            detail = output.stderr.strip().splitlines()[:1]
            probes.append(f"{name}: exit {output.returncode}" + (f" ({detail[0][:200]})" if detail else ""))
            reasons.append(f"{output.argv[0]} failed")
            continue
        if output.argv[:1] == ("iptables-save",):
            ruleset = parse_iptables_save(output.stdout)
            if ruleset.backend == "nf_tables":
                skip.extend(f"ip {t}" for t in IPTABLES_TABLE_PRIORITY)
        else:
            ruleset = parse_nft_ruleset(output.stdout, skip)
        rulesets.append(ruleset)
        probes.append(f"{name}: read")
    return FirewallReport(readable=bool(rulesets), rulesets=tuple(rulesets), probes=tuple(probes),
                          reason="; ".join(reasons))


def inspect_firewall(ctx: Context) -> FirewallReport:
    def produce() -> FirewallReport:
        prefetch(ctx, (IPTABLES_SAVE, NFT_RULESET))
        return firewall_report(command(ctx, IPTABLES_SAVE), command(ctx, NFT_RULESET))

    return ctx.fact("network.firewall", produce)


@dataclass(frozen=True)
class Identity:
    uid: int
    gid: int
    groups: Tuple[int, ...] = ()
    user: str = ""


def current_identity() -> Optional[Identity]:
    """The effective uid/gid of this process (None on Windows). The application may run as someone else
    (F10), which is why owner-match findings name the allowed ids too."""
    if not hasattr(os, "geteuid"):
        return None
    uid, gid = os.geteuid(), os.getegid()
    user = ""
    try:
        import pwd

        user = pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        pass
    try:
        groups = tuple(os.getgroups())
    except OSError:
        groups = ()
    return Identity(uid, gid, groups, user)


def identity(ctx: Context) -> Optional[Identity]:
    return ctx.fact("host.identity", current_identity)
