"""``iptables-save`` and ``nft list ruleset`` read into the rule model of ``firewall_rules``.

Only what decides a new TCP connection to IMDS from a local process is modelled; any other condition
becomes a ``Match`` of kind ``unknown`` so the simulator can say it could not tell.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from midoctor.facts.firewall_rules import BaseChain, FirewallRule, Match, Ruleset
from midoctor.facts.ipv4 import IMDS_ADDRESS, int_or, parse_network

# -- iptables-save ---------------------------------------------------------------------------------------------
# firewall_report needs the table names too: iptables-nft also shows these tables to nft, read them once.
IPTABLES_TABLE_PRIORITY = {"raw": -300, "mangle": -150, "nat": -100, "filter": 0, "security": 50}


def parse_iptables_save(text: str) -> Ruleset:
    """``iptables-save`` (with or without ``-c`` counters). Only what decides a new TCP connection to IMDS
    from a local process is modelled: the OUTPUT path of raw/mangle/nat/filter/security."""
    chains: Dict[Tuple[str, str], List[FirewallRule]] = {}
    policies: Dict[Tuple[str, str], str] = {}
    table = ""
    backend = ""
    header = re.search(r"iptables-save v[\d.]+ \(([^)]+)\)", text)
    if header:
        backend = header.group(1)
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            table = line[1:].strip()
            continue
        if not table or not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith(":"):
            parts = line[1:].split()
            if parts:
                policies[(table, parts[0])] = parts[1] if len(parts) > 1 else "-"
                chains.setdefault((table, parts[0]), [])
            continue
        rule = _parse_iptables_rule(table, line)
        if rule is not None:
            chains.setdefault((table, rule.chain), []).append(rule)
    bases = tuple(
        BaseChain("iptables-save", t, "OUTPUT", "nat" if t == "nat" else "filter", IPTABLES_TABLE_PRIORITY[t],
                  "drop" if policy.upper() == "DROP" else "accept")
        for (t, name), policy in policies.items() if name == "OUTPUT" and t in IPTABLES_TABLE_PRIORITY
    )
    return Ruleset("iptables-save", bases, {k: tuple(v) for k, v in chains.items()}, backend)


def _parse_iptables_rule(table: str, line: str) -> Optional[FirewallRule]:
    body = re.sub(r"^\[\d+:\d+\]\s+", "", line)
    try:
        tokens = shlex.split(body)
    except ValueError:
        tokens = body.split()
    if len(tokens) < 2 or tokens[0] != "-A":
        return None
    chain = tokens[1]
    matches: List[Match] = []
    target, target_args, goto = "", [], False
    negate = False
    i = 2
    while i < len(tokens):
        token = tokens[i]
        if token == "!":
            negate = True
            i += 1
            continue
        value = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in ("-j", "--jump", "-g", "--goto"):
            target, goto = value, token in ("-g", "--goto")
            target_args = tokens[i + 2:]
            break
        consumed = 2
        if token in ("-d", "--destination", "--dst", "-s", "--source", "--src"):
            nets = tuple(n for n in (parse_network(v) for v in value.split(",")) if n is not None)
            kind = "daddr" if token in ("-d", "--destination", "--dst") else "saddr"
            matches.append(Match(kind, nets, negate, f"{token} {value}") if nets else
                           Match("unknown", (), negate, f"{token} {value}"))
        elif token in ("-p", "--protocol"):
            matches.append(Match("proto", (value,), negate, f"-p {value}"))
        elif token in ("--dport", "--destination-port", "--dports", "--destination-ports"):
            ports = _ports(value.replace(":", "-"))
            matches.append(Match("dport", ports, negate, f"{token} {value}") if ports is not None else
                           Match("unknown", (), negate, f"{token} {value}"))
        elif token in ("--uid-owner", "--gid-owner"):
            ids = _id_ranges(value)
            suppl = "--suppl-groups" in tokens
            matches.append(Match("uid" if token == "--uid-owner" else "gid", ids, negate, f"{token} {value}",
                                 suppl_groups=suppl))
        elif token in ("-o", "--out-interface"):
            matches.append(Match("oif", (value,), negate, f"-o {value}"))
        elif token in ("--ctstate", "--state"):
            matches.append(Match("ctstate", tuple(value.split(",")), negate, f"{token} {value}"))
        elif token in ("-m", "--match"):
            pass  # module loads carry no condition of their own
        elif token in ("--comment",):
            pass
        elif token == "--suppl-groups":
            consumed = 1
        elif token.startswith("-"):
            # An option we do not model (mark, set, addrtype, ...): its arguments run until the next option.
            j = i + 1
            while j < len(tokens) and not tokens[j].startswith("-") and tokens[j] != "!":
                j += 1
            matches.append(Match("unknown", (), negate, " ".join(tokens[i:j])))
            consumed = j - i
        else:
            consumed = 1
        negate = False
        i += consumed
    return FirewallRule("iptables-save", table, chain, body, tuple(matches), target, " ".join(target_args), goto)


# -- nft list ruleset -----------------------------------------------------------------------------------------------
_NFT_PRIORITY = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}
_NFT_VERDICTS = ("accept", "drop", "reject", "jump", "goto", "return", "queue", "dnat", "redirect", "snat",
                 "masquerade", "continue", "tproxy")
_NFT_SERVICES = {"http": 80, "https": 443}


def parse_nft_ruleset(text: str, skip_tables: Iterable[str] = ()) -> Ruleset:
    """``nft [-a] list ruleset``: tables of family ``ip`` and ``inet`` (the ones IPv4 output traverses),
    their base chains on the output hook, named sets with literal elements, and rules. ``skip_tables``
    (``"ip filter"``...) drops tables already read through iptables-save (iptables-nft shows both)."""
    skip = set(skip_tables)
    chains: Dict[Tuple[str, str], List[FirewallRule]] = {}
    bases: List[BaseChain] = []
    sets: Dict[Tuple[str, str], List[str]] = {}
    table = ""
    chain = ""
    set_name = ""
    set_text: List[str] = []
    depth = 0
    for raw in text.splitlines():
        line, handle = _strip_nft_comment(raw)
        if not line:
            continue
        opens, closes = line.count("{"), line.count("}")
        if depth == 0:
            match = re.match(r"table\s+(\S+)\s+(\S+)\s*\{", line)
            if match:
                family, name = match.group(1), match.group(2)
                table = f"{family} {name}" if family in ("ip", "inet") and f"{family} {name}" not in skip else ""
                depth = 1
            continue
        if depth == 1:
            if line == "}":
                depth, table = 0, ""
                continue
            match = re.match(r"(chain|set|map|flowtable|counter|quota|limit|ct\s+\S+|secmark|synproxy)\s+(\S+)"
                             r"\s*\{", line)
            if match:
                kind, name = match.group(1), match.group(2)
                chain = name if kind == "chain" else ""
                set_name = name if kind in ("set", "map") else ""
                set_text = [line]
                depth = 1 + opens - closes
                if depth == 1:
                    _finish_set(sets, table, set_name, set_text)
                    set_name = ""
                continue
            continue
        # depth >= 2: inside a chain or a set
        depth += opens - closes
        if set_name:
            set_text.append(line)
            if depth <= 1:
                _finish_set(sets, table, set_name, set_text)
                set_name = ""
            continue
        if depth <= 1:
            chain = ""
            continue
        if not table or not chain:
            continue
        base = re.match(r"type\s+(\w+)\s+hook\s+(\w+)(?:\s+device\s+\S+)?\s+priority\s+([^;]+);"
                        r"(?:\s*policy\s+(\w+);)?", line)
        if base:
            kind, hook, priority, policy = base.groups()
            if hook == "output":
                bases.append(BaseChain("nft", table, chain, kind, _nft_priority(priority),
                                       "drop" if (policy or "accept") == "drop" else "accept"))
            continue
        if line.startswith(("policy ", "comment ", "devices ")):
            continue
        chains.setdefault((table, chain), []).append(_parse_nft_rule(table, chain, line, handle, sets))
    return Ruleset("nft", tuple(bases), {k: tuple(v) for k, v in chains.items()})


def _strip_nft_comment(raw: str) -> Tuple[str, Optional[int]]:
    line = raw.strip()
    handle = None
    match = re.search(r"\s*#\s*handle\s+(\d+)\s*$", line)
    if match:
        handle = int(match.group(1))
        line = line[: match.start()].rstrip()
    if line.startswith("#"):
        return "", None
    return line, handle


def _finish_set(sets: Dict[Tuple[str, str], List[str]], table: str, name: str, lines: List[str]) -> None:
    if not table or not name:
        return
    joined = " ".join(lines)
    match = re.search(r"elements\s*=\s*\{([^}]*)\}", joined)
    sets[(table, name)] = [e.strip() for e in match.group(1).split(",") if e.strip()] if match else []


def _nft_priority(text: str) -> int:
    text = text.strip()
    match = re.fullmatch(r"([a-z]+)\s*([+-])\s*(\d+)", text)
    if match:
        base = _NFT_PRIORITY.get(match.group(1), 0)
        return base + int(match.group(3)) * (1 if match.group(2) == "+" else -1)
    if text in _NFT_PRIORITY:
        return _NFT_PRIORITY[text]
    return int_or(text, 0)


def _nft_tokens(line: str) -> List[str]:
    """Whitespace tokens, with ``{ ... }`` and quoted strings kept whole."""
    tokens: List[str] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "{":
            end = line.find("}", i)
            end = n if end < 0 else end + 1
            tokens.append(line[i:end])
            i = end
            continue
        if ch == '"':
            end = line.find('"', i + 1)
            end = n if end < 0 else end + 1
            tokens.append(line[i:end])
            i = end
            continue
        j = i
        while j < n and not line[j].isspace():
            j += 1
        tokens.append(line[i:j])
        i = j
    return tokens


def _nft_values(token: str, sets: Mapping[Tuple[str, str], List[str]], table: str) -> Optional[List[str]]:
    if token.startswith("@"):
        return sets.get((table, token[1:]))
    if token.startswith("{"):
        return [v.strip() for v in token.strip("{} ").split(",") if v.strip()]
    return [v for v in token.split(",") if v]


def _parse_nft_rule(table: str, chain: str, line: str, handle: Optional[int],
                    sets: Mapping[Tuple[str, str], List[str]]) -> FirewallRule:
    tokens = _nft_tokens(line)
    matches: List[Match] = []
    target, target_args, goto = "", "", False
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _NFT_VERDICTS:
            target, target_args, goto = _nft_verdict(tokens[i:])
            break
        if token in ("counter", "log", "limit", "comment", "meta", "ip", "tcp", "udp", "th", "ct", "skuid",
                     "skgid", "oifname", "oif", "l4proto"):
            consumed = _nft_statement(tokens, i, table, sets, matches)
        else:
            consumed = 1
            matches.append(Match("unknown", (), False, token))
        i += consumed
    return FirewallRule("nft", table, chain, line, tuple(matches), target, target_args, goto, handle)


def _nft_verdict(tokens: Sequence[str]) -> Tuple[str, str, bool]:
    word = tokens[0]
    rest = " ".join(tokens[1:])
    if word in ("jump", "goto"):
        return (tokens[1] if len(tokens) > 1 else ""), "", word == "goto"
    mapping = {"accept": "ACCEPT", "drop": "DROP", "reject": "REJECT", "return": "RETURN", "dnat": "DNAT",
               "redirect": "REDIRECT", "tproxy": "TPROXY", "queue": "QUEUE", "snat": "SNAT",
               "masquerade": "MASQUERADE", "continue": ""}
    return mapping.get(word, word.upper()), rest, False


def _nft_statement(tokens: Sequence[str], i: int, table: str, sets: Mapping[Tuple[str, str], List[str]],
                   matches: List[Match]) -> int:
    """Parse one expression at ``tokens[i]`` into ``matches``; returns how many tokens it used."""
    token = tokens[i]
    if token == "counter":
        j = i + 1
        while j + 1 < len(tokens) and tokens[j] in ("packets", "bytes"):
            j += 2
        return j - i
    if token == "comment":
        return 2
    if token == "log":
        j = i + 1
        while j + 1 < len(tokens) and tokens[j] in ("prefix", "level", "flags", "group", "snaplen",
                                                    "queue-threshold"):
            j += 2
        return j - i
    if token == "limit":
        j = i + 1
        while j < len(tokens) and tokens[j] not in _NFT_VERDICTS:
            j += 1
        matches.append(Match("unknown", (), False, " ".join(tokens[i:j])))
        return j - i
    # "<expr> [op] value": the expression is one or two words.
    key = token
    j = i + 1
    if token in ("meta", "ip", "tcp", "udp", "th", "ct") and j < len(tokens):
        key = f"{token} {tokens[j]}"
        j += 1
    negated = False
    if j < len(tokens) and tokens[j] in ("!=", "==", "eq", "ne"):
        negated = tokens[j] in ("!=", "ne")
        j += 1
    if j < len(tokens) and tokens[j] == "set":  # "meta mark set 1" is a statement, not a condition
        return j + 2 - i
    value = tokens[j] if j < len(tokens) else ""
    used = j + 1 - i
    text = " ".join(tokens[i:i + used])
    values = _nft_values(value, sets, table)
    kind = {
        "ip daddr": "daddr", "ip saddr": "saddr", "meta l4proto": "proto", "ip protocol": "proto",
        "l4proto": "proto", "tcp dport": "dport", "th dport": "dport", "meta skuid": "uid", "skuid": "uid",
        "meta skgid": "gid", "skgid": "gid", "oifname": "oif", "meta oifname": "oif", "ct state": "ctstate",
    }.get(key)
    if kind is None or values is None:
        if key in ("meta nfproto", "meta protocol") and value in ("ipv4", "ip"):
            return used
        matches.append(Match("unknown", (), negated, text))
        return used
    if kind in ("daddr", "saddr"):
        nets = [parse_network(v) or _range_network(v) for v in values]
        parsed: Tuple[Any, ...] = tuple(n for n in nets if n is not None)
        if len(parsed) != len(values):
            matches.append(Match("unknown", (), negated, text))
            return used
    elif kind == "dport":
        ports = _ports(",".join(str(_NFT_SERVICES.get(v, v)) for v in values))
        if ports is None:
            matches.append(Match("unknown", (), negated, text))
            return used
        parsed = ports
    elif kind in ("uid", "gid"):
        parsed = tuple(_nft_owner_id(v) for v in values)
    else:
        parsed = tuple(v.strip('"') for v in values)
    if key.startswith("tcp "):
        matches.append(Match("proto", ("tcp",), False, "tcp"))
    elif key.startswith("udp "):
        matches.append(Match("proto", ("udp",), False, "udp"))
    matches.append(Match(kind, parsed, negated, text))
    return used


def _nft_owner_id(value: str) -> Any:
    """A numeric id or range becomes ``(low, high)``; ``root`` is uid/gid 0 everywhere; any other name
    stays a string (evaluated as "cannot tell")."""
    parsed = _id_ranges(value)[0]
    if isinstance(parsed, tuple):
        return parsed
    return (0, 0) if value == "root" else value


def _range_network(text: str) -> Optional[ipaddress.IPv4Network]:
    if "-" not in text:
        return None
    low, _, high = text.partition("-")
    try:
        nets = list(ipaddress.summarize_address_range(ipaddress.IPv4Address(low), ipaddress.IPv4Address(high)))
    except ValueError:
        return None
    covering = [n for n in nets if IMDS_ADDRESS in n]
    return covering[0] if covering else nets[0]


def _ports(text: str) -> Optional[Tuple[Tuple[int, int], ...]]:
    out: List[Tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        out.append((int(low), int(high or low)))
    return tuple(out) if out else None


def _id_ranges(text: str) -> Tuple[Any, ...]:
    low, _, high = text.partition("-")
    if low.isdigit() and (not high or high.isdigit()):
        return ((int(low), int(high or low)),)
    return (text,)
