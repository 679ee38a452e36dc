"""Reading a directory store: checkpoints by fingerprint or the latest,
verified before use, values read at once or lazily; an untrusted checkpoint
is reported, removed (if it did not change meanwhile) and recomputed.

:class:`Reader` is the read side of :class:`~nbsteps.stores.disk.DiskStore`,
a collaborator the store owns and delegates ``get``, ``peek``,
``fingerprints`` and ``steps`` to. It is its own class, not a half of the
store, because reading shares no state with writing: it needs the store
directory (:class:`~nbsteps.stores.folders.Folders`: root, step folders, step
locks to remove an untrusted checkpoint), the key, the checkpoints kept in
memory (:class:`~nbsteps.stores.unwritten.Unwritten`), the pins of lazy
restores (:class:`~nbsteps.stores.pins.Pins`) and a ``warn(step, message)``
callable; the store passes exactly these. What the store does with a
checkpoint once read (the garbage collector's record of versions held) stays
in the store.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

from nbsteps.errors import CheckpointUnavailable
from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores import layout
from nbsteps.stores.folders import Folders
from nbsteps.stores.fs import (
    LinkRefused,
    exists,
    unlink_quiet,
)
from nbsteps.stores.fs import (
    describe_error as _describe_error,
)
from nbsteps.stores.fs import (
    touch as _touch,
)
from nbsteps.stores.layout import META, Corrupt, dirname_of, meta_name
from nbsteps.stores.meta_cache import MetaCache
from nbsteps.stores.pins import Pin, Pins
from nbsteps.stores.unwritten import Unwritten
from nbsteps.stores.writing import collect


class Reader:
    """Reads the checkpoints of one store directory (see the module)."""

    def __init__(
        self,
        folders: Folders,
        key: bytes,
        unwritten: Unwritten,
        pins: Pins,
        warn: Callable[[str, str], None],
        upstream: "Callable | None" = None,
        metas: "MetaCache | None" = None,
    ) -> None:
        self.folders = folders
        self.key = key
        self.unwritten = unwritten
        self.pins = pins
        self.warn = warn
        #: ``upstream(step, token, fingerprint, name)``: an upstream value a value refers to (stores.sharing)
        self.upstream = upstream
        #: the metadata files read and verified already, while they do not change (stores.meta_cache)
        self.metas = metas if metas is not None else MetaCache(key)

    def fingerprints(self, step: str) -> list[str]:
        """Fingerprints of the checkpoints kept for *step*, least recently used first."""
        found = self.unwritten.fingerprints(step)
        dirname = dirname_of(step)
        try:
            with self.folders.root() as root, self.folders.folder(root, dirname) as folder:
                for used, name, _ in layout.list_metas(folder):
                    try:
                        got = self.metas.read(folder, dirname, name)
                    except (Corrupt, OSError):
                        continue
                    if got is not None and got[1].get("step") == step:
                        found.append((used / 1e9, got[1]["fingerprint"]))
        except OSError:
            pass
        return [fp for _, fp in sorted(found)]

    def read(self, step: str, fingerprint: "str | None", mode: str) -> "Checkpoint | None":
        """The checkpoint of *step* with *fingerprint* (None: the latest).
        *mode*: ``"load"`` (values read now), ``"lazy"`` (values read when
        first used, the checkpoint pinned until then) or ``"peek"``
        (metadata only, not marked used)."""
        memory = self.unwritten.find(step, fingerprint)
        if memory is not None and fingerprint is not None:
            return memory[1]
        dirname = dirname_of(step)
        for _ in range(5):
            try:
                with self.folders.root() as root, self.folders.folder(root, dirname) as folder:
                    try:
                        found = self._load(step, root, folder, fingerprint, mode)
                    except layout.Unloadable as exc:
                        removed = self._discard_if_unchanged(root, dirname, exc.meta_file, exc.meta)
                        if removed is None:
                            continue  # a concurrent put replaced the checkpoint: read again
                        self.warn(
                            step,
                            (
                                f"checkpoint of step {step!r} is not used: "
                                f"{_undecodable(step, self._path(dirname) / exc.file, exc, removed)}; "
                                f"the step will be recomputed"
                            ),
                        )
                        return None
                    except Corrupt as exc:
                        removed = self._discard_if_unchanged(root, dirname, exc.meta_file, exc.meta)
                        if removed is None:
                            continue  # a concurrent put replaced the checkpoint: read again
                        self.warn(
                            step,
                            (
                                f"checkpoint of step {step!r} is not "
                                f"trusted: {self._path(dirname) / exc.file} {exc.problem}; "
                                f"{'it was removed and ' if removed else ''}the step will be recomputed"
                            ),
                        )
                        if fingerprint is None:
                            continue  # the latest was bad: the one before it may be fine
                        return None
            except (FileNotFoundError, NotADirectoryError):
                return memory[1] if memory is not None else None
            except LinkRefused as exc:
                self.warn(
                    step, f"checkpoint of step {step!r} is not used: {exc}; the step will be recomputed"
                )
                return memory[1] if memory is not None else None
            except OSError as exc:  # e.g. a file we may not read
                self.warn(
                    step,
                    (
                        f"checkpoint of step {step!r} in {self._path(dirname)} could not be read "
                        f"({_describe_error(exc)}); "
                        f"the step will be recomputed"
                    ),
                )
                return None
            if found is None:
                return memory[1] if memory is not None else None
            used, cp = found
            if memory is not None and memory[0] > used:
                return memory[1]
            return cp
        return None

    def _path(self, dirname: str) -> Path:
        """The step folder *dirname* (for messages: joined only when one is written)."""
        return self.folders.directory / dirname

    def _load(
        self, step: str, root: int, folder: int, fingerprint: "str | None", mode: str
    ) -> "tuple[float, Checkpoint] | None":
        """(last use, checkpoint) of *step* in *folder*; Corrupt if untrusted.
        A lazy checkpoint is pinned (see nbsteps.stores.pins) until its values are read."""
        if fingerprint is not None:
            names = [meta_name(fingerprint)]
            if exists(META, folder):
                names.append(META)  # written by an earlier nbsteps
        else:
            metas = layout.list_metas(folder)
            if not metas and exists(META, folder):  # a link: refused (reported) when read
                metas = [(0, META, 0)]
            names = [metas[-1][1]] if metas else []
        dirname = dirname_of(step)
        read = lambda folder, name: self.metas.read(folder, dirname, name)  # noqa: E731
        for name in names:
            pin = self.pins.pin(root, dirname, name) if mode == "lazy" else None
            cp = None
            try:
                lazy = self._lazy_loader(step, pin) if pin is not None else None
                cp = layout.load_checkpoint(
                    step, folder, fingerprint, mode == "load", self.key, name, lazy, self.upstream, read
                )
            finally:
                if pin is not None and cp is None:
                    pin.release()
            if cp is None:
                continue
            used = time.time()
            if mode != "peek" and fingerprint is not None:
                _touch(folder, name)  # used now: the last to be evicted
            else:
                # the modification time of the file the metadata was just read from (or found
                # unchanged in): the cache took it then, one stat less
                kept = self.metas.mtime_ns(dirname, name)
                if kept is not None:
                    used = kept / 1e9
                else:
                    try:
                        used = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mtime_ns / 1e9
                    except OSError:
                        pass
            return used, cp
        return None

    def _lazy_loader(self, step: str, pin: Pin) -> Callable:
        """For LazyValues: reads one value of the checkpoint whose metadata is
        *meta* (bytes *raw*, body *body*) when it is first used. The checkpoint
        stays pinned until every value is read (or one cannot be: then the
        checkpoint is removed, and the step recomputed)."""

        def make(body: dict, raw: bytes, meta: str) -> Callable:
            unread = {(e["role"], e.get("name")) for e in body["values"] if e["role"] != "captured"}
            failed: list = []
            loads = layout.Loads(body, raw, meta, self.key, self.upstream)  # values read, shared objects
            if not unread:
                pin.release()

            def load(name: "str | None") -> Any:
                if failed:  # the checkpoint is gone: the same answer for its other values
                    raise failed[0]
                role = "output" if name is not None else "result"
                pos = next(
                    i for i, e in enumerate(body["values"]) if e["role"] == role and e.get("name") == name
                )
                dirname = dirname_of(step)
                path = self.folders.directory / dirname
                try:
                    with self.folders.root() as root, self.folders.folder(root, dirname) as folder:
                        try:
                            value = loads.value(folder, pos)
                        except Corrupt as exc:
                            removed = self._discard_if_unchanged(root, dirname, exc.meta_file, exc.meta)
                            why = _damaged(path / exc.file, exc, removed)
                            short = f"{exc.file} {exc.problem}"
                        except layout.Unloadable as exc:
                            removed = self._discard_if_unchanged(root, dirname, exc.meta_file, exc.meta)
                            why = _undecodable(step, path / exc.file, exc, removed)
                            short = f"{type(exc.__cause__).__name__} while unpickling {name or 'its result'}"
                        else:
                            unread.discard((role, name))
                            if not unread:
                                pin.release()
                            return value
                except OSError as exc:  # the step folder is gone, or cannot be read
                    short = ""
                    why = (
                        f"{path} could not be read ({_describe_error(exc)}); it was removed or changed after "
                        f"the step was restored (reset by another kernel?)"
                    )
                pin.release()
                what = f"output {name!r}" if name is not None else "the result"
                failed.append(
                    CheckpointUnavailable(
                        f"{what} of step {step!r} could not be read from its checkpoint: {why}; "
                        f"step {step!r} will be recomputed",
                        step,
                        short,
                    )
                )
                raise failed[0]

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

        self.metas.forget(dirname, meta)
        try:
            with self.folders.locked(root, dirname), self.folders.folder(root, dirname) as folder:
                if not unchanged(folder):
                    return None
                unlink_quiet(meta, folder)
                collect(folder)
                return not exists(meta, folder)
        except OSError:  # read-only store: cannot lock; the checkpoint stays but is not used
            return False

    def steps(self) -> list[str]:
        names = self.unwritten.steps()
        try:
            with self.folders.root() as root:
                for entry in list(os.scandir(root)):
                    if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                        continue
                    try:
                        with self.folders.folder(root, entry.name) as folder:
                            for _, meta, _ in reversed(layout.list_metas(folder)):
                                try:
                                    found = self.metas.read(folder, entry.name, meta)
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


def _damaged(file, exc: Corrupt, removed: "bool | None") -> str:
    if exc.problem == "is missing":
        return (
            f"{file} is missing (removed after the step was restored: by hand, or a reset in another kernel?)"
        )
    return f"{file} {exc.problem}" + ("; the checkpoint was removed" if removed else "")


def _undecodable(step: str, file, exc: "layout.Unloadable", removed: "bool | None") -> str:
    """Why a verified value cannot be decoded: a class or module it names is
    not found any more (renamed or moved since the checkpoint was written), or
    the value's own code fails to rebuild it from its pickle (a ``__getattr__``
    that recurses on an instance not set up yet, a ``__setstate__`` or
    constructor that raises): then it never could be read back."""
    cause = exc.__cause__
    if _lookup_failed(cause):
        why = (
            f"{file} no longer decodes ({_describe_error(cause)}): the code it needs changed since "
            f"step {step!r} was checkpointed (a class renamed or moved, a library upgraded?)"
        )
    else:
        why = (
            f"{file} could not be unpickled ({_describe_error(cause)}): the value's class fails to "
            f"rebuild it from what pickling it wrote"
        )
    return why + ("; the checkpoint was removed" if removed else "")


def _lookup_failed(exc: "BaseException | None") -> bool:
    """Whether unpickling failed finding a module or a class (pickle's
    ``find_class``), not running the value's own code."""
    if isinstance(exc, ImportError):
        return True
    if not isinstance(exc, AttributeError):
        return False
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    # raised by the unpickler itself (C code: the innermost Python frame is the store's, or
    # pickle's own), not by a method of the value's class
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return module.startswith("nbsteps.") or module in ("pickle", "copyreg", "_compat_pickle")
