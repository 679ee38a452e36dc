"""A durable checkpoint store: one directory, signed files, atomic writes,
one checkpoint per step and fingerprint, a size limit.

Layout (see :mod:`nbsteps.stores.layout`)::

    <directory>/
      .locks/<step>.lock          # per-step lock files (flock); never removed
      .pins/                      # checkpoints live kernels restored and have not read (stores.pins)
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
the step removes. The values are written on the caller's thread; the
fsyncs, the metadata and the clean-up are the commit, which runs on the
store's committer thread (:mod:`nbsteps.stores.committer`) holding the step's
lock, and ``put`` waits for it unless ``background`` is set (the IPython
frontend sets it). Checkpoints of other fingerprints stay, so switching a
parameter back restores, and kernels running different versions of a notebook
on one store each find their own; past ``max_size`` the least recently used
are removed (:mod:`nbsteps.stores.budget`). Readers take no lock: if a
concurrent ``put`` replaced a checkpoint under them they notice and read again.

``get(step, fingerprint, lazy=True)`` reads the metadata and checks the
value files' signatures without decoding them: the values are
:class:`~nbsteps.model.checkpoint.LazyValues`, each read and verified again
the first time it is used; until then the checkpoint is pinned (not evicted).

:class:`DiskStore` is one class that writes and owns its collaborators,
each with a name and a module of its own, and delegates to them:

- :class:`~nbsteps.stores.folders.Folders`: the directory as every part uses
  it (its root descriptor, a step folder, a step's lock);
- :class:`~nbsteps.stores.unwritten.Unwritten`: checkpoints that could not be
  written, kept in memory;
- :class:`~nbsteps.stores.reading.Reader`: ``get``, ``peek``,
  ``fingerprints``, ``steps``, with the metadata it verified kept while the
  files do not change (:mod:`nbsteps.stores.meta_cache`; a put or drop here forgets it);
- :class:`~nbsteps.stores.pins.Pins`, :class:`~nbsteps.stores.budget.Budget`
  (the size limit), :class:`~nbsteps.stores.garbage.Garbage` (dead checkpoints).

Each collaborator gets the few objects it works on (the folders, the key, the
unwritten checkpoints, the pins, a ``warn`` callable), never the store: none
of them imports this module, and the store alone connects them (an eviction
makes the garbage collector run; a collection makes the budget count again).

The folder format lives in :mod:`nbsteps.stores.layout`, value encodings in
:mod:`nbsteps.stores.encoding`, link-safe file operations in :mod:`nbsteps.stores.fs`.
"""

from __future__ import annotations

import collections
import os
import uuid
from pathlib import Path
from typing import Any

from nbsteps.formatting import parse_size
from nbsteps.interrupts import deferred_interrupts
from nbsteps.model.checkpoint import Checkpoint
from nbsteps.run.attempt import opened
from nbsteps.stores import notes, signing
from nbsteps.stores.base import Store
from nbsteps.stores.budget import Budget
from nbsteps.stores.committer import at_exit, for_directory
from nbsteps.stores.encoding import NullSink, pandas_kind, pickle_to
from nbsteps.stores.folders import Folders
from nbsteps.stores.fs import (
    LinkRefused,
    exists,
    fsync_dir,
    open_dir,
    open_file,
    touch,
    unlink_quiet,
)
from nbsteps.stores.fs import (
    describe_error as _describe_error,
)
from nbsteps.stores.garbage import Collected, Garbage, version_of
from nbsteps.stores.layout import META, dirname_of, meta_name, read_meta_bytes
from nbsteps.stores.pickling import shareable
from nbsteps.stores.pins import Pins
from nbsteps.stores.reading import Reader
from nbsteps.stores.sharing import Held
from nbsteps.stores.unwritten import Unwritten
from nbsteps.stores.writing import (
    Unpicklable,
    collect,
    commit_meta,
    drop_legacy,
    meta_bytes,
    remove_files,
    size_of,
    write_value,
)

DEFAULT_MAX_SIZE = 10 * 10**9  # 10 GB


class DiskStore(Store):
    """Checkpoints kept in *directory*, signed with the user's secret key.

    ``key`` defaults to :func:`nbsteps.stores.signing.load_key`. ``compression`` is
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

    persistent = True  # values outlive the process: written again when they change (run.caches)

    def __init__(
        self,
        directory: "str | os.PathLike",
        key: "bytes | None" = None,
        *,
        compression: "str | None" = None,
        max_size: "int | str | None" = "default",
    ) -> None:
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
        self.directory = Path(os.path.abspath(os.path.expanduser(os.fspath(directory))))
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(f"nbsteps: checkpoint store {self.directory} is not a directory")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        opened.ignore_under(self.directory)  # its files are never a step's inputs (values read lazily)
        self.key = key if key is not None else signing.load_key()
        self.compression = compression
        self.folders = Folders(self.directory)  # root, step folders, step locks: what every part works on
        self.unwritten = Unwritten()  # checkpoints that could not be written, kept in memory
        #: step -> the checkpoint its last put handed to the committer (``peek(settled=False)``)
        self._handed: dict[str, Checkpoint] = {}
        self.pins = Pins(self.folders)  # checkpoints restored lazily here and not read yet: not evicted
        self.budget = Budget(self.folders, self.pins, max_size)  # the size limit
        # dead checkpoints: their upstream versions are gone (stores.garbage)
        self.garbage = Garbage(self.folders, self.key, self.unwritten, self.pins)
        self.held = Held()  # the checkpoint of each step this process wrote or restored last (stores.sharing)
        # makes written checkpoints durable, on its own thread (one per directory in a process)
        self.committer = for_directory(self.directory)
        self.done: collections.deque = collections.deque()  # what this store's ended commits left to do
        at_exit(self)  # pending commits are waited for at interpreter exit
        self.reader = Reader(
            self.folders,
            self.key,
            self.unwritten,
            self.pins,
            lambda step, message: self.warn(step, message),  # warn is set by the plan later
            self._upstream_value,
        )

    @property
    def max_size(self) -> "int | None":
        """The size limit in bytes (None: none), kept by the budget."""
        return self.budget.limit

    @max_size.setter
    def max_size(self, value: "int | None") -> None:
        self.budget.limit = value

    def describe(self) -> str:
        return str(self.directory)

    def __repr__(self) -> str:
        return f"DiskStore({str(self.directory)!r})"

    # -- reading (stores.reading) -------------------------------------------------------

    def get(self, step: str, fingerprint: "str | None" = None, *, lazy: bool = False) -> "Checkpoint | None":
        """The checkpoint of *step* with *fingerprint* (any fingerprint: the
        latest). *lazy*: values are read when first used (LazyValues)."""
        self._settle(step)
        cp = self.reader.read(step, fingerprint, "lazy" if lazy else "load")
        if cp is not None and fingerprint is not None:  # restored: this process holds that version
            self.garbage.hold(step, cp.parts, cp.fingerprint)
            self.held.remember(cp)
        return cp

    def _upstream_value(self, step: str, token: Any, fingerprint: Any, name: str) -> Any:
        """Output *name* of the version *token* of *step*, as this process holds
        it (a reference in a downstream value: stores.sharing); read from the
        store when this process does not hold it. LookupError if it is gone."""
        cp = self.held.find(step, token)
        if cp is None and isinstance(fingerprint, str):
            got = self.reader.read(step, fingerprint, "lazy")
            if got is not None and got.parts.get("token", got.fingerprint) == token:
                self.garbage.hold(step, got.parts, got.fingerprint)
                self.held.remember(got)
                cp = got
        if cp is None or name not in cp.outputs:
            raise LookupError(f"output {name!r} of step {step!r} is no longer in the store")
        return cp.outputs[name]

    def peek(
        self, step: str, fingerprint: "str | None" = None, *, settled: bool = True
    ) -> "Checkpoint | None":
        if not settled and self.committer.busy(step):
            # the version being committed is the step's latest (or the one asked for): answered
            # from memory, without waiting for the committer's fsyncs (a cell's preview of its
            # upstream came right after the previous cell's put, and waited for its commit)
            cp = self._handed.get(step)
            if cp is not None and (fingerprint is None or cp.fingerprint == fingerprint):
                return cp
        self._settle(step)
        return self.reader.read(step, fingerprint, "peek")

    def fingerprints(self, step: str) -> list[str]:
        """Fingerprints of the checkpoints kept for *step*, least recently used first."""
        self._settle(step)
        return self.reader.fingerprints(step)

    def steps(self) -> list[str]:
        self._settle()
        return self.reader.steps()

    # -- commits (stores.committer) -------------------------------------------------------

    def flush(self) -> None:
        """Wait until every checkpoint handed to this store is committed (or
        known not to be: then kept in memory, warned of and noted, as a put
        that fails at once)."""
        self._settle()

    def _settle(self, step: "str | None" = None) -> None:
        """Wait for the pending commits of *step* (None: of every step), then
        do on this thread what the ended commits left to do."""
        if self.committer.busy(step):
            self.committer.wait(step)
        if self.done:
            self._take_done()

    def _take_done(self) -> None:
        """What ended commits left for the caller's thread: the size budget of
        a stored checkpoint, the warning of one that could not be stored, then
        garbage collection if a version left the store."""
        steps = []
        while True:
            try:
                ok, cp, what = self.done.popleft()
            except IndexError:
                break
            steps.append(cp.step)
            if ok:
                self._counted(cp, what)
            else:
                self.warn(
                    cp.step,
                    f"step {cp.step!r}: could not write its checkpoint to {self.directory} ({what}); "
                    f"it is kept in memory only and will not survive a restart of the kernel",
                )
        for step in dict.fromkeys(steps):
            self._collect_garbage(step)

    # -- writing ---------------------------------------------------------------------

    def put(self, checkpoint: Checkpoint) -> None:
        """Write *checkpoint*'s values now (an unpicklable value is found here)
        and hand its commit to the committer (:mod:`nbsteps.stores.committer`):
        it is durable, and visible to other processes, once the committer has
        renamed its metadata into place; reads here wait for that. Unless
        ``background`` is set, put waits for the commit too (as a put always did)."""
        step = checkpoint.step
        if self.done:
            self._take_done()
        # held from now on, even while being written (or if it cannot be): its downstream is not dead
        self.garbage.hold(step, checkpoint.parts, checkpoint.fingerprint)
        self.held.remember(checkpoint)
        self._handed.pop(step, None)
        try:
            self._write(checkpoint)
            self._handed[step] = checkpoint
            if not self.background:
                self._settle(step)
        except Unpicklable as exc:
            self.unwritten.remember(checkpoint)
            why = f"{_list_values(exc.names)} cannot be pickled ({_describe_error(exc.errors[0])})"
            self.warn(
                step,
                f"step {step!r}: {why}; "
                f"its checkpoint is kept in memory only and will not survive a restart of the kernel",
            )
            self._note_unstored(checkpoint, why)
        except LinkRefused as exc:
            self.unwritten.remember(checkpoint)
            self.warn(
                step,
                (
                    f"step {step!r}: its checkpoint was not written: {exc}; "
                    f"it is kept in memory only and will not survive a restart of the kernel"
                ),
            )
        except OSError as exc:
            self.unwritten.remember(checkpoint)
            self.warn(
                step,
                (
                    f"step {step!r}: could not write its checkpoint to {self.directory} "
                    f"({_describe_error(exc)}); "
                    f"it is kept in memory only and will not survive a restart of the kernel"
                ),
            )
        except Exception as exc:  # an unexpected encoder failure must not fail the step
            self.unwritten.remember(checkpoint)
            self.warn(
                step,
                (
                    f"step {step!r}: could not save its checkpoint to {self.directory} "
                    f"({_describe_error(exc)}); "
                    f"it is kept in memory only"
                ),
            )
        self._collect_garbage(step)

    def _counted(self, cp: Checkpoint, added: int) -> None:
        """*cp* is stored, adding *added* bytes: enforce the size limit."""
        evicted = self.budget.evicted
        try:
            self.budget.added(added, (dirname_of(cp.step), meta_name(cp.fingerprint)))
        except Exception as exc:  # eviction is housekeeping: never fail a put for it
            self.warn(
                cp.step, f"could not enforce the size limit of {self.directory} ({_describe_error(exc)})"
            )
        if self.budget.evicted != evicted:
            self.garbage.pending = True  # evicted versions: their downstream is dead

    def _note_unstored(self, cp: Checkpoint, why: str) -> None:
        """Leave a note of why *cp* is not on disk, for the kernels after
        (:mod:`nbsteps.stores.notes`); best effort."""
        dirname = dirname_of(cp.step)
        try:
            with self.folders.root() as root, self.folders.locked(root, dirname):
                with self.folders.folder(root, dirname, create=True) as folder:
                    notes.add(folder, self.directory / dirname, cp.fingerprint, why)
        except OSError:
            pass  # the note only explains: a store that cannot take it still works

    def unstored(self, step: str, fingerprint: str) -> str:
        """Why the checkpoint *fingerprint* of *step* was not stored by the
        process that computed it ('' when nothing says so)."""
        dirname = dirname_of(step)
        try:
            with self.folders.root() as root:
                if not exists(dirname, root):
                    return ""
                with self.folders.folder(root, dirname) as folder:
                    return notes.read(folder, self.directory / dirname).get(fingerprint, "")
        except OSError:
            return ""

    def collect_garbage(self) -> Collected:
        """Remove the dead checkpoints: those computed from an upstream version
        that no checkpoint in the store holds any more, nor this process (see
        :mod:`nbsteps.stores.garbage`). Returns ``(checkpoints, nbytes)`` removed."""
        self._settle()
        done = self.garbage.collect()
        if done.checkpoints:
            self.budget.forget()  # count the store again on the next write
        return done

    def garbage_note(self) -> str:
        """Collect now; what was collected since the last note (during runs
        too), for ``%steps store``: ``collected 37 dead checkpoints (12.3 MB)``."""
        try:
            self.collect_garbage()
        except Exception as exc:
            return f"could not remove its dead checkpoints ({_describe_error(exc)})"
        done = self.garbage.take_report()
        if not done.checkpoints:
            return "no dead checkpoints"
        return f"collected {done.describe()}: computed from upstream versions no longer in the store"

    def _collect_garbage(self, step: str) -> None:
        """After a put or drop: collect if a version left the store."""
        if not self.garbage.pending:
            return
        try:
            done = self.garbage.collect(auto=True)
        except Exception as exc:  # housekeeping: never fail a put for it
            self.warn(
                step, f"could not remove the dead checkpoints of {self.directory} ({_describe_error(exc)})"
            )
            return
        if done.checkpoints:
            self.budget.forget()

    def _write(self, cp: Checkpoint) -> None:
        """Write *cp*'s values (not yet durable) under the step's lock, and hand
        the lock and the rest to the committer (:meth:`_commit`). Raises what
        writing the values raised (Unpicklable, OSError...), leaving nothing."""
        dirname = dirname_of(cp.step)
        meta = meta_name(cp.fingerprint)
        values = _values_of(cp)
        self.committer.reserve()  # before the lock: a waiting put holds nothing the committer needs
        root = folder = -1
        lock = None
        handed = False
        try:
            root = self.folders.open_root()
            lock = self.folders.acquire(root, dirname)
            new_folder = not exists(dirname, root)
            folder = open_dir(dirname, root, self.directory / dirname, create=True)
            token = uuid.uuid4().hex[:16]
            written: list[str] = []  # names of this put's files, removed if it fails
            replaced = size_of(folder, meta)
            previous = version_of(read_meta_bytes(folder, meta), self.key, meta)
            try:
                entries = self._write_values(folder, token, values, written, self.held.upstream_refs(cp))
                blob, meta_size = meta_bytes(cp, token, entries, self.key)
            except Unpicklable:
                self.reader.metas.forget(dirname, meta)
                _remove_unpicklable(root, dirname, folder, meta, written)
                raise
            except BaseException:  # an interrupt, a full disk: leave nothing
                for name in written:
                    unlink_quiet(name, folder)
                raise
            added = meta_size + sum(e["size"] for e in entries) - replaced
            job = (root, folder, lock, new_folder, cp, written, entries, blob, previous, added)
            with deferred_interrupts():  # handed over whole, or kept here whole
                self.committer.submit(cp.step, lambda: self._commit(*job))
                handed = True
        finally:
            if not handed:
                try:
                    if folder >= 0:
                        os.close(folder)
                    if root >= 0:
                        os.close(root)
                finally:
                    try:
                        if lock is not None:
                            lock.release()
                    finally:
                        self.committer.unreserve()

    def _commit(
        self,
        root: int,
        folder: int,
        lock,
        new_folder: bool,
        cp: Checkpoint,
        written: list[str],
        entries: list[dict],
        blob: bytes,
        previous: "str | None",
        added: int,
    ) -> None:
        """(the committer's thread, holding the step's lock) Make the values
        durable, then commit the metadata; the outcome goes to
        ``committer.done``. A failure removes what the put wrote, keeps the
        checkpoint in memory and leaves the not-stored note."""
        dirname = dirname_of(cp.step)
        meta = meta_name(cp.fingerprint)
        try:
            try:
                if new_folder:  # its name is durable before anything in it (an existing one's already is)
                    fsync_dir(root)
                for entry in entries:  # the value files' bytes...
                    fd = open_file(entry["file"], folder, self.directory / dirname / entry["file"])
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                fsync_dir(folder)  # ...and names are durable before the metadata
                self.reader.metas.forget(dirname, meta)
                commit_meta(folder, blob, written, meta)
            except BaseException as exc:
                if meta not in written:  # not committed: leave nothing
                    for name in written:
                        try:
                            unlink_quiet(name, folder)
                        except OSError:
                            pass
                    self.unwritten.remember(cp)
                    why = _describe_error(exc)
                    try:
                        notes.add(folder, self.directory / dirname, cp.fingerprint, why)
                    except OSError:
                        pass  # the note only explains
                    self.done.append((False, cp, why))
                    return
            try:
                self._committed(folder, cp, previous, written)
            except Exception:  # housekeeping: the checkpoint is stored
                pass
            self.done.append((True, cp, added))
        finally:
            try:
                os.close(folder)
                os.close(root)
            finally:
                lock.release()

    def _write_values(
        self, folder: int, token: str, values: list, written: list[str], refs: dict
    ) -> list[dict]:
        """Write each value to a file of its own; their metadata entries (in
        the order of *values*). Raises Unpicklable naming every value that
        cannot be pickled (after the first one, the others are only tried, no
        longer written). What an upstream value (*refs*) or a value written
        before holds is written as a reference (:mod:`nbsteps.stores.sharing`):
        DataFrames and Series go first, what the step printed last."""
        entries: dict[int, dict] = {}
        bad: "list[str | None]" = []
        errors: list[BaseException] = []
        order = sorted(
            range(len(values)),
            key=lambda i: (values[i][0] == "captured", pandas_kind(values[i][2]) is None),
        )
        # values not written yet, by id: a value that holds one writes it, and the other refers to it
        pending = {id(v): i for i, (role, _, v) in enumerate(values) if role != "captured" and shareable(v)}
        for i in order:
            role, name, value = values[i]
            label = name if role == "output" else None  # None: the result
            if bad:  # already failing: only find the other unpicklable values
                try:
                    pickle_to(NullSink(), value, faithful=False)
                except Exception as exc:
                    bad.append(label)
                    errors.append(exc)
                continue
            sharing = role != "captured"
            met: "list | None" = [] if sharing else None
            if pending.get(id(value)) == i:
                del pending[id(value)]
            later = {o: values[k][2] for o, k in pending.items() if o != id(value)} if sharing else None
            try:
                entry = write_value(
                    folder,
                    f"{token}-{i}",
                    value,
                    written,
                    self.key,
                    self.compression,
                    refs if sharing else None,
                    met,
                    later=later,
                    sync=False,  # the committer fsyncs it
                )
            except Unpicklable as exc:
                bad.append(label)
                errors.extend(exc.errors)
                continue
            entry.update(role=role, name=name)
            entries[i] = entry
            if sharing:
                _note_references(entries, i, met, refs, value, later)
        if bad:
            raise Unpicklable(bad, errors)
        return [entries[i] for i in range(len(values))]

    def _committed(self, folder: int, cp: Checkpoint, previous: "str | None", written: list[str]) -> None:
        """*cp*'s metadata is written: what it replaced goes (the version it
        replaced makes garbage pending, its copy in memory, an earlier nbsteps'
        metadata of the fingerprint, files no metadata names)."""
        meta = meta_name(cp.fingerprint)
        touch(folder, meta)
        if previous is not None and previous != (cp.parts or {}).get("token", cp.fingerprint):
            self.garbage.pending = True  # that version is gone: checkpoints made from it are dead
        self.unwritten.forget(cp.step, cp.fingerprint)
        had_legacy = exists(META, folder)
        drop_legacy(folder, cp.fingerprint)
        if had_legacy and not exists(META, folder):
            self.garbage.pending = True  # an earlier nbsteps' checkpoint of this fingerprint: replaced
        # Files no metadata names: the replaced checkpoint of this fingerprint
        # or debris of an interrupted put (we hold the lock: nobody else
        # writes here). Anything the store did not name is left alone.
        collect(folder, keep=set(written))

    # -- the rest of the interface ----------------------------------------------------

    def drop(self, step: str) -> None:
        self._settle(step)
        self.unwritten.forget(step)
        self.garbage.release(step)
        self.held.forget(step)
        self._handed.pop(step, None)
        dirname = dirname_of(step)
        self.reader.metas.forget(dirname)
        try:
            with self.folders.root() as root:
                if not exists(dirname, root):
                    return
                with self.folders.locked(root, dirname), self.folders.folder(root, dirname) as folder:
                    remove_files(folder)
                    notes.remove(folder)
                try:
                    os.rmdir(dirname, dir_fd=root)  # only if nothing else is in it
                except OSError:
                    pass
            self.budget.forget()
            self.garbage.pending = True
        except OSError as exc:
            self.warn(
                step,
                f"step {step!r}: could not remove its checkpoint in {self.directory / dirname} "
                f"({_describe_error(exc)})",
            )
            return
        self._collect_garbage(step)


def _note_references(
    entries: dict, i: int, met: "list | None", refs: dict, value: Any, later: "dict | None"
) -> None:
    """Value *i* is written (entry ``entries[i]``): record the references it
    made (``refs``: positions in this checkpoint, ``up``: upstream values; a
    value it points into by memo index keeps its memo when read), and make it,
    and the values not written yet that it holds, known to the values written
    after it (those are then written as references into it)."""
    dumped = met[0] if met else None
    if dumped is not None and dumped.used:
        inner = sorted({r[1] for r in dumped.used if r[0] == "v"})
        if inner:
            entries[i]["refs"] = inner
            for r in dumped.used:
                if r[0] == "v" and r[2] >= 0:
                    entries[r[1]]["memo"] = True
        up = sorted({r[1:] for r in dumped.used if r[0] == "u"}, key=repr)
        if up:
            entries[i]["up"] = [list(r) for r in up]
    if shareable(value):
        refs.setdefault(id(value), (("v", i, -1), value))
    if dumped is not None:
        for oid, index in dumped.found.items():
            refs.setdefault(oid, (("v", i, index), later[oid]))


def _list_values(names: "list[str | None]") -> str:
    """``outputs 'a', 'b' and the result`` for a message."""
    outputs = [repr(n) for n in names if n is not None]
    said = [f"output{'s' if len(outputs) > 1 else ''} {', '.join(outputs)}"] if outputs else []
    if None in names:
        said.append("the result")
    return " and ".join(said)


def _values_of(cp: Checkpoint) -> "list[tuple[str, str | None, Any]]":
    """What writing *cp* writes, as ``(role, name, value)``: its outputs, its
    result unless it is one of them, what it printed and displayed."""
    values: list[tuple[str, str | None, Any]] = [("output", n, v) for n, v in cp.outputs.items()]
    # a result that is also an output (function steps, `x` as last line) is written once
    result_is = next((n for n, v in cp.outputs.items() if v is cp.result), None) if cp.has_result else None
    if cp.has_result and result_is is None:
        values.append(("result", None, cp.result))
    if cp.output:  # what the step printed and displayed: plain data, signed like the values
        values.append(("captured", None, list(cp.output)))
    return values


def _remove_unpicklable(root: int, dirname: str, folder: int, meta: str, written: list[str]) -> None:
    """A put that met unpicklable values leaves nothing on disk: its files, the
    metadata of its fingerprint (its checkpoint is the one in memory now), the
    step's folder if nothing else is in it."""
    for name in written:
        unlink_quiet(name, folder)
    # the checkpoint of this fingerprint is the one in memory now: the one on disk goes
    unlink_quiet(meta, folder)
    collect(folder)
    try:
        os.rmdir(dirname, dir_fd=root)  # only if nothing else is in it
    except OSError:
        pass
