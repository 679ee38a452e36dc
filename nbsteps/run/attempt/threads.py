"""Threads as Run All sees them (issue 23): Run All runs every cell on the kernel's
main thread, one after another; ``--workers N`` must not break what that allows.

**Values bound to a thread.** Some objects refuse to be used on any thread but the one
that made them. :func:`bound_kind` decides by what the object is, not by its name:

- instances of ``threading.local`` and its subclasses (their attributes exist per thread);
- a small list of kinds whose binding lives in C and cannot be read, each checked only when
  its module is loaded already: ``sqlite3`` connections, cursors and blobs (made with
  ``check_same_thread=True`` by default; the flag cannot be read back, so every one counts),
  tkinter's interpreter (``_tkinter.TkappType``), and ``asyncio`` event loops;
- objects that hold one of those, or an ``int`` equal to the ident of a live thread (what a
  class records to check later that it is used where it was made), anywhere a bounded walk
  of what they hold reaches (a wrapper holding a connection; SQLAlchemy's in-memory SQLite
  engine, whose per-thread connections sit in a ``threading.local`` at ``.pool._conn``; a
  ``Session`` that holds that engine, or a connection of its transaction).

The walk is breadth-first from the value: what an object holds is the values of its
``__dict__`` (its first 64), of its ``__slots__`` (member descriptors, C ones included) and the
items of a list, tuple, set, frozenset or dict of at most 64 (subclasses too, read through the
base type, so no code of the object's class runs). Each object is looked at once (by id), at
most 8 levels down. Never looked into: plain values (numbers, strings, bytes, None), modules,
classes, functions and methods (shared by every thread), ``threading.Thread`` objects (they
hold their own ident, not their maker's), code, frames and tracebacks, larger containers; of an
array-like (a class with ``__array__``: numpy arrays, pandas objects, tensors) only its own
attributes are looked at, not below them (their data). A value's own attributes and items are
always looked at, as before the walk went deeper; below them the walk stops after 300
attributes and items for one value, or 1,200 for all the values of one
:func:`bound_values` call (a step's outputs, an attempt's inputs), and what lies beyond is taken
as free. What a type is (skipped, a kind, its slots) is kept per type. The cost (µs a value,
one call): a DataFrame 2, a fitted scikit-learn pipeline 10, a dict of 10,000 floats 1.5, a
SQLAlchemy engine 6, a session 29, a matplotlib figure 67 (the budget, spent: nothing found).
Not found: what is reached by id rather than by reference (an ORM object reaches its
``Session`` through SQLAlchemy's registry of sessions), or only beyond the budget.

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

import math
import queue
import sys
import threading
import time
import types
from contextlib import contextmanager

from nbsteps.run.attempt.walk import PLAIN, SKIP, Budget, type_info, type_name
from nbsteps.run.attempt.walk import walk as walk_below

_DEPTH = 8  # how many attributes or items below a value the walk goes at most
_BUDGET = 300  # attributes and items looked at below one value, past its own
_CALL_BUDGET = 1200  # ... below all the values of one call of bound_values


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
    return type_name(type(value))


def _label(parent, child, kinds: tuple) -> str:
    """How *parent* holds *child*, for the message (found again: the walk keeps no names)."""
    base, _, slots, has_dict = type_info(type(parent), kinds)
    try:
        if base is dict:
            for k, v in dict.items(parent):
                if v is child:
                    return f"[{k!r}]" if len(repr(k)) <= 30 else "[...]"
        elif base is list or base is tuple:
            for i, v in enumerate(base.__iter__(parent)):
                if v is child:
                    return f"[{i}]"
        elif base is not None:
            return "{...}"
        if has_dict:
            for k, v in object.__getattribute__(parent, "__dict__").items():
                if v is child:
                    return f".{k}"
    except Exception:  # changed meanwhile
        pass
    for s in slots:
        try:
            if s.__get__(parent) is child:
                return f".{s.__name__}"
        except Exception:
            pass
    return ".?"


def _found(value, nodes: list, i: int, child, what: str, kinds: tuple) -> str:
    """The message for *what* (*child*, held by ``nodes[i]``) found below *value*."""
    if i == 0:  # one attribute or item down: as it always read
        return f"{_name(value)} (holds {what})"
    path = [_label(nodes[i][0], child, kinds)]
    while i > 0:
        obj, i = nodes[i]
        path.append(_label(nodes[i][0], obj, kinds))
    return f"{_name(value)} (holds {what} at {''.join(reversed(path))})"


class _Walk(Budget):
    """What one call of bound_values shares between its values: the live threads' idents (read
    once, when a large int is met) and what is left of its budget."""

    __slots__ = ("idents",)

    def __init__(self, budget: int = _CALL_BUDGET):
        self.left = budget  # (Budget's, set here: one call less for each step's outputs)
        self.idents = None

    def ident(self, n: int) -> bool:
        if self.idents is None:
            self.idents = {t.ident for t in threading.enumerate()}
        return n in self.idents


def bound_kind(value, kinds: "tuple | None" = None, depth: int = _DEPTH, walk: "_Walk | None" = None) -> str:
    """What makes *value* bound to the thread that made it ('' when nothing does): a breadth-first
    walk of what it holds (:func:`nbsteps.run.attempt.walk.walk`), at most *depth* attributes or
    items down; see the module doc."""
    if type(value) in PLAIN:
        return ""
    kinds = _c_kinds() if kinds is None else kinds
    info = type_info(type(value), kinds)
    if info is SKIP or type(info) is str:
        return info or ""
    walk = _Walk() if walk is None else walk
    hits, nodes = walk_below(
        value,
        depth=depth,
        budget=_BUDGET,
        kinds=kinds,
        shared=walk,
        own_free=True,
        number=walk.ident,
        first=True,
    )
    if not hits:
        return ""
    i, child, kind = hits[0]
    return _found(value, nodes, i, child, kind or "a thread's ident", kinds)


def bound_values(values: dict) -> dict:
    """``{name: kind}`` of the thread-bound values among *values*."""
    kinds = walk = None  # looked up when a value is not plain (most steps make plain values)
    out = {}
    for n, v in values.items():
        if type(v) in PLAIN:
            continue
        if kinds is None:
            kinds, walk = _c_kinds(), _Walk()
        kind = bound_kind(v, kinds, walk=walk)
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


def plain_data(value, depth: int = 2) -> bool:
    """Whether *value* is plain data, which holds no object of a library's own: a number, a string,
    an array-like (numpy, pandas: its data), a module, class or function (shared by every thread),
    or a small builtin container of those."""
    t = type(value)
    if t in PLAIN:
        return True
    info = type_info(t, ())
    if info is SKIP:
        return True
    base, data = info[0], info[1]
    if data:
        return True
    if base is None or depth == 0:
        return False
    try:
        items = base.values(value) if base is dict else base.__iter__(value)
        if base.__len__(value) > 64:
            return False
        return all(plain_data(v, depth - 1) for v in items)
    except Exception:  # changed meanwhile
        return False


def derived_home(affine: dict, sources: dict, inputs: dict) -> "tuple[int | None, str]":
    """Where an attempt with *inputs* must run because an input was made by a step that ran on one
    thread for a thread-bound value it read (*affine*: step -> that thread, 0 for the calling one;
    ``RunContext.affine``): ``(ident, why)``, else ``(None, '')``. What such a step made may reach
    that value in a way no walk sees (an ORM object finds its session in a registry, by id), and
    uses it on the thread it runs on; plain data (:func:`plain_data`: a frame, a list of numbers) does
    not, and runs anywhere."""
    for n in sorted(inputs):
        src = sources.get(n)
        if src is None:
            continue
        ident = affine.get(src)
        if ident is None or plain_data(inputs[n]):
            continue
        if ident and ident not in _homes:
            ident = 0  # its home is gone: as close to Run All as can be
        where = "a worker thread" if ident else "the calling thread"
        return ident, f"reads {n}, made by {src} on {where}, which uses a value bound to it"
    return None, ""


def thread_notes(ctx, held: dict) -> dict:
    """step -> why it runs on one thread, for the steps whose inputs hold thread-bound values
    now (the plan's preview); *held*: step -> the values it reads that are held now
    (:func:`nbsteps.run.attempt.inputs.held_inputs`; values not read yet are not read)."""
    notes = {}
    for s, values in held.items():
        ident, why = home_of(ctx.threads, ctx.sources(s), values)
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
