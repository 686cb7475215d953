"""The probe seam: the one way facts run a read-only command or read a file, and the commands the route
and firewall facts need.

Every raw input goes through two small functions, ``command(ctx, argv)`` and ``file_text(ctx, path)``,
memoized in the run context under ``command_key(argv)`` / ``file_key(path)``: tests, the network-namespace
lab and recorded reports supply recorded outputs with ``ctx.seed(command_key(argv), CommandOutput(...))``,
so every parser stays pure. ``LINUX_COMMANDS`` / ``WINDOWS_COMMANDS`` list the route and firewall commands
so a caller can seed them all (the Windows proxy commands are in ``proxy_sources``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional, Sequence, Tuple

from midoctor.facts.ipv4 import IMDS_IP

if TYPE_CHECKING:
    from midoctor.context import Context

IP_ROUTE_GET_JSON: Tuple[str, ...] = ("ip", "-j", "route", "get", IMDS_IP)
IP_ROUTE_GET: Tuple[str, ...] = ("ip", "route", "get", IMDS_IP)
IP_ROUTE_TABLE_JSON: Tuple[str, ...] = ("ip", "-4", "-j", "route", "show", "table", "all")
IP_LINK_DETAILS_JSON: Tuple[str, ...] = ("ip", "-d", "-j", "link", "show")
IPTABLES_SAVE: Tuple[str, ...] = ("iptables-save",)
NFT_RULESET: Tuple[str, ...] = ("nft", "-a", "list", "ruleset")
ROUTE_PRINT: Tuple[str, ...] = ("route", "print", "-4")
PROC_NET_ROUTE = "/proc/net/route"

LINUX_COMMANDS: Tuple[Tuple[str, ...], ...] = (
    IP_ROUTE_GET_JSON, IP_ROUTE_GET, IP_ROUTE_TABLE_JSON, IP_LINK_DETAILS_JSON, IPTABLES_SAVE, NFT_RULESET,
)
WINDOWS_COMMANDS: Tuple[Tuple[str, ...], ...] = (ROUTE_PRINT,)

COMMAND_TIMEOUT_S = 1.5
MAX_TEXT = 4 * 1024 * 1024


@dataclass(frozen=True)
class CommandOutput:
    """What one command printed, or why it could not run (``reason``: ``missing``, ``timeout``,
    ``permission denied``, ``error: ...``). A non-zero exit is not a failure to run: ``ip route get``
    exits 2 with ``RTNETLINK answers: ...`` and that *is* the answer."""

    argv: Tuple[str, ...]
    stdout: str = ""
    stderr: str = ""
    returncode: Optional[int] = 0
    reason: Optional[str] = None

    @property
    def ran(self) -> bool:
        return self.reason is None

    @property
    def output(self) -> str:
        return self.stdout + ("\n" + self.stderr if self.stderr else "")

    def describe(self) -> str:
        name = " ".join(self.argv)
        if not self.ran:
            return f"{name}: {self.reason}"
        return f"{name}: exit {self.returncode}"


@dataclass(frozen=True)
class FileContent:
    path: str
    text: Optional[str] = None
    reason: Optional[str] = None  # why it could not be read


def run_command(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> CommandOutput:
    """Run a read-only command with a deadline; never raises. ``LC_ALL=C`` keeps Linux tools in English
    (Windows tools follow the display language whatever the environment says)."""
    args = tuple(str(a) for a in argv)
    if not args or shutil.which(args[0]) is None:
        return CommandOutput(args, returncode=None, reason="missing")
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env, check=False,
        )
    except subprocess.TimeoutExpired:
        return CommandOutput(args, returncode=None, reason=f"timeout after {timeout:g} s")
    except FileNotFoundError:
        return CommandOutput(args, returncode=None, reason="missing")
    except PermissionError:
        return CommandOutput(args, returncode=None, reason="permission denied")
    except OSError as exc:
        return CommandOutput(args, returncode=None, reason=f"error: {exc}")
    return CommandOutput(
        args,
        stdout=done.stdout[:MAX_TEXT].decode("utf-8", "replace"),
        stderr=done.stderr[:MAX_TEXT].decode("utf-8", "replace"),
        returncode=done.returncode,
    )


def read_text(path: str, limit: int = MAX_TEXT) -> FileContent:
    try:
        with open(path, "rb") as handle:
            return FileContent(path, handle.read(limit).decode("utf-8", "replace"))
    except FileNotFoundError:
        return FileContent(path, reason="does not exist")
    except PermissionError:
        return FileContent(path, reason="permission denied")
    except OSError as exc:
        return FileContent(path, reason=f"error: {exc.strerror or exc}")


def command_key(argv: Sequence[str]) -> Tuple[str, ...]:
    return ("command",) + tuple(argv)


def file_key(path: str) -> Tuple[str, str]:
    return ("file", str(path))


def command(ctx: Context, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT_S) -> CommandOutput:
    """Run ``argv`` once per run (memoized in the context; ``ctx.seed(command_key(argv), ...)`` replaces it)."""
    return ctx.fact(command_key(argv), lambda: run_command(argv, timeout))


def file_text(ctx: Context, path: str) -> FileContent:
    return ctx.fact(file_key(path), lambda: read_text(path))


def prefetch(ctx: Context, argvs: Iterable[Sequence[str]]) -> None:
    """Start independent probes together so a slow one does not add up with the others."""
    from concurrent.futures import ThreadPoolExecutor

    todo = list(argvs)
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=min(6, len(todo))) as pool:
        list(pool.map(lambda argv: command(ctx, argv), todo))
