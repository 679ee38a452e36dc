"""A durable checkpoint store: one directory, signed files, atomic writes,
one checkpoint per step and fingerprint, a size limit.

Layout (see :mod:`nbsteps.stores.layout`)::

    <directory>/
      .locks/<step>.lock          # per-step lock files (flock); never removed
      <step>/
        <key>.meta                # signed metadata of one checkpoint (key: from its fingerprint)
        <token>-0.arrow           # one file per value: outputs, then the result
        <token>-1.pkl

Writing a checkpoint: under the step's lock, every value goes to a temporary
file (unique name), is fsynced and renamed to a file name carrying a fresh
token; then the metadata of that fingerprint is replaced atomically
(``os.replace``) and the files no metadata names any more are removed. A
crash at any point leaves either the previous checkpoint of that fingerprint
or the new one, plus unreferenced files that the next ``put`` or ``drop`` of
the step removes. Checkpoints of other fingerprints stay, so switching a
parameter back restores, and kernels running different versions of a notebook
on one store each find their own; past ``max_size`` the least recently used
are removed (:mod:`nbsteps.stores.budget`). Readers take no lock: if a
concurrent ``put`` replaced a checkpoint under them they notice and read again.

``get(step, fingerprint, lazy=True)`` reads the metadata only: the values are
:class:`~nbsteps.model.checkpoint.LazyValues`, each read and verified the
first time it is used.

The folder format lives in :mod:`nbsteps.stores.layout`, value encodings in
:mod:`nbsteps.stores.encoding`, link-safe file operations in :mod:`nbsteps.stores.fs`.
"""

from __future__ import annotations

import errno
import os
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from nbsteps.errors import CheckpointUnavailable
from nbsteps.formatting import parse_size
from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores import layout, signing
from nbsteps.stores.base import Store
from nbsteps.stores.budget import Budget
from nbsteps.stores.encoding import NullSink, pickle_to
from nbsteps.stores.fs import CLOEXEC, NOFOLLOW, LinkRefused, exists, fsync_dir, open_dir, unlink_quiet
from nbsteps.stores.layout import LOCKS, META, Corrupt, dirname_of, meta_name
from nbsteps.stores.writing import Unpicklable, collect, remove_files, write_meta, write_value

try:  # POSIX advisory locks between processes; threads are covered separately
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

DEFAULT_MAX_SIZE = 10 * 10**9  # 10 GB
MEMORY_VERSIONS = 4  # checkpoints per step kept in memory when they cannot be written


def _describe_error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class DiskStore(Store):
    """Checkpoints kept in *directory*, signed with the user's secret key.

    ``key`` defaults to :func:`nbsteps.signing.load_key`. ``compression`` is
    the Parquet codec (``None``: uncompressed, the fastest here; ``"snappy"``
    makes files of repetitive data smaller). ``max_size`` bounds the directory
    (bytes, or ``"2GB"``; ``None``: no limit; default ``NBSTEPS_STORE_MAX_SIZE``
    or 10 GB): past it the least recently used checkpoints are removed. Values
    that cannot be written (unpicklable, disk full, directory not writable, a
    link inside the store) are kept in memory for this process with a warning;
    ``put`` never raises.

    Inside the directory nothing is followed through a symbolic link, nothing
    is deleted that does not carry a name the store gives its own files, and
    everything is created private to the user (0600 files, 0700 folders).
    """

    def __init__(self, directory: "str | os.PathLike", key: "bytes | None" = None, *,
                 compression: "str | None" = None, max_size: "int | str | None" = "default") -> None:
        if max_size == "default":
            from nbsteps import config

            env = config.store_max_size()
            try:
                max_size = parse_size(env) if env else DEFAULT_MAX_SIZE
            except ValueError as exc:
                raise ValueError(f"nbsteps: NBSTEPS_STORE_MAX_SIZE: {exc}") from None
        else:
            try:
                max_size = parse_size(max_size)
            except ValueError as exc:
                raise ValueError(f"nbsteps: max_size: {exc}") from None
        self.max_size: "int | None" = max_size
        self.directory = Path(os.path.abspath(os.path.expanduser(os.fspath(directory))))
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"nbsteps: checkpoint store {self.directory} is not a directory")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = key if key is not None else signing.load_key()
        self.compression = compression
        # checkpoints that could not be written: step -> {fingerprint: (time, checkpoint)}
        self._memory: dict[str, dict[str, tuple[float, Checkpoint]]] = {}
        self._guard = threading.Lock()  # protects _memory and _thread_locks
        self._thread_locks: dict[str, threading.Lock] = {}
        self.budget = Budget(self)

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
            added = self._write(checkpoint)
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
        else:
            try:
                self.budget.added(added, (dirname_of(step), meta_name(checkpoint.fingerprint)))
            except Exception as exc:  # eviction is housekeeping: never fail a put for it
                self.warn(step, f"could not enforce the size limit of {self.directory} ({_describe_error(exc)})")

    def _remember(self, checkpoint: Checkpoint) -> None:
        with self._guard:
            versions = self._memory.setdefault(checkpoint.step, {})
            versions.pop(checkpoint.fingerprint, None)
            versions[checkpoint.fingerprint] = (time.time(), checkpoint)
            while len(versions) > MEMORY_VERSIONS:
                del versions[next(iter(versions))]

    def _forget_memory(self, step: str, fingerprint: "str | None" = None) -> None:
        with self._guard:
            if fingerprint is None:
                self._memory.pop(step, None)
            elif step in self._memory:
                self._memory[step].pop(fingerprint, None)
                if not self._memory[step]:
                    del self._memory[step]

    def _write(self, cp: Checkpoint) -> int:
        """Write *cp*; the bytes it added to the store (minus what it replaced)."""
        dirname = dirname_of(cp.step)
        meta = meta_name(cp.fingerprint)
        values: list[tuple[str, str | None, Any]] = [("output", n, v) for n, v in cp.outputs.items()]
        # a result that is also an output (function steps, `x` as last line) is written once
        result_is = next((n for n, v in cp.outputs.items() if v is cp.result), None) if cp.has_result else None
        if cp.has_result and result_is is None:
            values.append(("result", None, cp.result))
        with self._root() as root, self._locked(root, dirname), \
                self._folder(root, dirname, create=True) as folder:
            fsync_dir(root)
            token = uuid.uuid4().hex[:16]
            written: list[str] = []  # names of this put's files, removed if it fails
            replaced = _size_of(folder, meta)
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
                meta_size = write_meta(folder, cp, token, entries, written, self.key, meta)
            except Unpicklable:
                for name in written:
                    unlink_quiet(name, folder)
                # the checkpoint of this fingerprint is the one in memory now: the one on disk goes
                unlink_quiet(meta, folder)
                collect(folder)
                try:
                    os.rmdir(dirname, dir_fd=root)  # only if nothing else is in it
                except OSError:
                    pass
                raise
            except BaseException:
                for name in written:
                    unlink_quiet(name, folder)
                raise
            _touch(folder, meta)
            self._forget_memory(cp.step, cp.fingerprint)
            _drop_legacy(folder, cp.fingerprint)
            # Files no metadata names: the replaced checkpoint of this fingerprint
            # or debris of an interrupted put (we hold the lock: nobody else
            # writes here). Anything the store did not name is left alone.
            collect(folder, keep=set(written))
            return meta_size + sum(e["size"] for e in entries) - replaced

    # -- reading -----------------------------------------------------------------------

    def get(self, step: str, fingerprint: "str | None" = None, *, lazy: bool = False) -> "Checkpoint | None":
        """The checkpoint of *step* with *fingerprint* (any fingerprint: the
        latest). *lazy*: values are read when first used (LazyValues)."""
        return self._read(step, fingerprint, "lazy" if lazy else "load")

    def peek(self, step: str, fingerprint: "str | None" = None) -> "Checkpoint | None":
        return self._read(step, fingerprint, "peek")

    def fingerprints(self, step: str) -> list[str]:
        """Fingerprints of the checkpoints kept for *step*, least recently used first."""
        with self._guard:
            found = [(t, fp) for fp, (t, _) in self._memory.get(step, {}).items()]
        dirname = dirname_of(step)
        try:
            with self._root() as root, self._folder(root, dirname) as folder:
                for used, name, _ in layout.list_metas(folder):
                    try:
                        got = layout.read_meta(folder, self.key, name)
                    except (Corrupt, OSError):
                        continue
                    if got is not None and got[1].get("step") == step:
                        found.append((used / 1e9, got[1]["fingerprint"]))
        except OSError:
            pass
        return [fp for _, fp in sorted(found)]

    def _in_memory(self, step: str, fingerprint: "str | None") -> "tuple[float, Checkpoint] | None":
        with self._guard:
            versions = self._memory.get(step)
            if not versions:
                return None
            if fingerprint is not None:
                return versions.get(fingerprint)
            return max(versions.values(), key=lambda v: v[0])

    def _read(self, step: str, fingerprint: "str | None", mode: str) -> "Checkpoint | None":
        memory = self._in_memory(step, fingerprint)
        if memory is not None and fingerprint is not None:
            return memory[1]
        dirname = dirname_of(step)
        path = self.directory / dirname
        for _ in range(5):
            try:
                with self._root() as root, self._folder(root, dirname) as folder:
                    try:
                        found = self._load(step, folder, fingerprint, mode)
                    except Corrupt as exc:
                        removed = self._discard_if_unchanged(root, dirname, exc.meta_file, exc.meta)
                        if removed is None:
                            continue  # a concurrent put replaced the checkpoint: read again
                        self.warn(step, (
                            f"checkpoint of step {step!r} is not trusted: {path / exc.file} {exc.problem}; "
                            f"{'it was removed and ' if removed else ''}the step will be recomputed"
                        ))
                        if fingerprint is None:
                            continue  # the latest was bad: the one before it may be fine
                        return None
            except (FileNotFoundError, NotADirectoryError):
                return memory[1] if memory is not None else None
            except layout.Unloadable as exc:
                self.warn(step, (
                    f"checkpoint of step {step!r}: {path / exc.file} could not be loaded "
                    f"({_describe_error(exc.__cause__)}); the step will be recomputed"
                ))
                return None
            except LinkRefused as exc:
                self.warn(step, f"checkpoint of step {step!r} is not used: {exc}; the step will be recomputed")
                return memory[1] if memory is not None else None
            except OSError as exc:  # e.g. a file we may not read
                self.warn(step, (
                    f"checkpoint of step {step!r} in {path} could not be read ({_describe_error(exc)}); "
                    f"the step will be recomputed"
                ))
                return None
            if found is None:
                return memory[1] if memory is not None else None
            used, cp = found
            if memory is not None and memory[0] > used:
                return memory[1]
            return cp
        return None

    def _load(self, step: str, folder: int, fingerprint: "str | None", mode: str) -> "tuple[float, Checkpoint] | None":
        """(last use, checkpoint) of *step* in *folder*; Corrupt if untrusted."""
        if fingerprint is not None:
            names = [meta_name(fingerprint)]
            if exists(META, folder):
                names.append(META)  # written by an earlier nbsteps
        else:
            metas = layout.list_metas(folder)
            if not metas and exists(META, folder):  # a link: refused (reported) when read
                metas = [(0, META, 0)]
            names = [metas[-1][1]] if metas else []
        for name in names:
            lazy = self._lazy_loader(step) if mode == "lazy" else None
            cp = layout.load_checkpoint(step, folder, fingerprint, mode == "load", self.key, name, lazy)
            if cp is None:
                continue
            used = time.time()
            if mode != "peek" and fingerprint is not None:
                _touch(folder, name)  # used now: the last to be evicted
            else:
                try:
                    used = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mtime_ns / 1e9
                except OSError:
                    pass
            return used, cp
        return None

    def _lazy_loader(self, step: str) -> Callable:
        """For LazyValues: reads one value of the checkpoint whose metadata is
        *meta* (bytes *raw*, body *body*) when it is first used."""
        def make(body: dict, raw: bytes, meta: str) -> Callable:
            def load(name: "str | None") -> Any:
                role = "output" if name is not None else "result"
                entry = next(e for e in body["values"] if e["role"] == role and e.get("name") == name)
                dirname = dirname_of(step)
                try:
                    with self._root() as root, self._folder(root, dirname) as folder:
                        try:
                            return layout.load_value(folder, entry, raw, self.key, meta)
                        except Corrupt as exc:
                            self._discard_if_unchanged(root, dirname, exc.meta_file, exc.meta)
                            problem = f"{self.directory / dirname / exc.file} {exc.problem}"
                except layout.Unloadable as exc:
                    problem = f"{self.directory / dirname / exc.file} could not be decoded ({exc.__cause__!r})"
                except OSError as exc:
                    problem = _describe_error(exc)
                what = f"output {name!r}" if name is not None else "the result"
                raise CheckpointUnavailable(
                    f"{what} of step {step!r} could not be read from its checkpoint ({problem}); "
                    f"it was removed or changed after the step was restored (by another kernel?). "
                    f"Run the step again to recompute it."
                ) from None
            return load
        return make

    def _discard_if_unchanged(self, root: int, dirname: str, meta: str, raw: "bytes | None") -> "bool | None":
        """Remove the untrusted checkpoint whose metadata is *meta*, unless it
        changed since it was read as *raw* (a concurrent put replaced it: read
        again). None if it changed, else whether it could be removed."""
        def unchanged(folder: int) -> bool:
            try:
                return layout.read_meta_bytes(folder, meta) == raw
            except (OSError, Corrupt):
                return raw is None
        try:
            with self._locked(root, dirname), self._folder(root, dirname) as folder:
                if not unchanged(folder):
                    return None
                unlink_quiet(meta, folder)
                collect(folder)
                return not exists(meta, folder)
        except OSError:  # read-only store: cannot lock; the checkpoint stays but is not used
            return False

    # -- the rest of the interface ----------------------------------------------------

    def drop(self, step: str) -> None:
        self._forget_memory(step)
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
            self.budget.forget()
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
                            for _, meta, _ in reversed(layout.list_metas(folder)):
                                try:
                                    found = layout.read_meta(folder, self.key, meta)
                                except Corrupt:
                                    continue  # reported when the step reads it
                                if found is not None and isinstance(found[1].get("step"), str):
                                    names.add(found[1]["step"])
                                    break
                    except OSError:
                        continue
        except OSError:
            pass
        return sorted(names)


_last_touch = 0


def _touch(folder: int, name: str) -> None:
    """Mark a checkpoint used now: its metadata's modification time, to the
    nanosecond (the kernel's own stamps are as coarse as its clock tick, which
    would make two uses in a row look simultaneous)."""
    global _last_touch
    now = _last_touch = max(time.time_ns(), _last_touch + 1)
    try:
        os.utime(name, ns=(now, now), dir_fd=folder, follow_symlinks=False)
    except (OSError, NotImplementedError):
        pass  # a read-only store: its checkpoints are still used, just not reordered


def _size_of(folder: int, meta: str) -> int:
    """Bytes of the checkpoint whose metadata is *meta* (0 if none)."""
    try:
        raw = layout.read_meta_bytes(folder, meta)
        if raw is None:
            return 0
        return len(raw) + sum(e["size"] for e in layout.parse_meta(raw, None, meta)["values"])
    except (Corrupt, OSError):
        return 0


def _drop_legacy(folder: int, fingerprint: str) -> None:
    """Remove an earlier nbsteps' ``checkpoint.meta`` of the same fingerprint
    (superseded by the checkpoint just written)."""
    try:
        raw = layout.read_meta_bytes(folder, META)
        if raw is not None and layout.parse_meta(raw, None, META).get("fingerprint") == fingerprint:
            unlink_quiet(META, folder)
    except (Corrupt, OSError):
        pass


def _list_values(names: "list[str | None]") -> str:
    """``outputs 'a', 'b' and the result`` for a message."""
    outputs = [repr(n) for n in names if n is not None]
    said = [f"output{'s' if len(outputs) > 1 else ''} {', '.join(outputs)}"] if outputs else []
    if None in names:
        said.append("the result")
    return " and ".join(said)
