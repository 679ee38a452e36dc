"""A checkpoint lost in the middle of a run is recomputed in that run.

A step restored from a directory store reads its values when they are first
needed (:mod:`nbsteps.run.deferred`). If one cannot be read then (its file was
damaged after the restore, or no longer decodes: a class renamed since), the
store warns, naming the step and the file, and removes the checkpoint. When a
step that executes needs such a value, the step that wrote it is reset and
recomputed at once, in the same run, and the step needing it waits for it
(:data:`WAITS`) and is prepared again when it is done. A step is recomputed
like this at most once per run; a second loss fails the step needing it, and
the next run recomputes.

The executor keeps ``_lost`` (steps recomputed so) and ``_waiters`` (step ->
the steps waiting for it).
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from nbsteps.errors import CheckpointUnavailable
from nbsteps.model.status import FAILED
from nbsteps.run import events as ev

if TYPE_CHECKING:  # pragma: no cover
    from nbsteps.run.executor import Executor

#: what Executor._prepare returns for a step that waits for an upstream step recomputed in this run
WAITS = object()


def upstream_lost(ex: "Executor", name: str, exc: CheckpointUnavailable):
    """An input of *name* could not be read from the checkpoint of step
    ``exc.step``: recompute that step now and let *name* wait (:data:`WAITS`),
    or fail *name* when that step was recomputed in this run already."""
    plan, lost = ex.plan, exc.step
    if lost in plan.records:
        plan.records[lost].reset(str(exc))
        plan.store.warn(lost, str(exc))  # names the step and the file
    if lost not in plan.steps or lost in ex._lost:
        rec = plan.records[name]
        rec.error, rec.traceback = exc.with_traceback(None), f"CheckpointUnavailable: {exc}"
        rec.status, rec.finished = FAILED, time.time()
        ex.emit(ev.FAILED, name, rec.error_text)
        return None
    ex._lost.add(lost)
    ex.restored.pop(lost, None)
    if lost not in ex.names:  # held from an earlier run: it is part of this one now
        ex.names = [*ex.names, lost]
    ex._waiters.setdefault(lost, []).append(name)
    task = ex._prepare(lost)
    if task is None:  # settled at once (cancelled, blocked): so is *name*
        ex._waiters.pop(lost, None)
        return ex._prepare(name)
    if task is not WAITS:
        ex._waiting.append(task)
    return WAITS


def ready(ex: "Executor", ts, name: str) -> bool:
    """Prepare the ready step *name* (queue its task); whether it was settled at once."""
    task = ex._prepare(name)
    if task is None:
        finished(ex, ts, name)
        return True
    if task is not WAITS:
        ex._waiting.append(task)
    return False


def finished(ex: "Executor", ts, name: str) -> None:
    """Step *name* reached a final state. A recomputed one is not in the
    sorter (or done there already): the steps waiting for it go on."""
    if name in ex._lost:
        for waiter in ex._waiters.pop(name, ()):
            ready(ex, ts, waiter)
    else:
        ts.done(name)
