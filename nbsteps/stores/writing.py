"""Writing one checkpoint into a step folder: value files, then the signed
metadata (the commit point), then removal of files no metadata names.

Under the step's lock (taken by :class:`~nbsteps.stores.disk.DiskStore`), every
value goes to a temporary file (unique name), is fsynced and renamed to a file
name carrying a fresh token; then the checkpoint's metadata file (named after
its fingerprint) is replaced atomically (``os.replace``) and the files of the
checkpoint it replaced are removed. Checkpoints of other fingerprints stay. A
crash at any point leaves either the previous checkpoint of that fingerprint
or the new one, plus unreferenced files that the next ``put`` or ``drop`` of
the step removes. A directory store writes the value files with ``sync=False``
and has its committer fsync them before :func:`commit_meta`
(:mod:`nbsteps.stores.committer`).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from nbsteps.interrupts import deferred_interrupts
from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores import layout, pickling
from nbsteps.stores.encoding import (
    SignedWriter,
    frame_encoding,
    json_roundtrips,
    pandas_kind,
    pickle_bytes,
    pickle_to,
    write_arrow,
    write_parquet,
)
from nbsteps.stores.fs import create_file, fsync_dir, unlink_quiet
from nbsteps.stores.layout import META, Corrupt, is_meta, ours, referenced


class Unpicklable(Exception):
    """Values that cannot be pickled: output names, None for the result."""

    def __init__(self, names: "list[str | None]", errors: list[BaseException]) -> None:
        super().__init__(names)
        self.names, self.errors = names, errors


def remove_files(folder: int, keep: "set[str] | frozenset[str]" = frozenset()) -> None:
    """Remove the entries of *folder* that carry a name the store gives its own
    files (metadata first, so a crash midway leaves no metadata pointing at
    missing files), except *keep*. Never a directory, never through a link
    (unlinking a link removes the link only). Best effort."""
    try:
        with os.scandir(folder) as it:
            names = [
                e.name
                for e in it
                if e.name not in keep and ours(e.name) and not e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        return
    names.sort(key=lambda n: not is_meta(n))
    for name in names:
        try:
            unlink_quiet(name, folder)
        except OSError:
            pass


def collect(folder: int, keep: "set[str] | frozenset[str]" = frozenset()) -> None:
    """Remove the value files and temporary files of *folder* that no
    metadata file names (the caller holds the step's lock, so no temporary
    file belongs to a write in progress), except *keep*."""
    remove_files(folder, keep=referenced(folder) | set(keep) | _metas(folder))


def _metas(folder: int) -> "set[str]":
    try:
        with os.scandir(folder) as it:
            return {e.name for e in it if is_meta(e.name)}
    except OSError:
        return set()


def tmp_name() -> str:
    return f".tmp-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex}"


def write_value(
    folder: int,
    stem: str,
    value: Any,
    written: list[str],
    key: bytes,
    compression: "str | None",
    refs: "dict | None" = None,
    met: "list | None" = None,
    later: "dict | None" = None,
    sync: bool = True,
) -> dict:
    """Write one value to ``folder/stem.<ext>``; its metadata entry. Objects
    in *refs* are written as references (:mod:`nbsteps.stores.sharing`); with
    *met*, what the pickler met is appended to it (``pickling.Dumped``: the
    references it wrote, where it wrote the objects of *later*), or None for a
    value not pickled. *sync*: fsync the file now (else the committer does,
    :mod:`nbsteps.stores.committer`)."""
    kind = pandas_kind(value) if not (refs and id(value) in refs) else None
    if kind is not None:
        entry = _write_frame(folder, stem, value, kind, written, key, compression, sync)
        if entry is not None:
            if met is not None:
                met.append(None)
            return entry
    faithful, exhaustive = True, False
    while True:  # again when what a __getstate__ drops is unpicklable, or the value holds a container of refs
        tmp = tmp_name()
        written.append(tmp)
        writer = SignedWriter(folder, tmp, key)
        try:
            dumped = pickle_to(writer, value, faithful, refs, later, exhaustive)
            digest = writer.finish(sync)
        except Exception as exc:
            writer.abort()
            if writer.error is not None:
                raise writer.error from None  # the disk's error; the encoder's exception only reports it
            if isinstance(exc, OSError):
                raise
            if isinstance(exc, pickling.HeldContainer) and not exhaustive:
                exhaustive = True
            elif isinstance(exc, pickling.DroppedUnpicklable) and faithful:
                faithful = False
            else:
                raise Unpicklable([], [exc]) from exc
        except BaseException:
            writer.abort()  # an interrupt: close the file and stop the hashing thread
            raise
        else:
            break
    if met is not None:
        met.append(dumped)
    return _publish(
        folder,
        tmp,
        f"{stem}.pkl",
        written,
        {"encoding": "pickle", "kind": type(value).__qualname__, "size": writer.size, **digest},
    )


def _write_frame(
    folder: int,
    stem: str,
    value: Any,
    kind: str,
    written: list[str],
    key: bytes,
    compression: "str | None",
    sync: bool = True,
) -> "dict | None":
    """Write a DataFrame or Series as Arrow IPC or Parquet; its entry, or None
    when it is to be pickled instead."""
    prepared = frame_encoding(value, kind)
    if prepared is None:
        return None
    encoding, data, extra = prepared
    tmp = tmp_name()
    written.append(tmp)  # first: removed by the store's clean-up whatever happens next
    writer = SignedWriter(folder, tmp, key)
    try:
        if encoding == "arrow":
            write_arrow(data, writer)
        else:
            write_parquet(data, writer, compression)
        digest = writer.finish(sync)
    except Exception:
        writer.abort()
        if writer.error is not None:
            raise writer.error from None  # the disk's error; the encoder's exception only reports it
        return None  # pyarrow refused something the sample accepted: pickle instead
    except BaseException:
        writer.abort()  # an interrupt: close the file and stop the hashing thread
        raise
    return _publish(
        folder,
        tmp,
        f"{stem}.{encoding}",
        written,
        {"encoding": encoding, "kind": kind, "size": writer.size, **digest, **extra},
    )


def _publish(folder: int, tmp: str, final: str, written: list[str], entry: dict) -> dict:
    written.append(final)  # first: an interrupt after the rename still has it removed
    os.replace(tmp, final, src_dir_fd=folder, dst_dir_fd=folder)
    entry["file"] = final
    return entry


def write_meta(
    folder: int, cp: Checkpoint, token: str, entries: list[dict], written: list[str], key: bytes, name: str
) -> int:
    """Commit the checkpoint: its metadata file *name*, atomically. Returns its size."""
    blob, size = meta_bytes(cp, token, entries, key)
    commit_meta(folder, blob, written, name)
    return size


def meta_bytes(cp: Checkpoint, token: str, entries: list[dict], key: bytes) -> "tuple[bytes, int]":
    """The signed metadata of *cp* (header and body) and the body's size:
    made on the caller's thread, from the checkpoint as it is now."""
    body: dict[str, Any] = {
        "format": layout.FORMAT,
        "step": cp.step,
        "fingerprint": cp.fingerprint,
        "duration": float(cp.duration),
        "finished": float(cp.finished),
        "started": float(cp.started or 0.0),
        "attempts": int(cp.attempts or 0),
        "has_result": bool(cp.has_result),
        "result_is": next((n for n, v in cp.outputs.items() if v is cp.result), None)
        if cp.has_result
        else None,
        "token": token,
        "values": entries,
        "written": time.time(),
        "writer": {"pid": os.getpid(), "host": socket.gethostname()},
    }
    parts = cp.parts or {}
    if json_roundtrips(parts):
        body["parts"] = parts
    else:  # inside the signed metadata, so unpickling it later is safe
        import base64

        body["parts_pickle"] = base64.b64encode(pickle_bytes(parts)).decode("ascii")
    data = json.dumps(body).encode()  # no indent: the C encoder (indent takes the Python one, 5x slower)
    return layout.header(key, data) + data, len(data)


def commit_meta(folder: int, blob: bytes, written: list[str], name: str) -> None:
    """Write the metadata *blob* to a temporary file, fsync it and rename it
    to *name* (the commit point), then fsync the folder. The value files it
    names must be durable before this is called."""
    tmp = tmp_name()
    written.append(tmp)
    fd = -1
    try:
        with deferred_interrupts():  # the descriptor is held by fd, and so always closed
            fd = create_file(folder, tmp)
        view = memoryview(blob)
        while view.nbytes:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        if fd >= 0:
            os.close(fd)
    with deferred_interrupts():  # the commit point, and the note that it is passed
        os.replace(tmp, name, src_dir_fd=folder, dst_dir_fd=folder)
        written.append(name)  # committed: the store keeps this put's files from now on
    fsync_dir(folder)


def size_of(folder: int, meta: str) -> int:
    """Bytes of the checkpoint whose metadata is *meta* (0 if none)."""
    try:
        raw = layout.read_meta_bytes(folder, meta)
        if raw is None:
            return 0
        return len(raw) + sum(e["size"] for e in layout.parse_meta(raw, None, meta)["values"])
    except (Corrupt, OSError):
        return 0


def drop_legacy(folder: int, fingerprint: str) -> None:
    """Remove an earlier nbsteps' ``checkpoint.meta`` of the same fingerprint
    (superseded by the checkpoint just written)."""
    try:
        raw = layout.read_meta_bytes(folder, META)
        if raw is not None and layout.parse_meta(raw, None, META).get("fingerprint") == fingerprint:
            unlink_quiet(META, folder)
    except (Corrupt, OSError):
        pass
