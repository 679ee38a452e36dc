"""nbsteps.run.executor, driven directly with a real thread backend."""

from __future__ import annotations

import threading
import time

import nbsteps
from nbsteps.backends import make_backend
from nbsteps.model.status import BLOCKED, CANCELLED, COMPLETED, FAILED
from nbsteps.run import events as ev
from nbsteps.run.decide.selection import default_workers
from nbsteps.run.executor import Executor


def run(plan, workers=None, **kw):
    names = plan.order()
    workers = workers or default_workers(plan.context, names)
    seen = []
    ex = Executor(
        plan.context, names, workers=workers, backend=make_backend("threads", workers), emit=seen.append, **kw
    )
    return ex.run(), seen


def test_independent_steps_run_in_parallel_and_events_are_ordered():
    plan = nbsteps.Plan()
    # each step waits until all four are running at once: only a parallel run gets past it
    plan.namespace["together"] = threading.Barrier(4, timeout=10)
    for i in range(4):
        plan.add_cell(f"s{i}", f"_ = together.wait()\nv{i} = {i}")
    plan.add_cell("total", "t = v0 + v1 + v2 + v3")
    assert default_workers(plan.context, plan.order()) == 4
    summary, seen = run(plan)
    assert summary.ok and plan.namespace["t"] == 6
    assert seen[0].kind == ev.PLANNED
    done = [e.step for e in seen if e.kind == ev.COMPLETED]
    assert sorted(done[:4]) == ["s0", "s1", "s2", "s3"] and done[4] == "total"


def test_failure_blocks_only_downstream_and_retries_are_counted():
    plan = nbsteps.Plan()
    calls = []
    plan.namespace["note"] = calls.append
    plan.add_cell("flaky", "note(1)\nraise ConnectionError('down')", retry=2, retry_delay=0.01)
    plan.add_cell("after", "x = 1", after=["flaky"])
    plan.add_cell("free", "y = 2")
    summary, _ = run(plan)
    assert plan["flaky"].status == FAILED and plan["flaky"].attempts == 3 and len(calls) == 3
    assert plan["after"].status == BLOCKED and plan["free"].status == COMPLETED
    assert not summary.ok and "flaky" in summary.text


def test_fail_fast_cancels_what_has_not_started():
    plan = nbsteps.Plan()
    plan.add_cell("bad", "raise ValueError('x')")
    plan.add_cell("slow", "import time\ntime.sleep(0.3)\ns = 1")
    plan.add_cell("later", "l = s + 1")
    summary, _ = run(plan, workers=2, fail_fast=True)
    assert plan["bad"].status == FAILED
    assert plan["slow"].status == COMPLETED  # already running: it finishes
    assert plan["later"].status == CANCELLED and "fail-fast" in plan["later"].message


def test_timeout_abandons_the_thread_and_discards_late_outputs():
    plan = nbsteps.Plan()
    release = threading.Event()
    plan.namespace["release"] = release
    plan.add_cell("stuck", "release.wait(5)\nlate = 1", timeout=0.2)
    run(plan)
    assert plan["stuck"].status == FAILED and "timed out" in plan["stuck"].error_text
    release.set()
    time.sleep(0.1)
    assert "late" not in plan.namespace


def test_a_cached_step_is_restored_not_executed():
    plan = nbsteps.Plan()
    counter = []
    plan.namespace["count"] = counter.append
    plan.add_cell("a", "count(1)\nx = 41")
    run(plan)
    summary, _ = run(plan)
    assert counter == [1] and plan["a"].cached and summary.ok and plan.namespace["x"] == 41
