"""Publishing a completed step's outputs into the notebook namespace (a part
of :class:`~nbsteps.plan.Plan`): all at once, the lowest writer's version of a
name, values of a lazily restored checkpoint deferred until first used (see
:mod:`nbsteps.run.deferred`).

:class:`Publishing` expects ``namespace``, ``records``, ``deps``,
``deferred``, ``_publish_lock`` and ``_store_warning`` on the plan.
"""
from __future__ import annotations

from typing import Iterable

from nbsteps.model.checkpoint import LazyValues
from nbsteps.model.status import COMPLETED


class Publishing:
    def publish(self, outputs: dict, step: "str | None" = None) -> None:
        """Make a completed step's outputs visible, all at once. The notebook
        namespace shows the lowest writer's version of a name (as after Run
        All): a name that a completed step below *step* also wrote keeps that
        step's version. Values of a lazily restored checkpoint that are not
        read yet are deferred."""
        hidden = self._hidden(step, outputs) if step is not None and outputs else ()
        with self._publish_lock:
            if type(outputs) is LazyValues and not outputs.complete:
                self.deferred.defer(outputs, self.namespace, skip=hidden)
                return
            if hidden:
                outputs = {k: v for k, v in outputs.items() if k not in hidden}
            if self.deferred:
                self.deferred.discard(outputs)
            self.namespace.update(outputs)

    def _hidden(self, step: str, outputs) -> "set[str]":
        """Names of *outputs* that a completed step below *step* also wrote."""
        g = self.deps
        pos = g.position.get(step)
        hidden: set[str] = set()
        if pos is None:
            return hidden
        for n in outputs:  # (iterating LazyValues reads nothing)
            for w in reversed(g.writers.get(n, ())):
                if g.position[w] <= pos:
                    break
                r = self.records.get(w)
                if r is not None and r.status == COMPLETED and n in r.outputs:
                    hidden.add(n)
                    break
        return hidden

    def load(self, names: "Iterable[str] | None" = None) -> list[str]:
        """Read and publish restored values not read yet (*names*, default:
        all); returns the names published."""
        with self._publish_lock:
            if names is None:
                return self.deferred.load_all(self.namespace, self._lost)
            return self.deferred.load(names, self.namespace, self._lost)

    def _lost(self, exc) -> None:
        """A restored value could not be read when first needed: say so, and
        the step runs again next time (its record no longer counts as done)."""
        rec = self.records.get(exc.step)
        if rec is not None and rec.status == COMPLETED:
            rec.reset(str(exc))
        self._store_warning(exc.step, str(exc))
