"""The default store: checkpoints kept in this process, by reference.

A step keeps its last few checkpoints, one per fingerprint (``versions``,
default 3), so switching a parameter back restores the earlier result. They are
references to the values the steps produced (nothing is copied); the price of
keeping older versions is that their values stay alive, so the versions other
than the latest of each step are also bounded by ``max_size`` bytes (counted
for arrays, frames, series, bytes and strings; default 2 GB): past it the least
recently used go first.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

from nbsteps.formatting import parse_size
from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores.base import Store

VERSIONS = 3
MAX_OLD_BYTES = 2 * 10**9


#: types whose values count for nothing here (no ``nbytes``, not pandas, not text)
_UNCOUNTED = frozenset({int, float, bool, complex, type(None), tuple, list, dict, set, frozenset})


def approx_size(cp: Checkpoint) -> int:
    """Bytes held by a checkpoint's values, where that is cheap to know."""
    total = 0
    seen: set[int] = set()
    values = list(cp.outputs.values()) if isinstance(cp.outputs, dict) else []
    if cp.has_result:
        values.append(cp.result)
    for v in values:
        if type(v) in _UNCOUNTED:
            continue
        if id(v) in seen:
            continue
        seen.add(id(v))
        nbytes = getattr(v, "nbytes", None)
        if isinstance(nbytes, int):
            total += nbytes
        elif type(v).__module__.startswith("pandas") and hasattr(v, "memory_usage"):
            try:
                usage = v.memory_usage(index=True, deep=False)
                total += int(usage.sum()) if hasattr(usage, "sum") else int(usage)
            except Exception:
                pass
        elif isinstance(v, (bytes, bytearray, str)):
            total += sys.getsizeof(v)
    return total


class MemoryStore(Store):
    """Checkpoints kept in this process, by reference (no copy)."""

    def __init__(self, versions: int = VERSIONS, max_size: "int | str | None" = MAX_OLD_BYTES) -> None:
        self.versions = max(1, int(versions))
        self.max_size = parse_size(max_size)
        # step -> {fingerprint: checkpoint}, least recently used first
        self._data: dict[str, OrderedDict[str, Checkpoint]] = {}
        self._sizes: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def get(self, step: str, fingerprint: str | None = None, *, lazy: bool = False) -> Checkpoint | None:
        with self._lock:
            versions = self._data.get(step)
            if not versions:
                return None
            if fingerprint is None:
                return next(reversed(versions.values()))
            cp = versions.get(fingerprint)
            if cp is not None:
                versions.move_to_end(fingerprint)  # used now: the latest
            return cp

    def peek(self, step: str, fingerprint: str | None = None) -> Checkpoint | None:
        with self._lock:
            versions = self._data.get(step)
            if not versions:
                return None
            return next(reversed(versions.values())) if fingerprint is None else versions.get(fingerprint)

    def put(self, checkpoint: Checkpoint) -> None:
        with self._lock:
            versions = self._data.setdefault(checkpoint.step, OrderedDict())
            versions.pop(checkpoint.fingerprint, None)
            versions[checkpoint.fingerprint] = checkpoint
            # the latest version is not counted: sized when it becomes an older one (see _trim)
            self._sizes.pop((checkpoint.step, checkpoint.fingerprint), None)
            while len(versions) > self.versions:
                fp, _ = versions.popitem(last=False)
                self._sizes.pop((checkpoint.step, fp), None)
            if self.max_size is not None and len(versions) > 1:
                self._trim()

    def _trim(self) -> None:
        """Drop older versions (never a step's latest) while they hold more than max_size."""
        older = [(step, fp) for step, versions in self._data.items() for fp in list(versions)[:-1]]
        sizes = self._sizes
        for step, fp in older:  # sized once, when first found older than the latest
            if (step, fp) not in sizes:
                sizes[(step, fp)] = approx_size(self._data[step][fp])
        total = sum(sizes.get(k, 0) for k in older)
        for step, fp in older:  # per step, least recently used first
            if total <= self.max_size:
                break
            size = self._sizes.pop((step, fp), 0)
            if size:
                del self._data[step][fp]
                total -= size

    def fingerprints(self, step: str) -> list[str]:
        with self._lock:
            return list(self._data.get(step, ()))

    def drop(self, step: str) -> None:
        with self._lock:
            for fp in self._data.pop(step, {}):
                self._sizes.pop((step, fp), None)

    def steps(self) -> list[str]:
        return list(self._data)

    def describe(self) -> str:
        return "memory"
