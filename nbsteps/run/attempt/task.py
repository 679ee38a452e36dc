"""Running one attempt of one step, anywhere (a thread, the main thread, a dask
worker). Nothing here knows about plans, IPython or widgets.

A :class:`Task` carries what an attempt needs: for a cell step its source (and,
in-process, its compiled code) and the values of its inputs; for a function
step the function and its arguments. :func:`run_task` executes it in a private
namespace and returns an :class:`Outcome`; the caller publishes the outputs.
"""

from __future__ import annotations

import builtins
import contextvars
import copy
import itertools
import time
import traceback
import types
import weakref
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from nbsteps.formatting import clean_text
from nbsteps.model import file_inputs
from nbsteps.model.analysis import analyse_cell, run_code, step_filename
from nbsteps.run.attempt import generators, observe, opened, threads
from nbsteps.run.attempt.capture import Capture, running_in
from nbsteps.run.attempt.capture import _active as _capture_active
from nbsteps.run.attempt.live import has_versions, used_live
from nbsteps.run.attempt.notebook_functions import link_helpers


@dataclass(init=False, slots=True)
class Outcome:
    """What one attempt gave. Slots, and an ``__init__`` written out; :func:`_succeeded` makes
    the outcome of an attempt that succeeded without calling it (0.3 µs against the generated
    ``__init__``'s 0.6, with its five default factories and keyword arguments: timeit)."""

    ok: bool
    outputs: dict = field(default_factory=dict)
    result: Any = None
    has_result: bool = False
    error: BaseException | None = None
    traceback: str = ""
    started: float = 0.0  # time.time()
    duration: float = 0.0
    worker: str = ""
    output: tuple = ()  # what the attempt printed and displayed (nbsteps.run.attempt.capture)
    context: dict = field(
        default_factory=dict
    )  # context variables it set: {var: value} (numpy's print options)
    then: tuple = ()  # ((task, outcome), ...) of the task's followers that ran (nbsteps.run.fusion)
    files: dict = field(default_factory=dict)  # files it read: {path: fingerprint} (model.file_inputs)
    wrote: dict = field(default_factory=dict)  # files it wrote, as it left them: {path: fingerprint}
    appended: frozenset = frozenset()  # of those, the ones it only appended to (run.attempt.opened)
    state: frozenset = frozenset()  # process state it was seen changing: {"environ"} (run.attempt.opened)
    changed: tuple = ()  # inputs it changed that it was not predicted to change (nbsteps.run.attempt.observe)
    #: of those, the ones a hint keyed by type said it changes, on a private copy: {name: hint}
    hinted: dict = field(default_factory=dict)
    #: of those, the ones that share objects with an input it changes, copied with it
    #: (nbsteps.run.attempt.together)
    together: tuple = ()
    #: the module it failed on, half made by another step's first import (run.attempt.threads)
    half_imported: str = ""
    #: the ident of the worker thread that ran it, when that thread keeps what it made (its home,
    #: run.attempt.threads); 0 otherwise
    thread: int = 0
    #: names its code bound (or bound again) that the analysis did not predict (``globals()[n] = v``,
    #: ``exec(code)``, ``%run $script``): its outputs too, in ``changed`` (see :func:`_unpredicted`)
    dynamic: tuple = ()

    def __init__(
        self,
        ok,
        outputs=None,
        result=None,
        has_result=False,
        error=None,
        traceback="",
        started=0.0,
        duration=0.0,
        worker="",
        output=(),
        context=None,
        then=(),
        files=None,
        wrote=None,
        appended=frozenset(),
        state=frozenset(),
        changed=(),
        hinted=None,
        together=(),
        half_imported="",
        thread=0,
        dynamic=(),
    ):
        self.ok = ok
        self.outputs = {} if outputs is None else outputs
        self.result = result
        self.has_result = has_result
        self.error = error
        self.traceback = traceback
        self.started = started
        self.duration = duration
        self.worker = worker
        self.output = output
        self.context = {} if context is None else context
        self.then = then
        self.files = {} if files is None else files
        self.wrote = {} if wrote is None else wrote
        self.appended = appended
        self.state = state
        self.changed = changed
        self.hinted = {} if hinted is None else hinted
        self.together = together
        self.half_imported = half_imported
        self.thread = thread
        self.dynamic = dynamic


_new = object.__new__
_NO_STATE = frozenset()


def _succeeded(outputs: dict, result, has_result: bool, started: float, duration: float) -> Outcome:
    """``Outcome(True, outputs, result, has_result, started=started, duration=duration)``,
    without the call of ``__init__`` (every field set, as it sets them)."""
    o = _new(Outcome)
    o.ok = True
    o.outputs = outputs
    o.result = result
    o.has_result = has_result
    o.error = None
    o.traceback = ""
    o.started = started
    o.duration = duration
    o.worker = ""
    o.output = ()
    o.context = {}
    o.then = ()
    o.files = {}
    o.wrote = {}
    o.appended = _NO_STATE
    o.state = _NO_STATE
    o.changed = ()
    o.hinted = {}
    o.together = ()
    o.half_imported = ""
    o.thread = 0
    o.dynamic = ()
    return o


class Task:
    """One attempt's work. Picklable with cloudpickle (code is recompiled)."""

    __slots__ = (
        "name",
        "kind",
        "source",
        "inputs",
        "outputs",
        "func",
        "args",
        "analysis",
        "abandoned",
        "attempt",
        "base",
        "above",
        "then",
        "links",
        "context",
        "watched",
        "bound",
        "hinted",
        "together",
        "files_known",
        "quiet",
        "kernel",
        "generators",
    )

    def __init__(
        self,
        name,
        kind,
        source="",
        inputs=None,
        outputs=(),
        func=None,
        args=None,
        analysis=None,
        base=None,
        above=None,
    ):
        self.name = name
        self.kind = kind
        self.source = source
        self.inputs = inputs or {}
        self.outputs = outputs if type(outputs) is tuple else tuple(outputs)
        self.func = func
        self.args = args or {}
        self.analysis = analysis
        self.abandoned = False
        self.base = base
        # name -> (found, the version the step's position implies); see run.attempt.notebook_functions
        self.above = above
        self.attempt = 0
        # steps to run right after this one, in the same remote task (nbsteps.run.fusion)
        self.then: tuple = ()
        self.links: dict = {}  # input or argument -> the step before it in such a chain, which gives it
        self.context = contextvars.copy_context()  # where the task is made: the attempt runs in a copy of it
        self.watched: tuple = ()  # inputs predicted unchanged: checked (nbsteps.run.attempt.observe)
        #: watched input -> names bound to one object graph with it above (``fig`` of ``ax``): changed with it
        self.bound: dict = {}
        self.hinted: dict = {}  # inputs a hint keyed by type says it changes, unknown to the graph
        #: names that share objects with an input it changes, copied with it and written too
        #: (nbsteps.run.attempt.together)
        self.together: tuple = ()
        self.files_known: tuple = ()  # files steps of the plan read: a write in C to one is seen too
        self.quiet = False  # its output is kept, not shown (a version made again: run.observed_writes)
        #: it needs the kernel's own process (nbsteps.model.state.needs_kernel): a backend whose
        #: workers are other processes runs it in the kernel's threads instead
        self.kernel = False
        #: the global generators' states its attempt starts with (a version made again draws what
        #: the first attempt drew: nbsteps.run.attempt.generators), or None: as they are
        self.generators: "dict | None" = None

    def __getstate__(self):
        # the user namespace (base) stays home: a remote attempt gets its inputs only
        return {
            k: getattr(self, k) for k in self.__slots__ if k not in ("analysis", "base", "above", "context")
        }

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)
        self.analysis = None
        self.base = self.above = self.context = None


#: values a step can use as they are (nothing to change in place)
_AS_IS = (int, float, complex, str, bytes, bool, type(None), tuple, frozenset, ModuleType)
#: never looked into when a copy is compared with its value
_NOT_INTO = (ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
_DEEP = object()  # what _cheap_copy returns for a value that needs a deep copy


def _cheap_copy(value: Any) -> Any:
    """The copy :func:`private_copy` makes without a deep copy (the value
    itself when nothing can change it), or ``_DEEP``."""
    if isinstance(value, _AS_IS):
        return value
    module = type(value).__module__ or ""
    if module.startswith("pandas"):
        try:
            return value.copy(deep=False)
        except Exception:  # pragma: no cover - exotic pandas objects
            return value
    if module == "numpy" and hasattr(value, "copy"):
        return value.copy()
    return _DEEP


def private_copy(value: Any) -> Any:
    """A copy for a step that changes an input in place, so the upstream
    checkpoint never changes and a re-run gives the same result: pandas
    objects shallow (copy-on-write makes that safe for column assignment),
    arrays copied, anything else in full (``pipe.set_params(...).fit(...)``
    changes estimators nested in the pipeline; ``cfg["a"]["b"] = ``; a random
    generator's state lives in a nested bit generator). An object a deep copy
    does not reproduce (not deep-copyable, or whose attribute dict is itself,
    like statsmodels' Dataset) is copied shallow; one that cannot be pickled either has no
    versions (:mod:`nbsteps.run.attempt.live`: a database session, an engine) and is not
    copied: the step changes the one object, as in Run All."""
    cheap = _cheap_copy(value)
    if cheap is not _DEEP:
        return cheap
    try:
        copied = copy.deepcopy(value)
        if _faithful(value, copied):
            return value if _loses_ties(value, copied) else copied
    except Exception:  # a lock, a connection inside
        if not has_versions(value):
            return value
    try:
        return copy.copy(value)
    except Exception:
        return value


def private_copies(values: dict) -> dict:
    """:func:`private_copy` of each value; the values that get a deep copy
    are copied in one deep copy, so that objects they share stay shared
    (``ax.figure is fig``)."""
    out = {n: _cheap_copy(v) for n, v in values.items()}
    deep = [n for n, c in out.items() if c is _DEEP]
    if len(deep) > 1:
        try:
            together = copy.deepcopy({n: values[n] for n in deep})
            if all(
                _faithful(values[n], together[n]) and not _loses_ties(values[n], together[n]) for n in deep
            ):
                return {**out, **together}
        except Exception:  # each copied on its own
            pass
    return {n: private_copy(values[n]) if c is _DEEP else c for n, c in out.items()}


def _faithful(value: Any, copied: Any) -> bool:
    """Whether a deep copy has the attributes of the original (an object whose
    ``__dict__`` is the object itself loses them)."""
    d = getattr(value, "__dict__", None)
    if not isinstance(d, dict):
        return True
    c = getattr(copied, "__dict__", None)
    return isinstance(c, dict) and len(c) == len(d) and (d is not value or c is copied)


_WEAK = (weakref.ref, weakref.ProxyType, weakref.CallableProxyType)
_ATOMS = frozenset({int, float, complex, str, bytes, bool, type(None), range, slice})
_TIES_DEPTH = 6  # levels below a value compared with its copy
_TIES_BUDGET = 300  # objects compared below one value
_TIES_SCAN = 64  # items of one container compared (a larger one: none)


def _loses_ties(value: Any, copied: Any) -> bool:
    """Whether the deep copy *copied* lost a tie of *value* to something by identity: an
    object inside *value* holds a weak reference (to a registry, a session's identity map,
    an owner) in an attribute its copy does not have. Such an object is known elsewhere by
    identity (a SQLAlchemy ORM object is in its session through its state's weak reference
    to the session's identity map, and a copy of it is in no session): the copy is not the
    same thing, so the value has no separate version and the step changes the one object,
    as in Run All. A bounded walk of the two side by side, never into an object whose class
    says how it is deep-copied (``__deepcopy__``: numpy, pandas), a class, module or function."""
    pairs = [(value, copied)]
    seen = {id(value)}
    left = _TIES_BUDGET
    for _ in range(_TIES_DEPTH):
        below: list = []
        for o, c in pairs:
            if _tie_lost(o, c, below):
                return True
        pairs = []
        for o, c in below:
            if id(o) not in seen and type(o) not in _ATOMS:
                seen.add(id(o))
                pairs.append((o, c))
        left -= len(pairs)
        if not pairs or left <= 0:
            return False
    return False


def _tie_lost(o: Any, c: Any, below: list) -> bool:
    """One step of :func:`_loses_ties`: whether *c*, the copy of *o*, lacks an attribute of
    *o* that holds a weak reference; the pairs of their attributes and items go to *below*."""
    t = type(o)
    if type(c) is not t or c is o or isinstance(o, _NOT_INTO) or hasattr(t, "__deepcopy__"):
        return False
    if isinstance(o, (list, tuple, dict)) and len(o) == len(c) <= _TIES_SCAN:
        below.extend(zip(o.values(), c.values()) if isinstance(o, dict) else zip(o, c))  # noqa: B905
    try:
        od = object.__getattribute__(o, "__dict__")
        cd = object.__getattribute__(c, "__dict__")
    except Exception:  # no __dict__
        return False
    if type(od) is not dict or type(cd) is not dict or len(od) > _TIES_SCAN:
        return False
    for k, v in od.items():
        if k in cd:
            below.append((v, cd[k]))
        elif isinstance(v, _WEAK):
            return True
    return False


def _user_frames(exc: BaseException, filename: str):
    """*exc*'s traceback from the first frame of *filename* (the step's own
    code) on; None when the error was raised before reaching it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return tb


def _user_traceback(exc: BaseException, filename: str, shown: str = "") -> str:
    """The traceback from the step's own code on (no nbsteps frames); the frames of the step's
    code (its file *filename*: the name IPython gives the cell, see analyse_cell) are shown as
    *shown* (``<step NAME>``) when given."""
    tb = _user_frames(exc, filename)
    if tb is None:  # raised before reaching user code
        return "".join(traceback.format_exception_only(type(exc), exc))
    found = traceback.TracebackException(type(exc), exc, tb)
    if shown and shown != filename:
        for frame in _frames(found):
            if frame.filename == filename:
                _ = frame.line  # (read now, from the code's own file name: kept by the frame)
                frame.filename = shown
    return "".join(found.format())


def _frames(found: traceback.TracebackException):
    """The frames of *found* and of the exceptions chained to it."""
    seen = set()
    while found is not None and id(found) not in seen:
        seen.add(id(found))
        yield from found.stack
        found = found.__cause__ or found.__context__


def trim_traceback(exc: BaseException, name: str, filename: "str | None" = None) -> BaseException:
    """Drop nbsteps' own frames from *exc*'s traceback (cell steps; *filename*: its code's)."""
    tb = _user_frames(exc, filename or step_filename(name))
    if tb is not None:
        exc.__traceback__ = tb
    return exc


def run_task(task: Task) -> Outcome:
    """Run one attempt, capturing what it prints and displays. Whatever the
    step raises becomes a failed Outcome (``GeneratorExit`` and bare
    ``BaseException`` too, on any thread), except KeyboardInterrupt, which
    propagates (the executor cancels the run).

    It runs in a copy of the context the task was made in (any thread sees the
    context variables earlier steps set, as consecutive cells do); the variables
    it sets come back in ``outcome.context``, for the executor to set."""
    base = task.context
    if task.generators:
        with generators.drawing_as(task.generators):
            return _run(task, base)
    return _run(task, base)


def _run(task: Task, base) -> Outcome:
    if base is None:
        return _captured(task)
    ctx = base.copy()
    outcome = ctx.run(_captured, task)
    if outcome.ok:
        changed = outcome.context
        for var, value in ctx.items():  # (a loop, not a comprehension: no call, every attempt)
            if base.get(var, _UNSET) is not value:
                changed[var] = value
    return outcome


_UNSET = object()


def _captured(task: Task) -> Outcome:
    known = getattr(task, "files_known", ())
    before = file_inputs.fingerprints(known) if known else {}
    # active from its making to the finally below: a with statement's __enter__ and __exit__ are two
    # Python calls an attempt; finish and output are called only when there is something to do
    cap = Capture(task.name, None, getattr(task, "quiet", False), True)  # (echo, quiet, enter: positional)
    try:
        with opened.recording() as files:  # the files its code opens (nbsteps.run.attempt.opened)
            outcome = _attempt(task)
        result = outcome.result
        if (
            cap.figs
            or (result is not None and cap._formatter is not None)
            or (cap.echo and (cap._partial["stdout"] or cap._partial["stderr"]))
        ):  # (Capture.finish's work: figures, the result's bundle, a partial line to echo)
            cap.finish(result)
    finally:  # (Capture.end, written out)
        _capture_active.reset(cap._token)
        cap._token = cap.figs = None
    outcome.output = cap.output if cap.items else ()
    if files.state and outcome.ok:  # it changed the environment (os.environ), seen or not by the analysis
        outcome.state = files.state
    # (nothing opened, no analysis naming files, no file known to compare: nothing to read)
    if outcome.ok and (files.events or before or task.analysis is not None):
        outcome.files = files.inputs(task.analysis)
        writes = files.writes()
        if writes or before:
            outcome.wrote = file_inputs.written(writes, before)
            if writes:
                outcome.appended = files.appended()
    return outcome


def _attempt(task: Task) -> Outcome:
    started = time.time()
    t0 = time.perf_counter()
    try:
        if task.kind == "function":
            result = task.func(**task.args)
            outputs = {task.name: result}
            has_result = True
        else:
            analysis = task.analysis
            if analysis is None:
                analysis = task.analysis = analyse_cell(task.name, task.source)
            if task.base is not None:
                # names used only dynamically (df.query("@x"), eval) resolve in
                # the user namespace as in an ordinary cell; one C-level copy
                # (dict(base) clones the table: ~5x faster than inserting into a new dict)
                ns = dict(task.base)
                ns["__builtins__"], ns["__name__"] = builtins, "__main__"
            else:
                ns = {"__builtins__": builtins, "__name__": "__main__"}
            ns.update(task.inputs)
            link_helpers(
                (analysis.body, analysis.result), ns, task.above
            )  # helpers see names defined after them
            before = observe.watch(task.inputs, task.watched)
            # what the namespace holds before: the whole of it where the text may bind names unseen
            # (analysis.dynamic), else its size (its new keys are its last: see _unpredicted)
            held = dict(ns) if analysis.dynamic else None
            size = len(ns)
            with running_in(ns):  # IPython's magics called by the code use ns as the user namespace
                run_code(analysis.body, ns)  # exec, and top-level await
                has_result = analysis.result is not None
                result = run_code(analysis.result, ns) if has_result else None
            outputs = {n: ns[n] for n in task.outputs if n in ns}
            grew = len(ns) - size  # (its new keys are its last: all outputs, in C, for most steps)
            dynamic = (
                _unpredicted(ns, outputs, held, size)
                if held is not None
                or (grew > 0 and not all(map(outputs.__contains__, itertools.islice(reversed(ns), grew))))
                else ()
            )
            if dynamic:  # published as its own (Run All has them), and the plan learns them (changed)
                outputs.update((n, ns[n]) for n in dynamic)
            changed = observe.changed(before, task.inputs) if before else ()
            if changed:  # a live object (run.attempt.live) is used, as in Run All: no write
                changed = tuple(n for n in changed if not used_live(task.inputs[n]))
            if changed and task.bound:  # ax changed: the figure bound with it above shows the change too
                changed = tuple(sorted({*changed, *(p for n in changed for p in task.bound.get(n, ()))}))
            outputs.update((n, task.inputs[n]) for n in changed if n not in outputs)  # its version now
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # the user's code failed: an outcome, not a crash
        if task.kind == "cell":
            shown = step_filename(task.name)
            filename = getattr(task.analysis, "filename", None) or shown
            text = _user_traceback(exc, filename, shown)
        else:
            text = "".join(traceback.format_exception(exc))
        return Outcome(
            False,
            error=exc,
            traceback=clean_text(text),
            started=started,
            duration=time.perf_counter() - t0,
            half_imported=threads.half_imported(exc, t0),
        )
    outcome = _succeeded(outputs, result, has_result, started, time.perf_counter() - t0)
    if task.kind == "cell":
        hinted = getattr(task, "hinted", None) or {}
        together = getattr(task, "together", ())
        if dynamic:
            changed = (*changed, *dynamic)
        outcome.changed = (
            tuple(sorted({*changed, *hinted, *together})) if hinted or together or dynamic else changed
        )
        outcome.hinted = dict(hinted)
        outcome.together = together
        outcome.dynamic = dynamic
    return outcome


def _unpredicted(ns: dict, outputs: dict, held: "dict | None", size: int) -> tuple:
    """The names the step's code bound in its namespace *ns* that are not its predicted *outputs*
    (``globals()["x"] = 1``, ``exec(code)``, a library binding names in its caller's globals,
    ``%run $script``), not names starting with ``_``: IPython's own (``_exit_code`` of a ``!``
    command) and Python's (``__warningregistry__``, ``__annotations__``). *held*:
    the namespace before, for code whose text may bind names unseen (analysis.dynamic): every name
    bound anew or to another object; else (None) the keys added to the *size* it had, which a
    dict keeps last (exact unless the code also deleted names, which it does with ``del`` only)."""
    if held is None:
        return tuple(
            k for k in itertools.islice(reversed(ns), len(ns) - size) if k not in outputs and k[:1] != "_"
        )
    return tuple(
        k for k, v in ns.items() if k not in outputs and held.get(k, _UNSET) is not v and k[:1] != "_"
    )
