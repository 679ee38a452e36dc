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

import heapq
import itertools
import sys
import threading

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
    """Checkpoints kept in this process, by reference (no copy).

    The older versions' bytes are kept as a running total (a put costs the same
    with 10 or 10,000 steps): a version is sized once, at the first put that
    finds it older than its step's latest, and the steps holding older versions
    that count are queued in the order of ``_data`` (the order they are dropped in)."""

    def __init__(self, versions: int = VERSIONS, max_size: "int | str | None" = MAX_OLD_BYTES) -> None:
        self.versions = max(1, int(versions))
        self.max_size = parse_size(max_size)
        # step -> {fingerprint: checkpoint}, least recently used first (a dict keeps that order:
        # an OrderedDict per step cost twice the time to make and the memory)
        self._data: dict[str, dict[str, Checkpoint]] = {}
        # (step, fingerprint) -> bytes, for versions sized when found older (kept if one becomes
        # the latest again by a get: counted again when it is older again)
        self._sizes: dict[tuple[str, str], int] = {}
        self._older = 0  # bytes of the sized versions that are not their step's latest
        self._unsized: dict[tuple[str, str], None] = {}  # older versions to size at the next put
        self._seq: dict[str, int] = {}  # step -> its place in _data's order
        self._next = itertools.count()
        self._queue: list[tuple[int, str]] = []  # heap of (seq, step): steps with older bytes
        self._queued: dict[str, int] = {}  # step -> the seq it is queued with
        self._lock = threading.Lock()

    def get(self, step: str, fingerprint: str | None = None, *, lazy: bool = False) -> Checkpoint | None:
        if step not in self._data:  # a step never put (a first run): no lock (a dict lookup is atomic)
            return None
        with self._lock:
            versions = self._data.get(step)
            if not versions:
                return None
            if fingerprint is None:
                return next(reversed(versions.values()))
            cp = versions.get(fingerprint)
            if cp is not None:
                latest = next(reversed(versions))
                if latest != fingerprint:  # used now: the latest
                    self._not_older(step, fingerprint)
                    versions[fingerprint] = versions.pop(fingerprint)  # (to the end: the latest)
                    self._now_older(step, latest)
            return cp

    def peek(self, step: str, fingerprint: str | None = None, *, settled: bool = True) -> Checkpoint | None:
        if step not in self._data:
            return None
        with self._lock:
            versions = self._data.get(step)
            if not versions:
                return None
            return next(reversed(versions.values())) if fingerprint is None else versions.get(fingerprint)

    def put(self, checkpoint: Checkpoint) -> None:
        step, fp = checkpoint.step, checkpoint.fingerprint
        with self._lock:
            versions = self._data.get(step)
            if versions is None:  # a new step: its one version is the latest (nothing counted)
                self._data[step] = {fp: checkpoint}
                self._seq[step] = next(self._next)
                return
            latest = next(reversed(versions)) if versions else None
            if fp in versions:
                if fp != latest:
                    self._not_older(step, fp)
                del versions[fp]
            versions[fp] = checkpoint
            # the latest version is not counted: sized when it becomes an older one (see _trim)
            self._sizes.pop((step, fp), None)
            if latest is not None and latest != fp:
                self._now_older(step, latest)
            while len(versions) > self.versions:
                old = next(iter(versions))  # the least recently used
                del versions[old]
                self._not_older(step, old)
                self._sizes.pop((step, old), None)
            if self.max_size is not None and len(versions) > 1:
                self._trim()

    def _now_older(self, step: str, fp: str) -> None:
        """Version *fp* of *step* is no longer its latest."""
        size = self._sizes.get((step, fp))
        if size is None:
            self._unsized[(step, fp)] = None
        elif size:
            self._older += size
            self._enqueue(step)

    def _not_older(self, step: str, fp: str) -> None:
        """Older version *fp* of *step* becomes the latest or goes."""
        key = (step, fp)
        if key in self._unsized:
            del self._unsized[key]
        else:
            self._older -= self._sizes.get(key, 0)

    def _enqueue(self, step: str) -> None:
        seq = self._seq[step]
        if self._queued.get(step) != seq:
            self._queued[step] = seq
            heapq.heappush(self._queue, (seq, step))
            if len(self._queue) > 2 * len(self._queued) + 64:  # entries of dropped steps
                self._queue = [(s, n) for n, s in self._queued.items()]
                heapq.heapify(self._queue)

    def _trim(self) -> None:
        """Drop older versions (never a step's latest) while they hold more than max_size:
        in the order of the steps in ``_data``, least recently used first in a step."""
        if self._unsized:
            for step, fp in self._unsized:  # sized once, when first found older than the latest
                size = self._sizes[(step, fp)] = approx_size(self._data[step][fp])
                if size:
                    self._older += size
                    self._enqueue(step)
            self._unsized.clear()
        queue, limit = self._queue, self.max_size
        while self._older > limit and queue:
            seq, step = heapq.heappop(queue)
            if self._queued.get(step) != seq:
                continue  # dropped since (and perhaps put again: queued anew)
            del self._queued[step]
            versions = self._data[step]
            left = False
            for fp in list(versions)[:-1]:
                size = self._sizes.get((step, fp), 0)
                if not size:
                    continue
                if self._older <= limit:
                    left = True
                    break
                del versions[fp]
                del self._sizes[(step, fp)]
                self._older -= size
            if left:
                self._enqueue(step)

    def fingerprints(self, step: str) -> list[str]:
        with self._lock:
            return list(self._data.get(step, ()))

    def drop(self, step: str) -> None:
        with self._lock:
            versions = self._data.pop(step, None)
            if versions is None:
                return
            for fp in list(versions)[:-1]:
                self._not_older(step, fp)
            for fp in versions:
                self._sizes.pop((step, fp), None)
            del self._seq[step]
            self._queued.pop(step, None)

    def steps(self) -> list[str]:
        return list(self._data)

    def describe(self) -> str:
        return "memory"
