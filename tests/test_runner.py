"""Runner: concurrency with results in registry order, budgets, crashes, skips, the run deadline, Ctrl-C."""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence, Tuple

from midoctor.config import Config
from midoctor.context import Context
from midoctor.model import Cause, CheckSpec, Condition, Status
from midoctor.registry import Check, validate
from midoctor.runner import run


def make(check_id: str, behave: Callable, *, order: int = 1, timeout: float = 5.0,
         requires: Sequence[Tuple[str, Condition]] = ()) -> Check:
    spec = CheckSpec(id=check_id, title=check_id, order=order, explanation="", timeout=timeout,
                     requires=tuple(requires),
                     causes=(Cause("ok", Status.PASS, "ok"), Cause("bad", Status.FAIL, "bad"),
                             Cause("meh", Status.WARN, "meh")))

    def evaluate(ctx: Context):
        return behave(spec, ctx)

    return Check(spec=spec, evaluate=evaluate, origin=f"test:{check_id}")


def sleeper(seconds: float, cause: str = "ok"):
    def behave(spec, ctx):
        time.sleep(seconds)
        return spec.result(cause, f"slept {seconds}")
    return behave


def ctx() -> Context:
    return Context(Config(environ={}))


def test_independent_checks_run_concurrently_and_report_in_order() -> None:
    checks = validate([make("first", sleeper(0.4), order=1), make("second", sleeper(0.05), order=2),
                       make("third", sleeper(0.2), order=3)])
    started = time.monotonic()
    report = run(checks, ctx(), deadline_s=10)
    assert time.monotonic() - started < 0.6  # not 0.65 s of sequential sleeping
    assert [r.check_id for r in report.checks] == ["first", "second", "third"]
    assert all(r.status is Status.PASS for r in report.checks)


def test_prerequisite_failure_skips_and_names_it() -> None:
    checks = validate([make("base", sleeper(0, "bad"), order=1),
                       make("child", sleeper(0), order=2, requires=[("base", Condition.OK)]),
                       make("grandchild", sleeper(0), order=3, requires=[("child", Condition.OK)]),
                       make("ordering-only", sleeper(0), order=4, requires=[("base", Condition.DONE)])])
    report = run(checks, ctx(), deadline_s=5)
    by_id = {r.check_id: r for r in report.checks}
    assert by_id["child"].status is Status.SKIP and "base" in by_id["child"].summary
    assert by_id["child"].evidence["prerequisite_cause"] == "bad"
    assert by_id["grandchild"].status is Status.SKIP and "child" in by_id["grandchild"].summary
    assert by_id["ordering-only"].status is Status.PASS


def test_warn_satisfies_ok_but_not_passed() -> None:
    checks = validate([make("base", sleeper(0, "meh")),
                       make("lenient", sleeper(0), order=2, requires=[("base", Condition.OK)]),
                       make("strict", sleeper(0), order=3, requires=[("base", Condition.PASSED)])])
    by_id = {r.check_id: r for r in run(checks, ctx(), deadline_s=5).checks}
    assert by_id["lenient"].status is Status.PASS
    assert by_id["strict"].status is Status.SKIP


def test_check_over_budget_becomes_error_and_others_go_on() -> None:
    release = threading.Event()

    def hang(spec, ctx):
        release.wait(10)
        return spec.result("ok", "late")

    checks = validate([make("hangs", hang, timeout=0.3), make("fine", sleeper(0.05), order=2)])
    started = time.monotonic()
    report = run(checks, ctx(), deadline_s=10)
    release.set()
    assert time.monotonic() - started < 1.5
    hung, fine = report.checks
    assert (hung.status, hung.cause) == (Status.ERROR, "timed-out") and "0.3 s" in hung.summary
    assert fine.status is Status.PASS


def test_check_that_raises_becomes_error_with_message() -> None:
    def boom(spec, ctx):
        raise RuntimeError("probe exploded")

    def not_a_result(spec, ctx):
        return "pass"

    checks = validate([make("boom", boom), make("weird", not_a_result, order=2), make("fine", sleeper(0), order=3)])
    report = run(checks, ctx(), deadline_s=5)
    boom_r, weird_r, fine_r = report.checks
    assert boom_r.status is Status.ERROR and "probe exploded" in boom_r.summary
    assert weird_r.status is Status.ERROR and "not a Result" in weird_r.summary
    assert fine_r.status is Status.PASS


def test_run_deadline_bounds_everything() -> None:
    checks = validate([make("slow", sleeper(3), timeout=10),
                       make("after", sleeper(0), order=2, requires=[("slow", Condition.OK)])])
    started = time.monotonic()
    report = run(checks, ctx(), deadline_s=0.5)
    assert time.monotonic() - started < 1.0
    assert [(r.status, r.cause) for r in report.checks] == [(Status.ERROR, "run-deadline"),
                                                            (Status.ERROR, "run-deadline")]


def test_ctrl_c_returns_partial_report() -> None:
    import _thread

    def interrupt_main(spec, ctx):
        _thread.interrupt_main()
        time.sleep(2)
        return spec.result("ok", "never")

    checks = validate([make("quick", sleeper(0)), make("interrupts", interrupt_main, order=2)])
    report = run(checks, ctx(), deadline_s=10)
    assert report.interrupted
    by_id = {r.check_id: r for r in report.checks}
    assert by_id["interrupts"].cause == "interrupted"


def test_facts_are_memoized_across_concurrent_checks() -> None:
    calls = []
    lock = threading.Lock()

    def produce():
        with lock:
            calls.append(1)
        time.sleep(0.1)
        return 42

    def asks(spec, ctx):
        assert ctx.fact("shared", produce) == 42
        return spec.result("ok", "got it")

    checks = validate([make(f"asker-{i}", asks, order=i) for i in range(4)])
    report = run(checks, ctx(), deadline_s=5)
    assert all(r.status is Status.PASS for r in report.checks)
    assert len(calls) == 1


def test_parallel_map_keeps_order_and_propagates_errors() -> None:
    import pytest

    from midoctor.parallel import parallel_map

    assert parallel_map(lambda x: x * 2, [3, 1, 2], workers=3) == [6, 2, 4]
    with pytest.raises(ZeroDivisionError):
        parallel_map(lambda x: 1 // x, [1, 0, 2], workers=2)
