"""Delayed calls on one daemon thread.

The step cells (:mod:`nbsteps.ipython.cells`) redraw a running step's cell a moment
after it starts, and cancel that when it ends first, which a quick step always does:
a ``threading.Timer`` per step started a thread for it every time (~25 us of the
kernel's thread, and the new thread's own start). :func:`call_later` queues the call
for one thread that lives as long as the kernel; calls run one after the other, each
in the order of its time.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any, Callable


class Call:
    """A queued call; :meth:`cancel` before its time and it does not run."""

    __slots__ = ("when", "order", "func", "args", "cancelled")

    def __init__(self, when: float, order: int, func: Callable, args: tuple) -> None:
        self.when, self.order, self.func, self.args = when, order, func, args
        self.cancelled = False

    def __lt__(self, other: "Call") -> bool:
        return (self.when, self.order) < (other.when, other.order)

    def cancel(self) -> None:
        self.cancelled = True


_cond = threading.Condition()
_queue: list[Call] = []
_order = itertools.count()
_thread: "threading.Thread | None" = None


def call_later(delay: float, func: Callable, *args: Any) -> Call:
    """Call ``func(*args)`` on the ticker thread after *delay* seconds (unless cancelled)."""
    global _thread
    call = Call(time.monotonic() + delay, next(_order), func, args)
    with _cond:
        heapq.heappush(_queue, call)
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_loop, name="nbsteps-ticker", daemon=True)
            _thread.start()
        elif _queue[0] is call:  # sooner than what the thread waits for
            _cond.notify()
    return call


def _next() -> Call:
    with _cond:
        while True:
            while _queue and _queue[0].cancelled:
                heapq.heappop(_queue)
            if not _queue:
                _cond.wait()
                continue
            wait = _queue[0].when - time.monotonic()
            if wait <= 0:
                return heapq.heappop(_queue)
            _cond.wait(wait)


def _loop() -> None:
    while True:
        call = _next()
        if call.cancelled:
            continue
        try:
            call.func(*call.args)
        except Exception:  # pragma: no cover - a display problem must not stop the ticker
            pass
