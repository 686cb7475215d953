"""Run the checks: concurrently where independent, each within its time budget, always a full Report.

Each check runs in its own daemon thread so a hung probe can be abandoned (it becomes ``error``) without
holding up the others or the process exit. Results are reported in registry order whatever the finishing
order was.
"""

from __future__ import annotations

import datetime as _dt
import queue
import threading
import time
import uuid
from typing import Callable, Dict, List, Optional, Sequence

from midoctor import __version__
from midoctor.context import Context
from midoctor.model import Report, Result, Status
from midoctor.redact import scrub_text
from midoctor.registry import Check

ProgressHook = Callable[[str, Optional[Result]], None]  # (check id, None when started / result when done)


def _error(check: Check, summary: str, cause: str, **evidence: object) -> Result:
    return Result(check_id=check.id, status=Status.ERROR, cause=cause, summary=summary, evidence=dict(evidence))


def _skip(check: Check, prerequisite: Result) -> Result:
    return Result(
        check_id=check.id,
        status=Status.SKIP,
        cause="prerequisite-not-met",
        summary=(
            f"Skipped: needs {prerequisite.check_id} to succeed, which reported "
            f"{prerequisite.status.value} ({prerequisite.cause})."
        ),
        evidence={"prerequisite": prerequisite.check_id, "prerequisite_status": prerequisite.status.value,
                  "prerequisite_cause": prerequisite.cause},
    )


def _run_one(check: Check, ctx: Context, out: queue.Queue[tuple]) -> None:
    started = time.monotonic()
    try:
        result = check.evaluate(ctx)
        if not isinstance(result, Result):
            result = _error(check, f"The check returned {type(result).__name__}, not a Result.", "check-crashed")
    except Exception as exc:  # noqa: BLE001 - one check failing never stops the others
        message = scrub_text(str(exc))[:500]  # exception text may quote a proxy URL or a response body
        result = _error(check, f"The check raised {type(exc).__name__}: {message}", "check-crashed",
                        exception=type(exc).__name__, message=message)
    out.put((check.id, result, time.monotonic() - started))


def run(
    checks: Sequence[Check],
    ctx: Context,
    *,
    deadline_s: float,
    progress: Optional[ProgressHook] = None,
) -> Report:
    started_wall = _dt.datetime.now(_dt.timezone.utc)
    started = time.monotonic()
    selected = {c.id for c in checks}
    results: Dict[str, Result] = {}
    start_times: Dict[str, float] = {}
    done_q: queue.Queue[tuple] = queue.Queue()
    interrupted = False

    def finish(check: Check, result: Result, elapsed: float) -> None:
        result.title = check.spec.title
        result.duration_ms = elapsed * 1000.0
        results[check.id] = result
        ctx.record(result)
        if progress:
            progress(check.id, result)

    def launch_ready() -> None:
        for check in checks:
            if check.id in results or check.id in start_times:
                continue
            blocked = False
            for dep, condition in check.spec.requires:
                if dep not in selected:
                    continue  # --only/--skip left it out: the check gathers what it needs itself
                if dep not in results:
                    blocked = True
                    break
                if not condition.allows(results[dep].status):
                    finish(check, _skip(check, results[dep]), 0.0)
                    blocked = True
                    break
            if blocked:
                continue
            start_times[check.id] = time.monotonic()
            if progress:
                progress(check.id, None)
            threading.Thread(target=_run_one, args=(check, ctx, done_q), name=f"check-{check.id}",
                             daemon=True).start()

    by_id = {c.id: c for c in checks}
    try:
        launch_ready()
        while len(results) < len(checks):
            now = time.monotonic()
            running = [cid for cid in start_times if cid not in results]
            if not running:
                launch_ready()
                if not [cid for cid in start_times if cid not in results] and len(results) < len(checks):
                    break  # nothing can start: cannot happen with a validated graph, but never spin
                continue
            budget_ends = min(start_times[cid] + by_id[cid].spec.timeout for cid in running)
            wait = max(0.0, min(budget_ends, started + deadline_s) - now)
            try:
                cid, result, elapsed = done_q.get(timeout=wait)
                if cid not in results:
                    finish(by_id[cid], result, elapsed)
            except queue.Empty:
                pass
            now = time.monotonic()
            for cid in [c for c in start_times if c not in results]:
                check = by_id[cid]
                if now - start_times[cid] >= check.spec.timeout:
                    finish(check, _error(check, f"The check did not finish within its {check.spec.timeout:g} s "
                                                "budget.", "timed-out", budget_s=check.spec.timeout),
                           now - start_times[cid])
            if now - started >= deadline_s:
                break
            launch_ready()
    except KeyboardInterrupt:
        interrupted = True

    now = time.monotonic()
    for check in checks:
        if check.id in results:
            continue
        if interrupted:
            reason, cause = "Interrupted (Ctrl-C) before the check finished.", "interrupted"
        else:
            reason, cause = f"The run deadline of {deadline_s:g} s was reached before the check finished.", \
                "run-deadline"
        elapsed = now - start_times[check.id] if check.id in start_times else 0.0
        finish(check, _error(check, reason, cause), elapsed)

    ordered: List[Result] = [results[c.id] for c in checks]
    try:
        host = ctx.report_host()
    except Exception as exc:  # noqa: BLE001 - the header must never cost the report
        host = {"error": f"{type(exc).__name__}: {exc}"}
    return Report(
        tool_version=__version__,
        run_id=str(uuid.uuid4()),
        started_at=started_wall.isoformat(timespec="seconds"),
        duration_ms=(time.monotonic() - started) * 1000.0,
        host=host,
        config=ctx.config.to_dict(),
        checks=ordered,
        interrupted=interrupted,
    )
