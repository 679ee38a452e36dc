"""Tiny wall-clock timing helper shared by the benchmark runners."""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any, Callable


def measure(
    fn: Callable[[], Any],
    repeat: int = 5,
    warmup: int = 1,
    budget_s: float | None = None,
) -> dict:
    """Time ``fn()`` with ``time.perf_counter``.

    Runs ``warmup`` untimed calls, then up to ``repeat`` timed calls.  If
    ``budget_s`` is given, stops early once the timed calls have used that much
    wall time (at least one timed call is always made).  A garbage collection
    is forced before each call so one run's garbage is not charged to the next.

    Returns ``{"median_s", "min_s", "runs", "result"}`` where ``runs`` is the
    list of per-call seconds and ``result`` the value of the last call.
    Exceptions from ``fn`` propagate.
    """
    result = None
    for _ in range(warmup):
        gc.collect()
        result = fn()
    runs: list[float] = []
    spent = 0.0
    for _ in range(max(1, repeat)):
        gc.collect()
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        runs.append(dt)
        spent += dt
        if budget_s is not None and spent >= budget_s:
            break
    return {
        "median_s": statistics.median(runs),
        "min_s": min(runs),
        "runs": runs,
        "result": result,
    }
