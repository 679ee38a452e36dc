"""Writing the user's files: all at once or not at all.

Every file nbsteps writes outside its store (``nbsteps run -o``, ``--results``,
``--graph``, ``%steps export``, ``%steps graph --output``) goes through
:func:`atomic_write`: the content is written to a temporary file in the target's
own folder, flushed and fsynced, then renamed over the target (``os.replace``,
atomic on POSIX) and the folder fsynced. On any failure before the rename, a
Ctrl-C, a kill, a full disk, an exception of the code writing the content, the
temporary file is removed and the target keeps its previous content, byte for
byte. A process killed with SIGKILL may leave the temporary file behind (its
name starts with ``.`` and ends with ``.nbsteps-tmp``); never the target half
written.

The target keeps what a user expects of a file edited in place: its permission
bits (a new file gets the usual ``0666 & ~umask``), and, when the name is a
symbolic link, the link itself (the file it points to is replaced).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import IO, Iterator

from nbsteps.interrupts import deferred_interrupts

TMP_SUFFIX = ".nbsteps-tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(
    path: "str | os.PathLike[str]", mode: str = "wb", encoding: "str | None" = None
) -> Iterator[IO]:
    """Open a temporary file for writing *path*; on a clean exit, put it in place.

    ``mode`` is ``"wb"`` or ``"w"`` (text, *encoding* defaulting to UTF-8).
    The parent folder is created when missing.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', not {mode!r}")
    target = os.path.realpath(os.fspath(path))  # write through a link, keep the link
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    try:
        perms = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        perms = 0o666 & ~_umask()
    tmp, done = None, False
    try:
        # a Ctrl-C right after the temporary is made must find it named here, for the cleanup
        with deferred_interrupts():
            fd, tmp = tempfile.mkstemp(
                prefix="." + os.path.basename(target) + ".", suffix=TMP_SUFFIX, dir=folder
            )
            f = os.fdopen(
                fd, mode, **({"encoding": encoding or "utf-8", "newline": ""} if mode == "w" else {})
            )
        with f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), perms)
            os.fsync(f.fileno())
        os.replace(tmp, target)
        done = True
    finally:
        if not done and tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_dir(folder)


def write_bytes(path: "str | os.PathLike[str]", data: bytes) -> None:
    """Write *data* to *path* atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def write_text(path: "str | os.PathLike[str]", text: str, encoding: str = "utf-8") -> None:
    """Write *text* to *path* atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w", encoding=encoding) as f:
        f.write(text)
