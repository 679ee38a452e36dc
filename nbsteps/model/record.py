"""A step's record: what happened to it (status, attempts, timing, result or error)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from operator import attrgetter
from typing import Any

from nbsteps.formatting import clean_text, error_text
from nbsteps.model import status as _lifecycle
from nbsteps.model.checkpoint import LAZY
from nbsteps.model.status import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    EXECUTED,
    KEPT,
    PENDING,
    RESTORED,
    RUNNING,
    Status,
)


@dataclass(eq=False)
class StepRecord:
    """What happened to a step: status, attempts, timing, result or error.

    A step restored from a directory store holds its values lazily
    (``outputs`` is a :class:`~nbsteps.model.checkpoint.LazyValues`): each is
    read the first time it is used; ``result`` likewise."""

    name: str
    status: Status = PENDING
    #: what the last run that considered it did (nbsteps.model.status): ``"executed"`` (ran in
    #: that run), ``"kept"`` (already in this kernel, up to date, not run), ``"restored"`` (read
    #: from the store); ``""`` while it is not completed
    origin: str = ""
    #: how this kernel got the values the record holds: ``"executed"`` or ``"restored"`` (a
    #: step kept keeps it: what a whole session, e.g. ``nbsteps run``, did with the step)
    held_from: str = ""
    stale: bool = False
    attempts: int = 0
    error: BaseException | None = None
    traceback: str = ""
    result: Any = None
    has_result: bool = False
    outputs: dict = field(default_factory=dict)
    started: float | None = None  # time.time()
    finished: float | None = None
    duration: float | None = None  # seconds of the successful (or last) attempt
    fingerprint: str | None = None
    token: str | None = None  # changes on every execution: downstream re-runs
    attempted: str = ""  # code digest of the last execution attempt
    reason: str = ""  # why it ran (or was skipped) in the last run
    message: str = ""  # cancellation / blocking explanation
    #: while the step waits for the user to approve it (``--confirm``): the question asked
    confirming: str = ""
    #: what the last execution printed and displayed, in order: ``("stdout" | "stderr", text)``
    #: or ``("display", {"data": mimebundle, "metadata": {...}})`` (figures as PNG images)
    output: tuple = ()
    #: the errors of the failed attempts before the last one, in order: ``(attempt, "Type: message")``
    attempt_errors: tuple = ()
    #: the files the run that produced the values read: ``{path: fingerprint}`` (nbsteps.model.file_inputs)
    files: dict = field(default_factory=dict)
    #: the files it wrote, as it left them: ``{path: fingerprint}`` (a step above that read one
    #: of them is not out of date when the file is what this step made of it, as in Run All)
    wrote: dict = field(default_factory=dict)
    #: why its last execution could not reuse an earlier kernel's values: they were not
    #: stored (or an upstream's were not): the reason of the steps below it that ran again
    not_stored: str = ""

    def __setattr__(self, key: str, value: Any, _set=object.__setattr__) -> None:
        _set(self, key, value)
        _journal.append(self.__dict__.get("name"))  # (atomic: no lock; see changed_since)
        if len(_journal) > JOURNAL_MAX:
            _trim()

    def update(self, **fields: Any) -> None:
        """Set several fields as one change: what setting each would do (``status``, ``files``
        and ``result`` through their properties), journaled once (:func:`changed_since`), after
        every field is set. The executor sets a record's ~14 fields this way when a step
        completes. An unknown field name raises ``TypeError`` (nothing is set)."""
        if not fields.keys() <= _FIELD_NAMES:  # (issuperset(fields) made a set of the keys each call)
            raise TypeError(f"StepRecord has no field {sorted(fields.keys() - _FIELD_NAMES)[0]!r}")
        d = self.__dict__
        if "status" in fields:  # first: a refused transition sets nothing (_set_status, inlined)
            status = fields.pop("status")
            if _lifecycle.STRICT and "_status" in d:
                _lifecycle.check_transition(d["name"], d["_status"], status)
            d["_status"] = status
        if "files" in fields:
            files = fields.pop("files")
            if files or d.get("_files"):  # (_set_files, inlined)
                with _files_lock:
                    _files_version[0] += 1
            d["_files"] = files
        if "result" in fields:
            d["_result"] = fields.pop("result")
        d.update(fields)
        _journal.append(d["name"])  # (atomic: no lock; see changed_since)
        if len(_journal) > JOURNAL_MAX:
            _trim()

    def snapshot(self) -> "StepRecord":
        """A copy of the record as it is now (cheap: fields are replaced, never
        mutated in place, when a step runs again)."""
        new = object.__new__(StepRecord)
        # (twice as fast as updating an empty one; not journaled: no record of the plan changed)
        object.__setattr__(new, "__dict__", self.__dict__.copy())
        return new

    def reset(self, message: str = "") -> None:
        """Back to ``pending`` with nothing kept (checkpoint dropped, undone)."""
        self.update(
            status=PENDING,
            origin="",
            stale=False,
            outputs={},
            result=None,
            held_from="",
            attempt_errors=(),
            has_result=False,
            fingerprint=None,
            token=None,
            error=None,
            traceback="",
            attempts=0,
            started=None,
            finished=None,
            duration=None,
            reason="",
            message=message,
            output=(),
            confirming="",
            files={},
            wrote={},
            not_stored="",
        )

    def restore(self, checkpoint, fingerprint: str) -> None:
        """``completed`` from *checkpoint*, without executing (``restored``)."""
        parts = checkpoint.parts or {}
        self.update(
            status=COMPLETED,
            origin=RESTORED,
            held_from=RESTORED,
            stale=False,
            attempt_errors=(),
            outputs=checkpoint.outputs,
            # (a lazy checkpoint's result is LAZY: resolved on first access, see below)
            result=checkpoint.result,
            has_result=checkpoint.has_result,
            fingerprint=fingerprint,
            error=None,
            traceback="",
            message="",
            token=parts.get("token", fingerprint),
            files=parts.get("files") or {},
            wrote=parts.get("wrote") or {},
            duration=checkpoint.duration,
            reason="up to date",
            not_stored="",
            # what the run that produced the checkpoint did and showed
            attempts=checkpoint.attempts,
            started=checkpoint.started or None,
            finished=checkpoint.finished or None,
            output=tuple(checkpoint.output or ()),
        )

    @property
    def cached(self) -> bool:
        """Completed without executing in its last run: restored or kept (see ``origin``)."""
        return self.origin in (KEPT, RESTORED)

    @cached.setter
    def cached(self, value: bool) -> None:  # compatibility: True = restored, False = executed
        if bool(value) != self.cached:
            self.origin = RESTORED if value else EXECUTED

    @property
    def origin_in_session(self) -> str:
        """What this kernel session did with the step: a step kept counts as what got its
        values into the kernel (executed or restored); ``""`` when not completed."""
        if self.status != COMPLETED:
            return ""
        return (self.held_from or RESTORED) if self.origin == KEPT else self.origin

    @property
    def stdout(self) -> str:
        """What the step printed (its last execution, or the one its checkpoint kept)."""
        return "".join(text for kind, text in self.output if kind == "stdout")

    @property
    def stderr(self) -> str:
        return "".join(text for kind, text in self.output if kind == "stderr")

    @property
    def displays(self) -> list:
        """What the step displayed (``display()``, figures): ``{"data", "metadata"}`` dicts."""
        return [item for kind, item in self.output if kind == "display"]

    @property
    def result_loaded(self) -> bool:
        """False while the result of a step restored from a directory store is
        not read yet (reading ``result`` reads it)."""
        return self.__dict__.get("_result") is not LAZY

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED

    @property
    def error_text(self) -> str:
        """``Type: message`` of the step's error (never raises, even for an
        exception whose ``__str__`` fails), or why it was blocked/cancelled."""
        if self.error is None:
            return clean_text(self.message) if self.status in (BLOCKED, CANCELLED) else ""
        return error_text(self.error)

    def __repr__(self) -> str:
        flag = f" ({self.origin})" if self.cached else ""
        err = f" {self.error_text}" if self.error is not None else ""
        return f"<StepRecord {self.name}: {self.status}{flag}{err}>"


def snapshots(records: "dict[str, StepRecord]", names) -> "dict[str, StepRecord]":
    """``{name: records[name].snapshot()}`` of each of *names*, in one pass (a run's summary
    keeps every record of the run as it ends)."""
    new, fields = object.__new__, object.__setattr__
    out = {}
    for name in names:
        copy = out[name] = new(StepRecord)
        fields(copy, "__dict__", records[name].__dict__.copy())
    return out


def _get_result(self: StepRecord) -> Any:
    value = self.__dict__.get("_result")
    if value is LAZY:  # restored lazily: load it now (once; the outputs cache it)
        value = self.outputs.result()
        self.__dict__["_result"] = value
    return value


def _set_result(self: StepRecord, value: Any) -> None:
    self.__dict__["_result"] = value


def _set_status(self: StepRecord, value: Status) -> None:
    if _lifecycle.STRICT and "_status" in self.__dict__:
        _lifecycle.check_transition(self.name, self.__dict__["_status"], value)
    self.__dict__["_status"] = value


#: the name of every record, each time one of its fields is set (a record made, a run, ``reset``,
#: ``stale``...): what views and ``refresh_stale`` passing over the steps after each cell read
#: to pass only over the steps whose records changed (:func:`changed_since`)
_journal: list = []
#: entries dropped from the head of ``_journal`` (it is kept below ``JOURNAL_MAX``)
_journal_dropped = [0]
_journal_lock = threading.Lock()
JOURNAL_MAX = 200_000


def journal_position() -> int:
    """Where the journal of record changes is now (see :func:`changed_since`)."""
    return _journal_dropped[0] + len(_journal)


def changed_since(position: int) -> "tuple[list | None, int]":
    """(the names of the records changed since *position* of :func:`journal_position`, each
    maybe more than once, or None when that part of the journal was dropped; the position
    now). Names, not records: the journal keeps no record's values alive."""
    with _journal_lock:
        dropped = _journal_dropped[0]
        start = position - dropped
        if start < 0:
            return None, dropped + len(_journal)
        changed = _journal[start:]
    return changed, dropped + start + len(changed)


def _trim() -> None:
    with _journal_lock:
        if len(_journal) > JOURNAL_MAX:
            half = len(_journal) // 2
            del _journal[:half]
            _journal_dropped[0] += half


# -- the executor's three changes of every executed step, written out ---------------------------
# Each is exactly ``record.update(...)`` with the fields named in its docstring (the same
# transition check, files version and one journal entry), with the values as positional
# arguments: ``update``'s keyword dict (~16 inserts), its field-name check and its pops cost
# ~1.3 µs for the completion's 16 fields against ~0.3 µs written out (issue 26, target 6b).


def set_to_execute(rec: StepRecord, reason: str, fingerprint: str, attempted: str) -> None:
    """``rec.update(reason=, fingerprint=, attempted=, attempts=0, attempt_errors=(), origin="")``:
    a step about to execute, before its first attempt."""
    d = rec.__dict__
    d["reason"], d["fingerprint"], d["attempted"] = reason, fingerprint, attempted
    d["attempts"], d["attempt_errors"], d["origin"] = 0, (), ""
    _journal.append(d["name"])  # (atomic: no lock; see changed_since)
    if len(_journal) > JOURNAL_MAX:
        _trim()


def set_running(rec: StepRecord, attempts: int, started: "float | None" = None) -> None:
    """``rec.update(attempts=, status=RUNNING, started=)`` (``started`` left as it is when None)."""
    d = rec.__dict__
    if _lifecycle.STRICT and "_status" in d:
        _lifecycle.check_transition(d["name"], d["_status"], RUNNING)
    d["_status"] = RUNNING
    d["attempts"] = attempts
    if started is not None:
        d["started"] = started
    _journal.append(d["name"])
    if len(_journal) > JOURNAL_MAX:
        _trim()


def set_executed(
    rec: StepRecord,
    duration: "float | None",
    output: tuple,
    outputs: dict,
    result: Any,
    has_result: bool,
    finished: "float | None",
    token: str,
    files: dict,
    wrote: dict,
) -> None:
    """``rec.update(status=COMPLETED, duration=, output=, error=None, traceback="", message="",
    origin=EXECUTED, held_from=EXECUTED, outputs=, result=, has_result=, finished=, stale=False,
    token=, files=, wrote=)``: an executed step completed."""
    d = rec.__dict__
    if _lifecycle.STRICT and "_status" in d:  # first: a refused transition sets nothing
        _lifecycle.check_transition(d["name"], d["_status"], COMPLETED)
    d["_status"] = COMPLETED
    if files or d.get("_files"):
        with _files_lock:
            _files_version[0] += 1
    d["_files"] = files
    d["_result"] = result
    d["duration"], d["output"], d["error"], d["traceback"], d["message"] = duration, output, None, "", ""
    d["origin"] = d["held_from"] = EXECUTED
    d["outputs"], d["has_result"], d["finished"], d["stale"] = outputs, has_result, finished, False
    d["token"], d["wrote"] = token, wrote
    _journal.append(d["name"])
    if len(_journal) > JOURNAL_MAX:
        _trim()


def touch(record: "StepRecord") -> None:
    """Note *record* as changed although no field of it was set (its step registered again)."""
    _journal.append(record.name)


#: bumped when a record's ``files`` is set to, or from, a non-empty dict (see ``files_version``)
_files_version = [0]
_files_lock = threading.Lock()


def files_version() -> int:
    """Changes whenever some record's ``files`` gains or loses paths: what the files the
    steps of a plan read (``RunContext.files_read``) is cached by, instead of a pass over
    every record on each run."""
    return _files_version[0]


def _set_files(self: StepRecord, value: dict) -> None:
    d = self.__dict__
    if value or d.get("_files"):
        with _files_lock:
            _files_version[0] += 1
    d["_files"] = value


# properties set after the dataclass is made: the generated __init__ assigns through them
StepRecord.result = property(_get_result, _set_result, doc="The step's result (its last expression's value).")
StepRecord.files = property(
    attrgetter("_files"),  # read in C (no Python call): the executor reads it for every step
    _set_files,
    doc="The files the run that produced the values read: ``{path: fingerprint}`` (replaced, never mutated).",
)
StepRecord.status = property(
    attrgetter("_status"),  # read in C: the executor, fingerprints and views read it many times a step
    _set_status,
    doc="Where the step is in its life (see nbsteps.model.status for the transitions).",
)

#: the names :meth:`StepRecord.update` sets (the dataclass's fields)
_FIELD_NAMES = frozenset(f.name for f in dataclass_fields(StepRecord))

_dataclass_init = StepRecord.__init__
#: a new record's fields (``_status``, ``_files``, ``_result``: those behind properties), made once
_NEW_FIELDS: dict = {}


def _init(self: StepRecord, name: str, *args, **kw) -> None:
    """The dataclass's ``__init__``, journaled once rather than once per field (a record is made
    for every step registered)."""
    if args or kw:
        _dataclass_init(self, name, *args, **kw)
        return
    d = _NEW_FIELDS.copy()  # (a copy of a dict: no insert per field, as snapshot; every key in it)
    d["name"], d["outputs"], d["_files"], d["wrote"] = name, {}, {}, {}
    object.__setattr__(self, "__dict__", d)
    _journal.append(name)


def _new_fields() -> dict:
    """A new record's ``__dict__`` as the dataclass's ``__init__`` leaves it (name ``""``), every
    key in it: a dict sharing its keys with the class's (CPython's key-sharing dicts), and so are
    its copies (``_init``'s, ``snapshot``'s) while no key is added: ~280 bytes a record, against
    ~830 for a dict of its own (a copy that then takes four keys more grows its table: ~0.2 µs
    a record made, and each snapshot copies the larger one)."""
    rec = object.__new__(StepRecord)
    _dataclass_init(rec, "")
    fields = rec.__dict__
    check = dict(fields)
    for mutable in ("outputs", "_files", "wrote"):
        assert check.pop(mutable) == {}
    shared = [k for k, v in check.items() if isinstance(v, (list, dict, set, bytearray))]
    if shared:  # a new field with a default_factory: _init must make it per record, as the three above
        raise TypeError(f"StepRecord fields {shared} would be shared by every new record: make them in _init")
    return fields


_NEW_FIELDS = _new_fields()
StepRecord.__init__ = _init
