"""Where the built-in checks and report assets live: ``checks/`` and ``reports/`` beside the package in a
source checkout, ``midoctor/_checks`` and ``midoctor/_reports`` inside an installed wheel (so a wheel never
installs generic top-level names such as ``checks``)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _locate(installed: str, source: str) -> Path:
    inside = _PACKAGE / installed
    if inside.is_dir():
        return inside
    return _PACKAGE.parent / source


def builtin_checks_dir() -> Path:
    return _locate("_checks", "checks")


def reports_dir() -> Path:
    return _locate("_reports", "reports")


def templates_dir() -> Path:
    return reports_dir() / "templates"


def schema_path() -> Path:
    return reports_dir() / "report.schema.json"
