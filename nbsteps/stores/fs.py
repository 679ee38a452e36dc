"""File-system primitives of the disk store: never through a link.

Every path inside the store is opened relative to a directory file descriptor
with ``O_NOFOLLOW``: a step folder, ``.locks``, ``checkpoint.meta`` or a value
file that is a symbolic link (or not the kind of entry expected) is refused,
never followed. New files are private (0600), new folders 0700.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path
from typing import Callable


def describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def fsync_dir(fd: int) -> None:
    """Make renames in the directory *fd* durable (best effort)."""
    try:
        os.fsync(fd)
    except OSError:
        pass


def unlink_quiet(name: "str | Path", dir_fd: "int | None" = None) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


#
# Every path inside the store is opened relative to a directory file descriptor
# with O_NOFOLLOW: a step folder, ``.locks``, ``checkpoint.meta`` or a value
# file that is a symbolic link (or not the kind of entry expected) is refused,
# never followed. The store directory itself is the one the user named.


CLOEXEC = getattr(os, "O_CLOEXEC", 0)


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | NOFOLLOW | CLOEXEC


class LinkRefused(OSError):
    """An entry of the store that is a symbolic link or not what nbsteps wrote."""

    def __init__(self, path: "str | Path", what: str = "a symbolic link") -> None:
        super().__init__(
            f"{path} is {what}; nbsteps never follows links or writes through them inside its "
            f"store: remove it (the store recreates what it needs)"
        )
        self.path = str(path)


def open_dir(
    name: str, dir_fd: "int | None", path: "str | Path | Callable[[], str | Path]", create: bool = False
) -> int:
    """A file descriptor of the directory *name* (relative to *dir_fd*), never
    through a link; created private (0700) when *create* and absent. *path*: the
    directory's path for messages, or a callable making it (only an error needs it:
    a restored cell opens ~6 directories, and joining a ``Path`` costs ~3 us)."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        _refused(exc, name, dir_fd, path)
        raise
    try:  # (created only when absent: no mkdir and its FileExistsError on every open)
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        pass
    try:
        return os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        _refused(exc, name, dir_fd, path)
        raise


def _refused(exc: OSError, name: str, dir_fd: "int | None", path) -> None:
    """Raise :class:`LinkRefused` if *exc* (opening directory *name*) says it is a link or
    not a directory."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        kind = "a symbolic link" if is_link(name, dir_fd) else "not a directory"
        raise LinkRefused(path() if callable(path) else path, kind) from None


def is_link(name: str, dir_fd: "int | None") -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def open_file(name: str, dir_fd: int, path: "str | Path") -> int:
    """A read-only descriptor of the regular file *name*; links and devices refused."""
    try:
        fd = os.open(name, os.O_RDONLY | NOFOLLOW | CLOEXEC | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LinkRefused(path, "not a regular file")
    return fd


def create_file(dir_fd: int, name: str) -> int:
    """A new private file (0600) in *dir_fd*; fails if *name* exists (even as a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC | getattr(os, "O_BINARY", 0)
    return os.open(name, flags, 0o600, dir_fd=dir_fd)


def exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


_last_touch = 0


def touch(folder: int, name: str) -> None:
    """Mark a checkpoint used now: its metadata's modification time, to the
    nanosecond (the kernel's own stamps are as coarse as its clock tick, which
    would make two uses in a row look simultaneous)."""
    global _last_touch
    now = _last_touch = max(time.time_ns(), _last_touch + 1)
    try:
        os.utime(name, ns=(now, now), dir_fd=folder, follow_symlinks=False)
    except (OSError, NotImplementedError):
        pass  # a read-only store: its checkpoints are still used, just not reordered
