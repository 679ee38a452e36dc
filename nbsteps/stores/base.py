"""The store protocol: where the outputs of completed steps are kept.

A store keeps, for each step, checkpoints keyed by fingerprint (a bounded
number or size of them; the one most recently written or used is the
*latest*). The executor calls ``put`` after a step completes and
``get(step, fingerprint)`` before running a step: only a checkpoint with the
step's current fingerprint is used, so switching a parameter back restores.
Stores report problems (a value that cannot be saved, a corrupted file) through
``self.warn(step, message)``, which the plan connects to its listeners; they
never raise for a single bad checkpoint.

Implementations: :mod:`nbsteps.stores.memory` (references only) and
:mod:`nbsteps.stores.disk` (signed files in a directory); the executor and the
plan only see this interface, and :func:`nbsteps.stores.open_store` picks one.
"""

from __future__ import annotations

from typing import Callable

from nbsteps.model.checkpoint import Checkpoint

__all__ = ["Checkpoint", "Store"]


def _ignore(step: str, message: str) -> None:
    pass


class Store:
    """Interface of a checkpoint store."""

    #: whether values are copied out of the process (a memory store keeps the objects themselves)
    persistent = False
    #: commit checkpoints on another thread: ``put`` returns once the values are
    #: written, before they are durable (a directory store; the plan's frontend sets it)
    background = False
    #: set by the plan: ``warn(step, message)``
    warn: Callable[[str, str], None] = staticmethod(_ignore)

    def get(self, step: str, fingerprint: str | None = None, *, lazy: bool = False) -> Checkpoint | None:
        """The checkpoint of *step* with *fingerprint* (``None``: the latest),
        marked used; ``None`` if there is none. *lazy*: the values may be
        :class:`~nbsteps.model.checkpoint.LazyValues`, read on first use."""
        raise NotImplementedError

    def peek(self, step: str, fingerprint: str | None = None, *, settled: bool = True) -> Checkpoint | None:
        """Metadata of the checkpoint with *fingerprint* (``None``: the latest:
        fingerprint, parts, duration) without loading values (``outputs`` may
        be empty) or marking it used. Used for plans ("why stale").
        ``settled=False``: a checkpoint this process handed over and whose
        commit is still pending may answer (what a plan's preview asks: which
        version is the step's latest, not whether it is durable yet); by
        default the answer is what the store holds once that commit ended."""
        cp = self.get(step, fingerprint)
        return cp

    def fingerprints(self, step: str) -> list[str]:
        """Fingerprints of the checkpoints kept for *step*, least recently used first."""
        cp = self.peek(step)
        return [cp.fingerprint] if cp is not None else []

    def put(self, checkpoint: Checkpoint) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Wait until every checkpoint put so far is stored or known not to be
        (a store that commits on another thread: :mod:`nbsteps.stores.committer`)."""

    def unstored(self, step: str, fingerprint: str) -> str:
        """Why the checkpoint *fingerprint* of *step*, computed by an earlier
        process, was not stored ('' when nothing says so)."""
        return ""

    def drop(self, step: str) -> None:
        """Remove every checkpoint of *step*."""
        raise NotImplementedError

    def steps(self) -> list[str]:
        raise NotImplementedError

    def collect_garbage(self):
        """Remove dead checkpoints (computed from upstream versions the store no
        longer holds); ``(checkpoints, nbytes)`` removed. Only a directory store has any."""
        from nbsteps.stores.garbage import Collected

        return Collected()

    def describe(self) -> str:
        return type(self).__name__
