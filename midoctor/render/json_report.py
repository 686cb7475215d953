"""The JSON report: ``Report.to_dict()`` verbatim, the public and versioned contract
(``reports/report.schema.json``) that ``midoctor render`` and other tools read back.

Values are only cleaned, never dropped or cut: lone surrogates become U+FFFD so the output is valid
UTF-8, and odd types (bytes, sets, NaN) become their nearest JSON form. Control characters need no help:
``json`` escapes them.
"""

from __future__ import annotations

import json

from midoctor.model import Report
from midoctor.render import plain


def render(report: Report, *, color: bool = False, verbose: bool = False) -> str:
    """``color`` and ``verbose`` are accepted for a uniform renderer signature; JSON always has everything."""
    del color, verbose
    data = plain(report.to_dict())
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False, allow_nan=False) + "\n"
