"""Threads as Run All sees them (issue 23): Run All runs every cell on the kernel's
main thread, one after another; ``--workers N`` must not break what that allows.

**Values bound to a thread.** Some objects refuse to be used on any thread but the one
that made them. :func:`bound_kind` decides by what the object is, not by its name:

- instances of ``threading.local`` and its subclasses (their attributes exist per thread);
- objects that hold a thread: an attribute (or one item of a small list, tuple or dict)
  that is an ``int`` equal to the ident of a live thread (what a class records to check
  later that it is used where it was made), or that is itself thread-bound (a wrapper
  holding a connection, a tkinter widget holding its interpreter);
- a small list of kinds whose binding lives in C and cannot be read, each checked only when
  its module is loaded already: ``sqlite3`` connections, cursors and blobs (made with
  ``check_same_thread=True`` by default; the flag cannot be read back, so every one counts),
  tkinter's interpreter (``_tkinter.TkappType``), and ``asyncio`` event loops.

A worker thread whose attempt made such a value becomes that value's **home**: it leaves
the pool (:mod:`nbsteps.backends.threads` starts a replacement) and from then on runs only
the attempts sent to it, one at a time (:func:`serve_home`). The executor records the home
of each step that made one (``RunContext.threads``); a step whose inputs include a
thread-bound value runs on the home of the step that made it (:func:`home_of`), and on the
executor's calling thread (inline, which is the kernel's main thread in a notebook) when the
value was made there (an ordinary cell, or a step that ran inline). Those steps run one
at a time, as in Run All; ``%steps plan`` says why (:func:`thread_notes`).

**First imports.** Importing a module runs its code; two threads importing modules that
import each other (packages with lazily imported submodules, PEP 562 ``__getattr__``
or ``lazy_loader``) fail with "partially initialized module" or ``_DeadlockError``, which
Run All never meets. :func:`serialise_first_imports` wraps
``importlib._bootstrap._find_and_load``, the function every ``import`` statement,
``importlib.import_module`` and so every lazy submodule access goes through for a module
not yet in ``sys.modules`` (or still initializing): on a step thread (the pool's workers,
homes, and the executor's thread during a run with several workers) that first import
holds one process-wide re-entrant lock, taken before importlib's per-module locks, so
first imports happen one at a time as in Run All and never deadlock against each other.
Imports of loaded modules take no lock; threads a step starts itself are not step threads.

A first import can still be seen half made without an import: a package whose PEP 562
``__getattr__`` keeps what it imported (``lazy_loader``), and whose submodule imports itself
through the package while it runs (scikit-image's ``skimage.morphology``), holds the half-made
module as an attribute until that import ends; a step reading the attribute then, on another
thread, fails ("partially initialized module"). :func:`half_imported` recognises that failure
by what the error names (the module of an ``AttributeError``, of an ``ImportError``) and by
when that module's first import ran (on another step thread, while the attempt ran); the
attempt then runs again once the imports under way end, as it would have in Run All, and does
not count as one of the step's ``--retry`` attempts.
"""

from __future__ import annotations

import itertools
import math
import queue
import sys
import threading
import time
import types
from contextlib import contextmanager

#: values that are never bound to a thread (checked first, by exact type)
_PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None), range, slice})
#: modules, classes and functions are shared by every thread (whatever thread-locals they keep)
_NEVER = (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType, types.MethodType)
_SCAN = 64  # how many attributes or items of one value are looked at


def _c_kinds() -> tuple:
    """The kinds whose thread binding lives in C (see the module doc), of the modules loaded."""
    kinds: list = [threading.local]
    sq = sys.modules.get("sqlite3")
    if sq is not None:
        kinds += [sq.Connection, sq.Cursor, *([sq.Blob] if hasattr(sq, "Blob") else [])]
    tk = sys.modules.get("_tkinter")
    if tk is not None and hasattr(tk, "TkappType"):
        kinds.append(tk.TkappType)
    aio = sys.modules.get("asyncio")
    if aio is not None:
        kinds.append(aio.AbstractEventLoop)
    return tuple(kinds)


def _name(value) -> str:
    t = type(value)
    return t.__name__ if t.__module__ in ("builtins", "__main__") else f"{t.__module__}.{t.__name__}"


def _items(value):
    """Up to _SCAN attributes of *value*, or items of a small list, tuple, set or dict."""
    t = type(value)
    if t in (list, tuple, set, frozenset):
        return value if len(value) <= _SCAN else ()
    if t is dict:
        return value.values() if len(value) <= _SCAN else ()
    try:
        d = object.__getattribute__(value, "__dict__")
    except Exception:  # no __dict__ (C types, __slots__)
        return ()
    return itertools.islice(d.values(), _SCAN) if type(d) is dict else ()


def bound_kind(value, kinds: "tuple | None" = None, depth: int = 1) -> str:
    """What makes *value* bound to the thread that made it ('' when nothing does); see the module doc."""
    if type(value) in _PLAIN or isinstance(value, _NEVER):
        return ""
    kinds = _c_kinds() if kinds is None else kinds
    if isinstance(value, kinds):
        return _name(value)
    if depth <= 0:
        return ""
    idents = None
    for item in _items(value):
        if type(item) is int:
            if item > 0xFFFF:
                if idents is None:  # once per value, only when it holds a large int
                    idents = {t.ident for t in threading.enumerate()}
                if item in idents:
                    return f"{_name(value)} (holds a thread's ident)"
        elif type(item) not in _PLAIN:
            inner = bound_kind(item, kinds, depth - 1)
            if inner:
                return f"{_name(value)} (holds {inner})"
    return ""


def bound_values(values: dict) -> dict:
    """``{name: kind}`` of the thread-bound values among *values*."""
    kinds = None  # looked up when a value is not plain (most steps make plain values)
    out = {}
    for n, v in values.items():
        if type(v) in _PLAIN:
            continue
        if kinds is None:
            kinds = _c_kinds()
        kind = bound_kind(v, kinds)
        if kind:
            out[n] = kind
    return out


# -- homes: threads that made thread-bound values ---------------------------------------
_homes: dict[int, queue.SimpleQueue] = {}  # ident -> inbox of (task, done)
_homes_lock = threading.Lock()


def become_home() -> int:
    """Make the calling (worker) thread a home (see the module doc); its ident."""
    ident = threading.get_ident()
    with _homes_lock:
        _homes.setdefault(ident, queue.SimpleQueue())
    return ident


def serve_home(run, failed) -> None:
    """The loop of a home thread: run what is sent to it, one at a time, forever
    (``run(task)`` gives the outcome; ``done(task, outcome)`` hands it back;
    ``failed(exc)``: the outcome of an error *run* did not catch)."""
    ident = threading.get_ident()
    inbox = _homes[ident]
    while True:
        task, done = inbox.get()
        try:
            outcome = run(task)
        except BaseException as exc:  # never lose a home silently
            outcome = failed(exc)
        if outcome.ok and bound_values(outcome.outputs):  # made here too (a cursor of a connection)
            outcome.thread = ident
        done(task, outcome)


def send_home(ident: int, task, done) -> bool:
    """Run *task* on home thread *ident*; False when there is no such home."""
    inbox = _homes.get(ident)
    if inbox is None:
        return False
    inbox.put((task, done))
    return True


def home_of(threads: dict, sources: dict, inputs: dict) -> "tuple[int | None, str]":
    """Where an attempt with *inputs* must run: ``(ident of a home thread, why)``,
    ``(0, why)`` for the executor's calling thread, or ``(None, '')`` anywhere.
    *threads*: step -> its home (``RunContext.threads``); *sources*: input -> step it comes from."""
    if not inputs:
        return None, ""
    found = bound_values(inputs)
    if not found:
        return None, ""
    homes = {n: threads.get(sources.get(n), 0) for n in found}
    n = sorted(found)[0]
    ident = homes[n]
    why = f"reads {n} ({found[n]}), made on {'a worker thread' if ident else 'the calling thread'}"
    if ident and ident not in _homes:
        ident = 0  # its home is gone: as close to Run All as can be
    return ident, why


def thread_notes(ctx, names) -> dict:
    """step -> why it runs on one thread, for the steps of *names* whose inputs hold
    thread-bound values now (the plan's preview; values not read yet are not read)."""
    notes = {}
    ns = ctx.namespace
    for s in names:
        step = ctx.steps[s]
        if step.func is not None:
            continue
        sources = ctx.sources(s)
        values = {}
        for n in step.inputs:
            src = sources.get(n)
            if src is None:
                if n in ns:
                    values[n] = ns[n]
                continue
            outs = ctx.records[src].outputs
            if type(outs) is dict and n in outs:  # held in this kernel (a lazy checkpoint holds none)
                values[n] = outs[n]
        ident, why = home_of(ctx.threads, sources, values)
        if ident is not None:
            notes[s] = why + "; runs on that thread, one step at a time"
    return notes


# -- first imports, one at a time ----------------------------------------------------------
_import_lock = threading.RLock()
_step_threads: set[int] = set()
_original = None


#: module -> (thread, began, ended) of its first import on a step thread (perf_counter; ended
#: is infinite while it runs): what :func:`half_imported` asks
_first: dict[str, tuple[int, float, float]] = {}


def _find_and_load(name, import_):
    ident = threading.get_ident()
    if ident in _step_threads:
        module = sys.modules.get(name)
        if module is None or getattr(getattr(module, "__spec__", None), "_initializing", False):
            with _import_lock:
                if name in sys.modules:  # made meanwhile, or under way on this thread
                    return _original(name, import_)
                began = time.perf_counter()
                _first[name] = (ident, began, math.inf)
                try:
                    return _original(name, import_)
                finally:
                    _first[name] = (ident, began, time.perf_counter())
    return _original(name, import_)


def _modules_named(err: BaseException) -> list:
    """The modules an error (or the errors it was raised from) says it found lacking: the
    module of an ``AttributeError`` (``obj``), the module of an ``ImportError`` (``name``)."""
    names, seen = [], 0
    while err is not None and seen < 8:
        if isinstance(err, AttributeError) and isinstance(getattr(err, "obj", None), types.ModuleType):
            names.append(getattr(err.obj, "__name__", ""))
        elif isinstance(err, ImportError) and err.name:
            names.append(err.name)
        err, seen = err.__cause__ or err.__context__, seen + 1
    return [n for n in names if isinstance(n, str) and n]


def half_imported(err: BaseException, since: float) -> str:
    """The module that an attempt on this thread, begun at *since* (``time.perf_counter``) and
    failed with *err*, may have read half made: one its error names, whose first import ran
    meanwhile on another step thread (see the module doc); ``''`` when there is none. Such an
    attempt runs again; this waits first for the first imports under way to end."""
    if not _first:
        return ""
    me = threading.get_ident()
    for name in _modules_named(err):
        first = _first.get(name)
        if first is not None and first[0] != me and first[2] > since:
            with _import_lock:  # held by every first import on a step thread, from start to end
                pass
            return name
    return ""


def serialise_first_imports() -> None:
    """Install the wrapper of ``_find_and_load`` (once; see the module doc)."""
    global _original
    import importlib._bootstrap as bootstrap

    with _homes_lock:
        if _original is None:
            _original = bootstrap._find_and_load
            bootstrap._find_and_load = _find_and_load


def step_thread() -> None:
    """The calling thread runs steps from now on (a worker or a home thread)."""
    serialise_first_imports()
    _step_threads.add(threading.get_ident())


@contextmanager
def calling_thread(several: bool):
    """During a run: the executor's thread is a step thread when *several* threads run steps."""
    if not several:
        yield
        return
    ident = threading.get_ident()
    serialise_first_imports()
    mine = ident not in _step_threads
    _step_threads.add(ident)
    try:
        yield
    finally:
        if mine:
            _step_threads.discard(ident)
