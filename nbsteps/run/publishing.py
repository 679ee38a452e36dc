"""Publishing a completed step's outputs into the notebook namespace: all at
once, the lowest writer's version of a name, values of a lazily restored
checkpoint deferred until first used (see :mod:`nbsteps.run.deferred`).

A :class:`Publisher` belongs to one :class:`~nbsteps.run.context.RunContext`
and reads its ``namespace``, ``records``, ``deps`` and ``deferred``.
"""

from __future__ import annotations

import threading
from typing import Iterable, Protocol

from nbsteps.model.checkpoint import LazyValues
from nbsteps.model.dependencies import Dependencies
from nbsteps.model.record import StepRecord
from nbsteps.model.status import COMPLETED
from nbsteps.run.deferred import Deferred


class Publishes(Protocol):
    """What a Publisher reads of its context (a :class:`~nbsteps.run.context.RunContext`)."""

    namespace: dict
    records: "dict[str, StepRecord]"
    deps: Dependencies
    deferred: Deferred
    publish_lock: threading.Lock

    def warn(self, step: str, message: str) -> None: ...


class Publisher:
    """Puts outputs into the namespace of *ctx* (see module doc)."""

    def __init__(self, ctx: Publishes) -> None:
        self.ctx = ctx

    def publish(self, outputs: dict, step: "str | None" = None) -> None:
        """Make a completed step's outputs visible, all at once. The notebook
        namespace shows the lowest writer's version of a name (as after Run
        All): a name that a completed step below *step* also wrote keeps that
        step's version. Values of a lazily restored checkpoint that are not
        read yet are deferred."""
        ctx = self.ctx
        hidden = ()
        if step is not None and outputs:  # a name some step below wrote too: _hidden says which
            g = ctx.deps
            pos, writers = g.position.get(step), g.writers
            if pos is not None:  # (the first test of _hidden, here: no call unless a writer is below)
                for n in outputs:  # (iterating LazyValues reads nothing)
                    w = writers.get(n)
                    if w and g.position[w[-1]] > pos:
                        hidden = self._hidden(step, outputs)
                        break
        with ctx.publish_lock:
            if type(outputs) is LazyValues and not outputs.complete:
                ctx.deferred.defer(outputs, ctx.namespace, skip=hidden)
                return
            if hidden:
                outputs = self._without(outputs, hidden)
            if ctx.deferred:
                ctx.deferred.discard(outputs)
            ctx.namespace.update(outputs)

    @staticmethod
    def _without(outputs: dict, hidden: "set[str]") -> dict:
        return {k: v for k, v in outputs.items() if k not in hidden}  # (here: no cell in publish)

    def _hidden(self, step: str, outputs) -> "set[str]":
        """Names of *outputs* that a completed step below *step* also wrote."""
        g = self.ctx.deps
        records = self.ctx.records
        pos = g.position.get(step)
        hidden: set[str] = set()
        if pos is None:
            return hidden
        for n in outputs:  # (iterating LazyValues reads nothing)
            for w in reversed(g.writers.get(n, ())):
                if g.position[w] <= pos:
                    break
                r = records.get(w)
                if r is not None and r.status == COMPLETED and n in r.outputs:
                    hidden.add(n)
                    break
        return hidden

    def load(self, names: "Iterable[str] | None" = None) -> list[str]:
        """Read and publish restored values not read yet (*names*, default:
        all); returns the names published."""
        ctx = self.ctx
        with ctx.publish_lock:
            if names is None:
                return ctx.deferred.load_all(ctx.namespace, self.lost)
            return ctx.deferred.load(names, ctx.namespace, self.lost)

    def lost(self, exc) -> None:
        """A restored value (or result) could not be read when first needed:
        say so, and the step runs again next time (its record no longer
        counts as done; the context's ``lost`` says why, run.recovery)."""
        rec = self.ctx.records.get(exc.step)
        if rec is not None and rec.status == COMPLETED:
            self.ctx.deferred.forget(rec.outputs)  # the rest of that checkpoint is as lost
            rec.reset(str(exc))
            self.ctx.lost[exc.step] = getattr(exc, "reason", "")
        self.ctx.warn(exc.step, str(exc))
