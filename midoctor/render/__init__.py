"""Turn a :class:`~midoctor.model.Report` into text, JSON, HTML, Markdown or JUnit XML.

Renderers present; they never decide a status. Each format lives in its own module, imported only when
asked for, so ``midoctor --help`` and the ``text``/``json`` paths never pay for jinja2.

The helpers below are shared by the renderers: evidence is arbitrary data gathered from a possibly broken
machine, so every format first reduces it to plain, JSON-safe, valid-Unicode values.
"""

from __future__ import annotations

import enum
import importlib
import json
import math
import re
from typing import Any, Dict, Iterator, Optional, Tuple, Union
from urllib.parse import urlsplit

from midoctor.model import Report


class Format(str, enum.Enum):
    TEXT = "text"
    JSON = "json"
    HTML = "html"
    MARKDOWN = "markdown"
    JUNIT = "junit"


# Module names, not modules: importing them here would defeat the lazy import.
_MODULES: Dict[Format, str] = {
    Format.TEXT: "midoctor.render.text",
    Format.JSON: "midoctor.render.json_report",
    Format.HTML: "midoctor.render.html",
    Format.MARKDOWN: "midoctor.render.markdown",
    Format.JUNIT: "midoctor.render.junit",
}


def render(report: Report, fmt: Union[Format, str], *, color: bool = False, verbose: bool = False) -> str:
    """Render ``report`` in ``fmt``. ``color`` only affects ``text``; ``verbose`` adds evidence to ``text``
    (the other formats always carry the evidence)."""
    try:
        chosen = Format(fmt)
    except ValueError:
        choices = ", ".join(f.value for f in Format)
        raise ValueError(f"unknown report format {fmt!r} (choose from {choices})") from None
    module = importlib.import_module(_MODULES[chosen])
    return module.render(report, color=color, verbose=verbose)  # type: ignore[no-any-return]


# -- shared cleaning --------------------------------------------------------------------------------

MAX_DEPTH = 100  # deeper than any real evidence; stops cycles and keeps json/jinja under the recursion limit
TRUNCATED = "...[{n} more characters; the JSON report has the full value]"  # ASCII: may reach an ASCII console

_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 and C1 controls and DEL: harmless in JSON (escaped), dangerous on a terminal, illegal in XML.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_str(text: str) -> str:
    """Valid Unicode: lone surrogates (e.g. undecodable bytes kept by ``surrogateescape``) become U+FFFD.

    UTF-16 with ``surrogatepass`` re-joins a correctly paired high+low surrogate into its real character
    and only replaces the lone halves.
    """
    if not _SURROGATE.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def visible_controls(text: str) -> str:
    """Show control characters as ``\\xNN`` so they are seen, not obeyed (terminal escapes) or rejected
    (XML). Tab, newline and carriage return are left for the caller to lay out."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def cut(text: str, limit: Optional[int]) -> str:
    if limit is None or len(text) <= limit:
        return text
    return text[:limit] + TRUNCATED.format(n=len(text) - limit)


def plain(value: Any, *, max_str: Optional[int] = None, _depth: int = 0) -> Any:
    """A JSON-safe copy of ``value``: str keys, valid Unicode, lists for tuples and sets, finite numbers.

    ``max_str`` cuts long strings (for formats read by people); the JSON report passes ``None`` and keeps
    every character.
    """
    if _depth > MAX_DEPTH:
        return f"...[nested deeper than {MAX_DEPTH} levels]"
    if value is None or isinstance(value, bool) or isinstance(value, int):
        return value
    if isinstance(value, float):
        # NaN and Infinity are not JSON; a string keeps the information without breaking strict parsers.
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return cut(clean_str(value), max_str)
    if isinstance(value, (bytes, bytearray)):
        return cut(bytes(value).decode("utf-8", "replace"), max_str)
    if isinstance(value, dict):
        return {
            cut(clean_str(str(k)), max_str): plain(v, max_str=max_str, _depth=_depth + 1) for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [plain(v, max_str=max_str, _depth=_depth + 1) for v in items]
    if isinstance(value, enum.Enum):
        return plain(value.value, max_str=max_str, _depth=_depth + 1)
    return cut(clean_str(str(value)), max_str)


def pretty_json(value: Any, *, max_str: Optional[int] = None) -> str:
    return json.dumps(plain(value, max_str=max_str), indent=2, ensure_ascii=False, allow_nan=False)


def compact_json(value: Any, *, max_str: Optional[int] = None) -> str:
    return json.dumps(plain(value, max_str=max_str), ensure_ascii=False, allow_nan=False, separators=(", ", ": "))


def flatten(value: Any, prefix: str = "", _depth: int = 0) -> Iterator[Tuple[str, Any]]:
    """Nested dicts as ``a.b.c`` keys, for key: value listings; lists and scalars are leaves."""
    if isinstance(value, dict) and value and _depth <= MAX_DEPTH:
        for key, item in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            yield from flatten(item, name, _depth + 1)
    else:
        yield prefix, value


def safe_href(link: str) -> Optional[str]:
    """The link if it is an absolute http(s) URL, else None: the caller then shows it as text, never as
    something a reader can follow.

    Whitespace and control characters are refused outright because browsers silently drop tabs and
    newlines from URLs (``java\\tscript:`` would run); quotes and angle brackets because no real
    documentation URL carries them unencoded and they would end a Markdown autolink.
    """
    candidate = clean_str(link).strip()
    if any(ch.isspace() or ord(ch) < 0x20 or ch in '<>"`' for ch in candidate):
        return None
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return candidate
