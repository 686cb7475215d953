"""A local firewall as rules, and what it does to a new TCP connection to IMDS from one uid/gid.

The model is shared by both readers (iptables-save and nft, in ``firewall_parsers``): a ``Ruleset`` of
base chains on the output path, each walked like the kernel would for one ``Packet``. A condition this
reader cannot evaluate is never guessed: the rule is reported as one that *may* decide (``Verdict.certain``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from midoctor.facts.ipv4 import IMDS_ADDRESS, IMDS_PORT


@dataclass(frozen=True)
class Match:
    """One condition of a firewall rule; ``kind`` ``unknown`` is a condition this reader cannot evaluate."""

    kind: str  # daddr | saddr | proto | dport | uid | gid | oif | ctstate | unknown
    values: Tuple[Any, ...] = ()
    negated: bool = False
    text: str = ""
    suppl_groups: bool = False


@dataclass(frozen=True)
class Packet:
    """A new TCP connection to IMDS from a process with this uid/gid."""

    uid: int
    gid: int
    groups: Tuple[int, ...] = ()
    oif: Optional[str] = None
    src: Optional[str] = None
    dst: ipaddress.IPv4Address = IMDS_ADDRESS
    dport: int = IMDS_PORT


@dataclass(frozen=True)
class FirewallRule:
    source: str  # "iptables-save" | "nft"
    table: str  # iptables table ("filter") or nft "family name" ("inet filter")
    chain: str
    text: str
    matches: Tuple[Match, ...] = ()
    target: str = ""  # ACCEPT DROP REJECT RETURN DNAT REDIRECT <chain> (iptables spelling, also for nft)
    target_args: str = ""
    goto: bool = False
    handle: Optional[int] = None  # nft rule handle, for ``nft delete rule``

    def evaluate(self, packet: Packet) -> Optional[bool]:
        """True/False when every condition is understood, None when an unknown one decides."""
        unknown = False
        for match in self.matches:
            result = _match(match, packet)
            if result is False:
                return False
            if result is None:
                unknown = True
        return None if unknown else True

    @property
    def mentions_imds(self) -> bool:
        return any(m.kind == "daddr" and not m.negated and any(IMDS_ADDRESS in n for n in m.values)
                   for m in self.matches)

    @property
    def owner_matches(self) -> Tuple[Match, ...]:
        return tuple(m for m in self.matches if m.kind in ("uid", "gid"))

    def delete_command(self) -> str:
        if self.source == "nft":
            family, _, name = self.table.partition(" ")
            handle = self.handle if self.handle is not None else "<handle from: nft -a list chain " \
                f"{family} {name} {self.chain}>"
            return f"sudo nft delete rule {family} {name} {self.chain} handle {handle}"
        spec = re.sub(r"^(?:\[\d+:\d+\]\s+)?-A\s+\S+\s*", "", self.text)
        return f"sudo iptables -t {self.table} -D {self.chain} {spec}".rstrip()

    def to_evidence(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"source": self.source, "table": self.table, "chain": self.chain, "rule": self.text}
        owners = [("! " if m.negated else "") + m.text for m in self.owner_matches]
        if owners:
            out["owner"] = owners
        unknown = [m.text for m in self.matches if m.kind == "unknown"]
        if unknown:
            out["not_evaluated"] = unknown
        return out


_BLOCK = frozenset({"DROP", "REJECT"})
_REDIRECT = frozenset({"DNAT", "REDIRECT", "TPROXY"})


def _match(match: Match, packet: Packet) -> Optional[bool]:
    result: Optional[bool]
    kind = match.kind
    if kind == "daddr":
        result = any(packet.dst in net for net in match.values)
    elif kind == "saddr":
        try:
            src = ipaddress.IPv4Address(packet.src or "")
        except ValueError:
            return None  # source address unknown (or not IPv4): cannot tell
        result = any(src in net for net in match.values)
    elif kind == "proto":
        result = any(str(v).lower() in ("tcp", "6", "all", "0") for v in match.values)
    elif kind == "dport":
        result = any(lo <= packet.dport <= hi for lo, hi in match.values)
    elif kind in ("uid", "gid"):
        if any(not isinstance(v, tuple) for v in match.values):
            return None  # a user/group name: resolving it on another machine would be a guess
        ids = (packet.uid,) if kind == "uid" else ((packet.gid,) + (packet.groups if match.suppl_groups else ()))
        result = any(lo <= i <= hi for lo, hi in match.values for i in ids)
    elif kind == "oif":
        if packet.oif is None:
            return None
        result = any(_iface_match(str(v), packet.oif) for v in match.values)
    elif kind == "ctstate":
        result = any(str(v).upper() == "NEW" for v in match.values)
    else:
        return None
    return result != match.negated


def _iface_match(pattern: str, name: str) -> bool:
    if pattern.endswith("+") or pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return name == pattern


@dataclass(frozen=True)
class Verdict:
    """What the local firewall does to a new connection to IMDS from one uid/gid."""

    action: str  # accept | drop | reject | redirect
    rule: Optional[FirewallRule] = None  # the deciding rule (None: a chain policy)
    certain: bool = True
    uncertain_rules: Tuple[FirewallRule, ...] = ()  # blocking rules with conditions we cannot evaluate

    @property
    def blocked(self) -> bool:
        return self.action in ("drop", "reject")

    def describe(self) -> str:
        how = self.rule.text if self.rule else "chain policy"
        text = f"{self.action} ({how})"
        if not self.certain:
            text += f"; {len(self.uncertain_rules)} rule(s) with conditions midoctor cannot evaluate may block first"
        return text


@dataclass
class _Walk:
    chains: Mapping[str, Sequence[FirewallRule]]
    packet: Packet
    maybe: List[FirewallRule] = field(default_factory=list)

    def run(self, chain: str, depth: int = 0) -> Optional[Tuple[str, Optional[FirewallRule]]]:
        """Walk one chain; returns (action, rule), ("return", rule) or None when the chain falls through."""
        if depth > 32:
            return None
        for rule in self.chains.get(chain, ()):
            hit = rule.evaluate(self.packet)
            if hit is False:
                continue
            target = rule.target
            if hit is None:
                if target in _BLOCK or (target in self.chains and self._can_block(target, depth + 1)):
                    self.maybe.append(rule)
                continue
            if target == "ACCEPT":
                return "accept", rule
            if target in _BLOCK:
                return target.lower(), rule
            if target == "RETURN":
                return "return", rule
            if target in _REDIRECT:
                return "redirect", rule
            if target in self.chains:
                result = self.run(target, depth + 1)
                if result is not None and result[0] != "return":
                    return result
                if rule.goto:
                    return "return", rule
        return None

    def _can_block(self, chain: str, depth: int) -> bool:
        if depth > 32:
            return False
        return any(r.target in _BLOCK or (r.target in self.chains and self._can_block(r.target, depth + 1))
                   for r in self.chains.get(chain, ()))


@dataclass(frozen=True)
class BaseChain:
    """Where a packet enters: an iptables built-in OUTPUT chain or an nft base chain on the output hook."""

    source: str
    table: str
    chain: str
    kind: str  # filter | nat | route
    priority: int
    policy: str  # accept | drop


@dataclass(frozen=True)
class Ruleset:
    source: str
    bases: Tuple[BaseChain, ...] = ()
    chains: Mapping[Tuple[str, str], Tuple[FirewallRule, ...]] = field(default_factory=dict)
    backend: str = ""  # iptables-save header: "nf_tables" or "legacy"

    @property
    def rules(self) -> List[FirewallRule]:
        return [rule for rules in self.chains.values() for rule in rules]

    def verdict(self, packet: Packet) -> Verdict:
        maybe: List[FirewallRule] = []
        for base in sorted(self.bases, key=lambda b: b.priority):
            chains = {name: rules for (table, name), rules in self.chains.items() if table == base.table}
            walk = _Walk(chains, packet)
            result = walk.run(base.chain)
            maybe.extend(walk.maybe)
            action, rule = result if result is not None and result[0] != "return" else (base.policy, None)
            if action in ("drop", "reject", "redirect"):
                return Verdict(action, rule, certain=not maybe, uncertain_rules=tuple(maybe))
        return Verdict("accept", None, certain=not maybe, uncertain_rules=tuple(maybe))
