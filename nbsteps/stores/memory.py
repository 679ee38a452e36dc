"""The default store: checkpoints kept in this process, by reference."""
from __future__ import annotations

import threading

from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores.base import Store


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
