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

The folder format lives in :mod:`nbsteps.stores.layout`, value encodings in
:mod:`nbsteps.stores.encoding`, link-safe file operations in :mod:`nbsteps.stores.fs`.
"""

from __future__ import annotations

import errno
import os
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores import layout, signing
from nbsteps.stores.base import Store
from nbsteps.stores.encoding import NullSink, pickle_to
from nbsteps.stores.fs import CLOEXEC, NOFOLLOW, LinkRefused, exists, fsync_dir, open_dir, unlink_quiet
from nbsteps.stores.layout import LOCKS, META, Corrupt, dirname_of
from nbsteps.stores.writing import Unpicklable, remove_files, write_meta, write_value

try:  # POSIX advisory locks between processes; threads are covered separately
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


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
        fd = os.open(self.directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)

    @contextmanager
    def _folder(self, root: int, dirname: str, create: bool = False) -> Iterator[int]:
        """The step folder *dirname*, never through a link."""
        fd = open_dir(dirname, root, self.directory / dirname, create=create)
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
            locks = open_dir(LOCKS, root, self.directory / LOCKS, create=True)
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
        except Unpicklable as exc:
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
        dirname = dirname_of(cp.step)
        values: list[tuple[str, str | None, Any]] = [("output", n, v) for n, v in cp.outputs.items()]
        # a result that is also an output (function steps, `x` as last line) is written once
        result_is = next((n for n, v in cp.outputs.items() if v is cp.result), None) if cp.has_result else None
        if cp.has_result and result_is is None:
            values.append(("result", None, cp.result))
        if cp.output:  # what the step printed and displayed: plain data, signed like the values
            values.append(("captured", None, list(cp.output)))
        with self._root() as root, self._locked(root, dirname), \
                self._folder(root, dirname, create=True) as folder:
            fsync_dir(root)
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
                            pickle_to(NullSink(), value)
                        except Exception as exc:
                            bad.append(label)
                            errors.append(exc)
                        continue
                    try:
                        entry = write_value(folder, f"{token}-{i}", value, written, self.key, self.compression)
                    except Unpicklable as exc:
                        bad.append(label)
                        errors.extend(exc.errors)
                        continue
                    entry.update(role=role, name=name)
                    entries.append(entry)
                if bad:
                    raise Unpicklable(bad, errors)
                fsync_dir(folder)  # the value files' names are durable before the metadata
                write_meta(folder, cp, token, entries, written, self.key)
            except Unpicklable:
                for name in written:
                    unlink_quiet(name, folder)
                # the store holds the latest checkpoint: the older one on disk goes
                remove_files(folder)
                try:
                    os.rmdir(dirname, dir_fd=root)  # only if nothing else is in it
                except OSError:
                    pass
                raise
            except BaseException:
                if META not in written:  # not committed (an interrupt, a full disk): leave nothing
                    for name in written:
                        unlink_quiet(name, folder)
                raise
            with self._guard:
                self._memory.pop(cp.step, None)
            # The other files of ours in the folder are the previous checkpoint or
            # debris of an interrupted put (we hold the lock: nobody else writes
            # here). Anything the store did not name is left alone.
            remove_files(folder, keep={META, *written})

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
        dirname = dirname_of(step)
        path = self.directory / dirname
        for _ in range(5):
            try:
                with self._root() as root, self._folder(root, dirname) as folder:
                    try:
                        return layout.load_checkpoint(step, folder, fingerprint, load, self.key)
                    except Corrupt as exc:
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
            except layout.Unloadable as exc:
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

    def _discard_if_unchanged(self, root: int, dirname: str, meta: "bytes | None") -> "bool | None":
        """Remove the untrusted checkpoint of *dirname*, unless its metadata
        changed since it was read (a concurrent put replaced it: read again).
        None if it changed, else whether it could be removed."""
        def unchanged(folder: int) -> bool:
            try:
                return layout.read_meta_bytes(folder) == meta
            except (OSError, Corrupt):
                return meta is None
        try:
            with self._locked(root, dirname), self._folder(root, dirname) as folder:
                if not unchanged(folder):
                    return None
                remove_files(folder)
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
        dirname = dirname_of(step)
        try:
            with self._root() as root:
                if not exists(dirname, root):
                    return
                with self._locked(root, dirname), self._folder(root, dirname) as folder:
                    remove_files(folder)
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
                            found = layout.read_meta(folder, self.key)
                    except (Corrupt, OSError):
                        continue  # reported when the step reads it
                    if found is not None and isinstance(found[1].get("step"), str):
                        names.add(found[1]["step"])
        except OSError:
            pass
        return sorted(names)


def _list_values(names: "list[str | None]") -> str:
    """``outputs 'a', 'b' and the result`` for a message."""
    outputs = [repr(n) for n in names if n is not None]
    said = [f"output{'s' if len(outputs) > 1 else ''} {', '.join(outputs)}"] if outputs else []
    if None in names:
        said.append("the result")
    return " and ".join(said)


