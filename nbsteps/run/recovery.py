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

A value can also fail to be read after the run that restored it: a cell
names it, or the ``%%step`` cell shows the step's result. The step is reset
then and noted in the context's ``lost`` (step -> why, in a few words); the
next run that selects it executes it, whatever the store holds, saying why
(:meth:`Recovery.reason`).

A :class:`Recovery` per run keeps ``lost`` (steps recomputed so) and
``waiters`` (step -> the steps waiting for it).
"""

from __future__ import annotations

import time
from typing import Callable

from nbsteps.errors import CheckpointUnavailable
from nbsteps.model.status import FAILED
from nbsteps.run import events as ev
from nbsteps.run.context import RunContext

#: what :meth:`Recovery.upstream_lost` (and so ``Executor._prepare``) returns for a
#: step that waits for an upstream step recomputed in this run
WAITS = object()


class Recovery:
    """The lost checkpoints of one run (see module doc). The executor gives it
    what it needs: *prepare* (a ready step's Task, None when settled at once,
    or :data:`WAITS`), *queue* (a Task to start when a worker is free),
    *include* (a step held from an earlier run becomes part of this one) and
    *emit* (an event about a step)."""

    def __init__(
        self, ctx: RunContext, *, prepare: Callable, queue: Callable, include: Callable, emit: Callable
    ) -> None:
        self.ctx = ctx
        self._prepare, self._queue, self._include, self._emit = prepare, queue, include, emit
        self.lost: set[str] = set()  # steps whose checkpoint was lost and which are recomputed in this run
        self.waiters: dict[str, list[str]] = {}  # step -> the steps waiting for it

    def upstream_lost(self, name: str, exc: CheckpointUnavailable):
        """An input of *name* could not be read from the checkpoint of step
        ``exc.step``: recompute that step now and let *name* wait (:data:`WAITS`),
        or fail *name* when that step was recomputed in this run already."""
        ctx, lost = self.ctx, exc.step
        if lost in ctx.records:
            ctx.records[lost].reset(str(exc))
            ctx.store.warn(lost, str(exc))  # names the step and the file
            ctx.lost[lost] = exc.reason
        if lost not in ctx.steps or lost in self.lost:
            rec = ctx.records[name]
            rec.error, rec.traceback = exc.with_traceback(None), f"CheckpointUnavailable: {exc}"
            rec.status, rec.finished = FAILED, time.time()
            self._emit(ev.FAILED, name, rec.error_text)
            return None
        self.lost.add(lost)
        self._include(lost)
        self.waiters.setdefault(lost, []).append(name)
        task = self._prepare(lost)
        if task is None:  # settled at once (cancelled, blocked): so is *name*
            self.waiters.pop(lost, None)
            return self._prepare(name)
        if task is not WAITS:
            self._queue(task)
        return WAITS

    def reason(self, name: str) -> "str | None":
        """Why step *name* executes because its checkpoint was lost (in this
        run, or read after an earlier one), else None. Taken once: a step
        that executes so has no lost checkpoint any more."""
        if name not in self.lost and name not in self.ctx.lost:
            return None
        why = self.ctx.lost.pop(name, "")
        return "its checkpoint could not be read" + (f": {why}" if why else "")

    def ready(self, ts, name: str) -> bool:
        """Prepare the ready step *name* (queue its task); whether it was settled at once."""
        task = self._prepare(name)
        if task is None:
            self.finished(ts, name)
            return True
        if task is not WAITS:
            self._queue(task)
        return False

    def finished_all(self, ts, names: list) -> None:
        """:meth:`finished` of each of *names*; at once when no checkpoint was lost in this run."""
        if self.lost:
            for name in names:
                self.finished(ts, name)
        elif names:
            ts.done(*names)

    def finished(self, ts, name: str) -> None:
        """Step *name* reached a final state. A recomputed one is not in the
        sorter (or done there already): the steps waiting for it go on."""
        if name in self.lost:
            for waiter in self.waiters.pop(name, ()):
                self.ready(ts, waiter)
        else:
            ts.done(name)
