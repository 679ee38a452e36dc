"""A durable checkpoint store: one directory, signed files, atomic writes.

Layout of a store directory::

    <directory>/
      .locks/<step>.lock          # per-step lock files (flock); never removed
      <step>/
        checkpoint.meta           # signed metadata, written last
        <token>-0.parquet         # one file per value: outputs, then the result
        <token>-1.pkl

A step's folder is named after the step when the name is lower case, else the
name with a hash suffix (so ``Load`` and ``load`` stay apart on case-insensitive
file systems). ``checkpoint.meta`` is a header line
``nbsteps-checkpoint 1 hmac-sha256=<hex>`` followed by the JSON body; the
signature covers the header's format tag and the exact body bytes. The body
holds the fingerprint and its parts, duration, finish time, and for every value
its file, encoding, size and the HMAC of the file's bytes. Nothing is
unpickled or parsed as Parquet before its HMAC has been checked.

Writing a checkpoint: under the step's lock, every value goes to a temporary
file (unique name), is fsynced and renamed to a file name carrying a fresh
token; then the metadata is replaced atomically (``os.replace``) and the files
of the previous checkpoint are removed. A crash at any point leaves either the
previous checkpoint or the new one, plus unreferenced files that the next
``put`` or ``drop`` removes. Readers take no lock: if a concurrent ``put``
replaced the checkpoint under them they notice and read again.

pandas, pyarrow and cloudpickle are imported lazily: importing nbsteps stays fast.
"""
from __future__ import annotations

import errno
import hashlib
import hmac
import json
import os
import pickle
import queue
import re
import shutil
import socket
import stat
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from . import signing
from .store import Checkpoint, Store

try:  # POSIX advisory locks between processes; threads are covered separately
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

FORMAT = 1
META = "checkpoint.meta"
LOCKS = ".locks"
_HEADER = re.compile(rb"nbsteps-checkpoint (\d+) hmac-sha256=([0-9a-f]{64})")
_VALUE_FILE = re.compile(r"[0-9a-f]{16}-\d+\.(parquet|pkl)")
_PLAIN_NAME = re.compile(r"[a-z0-9_][a-z0-9_-]{0,99}")

CHUNK = 8 << 20  # read size when verifying files
_THREAD_MIN = 8 << 20  # hash in a helper thread once a file is this large


def _dirname(step: str) -> str:
    """Folder of a step: the name itself when it is safe on every file system."""
    if _PLAIN_NAME.fullmatch(step):
        return step
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", step)[:60]
    return f"{safe}~{hashlib.sha256(step.encode()).hexdigest()[:12]}"


def _fsync_dir(fd: int) -> None:
    """Make renames in the directory *fd* durable (best effort)."""
    try:
        os.fsync(fd)
    except OSError:
        pass


def _unlink(name: "str | Path", dir_fd: "int | None" = None) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


# -- never through a link ---------------------------------------------------------
#
# Every path inside the store is opened relative to a directory file descriptor
# with O_NOFOLLOW: a step folder, ``.locks``, ``checkpoint.meta`` or a value
# file that is a symbolic link (or not the kind of entry expected) is refused,
# never followed. The store directory itself is the one the user named.

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | _CLOEXEC
MAX_META = 64 << 20  # a checkpoint.meta larger than this is not ours


class LinkRefused(OSError):
    """An entry of the store that is a symbolic link or not what nbsteps wrote."""

    def __init__(self, path: "str | Path", what: str = "a symbolic link") -> None:
        super().__init__(
            f"{path} is {what}; nbsteps never follows links or writes through them inside its "
            f"store: remove it (the store recreates what it needs)"
        )
        self.path = str(path)


def _open_dir(name: str, dir_fd: "int | None", path: "str | Path", create: bool = False) -> int:
    """A file descriptor of the directory *name* (relative to *dir_fd*), never
    through a link; created private (0700) when *create*."""
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        except FileExistsError:
            pass
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            kind = "a symbolic link" if _is_link(name, dir_fd) else "not a directory"
            raise LinkRefused(path, kind) from None
        raise


def _is_link(name: str, dir_fd: "int | None") -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_file(name: str, dir_fd: int, path: "str | Path") -> int:
    """A read-only descriptor of the regular file *name*; links and devices refused."""
    try:
        fd = os.open(name, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | getattr(os, "O_NONBLOCK", 0), dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LinkRefused(path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LinkRefused(path, "not a regular file")
    return fd


def _create_file(dir_fd: int, name: str) -> int:
    """A new private file (0600) in *dir_fd*; fails if *name* exists (even as a link)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC | getattr(os, "O_BINARY", 0)
    return os.open(name, flags, 0o600, dir_fd=dir_fd)


def _ours(name: str) -> bool:
    """Whether *name* is one the store writes inside a step folder."""
    return name == META or name.startswith(".tmp-") or bool(_VALUE_FILE.fullmatch(name))


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


# -- hashing while writing and reading -----------------------------------------


class _Mac:
    """Incremental HMAC-SHA256 of a stream of buffers.

    Small streams are hashed inline. Past ``_THREAD_MIN`` bytes, buffers are
    handed to a helper thread (hashlib releases the GIL), so hashing a large
    file overlaps with encoding and I/O instead of adding to it. They go in
    batches of at least ``_BATCH`` bytes: pyarrow writes ~100 KB pieces, and a
    queue hand-off per piece costs a quarter of the hashing time. Buffers given
    to ``update`` must not change until ``hexdigest`` returns (they are bytes
    objects from pickle/pyarrow, the pickled object's own memory, or slices of
    a read buffer that is only read).
    """

    _BATCH = 4 << 20

    def __init__(self, key: bytes) -> None:
        self._mac = signing.new_mac(key)
        self._seen = 0
        self._batch: list[memoryview] = []
        self._batched = 0
        self._queue: "queue.Queue | None" = None
        self._thread: "threading.Thread | None" = None

    def update(self, view: memoryview) -> None:
        self._seen += view.nbytes
        if self._queue is None:
            if self._seen < _THREAD_MIN:
                self._mac.update(view)
                return
            self._queue = queue.Queue(maxsize=8)  # bounds what waits to be hashed
            self._thread = threading.Thread(target=self._run, name="nbsteps-hmac", daemon=True)
            self._thread.start()
        self._batch.append(view)
        self._batched += view.nbytes
        if self._batched >= self._BATCH:
            self._queue.put(self._batch)
            self._batch, self._batched = [], 0

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            for view in batch:
                self._mac.update(view)

    def hexdigest(self) -> str:
        self.stop()
        return self._mac.hexdigest()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(self._batch)
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            self._batch = []


def _byte_view(data: Any) -> memoryview:
    """A flat byte view of what pickle or pyarrow hands to ``write``."""
    if isinstance(data, pickle.PickleBuffer):
        return data.raw()  # also works for Fortran-ordered arrays
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class _SignedWriter:
    """The file object that pickle and pyarrow write a value file to.

    It writes unbuffered to a new file (``O_EXCL``) and computes the HMAC of
    exactly the bytes written. An ``OSError`` from the file system is kept in
    ``error`` so that a failing disk is told apart from a failing encoder.
    """

    closed = False

    def __init__(self, dir_fd: int, name: str, key: bytes) -> None:
        self.dir_fd, self.name = dir_fd, name
        self._fd = _create_file(dir_fd, name)
        self._mac = _Mac(key)
        self.size = 0
        self.error: "OSError | None" = None

    def write(self, data: Any) -> int:
        view = _byte_view(data)
        n = view.nbytes
        self._mac.update(view)
        try:
            while view.nbytes:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self.error = exc
            raise
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass  # pyarrow may call this; the file is closed by finish/abort

    def finish(self) -> str:
        """Make the file durable and close it; its HMAC (hex)."""
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.error = exc
            raise
        finally:
            digest = self._mac.hexdigest()
            os.close(self._fd)
            self._fd = -1
        return digest

    def abort(self) -> None:
        self._mac.stop()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        _unlink(self.name, self.dir_fd)


class _NullSink:
    """Where values are pickled only to learn whether they can be."""

    def write(self, data: Any) -> int:
        return _byte_view(data).nbytes


# -- encodings --------------------------------------------------------------------


def _pandas_kind(value: Any) -> "str | None":
    """'frame' / 'series' for plain pandas objects (never imports pandas)."""
    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    if type(value) is pd.DataFrame:  # subclasses (GeoDataFrame...) are pickled
        return "frame"
    if type(value) is pd.Series:
        return "series"
    return None


_SERIES_COLUMN = "values"


def _parquet_frame(value: Any, kind: str) -> "tuple[Any, dict] | None":
    """The DataFrame to write as Parquet for *value* and the extra metadata
    needed to restore it exactly, or None when Parquet would change it.

    Parquet is used only when a round trip is exact: no object columns (their
    Parquet type depends on the values: lists come back as arrays, mixed types
    fail, strings become ``str``), and a small sample must come back equal
    (column names, index, dtypes, attrs). A DatetimeIndex ``freq`` is not kept
    by Parquet: it is saved in the metadata.
    """
    import pandas as pd

    extra: dict = {}
    if kind == "series":
        if value.name is not None and not isinstance(value.name, (str, int, bool)):
            return None
        if isinstance(value.name, int) and not isinstance(value.name, bool) and abs(value.name) >= 2**53:
            return None
        extra["series_name"] = value.name
        frame = value.to_frame(name=_SERIES_COLUMN)
    else:
        frame = value
    if any(dtype == object for dtype in frame.dtypes):
        return None
    index = frame.index
    levels = index.levels if isinstance(index, pd.MultiIndex) else [index]
    if any(level.dtype == object for level in levels):
        return None
    freq = getattr(index, "freq", None)
    if freq is not None and isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex)):
        extra["index_freq"] = freq.freqstr
    try:
        sample = frame.iloc[:64]
        back = _parquet_read(_parquet_bytes(sample))
        pd.testing.assert_frame_equal(
            sample, back, check_exact=True, check_index_type=True, check_column_type=True,
            check_freq=False, check_flags=True,
        )
        if back.attrs != sample.attrs:
            return None
    except Exception:
        return None
    return frame, extra


def _write_parquet(frame: Any, sink: Any, compression: "str | None") -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # preserve_index=None keeps a RangeIndex as metadata instead of a column
    table = pa.Table.from_pandas(frame, preserve_index=None)
    # Dictionary encoding pays for strings and categoricals; for numbers it
    # halves write speed for nothing. Statistics only serve query pushdown.
    dict_columns = [
        f.name for f in table.schema
        if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_binary(f.type)
        or pa.types.is_large_binary(f.type) or pa.types.is_dictionary(f.type)
    ]
    pq.write_table(table, sink, compression=compression or "none", use_dictionary=dict_columns,
                   write_statistics=False)


def _parquet_bytes(frame: Any) -> bytes:
    import io

    buf = io.BytesIO()
    _write_parquet(frame, buf, None)
    return buf.getvalue()


def _parquet_read(data: Any) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(pa.BufferReader(pa.py_buffer(data)))
    # Not split_blocks=True: its zero-copy columns are read-only numpy arrays,
    # and pandas then fails on in-place assignment (``df.iloc[0, 0] = 1``).
    # self_destruct frees each Arrow column once converted (lower peak memory).
    return table.to_pandas(self_destruct=True)


def _decode(entry: dict, data: bytearray) -> Any:
    """A value from its verified bytes."""
    encoding = entry["encoding"]
    if encoding == "pickle":
        return pickle.loads(data)
    if encoding == "parquet":
        frame = _parquet_read(data)
        freq = entry.get("index_freq")
        if freq:
            cls = type(frame.index)
            try:
                frame.index = cls(frame.index, freq=freq)
            except (TypeError, ValueError):
                pass  # freq is a convenience; the data is intact without it
        if entry.get("kind") == "series":
            series = frame[_SERIES_COLUMN]
            series.name = entry.get("series_name")
            return series
        return frame
    raise ValueError(f"unknown encoding {encoding!r}")


# -- errors -------------------------------------------------------------------------


class _Corrupt(Exception):
    """A checkpoint that must not be trusted: *file* has *problem*."""

    def __init__(self, file: str, problem: str, meta: "bytes | None") -> None:
        super().__init__(f"{file} {problem}")
        self.file, self.problem, self.meta = file, problem, meta


class _Unpicklable(Exception):
    """Values that cannot be pickled: output names, None for the result."""

    def __init__(self, names: "list[str | None]", errors: list[BaseException]) -> None:
        super().__init__(names)
        self.names, self.errors = names, errors


# -- the store ------------------------------------------------------------------------


class DiskStore(Store):
    """Checkpoints kept in *directory*, signed with the user's secret key.

    ``key`` defaults to :func:`nbsteps.signing.load_key`. ``compression`` is
    the Parquet codec (``None``: uncompressed, the fastest here; ``"snappy"``
    makes files of repetitive data smaller). Values that cannot be written
    (unpicklable, disk full, directory not writable, a link inside the store)
    are kept in memory for this process with a warning; ``put`` never raises.

    Inside the directory nothing is followed through a symbolic link, nothing
    is deleted that does not carry a name the store gives its own files, and
    everything is created private to the user (0600 files, 0700 folders).
    """

    def __init__(self, directory: "str | os.PathLike", key: "bytes | None" = None, *,
                 compression: "str | None" = None) -> None:
        self.directory = Path(os.path.abspath(os.path.expanduser(os.fspath(directory))))
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"nbsteps: checkpoint store {self.directory} is not a directory")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = key if key is not None else signing.load_key()
        self.compression = compression
        self._memory: dict[str, Checkpoint] = {}  # checkpoints that could not be written
        self._guard = threading.Lock()  # protects _memory and _thread_locks
        self._thread_locks: dict[str, threading.Lock] = {}

    def describe(self) -> str:
        return str(self.directory)

    def __repr__(self) -> str:
        return f"DiskStore({str(self.directory)!r})"

    # -- directories -------------------------------------------------------------

    @contextmanager
    def _root(self) -> Iterator[int]:
        fd = os.open(self.directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def _folder(self, root: int, dirname: str, create: bool = False) -> Iterator[int]:
        """The step folder *dirname*, never through a link."""
        fd = _open_dir(dirname, root, self.directory / dirname, create=create)
        try:
            yield fd
        finally:
            os.close(fd)

    # -- locking ---------------------------------------------------------------

    @contextmanager
    def _locked(self, root: int, dirname: str) -> Iterator[None]:
        """Exclusive lock of one step: a thread lock (flock is not reliable
        between threads on every file system) and a flock for other processes.
        Different steps never wait for each other."""
        with self._guard:
            tlock = self._thread_locks.setdefault(dirname, threading.Lock())
        with tlock:
            if fcntl is None:
                yield
                return
            locks = _open_dir(LOCKS, root, self.directory / LOCKS, create=True)
            try:
                name = f"{dirname}.lock"
                try:
                    fd = os.open(name, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=locks)
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        raise LinkRefused(self.directory / LOCKS / name) from None
                    raise
            finally:
                os.close(locks)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError:
                    pass  # no lock support (some network file systems): unique names still keep files apart
                yield
            finally:
                os.close(fd)  # releases the flock

    # -- writing ---------------------------------------------------------------------

    def put(self, checkpoint: Checkpoint) -> None:
        step = checkpoint.step
        try:
            self._write(checkpoint)
        except _Unpicklable as exc:
            self._remember(checkpoint)
            self.warn(step, (
                f"step {step!r}: {_list_values(exc.names)} cannot be pickled ({_describe_error(exc.errors[0])}); "
                f"its checkpoint is kept in memory only and will not survive a restart of the kernel"
            ))
        except LinkRefused as exc:
            self._remember(checkpoint)
            self.warn(step, (
                f"step {step!r}: its checkpoint was not written: {exc}; "
                f"it is kept in memory only and will not survive a restart of the kernel"
            ))
        except OSError as exc:
            self._remember(checkpoint)
            self.warn(step, (
                f"step {step!r}: could not write its checkpoint to {self.directory} ({_describe_error(exc)}); "
                f"it is kept in memory only and will not survive a restart of the kernel"
            ))
        except Exception as exc:  # an unexpected encoder failure must not fail the step
            self._remember(checkpoint)
            self.warn(step, (
                f"step {step!r}: could not save its checkpoint to {self.directory} ({_describe_error(exc)}); "
                f"it is kept in memory only"
            ))

    def _remember(self, checkpoint: Checkpoint) -> None:
        with self._guard:
            self._memory[checkpoint.step] = checkpoint

    def _write(self, cp: Checkpoint) -> None:
        dirname = _dirname(cp.step)
        values: list[tuple[str, str | None, Any]] = [("output", n, v) for n, v in cp.outputs.items()]
        # a result that is also an output (function steps, `x` as last line) is written once
        result_is = next((n for n, v in cp.outputs.items() if v is cp.result), None) if cp.has_result else None
        if cp.has_result and result_is is None:
            values.append(("result", None, cp.result))
        with self._root() as root, self._locked(root, dirname), \
                self._folder(root, dirname, create=True) as folder:
            _fsync_dir(root)
            token = uuid.uuid4().hex[:16]
            written: list[str] = []  # names of this put's files, removed if it fails
            try:
                entries: list[dict] = []
                bad: "list[str | None]" = []
                errors: list[BaseException] = []
                for i, (role, name, value) in enumerate(values):
                    label = name if role == "output" else None  # None: the result
                    if bad:  # already failing: only find the other unpicklable values
                        try:
                            _pickle_to(_NullSink(), value)
                        except Exception as exc:
                            bad.append(label)
                            errors.append(exc)
                        continue
                    try:
                        entry = self._write_value(folder, f"{token}-{i}", value, written)
                    except _Unpicklable as exc:
                        bad.append(label)
                        errors.extend(exc.errors)
                        continue
                    entry.update(role=role, name=name)
                    entries.append(entry)
                if bad:
                    raise _Unpicklable(bad, errors)
                _fsync_dir(folder)  # the value files' names are durable before the metadata
                self._write_meta(folder, cp, token, entries, written)
            except _Unpicklable:
                for name in written:
                    _unlink(name, folder)
                # the store holds the latest checkpoint: the older one on disk goes
                self._remove_files(folder)
                try:
                    os.rmdir(dirname, dir_fd=root)  # only if nothing else is in it
                except OSError:
                    pass
                raise
            except BaseException:
                for name in written:
                    _unlink(name, folder)
                raise
            with self._guard:
                self._memory.pop(cp.step, None)
            # The other files of ours in the folder are the previous checkpoint or
            # debris of an interrupted put (we hold the lock: nobody else writes
            # here). Anything the store did not name is left alone.
            self._remove_files(folder, keep={META, *written})

    @staticmethod
    def _remove_files(folder: int, keep: "set[str] | frozenset[str]" = frozenset()) -> None:
        """Remove the regular files of *folder* that the store names as its own
        (metadata first, so a crash midway leaves no metadata pointing at
        missing files), except *keep*. Never a directory, never through a link
        (unlinking a link removes the link only). Best effort."""
        try:
            names = [e.name for e in os.scandir(folder)
                     if e.name not in keep and _ours(e.name) and e.is_file(follow_symlinks=False)]
        except OSError:
            return
        names.sort(key=lambda n: n != META)
        for name in names:
            try:
                _unlink(name, folder)
            except OSError:
                pass

    @staticmethod
    def _tmp() -> str:
        return f".tmp-{os.getpid()}-{threading.get_ident()}-{uuid.uuid4().hex}"

    def _write_value(self, folder: int, stem: str, value: Any, written: list[str]) -> dict:
        """Write one value to ``folder/stem.<ext>``; its metadata entry."""
        kind = _pandas_kind(value)
        if kind is not None:
            prepared = _parquet_frame(value, kind)
            if prepared is not None:
                frame, extra = prepared
                tmp = self._tmp()
                writer = _SignedWriter(folder, tmp, self.key)
                written.append(tmp)
                try:
                    _write_parquet(frame, writer, self.compression)
                    digest = writer.finish()
                except Exception:
                    writer.abort()
                    if writer.error is not None:
                        raise writer.error
                    # pyarrow refused something the sample accepted: pickle instead
                else:
                    return self._publish(folder, tmp, f"{stem}.parquet", written, {
                        "encoding": "parquet", "kind": kind, "size": writer.size, "hmac": digest, **extra})
        tmp = self._tmp()
        writer = _SignedWriter(folder, tmp, self.key)
        written.append(tmp)
        try:
            _pickle_to(writer, value)
            digest = writer.finish()
        except Exception as exc:
            writer.abort()
            if writer.error is not None:
                raise writer.error
            if isinstance(exc, OSError):
                raise
            raise _Unpicklable([], [exc]) from exc
        except BaseException:
            writer.abort()  # an interrupt: close the file and stop the hashing thread
            raise
        return self._publish(folder, tmp, f"{stem}.pkl", written, {
            "encoding": "pickle", "kind": type(value).__qualname__, "size": writer.size, "hmac": digest})

    @staticmethod
    def _publish(folder: int, tmp: str, final: str, written: list[str], entry: dict) -> dict:
        os.replace(tmp, final, src_dir_fd=folder, dst_dir_fd=folder)
        written.append(final)
        entry["file"] = final
        return entry

    def _write_meta(self, folder: int, cp: Checkpoint, token: str, entries: list[dict],
                    written: list[str]) -> None:
        body: dict[str, Any] = {
            "format": FORMAT,
            "step": cp.step,
            "fingerprint": cp.fingerprint,
            "duration": float(cp.duration),
            "finished": float(cp.finished),
            "has_result": bool(cp.has_result),
            "result_is": next((n for n, v in cp.outputs.items() if v is cp.result), None) if cp.has_result else None,
            "token": token,
            "values": entries,
            "written": time.time(),
            "writer": {"pid": os.getpid(), "host": socket.gethostname()},
        }
        parts = cp.parts or {}
        if _json_roundtrips(parts):
            body["parts"] = parts
        else:  # inside the signed metadata, so unpickling it later is safe
            import base64

            body["parts_pickle"] = base64.b64encode(_pickle_bytes(parts)).decode("ascii")
        data = json.dumps(body, indent=1).encode()
        tmp = self._tmp()
        written.append(tmp)
        fd = _create_file(folder, tmp)
        try:
            view = memoryview(_header(self.key, data) + data)
            while view.nbytes:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, META, src_dir_fd=folder, dst_dir_fd=folder)  # the commit point
        _fsync_dir(folder)

    # -- reading -----------------------------------------------------------------------

    def get(self, step: str, fingerprint: "str | None" = None) -> "Checkpoint | None":
        return self._read(step, fingerprint, load=True)

    def peek(self, step: str) -> "Checkpoint | None":
        return self._read(step, None, load=False)

    def _read(self, step: str, fingerprint: "str | None", load: bool) -> "Checkpoint | None":
        with self._guard:
            cp = self._memory.get(step)
        if cp is not None:
            return cp if fingerprint is None or cp.fingerprint == fingerprint else None
        dirname = _dirname(step)
        path = self.directory / dirname
        for _ in range(5):
            try:
                with self._root() as root, self._folder(root, dirname) as folder:
                    try:
                        return self._load(step, folder, fingerprint, load)
                    except _Corrupt as exc:
                        removed = self._discard_if_unchanged(root, dirname, exc.meta)
                        if removed is None:
                            continue  # a concurrent put replaced the checkpoint: read again
                        self.warn(step, (
                            f"checkpoint of step {step!r} is not trusted: {path / exc.file} {exc.problem}; "
                            f"{'it was removed and ' if removed else ''}the step will be recomputed"
                        ))
                        return None
            except (FileNotFoundError, NotADirectoryError):
                return None
            except _Unloadable as exc:
                self.warn(step, (
                    f"checkpoint of step {step!r}: {path / exc.file} could not be loaded "
                    f"({_describe_error(exc.__cause__)}); the step will be recomputed"
                ))
                return None
            except LinkRefused as exc:
                self.warn(step, f"checkpoint of step {step!r} is not used: {exc}; the step will be recomputed")
                return None
            except OSError as exc:  # e.g. a file we may not read
                self.warn(step, (
                    f"checkpoint of step {step!r} in {path} could not be read ({_describe_error(exc)}); "
                    f"the step will be recomputed"
                ))
                return None
        return None

    def _load(self, step: str, folder: int, fingerprint: "str | None", load: bool) -> "Checkpoint | None":
        found = self._read_meta(folder)
        if found is None:
            return None
        raw, body = found
        if body.get("step") != step:
            raise _Corrupt(META, f"belongs to step {body.get('step')!r}", raw)
        if fingerprint is not None and body.get("fingerprint") != fingerprint:
            return None  # stale: do not even look at the values
        outputs: dict[str, Any] = {}
        result = None
        if load:
            for entry in body["values"]:
                value = self._load_value(folder, entry, raw)
                if entry["role"] == "output":
                    outputs[entry["name"]] = value
                else:
                    result = value
            if body.get("result_is") in outputs:
                result = outputs[body["result_is"]]
        if "parts_pickle" in body:
            import base64

            parts = pickle.loads(base64.b64decode(body["parts_pickle"]))
        else:
            parts = body.get("parts") or {}
        return Checkpoint(
            step=step, fingerprint=body["fingerprint"], outputs=outputs, result=result,
            has_result=bool(body.get("has_result")), parts=parts,
            duration=float(body.get("duration", 0.0)), finished=float(body.get("finished", 0.0)),
        )

    def _read_meta_bytes(self, folder: int) -> "bytes | None":
        try:
            fd = _open_file(META, folder, META)
        except FileNotFoundError:
            return None
        except LinkRefused as exc:
            raise _Corrupt(META, "is a symbolic link or not a regular file", None) from exc
        try:
            size = os.fstat(fd).st_size
            if size > MAX_META:
                raise _Corrupt(META, f"is too large ({size} bytes) to be a checkpoint's metadata", None)
            with open(fd, "rb", closefd=False) as f:
                return f.read(MAX_META + 1)
        finally:
            os.close(fd)

    def _read_meta(self, folder: int) -> "tuple[bytes, dict] | None":
        """The verified metadata of *folder* (raw bytes and body); None if absent."""
        raw = self._read_meta_bytes(folder)
        if raw is None:
            return None
        header, newline, data = raw.partition(b"\n")
        match = _HEADER.fullmatch(header)
        if not newline or match is None:
            raise _Corrupt(META, "is not signed (no nbsteps signature header)", raw)
        if int(match.group(1)) != FORMAT:
            raise _Corrupt(META, f"has an unknown format {match.group(1).decode()}", raw)
        if not signing.verify(self.key, _signed_bytes(data), match.group(2).decode()):
            raise _Corrupt(META, "does not match its signature (tampered with, or signed with another key)", raw)
        try:
            body = json.loads(data)
            if not isinstance(body, dict) or not isinstance(body.get("values"), list):
                raise ValueError("not a checkpoint")
            if not isinstance(body.get("fingerprint"), str):
                raise ValueError("no fingerprint")
            for entry in body["values"]:
                if not isinstance(entry, dict) or not _VALUE_FILE.fullmatch(str(entry.get("file"))):
                    raise ValueError(f"bad value entry {entry!r}")
                if not isinstance(entry.get("size"), int) or entry.get("role") not in ("output", "result"):
                    raise ValueError(f"bad value entry {entry!r}")
        except ValueError as exc:  # signed but malformed: written by a buggy or newer writer
            raise _Corrupt(META, f"is malformed ({exc})", raw) from None
        return raw, body

    def _load_value(self, folder: int, entry: dict, meta: bytes) -> Any:
        name = entry["file"]
        data = self._read_verified(folder, name, entry, meta)
        try:
            return _decode(entry, data)
        except Exception as exc:  # verified bytes: our own file; e.g. a module is missing now
            raise _Unloadable(name) from exc

    def _read_verified(self, folder: int, name: str, entry: dict, meta: bytes) -> bytearray:
        """The bytes of a value file, after checking its size and HMAC."""
        size = int(entry["size"])
        try:
            fd = _open_file(name, folder, name)
        except FileNotFoundError:
            raise _Corrupt(name, "is missing", meta) from None
        except LinkRefused:
            raise _Corrupt(name, "is a symbolic link or not a regular file", meta) from None
        with open(fd, "rb", buffering=0) as f:
            actual = os.fstat(f.fileno()).st_size
            if actual != size:
                problem = f"is truncated ({actual} of {size} bytes)" if actual < size else \
                    f"has the wrong size ({actual} bytes instead of {size})"
                raise _Corrupt(name, problem, meta)
            data = bytearray(size)  # calloc: pages are zeroed lazily, as read fills them
            view = memoryview(data)
            mac = _Mac(self.key)
            pos = 0
            try:
                while pos < size:
                    n = f.readinto(view[pos:pos + CHUNK])
                    if not n:
                        raise _Corrupt(name, f"is truncated ({pos} of {size} bytes)", meta)
                    mac.update(view[pos:pos + n])  # hashed in a thread while the next chunk is read
                    pos += n
            except BaseException:
                mac.stop()
                raise
            digest = mac.hexdigest()
            view.release()
        if not hmac.compare_digest(digest, str(entry.get("hmac", ""))):
            raise _Corrupt(name, "does not match its signature (corrupted or tampered with)", meta)
        return data

    def _discard_if_unchanged(self, root: int, dirname: str, meta: "bytes | None") -> "bool | None":
        """Remove the untrusted checkpoint of *dirname*, unless its metadata
        changed since it was read (a concurrent put replaced it: read again).
        None if it changed, else whether it could be removed."""
        def unchanged(folder: int) -> bool:
            try:
                return self._read_meta_bytes(folder) == meta
            except (OSError, _Corrupt):
                return meta is None
        try:
            with self._locked(root, dirname), self._folder(root, dirname) as folder:
                if not unchanged(folder):
                    return None
                self._remove_files(folder)
                try:
                    os.stat(META, dir_fd=folder, follow_symlinks=False)
                    return False
                except FileNotFoundError:
                    return True
        except OSError:  # read-only store: cannot lock; the checkpoint stays but is not used
            return False

    # -- the rest of the interface ----------------------------------------------------

    def drop(self, step: str) -> None:
        with self._guard:
            self._memory.pop(step, None)
        dirname = _dirname(step)
        try:
            with self._root() as root:
                if not _exists(dirname, root):
                    return
                with self._locked(root, dirname), self._folder(root, dirname) as folder:
                    self._remove_files(folder)
                try:
                    os.rmdir(dirname, dir_fd=root)  # only if nothing else is in it
                except OSError:
                    pass
        except OSError as exc:
            self.warn(step, f"step {step!r}: could not remove its checkpoint in {self.directory / dirname} "
                            f"({_describe_error(exc)})")

    def steps(self) -> list[str]:
        with self._guard:
            names = set(self._memory)
        try:
            with self._root() as root:
                for entry in list(os.scandir(root)):
                    if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                        continue
                    try:
                        with self._folder(root, entry.name) as folder:
                            found = self._read_meta(folder)
                    except (_Corrupt, OSError):
                        continue  # reported when the step reads it
                    if found is not None and isinstance(found[1].get("step"), str):
                        names.add(found[1]["step"])
        except OSError:
            pass
        return sorted(names)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False



class _Unloadable(Exception):
    """A verified value that cannot be decoded here (e.g. its class's module is gone)."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.file = file


def _list_values(names: "list[str | None]") -> str:
    """``outputs 'a', 'b' and the result`` for a message."""
    outputs = [repr(n) for n in names if n is not None]
    said = [f"output{'s' if len(outputs) > 1 else ''} {', '.join(outputs)}"] if outputs else []
    if None in names:
        said.append("the result")
    return " and ".join(said)


def _signed_bytes(data: bytes) -> bytes:
    # the format tag is signed with the body, so a body cannot be replayed under another format
    return b"nbsteps-checkpoint %d\n" % FORMAT + data


def _header(key: bytes, data: bytes) -> bytes:
    return b"nbsteps-checkpoint %d hmac-sha256=%s\n" % (FORMAT, signing.sign(key, _signed_bytes(data)).encode())


def _pickle_to(sink: Any, value: Any) -> None:
    import cloudpickle

    cloudpickle.dump(value, sink, protocol=5)


def _pickle_bytes(value: Any) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(value, protocol=5)


def _json_roundtrips(value: Any) -> bool:
    """Whether JSON gives *value* back unchanged (tuples, NaN, non-str keys do not)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False)) == value
    except (TypeError, ValueError):
        return False
