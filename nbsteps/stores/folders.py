"""The store directory as its parts use it: the open root, a step folder, a
step's lock.

:class:`Folders` is the small interface every part of a directory store works
through (the writer in :mod:`nbsteps.stores.disk`, the reader in
:mod:`nbsteps.stores.reading`, the size budget, the pins, the garbage
collector): ``directory`` (for messages and link-refusal paths), ``root()``
(a descriptor of the directory), ``folder(root, dirname)`` (a step folder,
never through a link) and ``locked(root, dirname)`` (the step's exclusive
lock, between threads and processes). The store creates one and hands it to
each part; none of them sees the store itself.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Callable

from nbsteps.stores import layout
from nbsteps.stores.fs import CLOEXEC, NOFOLLOW, LinkRefused, open_dir
from nbsteps.stores.layout import LOCKS, Corrupt
from nbsteps.stores.writing import collect

try:  # POSIX advisory locks between processes; threads are covered separately
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class Folders:
    """Descriptors and locks of the store directory *directory* (which exists)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._guard = threading.Lock()  # protects _thread_locks
        self._thread_locks: dict[str, threading.Lock] = {}

    def open_root(self) -> int:
        """A descriptor of the store directory (the caller closes it)."""
        return os.open(self.directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | CLOEXEC)

    def root(self) -> "_Opened":
        """A descriptor of the store directory, closed on exit (``with``)."""
        return _Opened(self.open_root)

    def folder(self, root: int, dirname: str, create: bool = False) -> "_Opened":
        """The step folder *dirname*, never through a link (``with``: its descriptor,
        closed on exit)."""
        return _Opened(open_dir, dirname, root, lambda: self.directory / dirname, create)

    def locked(self, root: int, dirname: str) -> "_Locked":
        """Exclusive lock of one step (``with``): a thread lock (flock is not reliable
        between threads on every file system) and a flock for other processes.
        Different steps never wait for each other."""
        return _Locked(self, root, dirname)

    def acquire(self, root: int, dirname: str) -> "StepLock":
        """The lock of :meth:`locked`, held until its ``release()``, which any
        thread may call: a put takes it on the caller's thread and its commit
        releases it on the store's committer thread (stores.committer)."""
        with self._guard:
            tlock = self._thread_locks.setdefault(dirname, threading.Lock())
        tlock.acquire()
        fd = -1
        try:
            if fcntl is not None:
                locks = open_dir(LOCKS, root, lambda: self.directory / LOCKS, create=True)
                try:
                    name = f"{dirname}.lock"
                    try:
                        fd = os.open(name, os.O_RDWR | os.O_CREAT | NOFOLLOW | CLOEXEC, 0o600, dir_fd=locks)
                    except OSError as exc:
                        if exc.errno == errno.ELOOP:
                            raise LinkRefused(self.directory / LOCKS / name) from None
                        raise
                finally:
                    os.close(locks)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError:
                    pass  # no lock support (some network file systems): unique names still keep files apart
            return StepLock(tlock, fd)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            tlock.release()
            raise

    def remove_checkpoint(
        self,
        root: int,
        dirname: str,
        meta: str,
        *,
        pinned: "Callable[[int, str, str], bool]",
        unchanged: "Callable[[os.stat_result, bytes | None], bool]",
    ) -> bool:
        """Remove the checkpoint whose metadata is *meta* in step folder *dirname*,
        under the step's lock, unless a live kernel *pinned* it or it is no longer
        what the caller scanned (``unchanged(stat, metadata bytes)`` is false; it
        runs under the lock too). Then the value files no metadata names go, and
        the folder if it is empty. The one removal of eviction (stores.budget) and
        garbage collection (stores.garbage); False when the checkpoint stays."""
        try:
            with self.locked(root, dirname), self.folder(root, dirname) as folder:
                if pinned(root, dirname, meta):
                    return False  # a live kernel restored it and has not read it yet
                try:
                    st = os.stat(meta, dir_fd=folder, follow_symlinks=False)
                    raw = layout.read_meta_bytes(folder, meta)
                except (FileNotFoundError, Corrupt):
                    return False
                if not unchanged(st, raw):
                    return False
                os.unlink(meta, dir_fd=folder)  # the checkpoint is gone from here on
                collect(folder)
            try:
                os.rmdir(dirname, dir_fd=root)  # only if nothing else is in it
            except OSError:
                pass
            return True
        except (LinkRefused, OSError):
            return False


class _Opened:
    """``with``: the descriptor *opener(*args)* returns, closed on exit (as a
    ``contextlib.contextmanager`` generator would do it, without making a generator and its
    wrapper for each of the ~5 directories a restored cell opens)."""

    __slots__ = ("_opener", "_args", "_fd")

    def __init__(self, opener: Callable[..., int], *args) -> None:
        self._opener, self._args, self._fd = opener, args, -1

    def __enter__(self) -> int:
        self._fd = self._opener(*self._args)
        return self._fd

    def __exit__(self, *exc) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class _Locked:
    """``with``: a step's lock (:meth:`Folders.acquire`) held inside the block."""

    __slots__ = ("_folders", "_root", "_dirname", "_lock")

    def __init__(self, folders: Folders, root: int, dirname: str) -> None:
        self._folders, self._root, self._dirname = folders, root, dirname
        self._lock: "StepLock | None" = None

    def __enter__(self) -> None:
        self._lock = self._folders.acquire(self._root, self._dirname)

    def __exit__(self, *exc) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()


class StepLock:
    """A step's lock as :meth:`Folders.acquire` took it: the thread lock and
    the descriptor holding the flock (closing it releases the flock; flocks
    belong to the open file, not to a thread)."""

    def __init__(self, tlock: threading.Lock, fd: int) -> None:
        self._tlock: "threading.Lock | None" = tlock
        self._fd = fd

    def release(self) -> None:
        """Release both (once; again does nothing)."""
        fd, self._fd = self._fd, -1
        tlock, self._tlock = self._tlock, None
        try:
            if fd >= 0:
                os.close(fd)
        finally:
            if tlock is not None:
                tlock.release()
