"""Writing report files: atomically (a reader never sees half a report) and readable only by the owner,
because reports hold subscription ids and resource names."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any, List

REPORT_FILES = (("report.json", "json"), ("report.html", "html"), ("report.md", "markdown"))


class OutputError(Exception):
    """The output directory cannot take the reports; one line for the user, exit code 2."""


def _prepare(directory: Path) -> Path:
    if directory.is_symlink():
        raise OutputError(f"{directory}: is a symbolic link; refusing to write reports through it")
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"{directory}: exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create the output directory: {exc.strerror or exc}") from None
    return directory


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".midoctor-", dir=str(path.parent))
    try:
        if hasattr(os, "fchmod"):  # not on Windows before Python 3.13, where ACLs govern access anyway
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.is_symlink():
            raise OutputError(f"{path}: is a symbolic link; refusing to replace it")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_reports(report: Any, directory: Path) -> List[Path]:
    from midoctor.render import render

    directory = _prepare(Path(directory))
    written = []
    for name, fmt in REPORT_FILES:
        path = directory / name
        try:
            _write_atomic(path, render(report, fmt))
        except OSError as exc:
            reason = "disk full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
            raise OutputError(f"{path}: cannot write the report: {reason}") from None
        written.append(path)
    return written
