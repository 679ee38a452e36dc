"""Notes of checkpoints a directory store could not write, for the processes after.

A value that cannot be pickled keeps its checkpoint in this process's memory
(:mod:`nbsteps.stores.unwritten`); a new kernel on the same store finds
nothing of it and would call the step "never run", which it is not. So the
store leaves a small note in the step's folder, ``unstored`` (JSON, at most
:data:`KEPT` fingerprints, replaced atomically under the step's lock):
fingerprint -> why its values were not stored. The note only explains; it
restores nothing and nothing is decided from it.
"""

from __future__ import annotations

import json
import os

from nbsteps.stores.fs import create_file, fsync_dir, open_file, unlink_quiet

NAME = "unstored"
KEPT = 8
MAX_BYTES = 64 << 10


def read(folder: int, path) -> dict:
    """The note of the step folder *folder* ({} when there is none or it is not ours)."""
    try:
        fd = open_file(NAME, folder, path)
    except (OSError, ValueError):
        return {}
    try:
        with os.fdopen(fd, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
        data = json.loads(raw) if len(raw) <= MAX_BYTES else None
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def add(folder: int, path, fingerprint: str, why: str) -> None:
    """Note that the checkpoint *fingerprint* was not stored, and *why*
    (the caller holds the step's lock)."""
    notes = read(folder, path)
    notes.pop(fingerprint, None)
    notes[fingerprint] = why[:500]
    while len(notes) > KEPT:
        del notes[next(iter(notes))]
    tmp = f".tmp-note-{os.getpid()}-{os.urandom(6).hex()}"
    fd = create_file(folder, tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(json.dumps(notes).encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, NAME, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        unlink_quiet(tmp, folder)
        raise
    fsync_dir(folder)


def remove(folder: int) -> None:
    unlink_quiet(NAME, folder)
