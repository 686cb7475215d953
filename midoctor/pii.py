"""--redact-pii: replace identifying values with stable per-run placeholders, for reports that leave the
organisation. Secrets never reach a report (see ``redact``); this pass also hides who and where: the
subscription, tenant and object ids (every GUID but the run id), resource names in ARM ids, the VM and
resource-group names, and the host name. The same value always gets the same placeholder within a report,
so the report still reads coherently ("<vm-1> has no identity ... az vm identity assign -n <vm-1>").

How a value is matched depends on how ambiguous it is, because a blind substring replace corrupts the
report: a host called ``role`` turned ``az role assignment create`` into ``az <host-1> assignment create``.

* GUIDs are unambiguous: replaced wherever they occur.
* Names in ARM ids (``/subscriptions/<sub>/resourceGroups/<rg>/providers/<ns>/<type>/<name>``) are
  replaced as path segments, whatever they are.
* Other values of 4 characters or more that are not common CLI/English vocabulary are replaced as whole
  tokens: never inside a longer name (neighbours may not be ``[A-Za-z0-9_.-]``).
* Short or vocabulary values (``vm``, ``test``, ``role``...) carry little identifying information and are
  everywhere in ordinary text, so they are replaced only where they are the whole value: a name-like
  field equal to them (``host.hostname``) or the argument of a name flag in a fix command (``-n vm``).

Documentation links, command shells and the report's own structure (check ids, causes, statuses, titles,
run id, timestamps) are never touched.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Tuple

from midoctor.model import Report

_GUID_TEXT = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# No left boundary: a GUID is unambiguous by shape, and one may follow a hex digit (a %2F-encoded path).
_GUID = re.compile(_GUID_TEXT + r"(?![0-9a-fA-F])")
_IS_GUID = re.compile(r"^" + _GUID_TEXT + r"$")
# Subscription-rooted ids and management-group scopes; a segment stops at whitespace, quotes, '?' or '#'.
_ARM_ID = re.compile(r"(?i)/(?:subscriptions|providers/Microsoft\.Management/managementGroups)/[^/\s'\"?#]+"
                     r"(?:/[^/\s'\"?#]+)*")
_NAMED_SEGMENTS = {"subscriptions", "resourcegroups", "providers"}
# Characters a name can continue with: a match next to one of them is part of a longer name.
_NAME_CHARS = "A-Za-z0-9_.\\-"
_LEFT = rf"(?<![{_NAME_CHARS}])"
# A '.' ends a name only when nothing name-like follows it: "on vm1." is a sentence, "vm1.contoso" a longer name.
_RIGHT = r"(?![A-Za-z0-9_\-])(?!\.[A-Za-z0-9_\-])"
# Fields whose whole value is a name: where a short or vocabulary value is still replaced.
_NAME_KEY = re.compile(r"name|resource_?group", re.I)
# Fix-command flags whose argument is a resource or host name.
_NAME_FLAG_ARG = re.compile(r"(?P<flag>(?:^|\s)(?:-g|-n|--resource-group|--name|--vm-name|--identities|--ids)\s+)"
                            r"(?P<quote>['\"]?)(?P<value>[^\s'\"]+)(?P=quote)(?=\s|$)")
_TRAILING_PUNCTUATION = ".,;:!?'\"`>]}"

MIN_TOKEN_LENGTH = 4
# Words that also occur in commands, prose and evidence: as a host or resource name they are replaced only
# as a whole value. Includes every word of the built-in fix commands and the placeholders' own kinds.
VOCABULARY: FrozenSet[str] = frozenset("""
    az vm vmss identity identities role roles assignment assignments assign create delete update show list
    set get put add del remove reset install export import query table json yaml tsv none all scope group
    groups name names host hostname localhost default test tests testing demo prod production dev develop
    staging stage qa uat main master admin root user users app apps api web www server servers client
    service services data db sql node worker agent linux windows ubuntu debian centos redhat alpine docker
    container machine process environment network nic cloud route proxy proxies curl sudo grep printf tee
    netsh winhttp iptables nat addr dev via src mask local metadata true false null token tokens secret
    secrets key keys vault vaults storage account accounts blob blobs queue table resource resources
    subscription subscriptions tenant object objects principal principals managed system systemd unit
    instance instances ids object-id client-id resource-group scale-set scale sets vm-name id ip http https
    imds arm azure microsoft python azcli public private internal external primary secondary backup
    gateway cache check checks fail pass warn skip error fix help info debug
""".split())

_TOP_LEVEL_STRUCTURE = {"schema_version", "tool", "run_id", "started_at", "duration_ms", "interrupted", "summary"}
_CHECK_STRUCTURE = {"id", "title", "status", "cause", "duration_ms"}
_DIAGNOSIS_STRUCTURE = {"id", "status", "cause"}

Path = Tuple[Any, ...]


def _fix_rest(path: Path) -> Optional[Path]:
    """The part of ``path`` below a fix (checks[i].fix or diagnosis.fix), or None outside fixes."""
    if path[:1] == ("checks",) and len(path) >= 3 and path[2] == "fix":
        return path[3:]
    if path[:2] == ("diagnosis", "fix"):
        return path[2:]
    return None


def _is_structure(path: Path) -> bool:
    if len(path) == 1 and path[0] in _TOP_LEVEL_STRUCTURE:
        return True
    if len(path) == 3 and path[0] == "checks" and path[2] in _CHECK_STRUCTURE:
        return True
    if len(path) == 2 and path[0] == "diagnosis" and path[1] in _DIAGNOSIS_STRUCTURE:
        return True
    rest = _fix_rest(path)
    # Documentation links and shell names are ours, never the machine's.
    return rest is not None and (rest[:1] == ("links",) or (len(rest) == 3 and rest[0] == "commands"
                                                            and rest[2] == "shell"))


def _is_command_text(path: Path) -> bool:
    rest = _fix_rest(path)
    return rest is not None and len(rest) == 3 and rest[0] == "commands" and rest[2] == "text"


def _walk(value: Any, path: Path, visit: Callable[[str, Path], str]) -> Any:
    if _is_structure(path):
        return value
    if isinstance(value, str):
        return visit(value, path)
    if isinstance(value, list):
        return [_walk(v, path + (i,), visit) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _walk(v, path + (k,), visit) for k, v in value.items()}
    return value


def _strings(data: Dict[str, Any]) -> List[str]:
    found: List[str] = []

    def keep(text: str, _path: Path) -> str:
        found.append(text)
        return text

    _walk(data, (), keep)
    return found


def _strip_segment(segment: str) -> str:
    """A path segment without sentence punctuation stuck to it ("…/vm1." at the end of a sentence).

    Azure names never end with '.', and a ')' is kept when the name opens one ("rg(1)")."""
    core = segment.rstrip(_TRAILING_PUNCTUATION)
    if core.endswith(")") and "(" not in core:
        core = core.rstrip(")")
    return core


def _name_positions(parts: List[str]) -> List[int]:
    """Indexes of the subscription id, resource-group and resource names in a split ARM id (never the
    namespaces or types). ``parts`` starts at the first segment after the leading '/'."""
    positions: List[int] = []
    index = 0
    while index < len(parts) - 1:
        key = parts[index].lower()
        if key in ("subscriptions", "resourcegroups"):
            positions.append(index + 1)
            index += 2
        elif key == "providers":
            index += 2  # the namespace, e.g. Microsoft.Compute
            while index < len(parts) - 1 and parts[index].lower() not in _NAMED_SEGMENTS:
                positions.append(index + 1)  # type/name pairs
                index += 2
        else:
            index += 1
    return positions


class _Placeholders:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id.lower()
        self.mapping: Dict[str, str] = {}
        self.counters: Dict[str, int] = {}
        self._tokens: Optional[re.Pattern[str]] = None

    def add(self, value: str, kind: str) -> None:
        value = value.strip()
        if not value or value.startswith("<") or value.lower() in self.mapping or value.lower() == self.run_id:
            return
        self.counters[kind] = self.counters.get(kind, 0) + 1
        self.mapping[value.lower()] = f"<{kind}-{self.counters[kind]}>"
        self._tokens = None

    def lookup(self, value: str) -> Optional[str]:
        return self.mapping.get(value.lower())

    @staticmethod
    def ambiguous(value: str) -> bool:
        return not _IS_GUID.match(value) and (len(value) < MIN_TOKEN_LENGTH or value.lower() in VOCABULARY)

    def _token_pattern(self) -> Optional[re.Pattern[str]]:
        if self._tokens is None:
            tokens = sorted((v for v in self.mapping if not self.ambiguous(v) and not _IS_GUID.match(v)),
                            key=len, reverse=True)
            if not tokens:
                return None
            self._tokens = re.compile(_LEFT + "(?:" + "|".join(re.escape(t) for t in tokens) + ")" + _RIGHT, re.I)
        return self._tokens

    def _arm_segments(self, match: re.Match[str]) -> str:
        parts = match.group(0).split("/")[1:]
        for index in _name_positions(parts):
            segment = parts[index]
            for candidate in (segment, _strip_segment(segment)):
                placeholder = self.lookup(candidate)
                if placeholder:
                    parts[index] = placeholder + segment[len(candidate):]
                    break
        return "/" + "/".join(parts)

    def _flag_argument(self, match: re.Match[str]) -> str:
        placeholder = self.lookup(match.group("value"))
        if placeholder is None:
            return match.group(0)
        quote = match.group("quote")
        return f"{match.group('flag')}{quote}{placeholder}{quote}"

    def apply(self, text: str, path: Path) -> str:
        if not self.mapping or not text:
            return text
        key = next((p for p in reversed(path) if isinstance(p, str)), "")
        whole = self.lookup(text.strip())
        if whole and (not self.ambiguous(text.strip()) or _NAME_KEY.search(key)):
            return whole
        text = _ARM_ID.sub(self._arm_segments, text)
        text = _GUID.sub(lambda m: self.lookup(m.group(0)) or m.group(0), text)
        tokens = self._token_pattern()
        if tokens is not None:
            text = tokens.sub(lambda m: self.mapping[m.group(0).lower()], text)
        if _is_command_text(path):
            text = _NAME_FLAG_ARG.sub(self._flag_argument, text)
        return text


def _collect(placeholders: _Placeholders, data: Dict[str, Any]) -> None:
    host = data.get("host") or {}
    # Host facts first: they give the VM, group and subscription their meaningful placeholder kinds.
    for key, kind in (("subscriptionId", "subscription"), ("resourceGroupName", "resource-group"),
                      ("name", "vm"), ("vmScaleSetName", "scale-set"), ("hostname", "host")):
        if isinstance(host.get(key), str):
            placeholders.add(host[key], kind)
    texts = _strings(data)
    for text in texts:
        for arm_id in _ARM_ID.findall(text):
            parts = arm_id.split("/")[1:]
            for index in _name_positions(parts):
                name = _strip_segment(parts[index])
                placeholders.add(name, "id" if _IS_GUID.match(name) else "name")
    for text in texts:
        for guid in _GUID.findall(text):
            placeholders.add(guid, "id")


def redact_report(report: Report) -> Report:
    data = report.to_dict()
    placeholders = _Placeholders(data["run_id"])
    _collect(placeholders, data)
    redacted = _walk(data, (), placeholders.apply)
    redacted.setdefault("config", {})["pii_redacted"] = True
    return Report.from_dict(redacted)

