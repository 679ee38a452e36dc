"""Commits off the critical path: one background thread per directory store
makes the checkpoints it was handed durable, in the order they came.

A put (:class:`~nbsteps.stores.disk.DiskStore`) serialises the values on the
caller's thread, while the step's objects are still as the step left them,
and writes them to value files (not yet fsynced); what makes the checkpoint
durable and visible to other processes -- fsync of each value file, of the
step folder, writing, fsyncing and renaming the metadata (the commit point),
the folder's fsync again, the clean-up of the files it replaced -- is a job
the put hands to the :class:`Committer`. The step's lock travels with the job:
taken by the put, released by the commit, so nothing else (another process's
put, garbage collection, eviction, a drop) touches the folder meanwhile.

Bounded: at most :data:`PENDING` commits wait at once; the next put blocks
until one ends (:meth:`Committer.reserve`, taken *before* the step's lock, so
that a waiting put holds no lock the committer may need). What a commit left
to do on the caller's thread (the size budget, warnings, garbage collection)
is queued in the store's ``done`` and taken there by the store.

One committer per store directory in a process (:func:`for_directory`): two
store objects on one directory (a plan's and one opened to look) see the same
pending commits, and a read through either waits for them.

Waiting: :meth:`Committer.wait` (one step, or every step) -- the store waits
before it reads a step whose commit is pending, before a drop, a garbage
collection or ``%steps store``; the executor on an interrupt, the headless
run at its end, and every store at interpreter exit (:func:`atexit`, so also
at kernel shutdown) wait for all.
"""

from __future__ import annotations

import atexit
import collections
import os
import threading
import weakref
from typing import Callable

#: commits that may wait at once per store (a put beyond waits for the oldest)
PENDING = 8


class Committer:
    """A FIFO of commit jobs run on one daemon thread (started on first use)."""

    def __init__(self, bound: int = PENDING) -> None:
        self.bound = bound
        self._reset()
        _LIVE.add(self)

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._slots = threading.BoundedSemaphore(self.bound)
        self._cond = threading.Condition()
        self._pending: dict[str, int] = {}  # step -> commits handed over and not ended
        self._jobs: "collections.deque[tuple[str, Callable[[], None]]]" = collections.deque()
        self._thread: "threading.Thread | None" = None

    def reserve(self) -> None:
        """Take a place for one more commit (waits while :data:`PENDING` are
        pending). Call before taking the step's lock; :meth:`submit` uses
        the place, :meth:`unreserve` gives it back unused."""
        if self._pid != os.getpid():  # a forked child: the parent's thread is not here
            self._reset()
        self._slots.acquire()

    def unreserve(self) -> None:
        self._slots.release()

    def submit(self, step: str, job: Callable[[], None]) -> None:
        """Run *job* (the commit of a checkpoint of *step*) on the thread, after
        the jobs before it. *job* handles its own errors."""
        with self._cond:
            self._pending[step] = self._pending.get(step, 0) + 1
            self._jobs.append((step, job))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="nbsteps-commit", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                step, job = self._jobs[0]
            try:
                job()
            except BaseException:  # pragma: no cover - jobs catch their own errors
                pass
            finally:
                with self._cond:
                    self._jobs.popleft()
                    left = self._pending[step] - 1
                    if left:
                        self._pending[step] = left
                    else:
                        del self._pending[step]
                    self._cond.notify_all()
                self._slots.release()

    def busy(self, step: "str | None" = None) -> bool:
        """Whether a commit (of *step*; None: of any step) is pending."""
        if self._pid != os.getpid():
            return False
        return bool(self._pending.get(step) if step is not None else self._pending)

    def wait(self, step: "str | None" = None) -> None:
        """Until no commit of *step* (None: of any step) is pending. A
        KeyboardInterrupt stops the wait, not the commits."""
        if not self.busy(step):
            return
        with self._cond:
            while self._pending.get(step) if step is not None else self._pending:
                self._cond.wait(0.5)


_LIVE: "weakref.WeakSet[Committer]" = weakref.WeakSet()
_BY_DIRECTORY: "weakref.WeakValueDictionary[str, Committer]" = weakref.WeakValueDictionary()
_GUARD = threading.Lock()


def for_directory(directory) -> Committer:
    """The committer of the store directory *directory* in this process."""
    key = os.path.realpath(os.fspath(directory))
    with _GUARD:
        found = _BY_DIRECTORY.get(key)
        if found is None:
            found = _BY_DIRECTORY[key] = Committer()
        return found


_STORES: "weakref.WeakSet" = weakref.WeakSet()


def at_exit(store) -> None:
    """Have *store*'s pending commits waited for (and their outcome told) at
    interpreter exit: ``store.flush()``."""
    _STORES.add(store)


@atexit.register
def _flush_all() -> None:
    for store in list(_STORES):
        try:
            store.flush()
        except BaseException:  # pragma: no cover - exiting anyway
            pass
    for committer in list(_LIVE):  # a store already collected: its commits still end
        try:
            committer.wait()
        except BaseException:  # pragma: no cover
            pass
