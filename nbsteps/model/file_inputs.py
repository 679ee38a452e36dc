"""Files as inputs (SPEC 1, "Files"): a file's fingerprint now, and which of the
files a checkpoint depends on changed since.

A step's checkpoint keeps, in its fingerprint parts under ``"files"``, the files the
step read while it ran (observed through Python's audit hooks by
:mod:`nbsteps.run.attempt.opened`, or named by a literal path the analysis saw given
to a reader) with their fingerprints at the end of that run: ``{absolute path:
fingerprint}``. The checkpoint is up to date only while every one of them still has
that fingerprint: the checkpoint itself says which files to look at, so a step whose
files depend on a parameter (``f"data_{day}.csv"``) finds each version's own files,
a new kernel and ``nbsteps run --store`` see a file that changed since, and a step
that reads no file pays nothing.

A fingerprint is

- ``"blake2b:<digest>"`` for a regular file of at most ``NBSTEPS_FILE_DIGEST_MAX``
  bytes (default 64 MB): its content, so touching it or writing the same bytes again
  changes nothing;
- ``"stat:<size>:<mtime_ns>"`` for a larger one (reading it all on every check would
  cost what the step costs);
- ``"missing"`` for a path that does not exist (a step that fell back when a file was
  absent runs again when it appears).

A directory or device is not fingerprinted (``None``: not an input). Digests are
cached per (path, size, modification and change time, inode), as git's index does:
checking an unchanged file costs one ``os.stat``.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading

from nbsteps import config
from nbsteps.formatting import parse_size

#: default of NBSTEPS_FILE_DIGEST_MAX: larger files are known by size and modification time
DIGEST_MAX = 64_000_000
MISSING = "missing"
_CHUNK = 1 << 20
_CACHE_MAX = 100_000

#: path -> (stat key, fingerprint) of files digested before
_digests: dict[str, tuple] = {}
_lock = threading.Lock()


def digest_max() -> int:
    """Bytes up to which a file is known by its content (``NBSTEPS_FILE_DIGEST_MAX``)."""
    raw = config.file_digest_max()
    if raw is None:
        return DIGEST_MAX
    try:
        limit = parse_size(raw)
    except ValueError as exc:
        raise ValueError(f"nbsteps: NBSTEPS_FILE_DIGEST_MAX: {exc}") from None
    return limit if limit is not None else 1 << 62


def fingerprint(path: str, limit: "int | None" = None) -> "str | None":
    """The fingerprint of the file at *path* (absolute) now; None when it is not a
    regular file (a directory, a device) or cannot be read: not an input."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    limit = digest_max() if limit is None else limit
    if st.st_size > limit:
        return f"stat:{st.st_size}:{st.st_mtime_ns}"
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)
    hit = _digests.get(path)
    if hit is not None and hit[0] == key:
        return hit[1]
    acc = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                acc.update(chunk)
    except OSError:
        return None
    found = f"blake2b:{acc.hexdigest()}"
    with _lock:
        if len(_digests) >= _CACHE_MAX:
            _digests.clear()
        _digests[path] = (key, found)
    return found


def fingerprints(paths) -> dict:
    """``{path: fingerprint}`` of *paths*, leaving out what is not an input."""
    limit = None  # read from the environment when there is a file (most steps read none)
    out = {}
    for path in paths:
        if limit is None:
            limit = digest_max()
        found = fingerprint(path, limit)
        if found is not None:
            out[path] = found
    return out


def changed(files: "dict | None", explained=None) -> list:
    """The paths of *files* (``{path: fingerprint}``, as a checkpoint keeps them)
    whose fingerprint is not the same now, sorted. *explained*: a function giving
    ``{path: fingerprints}`` that steps below wrote (asked only when a file changed):
    a file that is now what a step below it in the notebook wrote changed as Run All
    changes it, after this step read it, and does not count."""
    if not files or not isinstance(files, dict):
        return []
    limit = digest_max()
    now = {p: fingerprint(p, limit) for p in files}
    moved = [p for p, fp in files.items() if now[p] != fp]
    if moved and explained is not None:
        below = explained()
        moved = [p for p in moved if now[p] not in below.get(p, ())]
    return sorted(moved)


def written(paths, before: dict) -> dict:
    """``{path: fingerprint now}`` of the files a step wrote: *paths* it opened for
    writing, and the files of *before* (``{path: fingerprint}`` when it started: the
    files the plan knows as inputs, which a library may write in C, as SQLite does)
    that are not what they were."""
    limit = digest_max()
    out = {}
    for path in set(paths) | set(before):
        now = fingerprint(path, limit)
        if now is not None and (path not in before or before[path] != now):
            out[path] = now
    return out


def shown(path: str) -> str:
    """*path* as the user wrote it, most likely: relative to the working
    directory when it is inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if rel.startswith(os.pardir) else rel


def why(files: "dict | None", explained=None) -> str:
    """Why a checkpoint depending on *files* is out of date ('' if it is not):
    ``file sales.csv changed`` (*explained*: as :func:`changed`)."""
    moved = changed(files, explained)
    if not moved:
        return ""
    names = [shown(p) for p in moved]
    if len(names) > 3:
        names = [*names[:3], f"{len(names) - 3} more"]
    return f"file{'s' if len(moved) > 1 else ''} {', '.join(names)} changed"
