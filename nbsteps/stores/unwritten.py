"""Checkpoints a directory store could not write, kept in memory for this
process (a value that cannot be pickled, a full disk, a link in the store).

:class:`Unwritten` holds at most :data:`MEMORY_VERSIONS` per step. The store
adds and removes them (:mod:`nbsteps.stores.disk`); the reader serves them
(:mod:`nbsteps.stores.reading`: the newer of memory and disk wins); the
garbage collector counts their versions as held by this process
(:mod:`nbsteps.stores.garbage`).
"""

from __future__ import annotations

import threading
import time

from nbsteps.model.checkpoint import Checkpoint

MEMORY_VERSIONS = 4  # checkpoints per step kept in memory when they cannot be written


class Unwritten:
    """step -> {fingerprint: (time kept, checkpoint)}, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: dict[str, dict[str, tuple[float, Checkpoint]]] = {}

    def remember(self, checkpoint: Checkpoint) -> None:
        """Keep *checkpoint* (the newest of its step); the oldest beyond the bound go."""
        with self._lock:
            versions = self._versions.setdefault(checkpoint.step, {})
            versions.pop(checkpoint.fingerprint, None)
            versions[checkpoint.fingerprint] = (time.time(), checkpoint)
            while len(versions) > MEMORY_VERSIONS:
                del versions[next(iter(versions))]

    def forget(self, step: str, fingerprint: "str | None" = None) -> None:
        """Drop the checkpoint of *step* with *fingerprint* (None: all of *step*)."""
        with self._lock:
            if fingerprint is None:
                self._versions.pop(step, None)
            elif step in self._versions:
                self._versions[step].pop(fingerprint, None)
                if not self._versions[step]:
                    del self._versions[step]

    def find(self, step: str, fingerprint: "str | None") -> "tuple[float, Checkpoint] | None":
        """(time kept, checkpoint) of *step* with *fingerprint* (None: the newest kept)."""
        with self._lock:
            versions = self._versions.get(step)
            if not versions:
                return None
            if fingerprint is not None:
                return versions.get(fingerprint)
            return max(versions.values(), key=lambda v: v[0])

    def fingerprints(self, step: str) -> "list[tuple[float, str]]":
        """(time kept, fingerprint) of every checkpoint of *step* kept here."""
        with self._lock:
            return [(t, fp) for fp, (t, _) in self._versions.get(step, {}).items()]

    def steps(self) -> "set[str]":
        with self._lock:
            return set(self._versions)

    def checkpoints(self, step: "str | None" = None) -> "list[Checkpoint]":
        """The checkpoints kept, of *step* (None: of every step)."""
        with self._lock:
            if step is not None:
                return [cp for _, cp in self._versions.get(step, {}).values()]
            return [cp for versions in self._versions.values() for _, cp in versions.values()]
