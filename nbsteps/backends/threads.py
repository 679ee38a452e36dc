"""The default backend: worker threads. It takes a :class:`~nbsteps.run.attempt.task.Task` and,
when it is done, calls ``done(task, outcome)`` from any thread.

``ThreadBackend`` keeps a fixed number of worker threads. A thread running a
step that timed out cannot be killed: it is *abandoned* (its late outcome is
ignored by the executor) and a replacement thread keeps the pool at full size.
Threads are not created per run: when a run ends its threads park, and the
next run's backend takes parked threads before starting new ones (starting a
thread waits for it to be scheduled: ~0.1-1 ms on a busy machine).
A worker whose attempt made a value bound to its thread (a sqlite3 connection) becomes
that value's home and leaves the pool, a replacement taking its place; the steps that
read the value are sent to it (:mod:`nbsteps.run.attempt.threads`). Workers are step
threads: their first imports happen one at a time.
The dask backend lives in :mod:`nbsteps.backends.distributed`.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from typing import Callable

from nbsteps.interrupts import deferred_interrupts
from nbsteps.run.attempt import stack, threads
from nbsteps.run.attempt.task import Outcome, Task, run_task

Done = Callable[[Task, Outcome], None]

# -- parked worker threads, shared by the backends of successive runs ----------
_parked: list[queue.SimpleQueue] = []  # channels of idle threads
_parked_lock = threading.Lock()
_MAX_PARKED = 16
_names = itertools.count()


def _after_fork() -> None:  # the parked threads do not exist in a forked child
    global _parked_lock
    _parked.clear()
    _parked_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _failed(exc: BaseException) -> Outcome:
    return Outcome(False, error=exc, traceback=repr(exc))


def _thread_main(channel: queue.SimpleQueue) -> None:
    """A worker thread: serves one backend at a time, then parks (or becomes a home); its
    attempts in a chunk of the frame stack of their own (:mod:`nbsteps.run.attempt.stack`)."""
    stack.call(_serve, channel)


def _serve(channel: queue.SimpleQueue) -> None:
    threads.step_thread()
    while True:
        backend = channel.get()
        if backend is None:
            return
        served = backend._work()
        backend = None  # a parked thread keeps nothing of the run alive
        if served is _HOME:
            threads.serve_home(run_task, _failed)  # for good: what it made lives here
        if not served:
            return  # abandoned: a replacement thread took its place
        with _parked_lock:
            if len(_parked) >= _MAX_PARKED:
                return
            _parked.append(channel)


_HOME = object()  # what _work returns when its thread became a home


class ThreadBackend:
    name = "threads"
    #: the executor may run a lone ready step on its own thread (no hand-off)
    inline_ok = True
    #: workers that make thread-bound values keep them: steps reading them are sent there
    homes = True

    def __init__(self, workers: int) -> None:
        self.workers = max(1, int(workers))
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[queue.SimpleQueue] = []  # channels of this backend's threads
        self._lock = threading.Lock()

    def _spawn(self) -> None:
        with deferred_interrupts():  # a thread taken or started always serves (and is told to stop)
            with _parked_lock:
                channel = _parked.pop() if _parked else None
            if channel is None:
                channel = queue.SimpleQueue()
                t = threading.Thread(
                    target=_thread_main, args=(channel,), name=f"nbsteps-worker-{next(_names)}", daemon=True
                )
                t.start()
            self._threads.append(channel)
            channel.put(self)

    def submit(self, task: Task, done: Done) -> None:
        if len(self._threads) < self.workers:  # only the executor's thread submits
            with self._lock:
                if len(self._threads) < self.workers:
                    self._spawn()
        self._queue.put((task, done))

    def abandon(self, task: Task) -> None:
        """The task's thread is stuck: keep the pool full with a new thread."""
        task.abandoned = True
        with self._lock:
            self._spawn()

    def _work(self) -> bool:
        """Run this backend's tasks until close(): True, or False once the
        thread was abandoned (it must then end)."""
        while True:
            item = self._queue.get()
            if item is None:
                return True
            task, done = item
            try:
                outcome = run_task(task)
            except BaseException as exc:  # never lose a worker silently
                outcome = Outcome(False, error=exc, traceback=repr(exc))
            if outcome.ok and not task.abandoned and threads.bound_values(outcome.outputs):
                outcome.thread = threads.become_home()  # before the executor hears of it
                with self._lock:
                    self._spawn()  # the pool keeps its size (before done: close() counts threads)
                done(task, outcome)
                return _HOME
            done(task, outcome)
            if task.abandoned:
                return False  # a replacement thread took this one's place

    def close(self) -> None:
        with deferred_interrupts():  # every thread is told, or it would wait forever
            for _ in self._threads:
                self._queue.put(None)
