"""Outputs restored from a directory store but not read yet.

A step restored from a directory checkpoint holds its values as
:class:`~nbsteps.model.checkpoint.LazyValues`. Publishing them into the
notebook namespace would read every value, so the plan *defers* the names it
has not read yet: they are kept here (and taken out of the namespace, which
must never show an older value under the name) until something needs them:

- a step that executes and reads one (through its upstream record),
- a cell that mentions one (the IPython frontend calls :meth:`Deferred.load`
  with the names a cell uses before it runs),
- the end of a run of a plan without such a frontend (``Plan.run`` loads
  and publishes everything then),
- ``plan.load()`` (``%steps load``).

Each value is read at most once (the LazyValues cache it). A later publish of
the same name (a step that executes and writes it) supersedes the deferred one.
"""

from __future__ import annotations

from typing import Callable, Iterable

from nbsteps.errors import CheckpointUnavailable
from nbsteps.model.checkpoint import LazyValues
from nbsteps.run.attempt.notebook_functions import names_read


class Deferred(dict):
    """Names whose values wait in lazily restored checkpoints: name -> its
    :class:`LazyValues`. A dict, so that ``if ctx.deferred:`` and ``name in
    ctx.deferred`` (twice a step) are no Python calls."""

    __slots__ = ()

    @property
    def pending(self) -> "dict[str, LazyValues]":
        """The names waiting and their checkpoints' values (this mapping itself)."""
        return self

    def defer(self, values: LazyValues, namespace: dict, skip: "Iterable[str]" = ()) -> None:
        """Publish what *values* has read already; defer the rest. Names in
        *skip* are left alone (a step below wrote them: its version stays)."""
        for name in values:
            if name in skip:
                continue
            if values.loaded(name):
                namespace[name] = values[name]
                self.pop(name, None)
            else:
                self[name] = values
                namespace.pop(name, None)

    def forget(self, values: object) -> None:
        """The checkpoint *values* came from is dropped (reset, removed)."""
        if isinstance(values, LazyValues) and self:
            for name in [n for n, v in self.items() if v is values]:
                del self[name]

    def discard(self, names: Iterable[str]) -> None:
        """*names* are being published with newer values."""
        if self:
            for name in names:
                self.pop(name, None)

    def load(
        self,
        names: Iterable[str],
        namespace: dict,
        lost: "Callable[[CheckpointUnavailable], None] | None" = None,
    ) -> list[str]:
        """Read and publish the deferred ones among *names*; the names published.
        A value that cannot be read any more is handed to *lost* (else the
        error is raised) and stays out of the namespace."""
        done = []
        todo = [n for n in names if n in self]
        for name in todo:
            values = self.get(name)
            if values is None:
                continue
            try:
                value = values[name]
            except CheckpointUnavailable as exc:
                for n, v in list(self.items()):  # the rest of that checkpoint is as lost
                    if v is values:
                        del self[n]
                if lost is None:
                    raise
                lost(exc)
                continue
            if self.get(name) is values:  # not superseded meanwhile
                namespace[name] = value
                del self[name]
                done.append(name)
                # a notebook function looks its globals up when called: the ones it reads, too
                todo.extend(n for n in names_read(value) if n in self and n not in todo)
        return done

    def load_all(
        self, namespace: dict, lost: "Callable[[CheckpointUnavailable], None] | None" = None
    ) -> list[str]:
        return self.load(list(self), namespace, lost)
