"""Checkpoint stores: where the outputs of completed steps are kept.

A store maps a step name to at most one :class:`Checkpoint` (the latest one).
The executor calls ``put`` after a step completes and ``get`` before running a
step; a checkpoint whose fingerprint differs from the step's current one is
never used. Stores report problems (a value that cannot be saved, a corrupted
file) through ``self.warn(step, message)``, which the plan connects to its
listeners; they never raise for a single bad checkpoint.

``MemoryStore`` keeps references only: holding a 1 GB DataFrame costs nothing.
The durable directory store lives in :mod:`nbsteps.diskstore`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Checkpoint:
    """Outputs and result of one completed step, with what determined them."""

    step: str
    fingerprint: str
    outputs: dict[str, Any]
    result: Any = None
    has_result: bool = False
    # the parts of the fingerprint (source, options, upstream, params, helpers),
    # kept so that a plan can say *why* a step is stale
    parts: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0
    finished: float = 0.0  # time.time() when the step completed


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


class MemoryStore(Store):
    """Checkpoints kept in this process, by reference (no copy)."""

    def __init__(self) -> None:
        self._data: dict[str, Checkpoint] = {}
        self._lock = threading.Lock()

    def get(self, step: str, fingerprint: str | None = None) -> Checkpoint | None:
        cp = self._data.get(step)
        if cp is None or (fingerprint is not None and cp.fingerprint != fingerprint):
            return None
        return cp

    def put(self, checkpoint: Checkpoint) -> None:
        with self._lock:
            self._data[checkpoint.step] = checkpoint

    def drop(self, step: str) -> None:
        with self._lock:
            self._data.pop(step, None)

    def steps(self) -> list[str]:
        return list(self._data)

    def describe(self) -> str:
        return "memory"


def open_store(spec: "str | Store | None") -> Store:
    """``None``/``"memory"`` → MemoryStore; a path → DiskStore; a Store as is."""
    if spec is None or isinstance(spec, Store):
        return spec or MemoryStore()
    if str(spec) == "memory":
        return MemoryStore()
    from .diskstore import DiskStore
    from .errors import StoreError

    try:
        return DiskStore(spec)
    except OSError as exc:  # not a directory, no permission, a key file others can write
        message = str(exc)
        raise StoreError(message if message.startswith("nbsteps") else
                         f"cannot use {spec} as checkpoint store: {exc}") from None
