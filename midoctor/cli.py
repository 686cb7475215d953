"""The command line: parse options, build the config, run, render, choose the exit code. Nothing else.

Exit codes (a public contract, see README): 0 nothing at or above --fail-on; 1 a check at or above it;
2 usage or configuration error; 3 midoctor itself failed or a check errored (never silently 0);
130 interrupted (Ctrl-C), after writing what was found so far.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, List, Sequence, Tuple

import click

from midoctor import __version__

EXIT_OK, EXIT_FINDING, EXIT_USAGE, EXIT_BROKEN, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
FORMATS = ("text", "json", "html", "markdown", "junit")


class UsageProblem(click.ClickException):
    exit_code = EXIT_USAGE


def _fail_usage(message: str) -> UsageProblem:
    return UsageProblem(message)


class _Group(click.Group):
    """Anything unexpected becomes one line and exit code 3 (midoctor itself failed), never a traceback that
    a CI step would read as exit 1 ("a finding"). MIDOCTOR_DEBUG=1 shows the traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if os.environ.get("MIDOCTOR_DEBUG"):
                raise
            from midoctor.redact import scrub_text

            click.echo(f"midoctor: internal error: {type(exc).__name__}: {scrub_text(str(exc))[:300]} "
                       "(set MIDOCTOR_DEBUG=1 for the traceback)", err=True)
            ctx.exit(EXIT_BROKEN)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=__version__, prog_name="midoctor", message="midoctor %(version)s")
def main() -> None:
    """midoctor: explains why an Azure managed-identity token cannot be obtained or is rejected."""


def _run_options(func: Any) -> Any:
    options = [
        click.option("--imds-url", envvar="MIDOCTOR_IMDS_URL", default="http://169.254.169.254", show_default=True,
                     help="IMDS base URL (env MIDOCTOR_IMDS_URL)."),
        click.option("--arm-url", envvar="MIDOCTOR_ARM_URL", default=None,
                     help="ARM endpoint (env MIDOCTOR_ARM_URL) [default: ARM of the cloud the VM reports]."),
        click.option("--client-id", default=None, help="Identity client id [default: AZURE_CLIENT_ID]."),
        click.option("--object-id", default=None, help="Identity object (principal) id."),
        click.option("--msi-res-id", default=None, help="Identity ARM resource id."),
        click.option("--resource", "resources", multiple=True, metavar="URI",
                     help="Resource (audience) the application asks for; repeatable [default: ARM of the cloud]."),
        click.option("--scope", default=None, metavar="ARM_SCOPE",
                     help="Scope to check permissions at [default: the VM's resource group]."),
        click.option("--action", "actions", multiple=True, metavar="OPERATION",
                     help="Operation the identity must be allowed (action or data action); repeatable. Prefix "
                          "'data:' to force a data action."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
                     help="Report format on stdout."),
        click.option("--output", type=click.Path(path_type=Path), default=None, metavar="DIR",
                     help="Also write report.json, report.html and report.md into DIR."),
        click.option("--fail-on", type=click.Choice(["fail", "warn"]), default="fail", show_default=True,
                     help="Lowest status that makes the exit code 1."),
        click.option("--only", multiple=True, metavar="ID", help="Run only these checks; repeatable."),
        click.option("--skip", multiple=True, metavar="ID", help="Do not run these checks; repeatable."),
        click.option("--timeout", type=click.FloatRange(min=0.5, max=600), default=30.0, show_default=True,
                     help="Deadline for the whole run, in seconds."),
        click.option("--checks-dir", "checks_dirs", multiple=True, type=click.Path(path_type=Path),
                     help="Directory of extra check modules; repeatable."),
        click.option("-v", "--verbose", is_flag=True, help="Show the evidence of every check."),
        click.option("--redact-pii", is_flag=True,
                     help="Replace subscription/object ids, resource names and the host name with placeholders."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@_run_options
def run(**options: Any) -> None:
    """Run every check against this machine's IMDS and report the cause."""
    sys.exit(_execute(options, environ=dict(os.environ)))


def _build_config(options: dict, environ: dict) -> Any:
    from midoctor.config import Config, ConfigError, selector_from, validate_scope, validate_url

    try:
        return Config(
            imds_url=validate_url(options["imds_url"], "--imds-url"),
            arm_url=validate_url(options["arm_url"], "--arm-url") if options.get("arm_url") else None,
            selector=selector_from(options.get("client_id"), options.get("object_id"), options.get("msi_res_id"),
                                   environ),
            resources=tuple(r.strip() for r in options.get("resources") or () if r.strip()),
            scope=validate_scope(options["scope"]) if options.get("scope") else None,
            actions=tuple(a.strip() for a in options.get("actions") or () if a.strip()),
            timeout=options["timeout"],
            environ=environ,
        )
    except ConfigError as exc:
        raise _fail_usage(str(exc)) from None


def _validate_actions(actions: Sequence[str]) -> None:
    from midoctor.rbac import parse_operation

    for action in actions:
        try:
            operation = parse_operation(action)
        except ValueError as exc:
            raise _fail_usage(f"--action {action!r}: {exc}") from None
        if not operation.name:
            raise _fail_usage(f"--action {action!r}: no operation name")


def _load_checks(options: dict) -> List[Any]:
    from midoctor.registry import RegistryError, load_registry, select

    try:
        checks = load_registry(extra_dirs=options.get("checks_dirs") or ())
        return select(checks, options.get("only") or (), options.get("skip") or ())
    except RegistryError as exc:
        raise _fail_usage(str(exc)) from None


def _execute(options: dict, environ: dict) -> int:
    from midoctor import runner
    from midoctor.context import Context

    config = _build_config(options, environ)
    _validate_actions(config.actions)
    checks = _load_checks(options)
    ctx = Context(config)
    progress = _Progress() if sys.stderr.isatty() and options["fmt"] == "text" else None
    try:
        report = runner.run(checks, ctx, deadline_s=config.timeout, progress=progress)
    finally:
        if progress:
            progress.clear()
        ctx.close()
    return _deliver(report, options)


def _deliver(report: Any, options: dict) -> int:
    from midoctor.output import OutputError, write_reports
    from midoctor.render import render

    if options.get("redact_pii"):
        from midoctor.pii import redact_report

        report = redact_report(report)

    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    _echo(render(report, options["fmt"], color=color, verbose=options.get("verbose", False)))
    code = exit_code(report, options["fail_on"])
    if options.get("output"):
        try:
            written = write_reports(report, options["output"])
        except OutputError as exc:
            click.echo(f"midoctor: {exc}", err=True)
            return EXIT_USAGE
        click.echo("Reports written: " + ", ".join(str(p) for p in written), err=True)
    if report.interrupted:
        return EXIT_INTERRUPTED
    return code


def _echo(text: str) -> None:
    try:
        click.echo(text, nl=not text.endswith("\n"))
    except UnicodeEncodeError:
        click.echo(text.encode("ascii", "replace").decode("ascii"), nl=not text.endswith("\n"))


def exit_code(report: Any, fail_on: str) -> int:
    """1 when a finding reaches --fail-on (a diagnosis beats a tool error), else 3 if a check errored."""
    from midoctor.model import Status

    threshold = Status.WARN.rank if fail_on == "warn" else Status.FAIL.rank
    if any(r.status in (Status.FAIL, Status.WARN) and r.status.rank >= threshold for r in report.checks):
        return EXIT_FINDING
    if any(r.status is Status.ERROR for r in report.checks):
        return EXIT_BROKEN
    return EXIT_OK


class _Progress:
    """One line on stderr naming what is running, only on a terminal."""

    def __init__(self) -> None:
        self.running: List[str] = []

    def __call__(self, check_id: str, result: Any) -> None:
        if result is None:
            self.running.append(check_id)
        elif check_id in self.running:
            self.running.remove(check_id)
        line = ("checking: " + ", ".join(self.running)) if self.running else ""
        sys.stderr.write("\r\033[K" + line[:100])
        sys.stderr.flush()

    def clear(self) -> None:
        sys.stderr.write("\r\033[K")
        sys.stderr.flush()


@main.command("checks")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--checks-dir", "checks_dirs", multiple=True, type=click.Path(path_type=Path))
def list_checks(as_json: bool, checks_dirs: Tuple[Path, ...]) -> None:
    """List the checks in the order they run."""
    import json

    checks = _load_checks({"checks_dirs": checks_dirs})
    rows = [{"id": c.id, "title": c.spec.title, "order": c.spec.order, "timeout_s": c.spec.timeout,
             "requires": [{"id": dep, "when": cond.value} for dep, cond in c.spec.requires]} for c in checks]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["id"]) for r in rows) if rows else 10
    for row in rows:
        deps = ", ".join(d["id"] for d in row["requires"]) or "-"
        click.echo(f"{row['id']:<{width}}  {row['title']:<40}  requires: {deps}")


@main.command()
@click.argument("check_id")
@click.option("--checks-dir", "checks_dirs", multiple=True, type=click.Path(path_type=Path))
def explain(check_id: str, checks_dirs: Tuple[Path, ...]) -> None:
    """Explain a check: what it looks at, every cause it can name, and the fixes."""
    import textwrap

    checks = {c.id: c for c in _load_checks({"checks_dirs": checks_dirs})}
    if check_id not in checks:
        raise _fail_usage(f"unknown check {check_id!r}; known: {', '.join(checks)}")
    spec = checks[check_id].spec
    out = [f"{spec.id}: {spec.title}", "", textwrap.fill(spec.explanation, 100), ""]
    if spec.requires:
        out.append("Runs after: " + ", ".join(f"{d} ({c.value})" for d, c in spec.requires))
    out.append(f"Time budget: {spec.timeout:g} s")
    out += ["", "Causes it can name:"]
    for cause in spec.causes:
        out.append(f"  [{cause.status.value}] {cause.slug}: {cause.meaning}")
        if cause.fix:
            out.append(textwrap.indent(textwrap.fill("fix: " + cause.fix.text, 96), "      "))
            out += [f"      $ ({c.shell}) {c.text}" for c in cause.fix.commands]
            out += [f"      see {link}" for link in cause.fix.links]
    click.echo("\n".join(out))


@main.command()
@click.option("--scenario", default="healthy-system", show_default=True, help="Scenario name or JSON file.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8079, show_default=True, help="0 picks a free port.")
@click.option("--list", "list_only", is_flag=True, help="List the shipped scenarios and exit.")
def sim(scenario: str, host: str, port: int, list_only: bool) -> None:
    """Serve the IMDS + ARM simulator (for demos and your own CI)."""
    from midoctor.sim import Simulator, list_scenarios, load_scenario

    if list_only:
        for item in list_scenarios():
            click.echo(f"{item.name:<22} {item.description}")
        return
    try:
        loaded = load_scenario(scenario)
    except ValueError as exc:
        raise _fail_usage(str(exc)) from None
    try:
        server = Simulator(loaded, host=host, port=port).start()
    except OSError as exc:
        raise _fail_usage(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(f"IMDS simulator '{loaded.name}' on {server.url}  ({loaded.description})")
    click.echo(f"  midoctor run --imds-url {server.url} --arm-url {server.url}")
    click.echo(f"  AZURE_POD_IDENTITY_AUTHORITY_HOST={server.url} python your_app.py   (azure-identity, msal)")
    click.echo("Ctrl-C to stop.")
    try:
        import threading

        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@main.command()
@click.option("--scenario", default="multiple-user", show_default=True, help="Simulator scenario to diagnose.")
@click.option("--output", type=click.Path(path_type=Path), default=Path("midoctor-report"), show_default=True,
              help="Where to write the reports.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True)
@click.option("--fail-on", type=click.Choice(["fail", "warn"]), default="fail", show_default=True)
@click.option("-v", "--verbose", is_flag=True)
@click.option("--redact-pii", is_flag=True, help="Replace identifying values with placeholders.")
def demo(scenario: str, output: Path, fmt: str, fail_on: str, verbose: bool, redact_pii: bool) -> None:
    """Run every check against the built-in simulator and write the reports."""
    from midoctor.sim import Simulator, load_scenario

    try:
        loaded = load_scenario(scenario)
    except ValueError as exc:
        raise _fail_usage(str(exc)) from None
    with Simulator(loaded, host="127.0.0.1", port=0) as server:
        click.echo(f"Simulated VM: scenario '{loaded.name}' — {loaded.description}", err=True)
        options = demo_options(loaded.demo, server.url, output, fmt, fail_on, verbose)
        options["redact_pii"] = redact_pii
        # The demo diagnoses the simulated VM, not this machine: none of this shell's identity or proxy
        # variables apply to it.
        code = _execute(options, environ={})
    sys.exit(code)


def demo_options(demo_args: dict, url: str, output: Path, fmt: str, fail_on: str, verbose: bool) -> dict:
    def listed(key: str) -> Sequence[str]:
        value = demo_args.get(key) or ()
        return tuple(value) if isinstance(value, (list, tuple)) else (str(value),)

    return {
        "imds_url": url, "arm_url": url, "client_id": demo_args.get("client_id"),
        "object_id": demo_args.get("object_id"), "msi_res_id": demo_args.get("msi_res_id"),
        "resources": listed("resources"), "scope": demo_args.get("scope"), "actions": listed("actions"),
        "fmt": fmt, "output": output, "fail_on": fail_on, "only": (), "skip": (), "timeout": 30.0,
        "checks_dirs": (), "verbose": verbose,
    }


@main.command("render")
@click.argument("report_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True)
@click.option("--redact-pii", is_flag=True, help="Replace identifying values with placeholders.")
def render_cmd(report_file: Path, fmt: str, redact_pii: bool) -> None:
    """Re-render a saved report.json in another format."""
    import json

    from midoctor.model import Report
    from midoctor.render import render

    try:
        data = json.loads(report_file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("the top level is not an object")
        report = Report.from_dict(data)
    except Exception as exc:  # noqa: BLE001 - any malformed file is the user's input problem: exit 2
        raise _fail_usage(f"{report_file}: not a midoctor report: {type(exc).__name__}: {exc}") from None
    if redact_pii:
        from midoctor.pii import redact_report

        report = redact_report(report)
    _echo(render(report, fmt))

