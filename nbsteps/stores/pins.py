"""Pins: checkpoints that a live kernel still has to read.

A step restored lazily (:class:`~nbsteps.model.checkpoint.LazyValues`) reads
its values from the store when they are first used, maybe much later. Until
then its checkpoint is *pinned*, and size eviction (:mod:`nbsteps.stores.budget`)
skips it, whichever kernel evicts. The pin ends when every value is read, or
when the values are dropped (the record reset or replaced, the kernel gone).

On disk::

    <directory>/.pins/
      <token>.alive               # held with a shared flock while the process lives
      <token>/<step folder>.<checkpoint>   # one empty file per pinned checkpoint

``<token>`` is one process's (pid and random). A pin file is created under the
step's lock, and eviction checks for pins under that same lock before it
removes anything; so a checkpoint is either seen pinned, or gone before the
reader pinning it looks for it (then the reader finds nothing and the step is
recomputed). A pin whose process is dead (its ``.alive`` lock is free) counts
for nothing and is removed by the next eviction that meets it. Without flock
(Windows) pins are known to this process only.

:class:`Pins` works on the store directory through
:class:`~nbsteps.stores.folders.Folders` (root, step locks); the reader
(:mod:`nbsteps.stores.reading`) calls ``pin``, the size budget and the garbage
collector call ``pinned``.
"""

from __future__ import annotations

import os
import threading
import uuid
import weakref
from contextlib import contextmanager
from typing import Callable, Iterator

from nbsteps.stores.folders import Folders
from nbsteps.stores.fs import CLOEXEC, NOFOLLOW, LinkRefused, open_dir, unlink_quiet

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

PINS = ".pins"


def pin_name(dirname: str, meta: str) -> str:
    return f"{dirname}.{meta.rsplit('.', 1)[0]}"  # step folders have no dot


class Pin:
    """Held by the lazy loader of one checkpoint; ``release()`` (or dropping
    it) unpins."""

    def __init__(self, unpin: "Callable[[tuple[str, str]], None]", key: "tuple[str, str]") -> None:
        self._done = weakref.finalize(self, unpin, key)

    def release(self) -> None:
        self._done()  # once: later calls do nothing


class Pins:
    """The pins of one store directory (*folders*) in this process, and the
    check eviction makes."""

    def __init__(self, folders: Folders) -> None:
        self.folders = folders
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._held: dict[tuple[str, str], int] = {}  # (step folder, metadata file) -> pins
        self._lock = threading.Lock()
        self._alive = -1  # descriptor of our .alive file (shared flock), once anything is pinned

    # -- the reader's side ----------------------------------------------------------
    def pin(self, root: int, dirname: str, meta: str) -> Pin:
        """Pin checkpoint *meta* of folder *dirname* (before reading its metadata)."""
        key = (dirname, meta)
        with self._lock:
            first = not self._held.get(key)
            self._held[key] = self._held.get(key, 0) + 1
        if first:
            try:
                with self.folders.locked(root, dirname), self._own_folder(root) as mine:
                    if mine is not None:
                        os.close(
                            os.open(
                                pin_name(dirname, meta),
                                os.O_WRONLY | os.O_CREAT | NOFOLLOW | CLOEXEC,
                                0o600,
                                dir_fd=mine,
                            )
                        )
            except OSError:
                pass  # a read-only store: nobody evicts from it through this path; pinned here all the same
        return Pin(self._unpin, key)

    def _unpin(self, key: "tuple[str, str]") -> None:
        with self._lock:
            left = self._held.get(key, 0) - 1
            if left > 0:
                self._held[key] = left
                return
            self._held.pop(key, None)
        try:
            with self.folders.root() as root, self._own_folder(root, create=False) as mine:
                if mine is not None:
                    unlink_quiet(pin_name(*key), mine)
        except OSError:
            pass

    @contextmanager
    def _own_folder(self, root: int, create: bool = True) -> Iterator["int | None"]:
        """``.pins/<token>`` of this process (None without flock), created
        only once our ``.alive`` file is locked."""
        if fcntl is None:
            yield None
            return
        pins = open_dir(PINS, root, lambda: self.folders.directory / PINS, create=create)
        try:
            if create:
                with self._lock:
                    if self._alive < 0:
                        fd = os.open(
                            f"{self.token}.alive",
                            os.O_RDWR | os.O_CREAT | NOFOLLOW | CLOEXEC,
                            0o600,
                            dir_fd=pins,
                        )
                        try:
                            fcntl.flock(fd, fcntl.LOCK_SH)
                        except OSError:
                            os.close(fd)
                            raise
                        self._alive = fd  # kept for the life of the process: the lock says it is alive
            mine = open_dir(
                self.token, pins, lambda: self.folders.directory / PINS / self.token, create=create
            )
        finally:
            os.close(pins)
        try:
            yield mine
        finally:
            os.close(mine)

    # -- eviction's side -------------------------------------------------------------
    def pinned(self, root: int, dirname: str, meta: str) -> bool:
        """Whether a live process pinned checkpoint *meta* of *dirname*. Call
        with the step's lock held (no new pin can appear meanwhile)."""
        with self._lock:
            if self._held.get((dirname, meta)):
                return True
        if fcntl is None:
            return False
        try:
            pins = open_dir(PINS, root, self.folders.directory / PINS)
        except FileNotFoundError:
            return False
        except (LinkRefused, OSError):
            return True  # cannot tell: keep it
        try:
            name = pin_name(dirname, meta)
            with os.scandir(pins) as it:
                owners = [e.name for e in it if e.is_dir(follow_symlinks=False) and e.name != self.token]
            for owner in owners:
                try:
                    os.stat(f"{owner}/{name}", dir_fd=pins, follow_symlinks=False)
                except OSError:
                    continue
                if _alive(pins, owner):
                    return True
                _remove_owner(pins, owner)  # a process that ended without unpinning
            return False
        finally:
            os.close(pins)


def _alive(pins: int, owner: str) -> bool:
    """Whether the process *owner* still holds its ``.alive`` lock."""
    try:
        fd = os.open(f"{owner}.alive", os.O_RDONLY | NOFOLLOW | CLOEXEC, dir_fd=pins)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no lock support here: a pin cannot be told from a dead one
    finally:
        os.close(fd)
    return False


def _remove_owner(pins: int, owner: str) -> None:
    """Remove the pins of a process that ended (never through a link)."""
    try:
        folder = open_dir(owner, pins, owner)
    except OSError:
        return
    try:
        with os.scandir(folder) as it:
            for e in list(it):
                if not e.is_dir(follow_symlinks=False):
                    unlink_quiet(e.name, folder)
    except OSError:
        pass
    finally:
        os.close(folder)
    try:
        os.rmdir(owner, dir_fd=pins)
        unlink_quiet(f"{owner}.alive", pins)
    except OSError:
        pass
