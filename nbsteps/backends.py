"""Where attempts run. A backend takes a :class:`~nbsteps.runtime.Task` and,
when it is done, calls ``done(task, outcome)`` from any thread.

``ThreadBackend`` keeps a fixed number of worker threads. A thread running a
step that timed out cannot be killed: it is *abandoned* (its late outcome is
ignored by the executor) and a replacement thread keeps the pool at full size.
The dask backend lives in :mod:`nbsteps.dask_backend`.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable

from .runtime import Outcome, Task, run_task

Done = Callable[[Task, Outcome], None]


class ThreadBackend:
    name = "threads"
    #: the executor may run a lone ready step on its own thread (no hand-off)
    inline_ok = True

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _spawn(self) -> None:
        t = threading.Thread(target=self._work, name=f"nbsteps-worker-{len(self._threads)}", daemon=True)
        self._threads.append(t)
        t.start()

    def submit(self, task: Task, done: Done) -> None:
        with self._lock:
            if len(self._threads) < self.workers:
                self._spawn()
        self._queue.put((task, done))

    def abandon(self, task: Task) -> None:
        """The task's thread is stuck: keep the pool full with a new thread."""
        task.abandoned = True
        with self._lock:
            self._spawn()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            task, done = item
            try:
                outcome = run_task(task)
            except BaseException as exc:  # never lose a worker silently
                outcome = Outcome(False, error=exc, traceback=repr(exc))
            done(task, outcome)
            if task.abandoned:
                return  # a replacement thread took this one's place

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)


def make_backend(name: str, workers: int, address=None):
    if name in (None, "threads", "thread"):
        return ThreadBackend(workers)
    if name == "dask":
        from .dask_backend import DaskBackend

        return DaskBackend(workers, address)
    from .errors import NbstepsError

    raise NbstepsError(f"unknown backend {name!r}: use 'threads' or 'dask'.")
