"""The store protocol: where the outputs of completed steps are kept.

A store maps a step name to at most one :class:`Checkpoint` (the latest one).
The executor calls ``put`` after a step completes and ``get`` before running a
step; a checkpoint whose fingerprint differs from the step's current one is
never used. Stores report problems (a value that cannot be saved, a corrupted
file) through ``self.warn(step, message)``, which the plan connects to its
listeners; they never raise for a single bad checkpoint.

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

    #: set by the plan: ``warn(step, message)``
    warn: Callable[[str, str], None] = staticmethod(_ignore)

    def get(self, step: str, fingerprint: str | None = None) -> Checkpoint | None:
        """The latest checkpoint of *step*; ``None`` if there is none, or if
        *fingerprint* is given and differs (then the values are not loaded)."""
        raise NotImplementedError

    def peek(self, step: str) -> Checkpoint | None:
        """Metadata of the latest checkpoint (fingerprint, parts, duration),
        without loading values: ``outputs`` may be empty. Used for plans."""
        return self.get(step)

    def put(self, checkpoint: Checkpoint) -> None:
        raise NotImplementedError

    def drop(self, step: str) -> None:
        raise NotImplementedError

    def steps(self) -> list[str]:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__
