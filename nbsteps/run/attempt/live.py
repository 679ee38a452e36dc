"""Values with no versions: live objects that exist in this process only.

nbsteps keeps versions of a name (SPEC: the version each step's position implies; a step that
changes its input in place works on a private copy, and the version above it is never the
changed object). Some values cannot have a second version: a database engine whose in-memory
database lives in its connection pool, a session whose identity map holds the objects loaded
through it, a socket, a lock, a running generator. Copying one makes a second object that is
not the same thing (a session copied shallow shares its transaction with the original, and one
of them commits it); executing the step that made it again makes a new object beside it (a
second, empty in-memory database; ``CREATE TABLE`` again on a file), not its version.

:func:`has_versions` tells them apart by whether the value can be pickled, which is what a
checkpoint needs too (a store keeps such a value in memory only, and says so): it decides
for any library, with no list of kinds. It is asked only where nbsteps would otherwise copy a
value (:func:`nbsteps.run.attempt.task.private_copy`) or make a change it saw a write
(:mod:`nbsteps.run.attempt.task`, after the attempt), never for every value. For such a value
nbsteps does what Run All does:

- the step that changes it changes the one object: no private copy is made;
- a change seen in it at run time (``Session(engine)`` sets attributes on the engine the first
  time) makes nothing above the step execute again (that would make a new object, not its
  version); when it holds a live object (below), the change is a use, not a write
  (:func:`used_live`): nothing below becomes stale, the order of its users is kept at run time;
- the steps that use one live object keep notebook order when several workers run (see
  :func:`waits_for` below): what each does to it (an ``INSERT``, then a ``SELECT``) is outside
  any name.
"""

from __future__ import annotations

import queue
import sys
import threading
import types
import weakref

from nbsteps.model.status import TERMINAL
from nbsteps.run.attempt.threads import plain_data
from nbsteps.run.attempt.walk import PLAIN, SKIP, type_info, walk


class _Discard:
    """A file that keeps nothing (what :func:`has_versions` pickles to without a store)."""

    def write(self, data) -> int:
        return len(data)


def _cloudpickles(value) -> bool:
    import cloudpickle  # (importing nbsteps imports no pickler)

    try:
        cloudpickle.CloudPickler(_Discard(), protocol=5, buffer_callback=lambda b: None).dump(value)
    except Exception:
        return False
    return True


#: ``value -> bool``: whether *value* can be pickled. The stores set it to their own
#: pickler (:mod:`nbsteps.stores`), which leaves the live object as it was (statsmodels'
#: ``__getstate__`` edits the object it pickles); plain cloudpickle until a store is imported.
pickles = _cloudpickles


def has_versions(value) -> bool:
    """Whether a version of *value* can exist apart from the live object: whether it can
    be pickled (see the module doc). Asked only where nbsteps would otherwise copy the value
    or execute the step that made it again, never for every value."""
    return pickles(value)


# -- steps that use one live object keep notebook order -----------------------------------
#
# Run All uses a live object (a database engine over a file, a connection, a generator) from one
# cell after another, and what each cell does to it is outside any name: an ``INSERT`` cell and the
# ``SELECT`` cell below it read the same names and write none the other reads, so by names they are
# independent. With several workers, steps whose inputs hold the same live object therefore run one
# at a time, in notebook order (:func:`waits_for`): a ready step waits while a step above it in the
# run, not finished yet, reads one of the live objects it reads. Found by a bounded walk of what a
# value holds (:func:`live_objects`): an object of a type pickle refuses by itself
# (``sqlite3.Connection``, a socket, an open file, a generator; not a lock nor a queue, see
# _NOT_STATE, nor the process's standard streams),
# decided once per type by asking one instance (``object.__reduce_ex__``, only for a type that
# does not say how it pickles, so it runs no code of a library's own).

_LIVE_TYPES: dict = {}  # type -> whether its objects are live (a C type pickle refuses)
_WALK = 1000  # attributes and items looked at below one value (an engine's pooled connection: ~600)
_DEQUE = 64  # items of a deque looked at (a larger one: none)
_DEPTH = 8


#: not state of their own: references, and locks (what a Barrier, a Queue or a thread-safe pool is
#: made of: objects shared to be used from several threads at once, which order nothing)
_NOT_STATE = (
    weakref.ref,
    weakref.ProxyType,
    weakref.CallableProxyType,
    type(threading.Lock()),
    type(threading.RLock()),
    queue.SimpleQueue,
)


def _streams() -> set:
    """The ids of the process's standard streams (and those it started with): every logging
    handler and progress bar holds one; they order no value (a step's output is its own)."""
    return {id(s) for s in (sys.stdin, sys.stdout, sys.stderr, sys.__stdin__, sys.__stdout__, sys.__stderr__)}


def _own_pickling(t: type) -> bool:
    """Whether a class of *t*'s MRO (not ``object``) says how its objects pickle
    (``__reduce__``/``__reduce_ex__``, or a ``__getstate__`` written in Python, which may edit
    the object: statsmodels')."""
    for c in t.__mro__[:-1]:
        d = c.__dict__
        if "__reduce_ex__" in d or "__reduce__" in d:
            return True
        if isinstance(d.get("__getstate__"), types.FunctionType):
            return True
    return False


def _live_type(obj) -> bool:
    t = type(obj)
    live = _LIVE_TYPES.get(t)
    if live is None:
        live = False
        if not issubclass(t, _NOT_STATE) and not _own_pickling(t):
            try:
                object.__reduce_ex__(obj, 5)  # a C type pickle refuses raises here, and runs no code
            except TypeError as exc:  # "cannot pickle 'X' object"; not another error of the object's
                live = "pickle" in str(exc)  # own code (a slotted class's __getattr__: no weakref)
            except Exception:
                pass
        if len(_LIVE_TYPES) > 4096:  # classes made on the fly
            _LIVE_TYPES.clear()
        _LIVE_TYPES[t] = live
    return live


def live_objects(value) -> list:
    """The live objects *value* is or holds (a breadth-first walk of its attributes and of small
    containers, :func:`nbsteps.run.attempt.walk.walk`, as for thread-bound ones), each once."""
    t = type(value)
    if t in PLAIN or type_info(t) is SKIP:
        return []
    streams = _streams()
    if id(value) in streams:
        return []
    if _live_type(value):
        return [value]
    hits, _ = walk(
        value, depth=_DEPTH, budget=_WALK, data_attrs=False, found=_live_type, avoid=streams, deques=_DEQUE
    )
    return [obj for _, obj, _ in hits]


def held_ids(v, memo: dict, tied: "dict | None" = None) -> frozenset:
    """The ids of the live objects *v* is, holds or is tied to (:func:`tie`); *memo*: id of a value
    -> those ids, kept by the caller for one run (the values stay alive in the run's records and
    tasks)."""
    ids = memo.get(id(v))
    if ids is None:
        ids = frozenset(id(o) for o in live_objects(v))
        if tied:
            ids = ids | tied.get(id(v), ids)
        memo[id(v)] = ids
        if ids:
            memo[_ANY] = True
    return ids


_ANY = "any"  # a key of the memo of held_ids: some value of the run holds a live object


def tie(tied: dict, memo: dict, values, ids: frozenset) -> None:
    """A step that used live objects *ids* read or made *values*: each that is not plain data
    (:func:`nbsteps.run.attempt.threads.plain_data`) is tied to them from now on (*tied*, kept by
    the run context: id of a value -> ids), and the steps using it keep notebook order with theirs.
    What such a value is to the live object may be in no attribute: SQLAlchemy's session finds
    the objects added to it, and they find it, in registries by id, and ``session.flush()`` sets
    ``user.id``, ``session.rollback()`` expires ``user``'s attributes."""
    for v in values:
        if not plain_data(v):
            i = id(v)
            now = tied.get(i)
            if now is None or not ids <= now:
                tied[i] = ids if now is None else now | ids
                if i in memo:
                    memo[i] = memo[i] | ids


def waits_for(
    ctx, names, task, inputs_of, memo: "dict | None" = None, tied: "dict | None" = None
) -> "str | None":
    """The step above *task*'s step, in this run (*names*) and not finished, that reads a live
    object *task* reads, or one a value it reads is tied to (see above, :func:`tie`), or that reads
    a live object and a value *task* reads that is not plain data (it is tied to it when that step
    ends: ``session.add(user)`` above ``user.id``), else None. *inputs_of(step)*: ``{name: value}``
    of the values that step reads known now (:func:`nbsteps.run.attempt.inputs.held_inputs`).
    *memo*: as for :func:`held_ids`."""
    memo = {} if memo is None else memo

    def held(v) -> frozenset:
        return held_ids(v, memo, tied)

    live: set = set()
    for v in task.inputs.values():
        live.update(held(v))
    # the objects it reads, when some step of the run was found using a live object
    objects = {id(v) for v in task.inputs.values() if not plain_data(v)} if memo.get(_ANY) else ()
    if not live and not objects:
        return None
    pos = ctx.deps.position
    mine = pos.get(task.name, 0)
    records = ctx.records
    for s in names:
        if s == task.name or pos.get(s, 0) >= mine or records[s].status in TERMINAL:
            continue
        uses = shares = False
        for v in inputs_of(s).values():
            ids = held(v)
            if ids and not live.isdisjoint(ids):
                return s
            uses = uses or bool(ids)
            shares = shares or id(v) in objects
        if uses and shares:
            return s
    return None
    pos = ctx.deps.position
    mine = pos.get(task.name, 0)
    records = ctx.records
    for s in names:
        if s == task.name or pos.get(s, 0) >= mine or records[s].status in TERMINAL:
            continue
        for v in inputs_of(s).values():
            if not live.isdisjoint(held(v)):
                return s
    return None


def live_ids(values: dict, memo: "dict | None" = None, tied: "dict | None" = None) -> frozenset:
    """The ids of the live objects *values* are, hold or are tied to (:func:`held_ids`)."""
    memo = {} if memo is None else memo
    out: frozenset = frozenset()
    for v in values.values():
        ids = held_ids(v, memo, tied)
        if ids:
            out = out | ids
    return out


def lane_notes(held: dict) -> dict:
    """step -> why it waits for a step above it (the plan's preview): both read a live object,
    from *held*: step -> the values it reads that are held now (over the steps that will execute,
    in order; :func:`nbsteps.run.attempt.inputs.held_inputs`: a value not read yet, or not made
    yet, is not looked at: the run decides again with the real ones)."""
    notes: dict = {}
    seen: dict = {}  # id of a live object -> (the first step reading it, how it is named there)
    memo: dict = {}
    for s, values in held.items():
        for n in sorted(values):
            value = values[n]
            ids = memo.get(id(value))
            if ids is None:
                ids = memo[id(value)] = [(id(o), type(o).__name__) for o in live_objects(value)]
            for i, kind in ids:
                first = seen.setdefault(i, (s, n))
                if first[0] != s and s not in notes:
                    notes[s] = (
                        f"uses {n} (holds a live {kind}) as {first[0]} above it does: "
                        f"runs after it, one step at a time (Run All's order)"
                    )
    return notes


def used_live(value) -> bool:
    """Whether a change seen in *value* is a use of a live object, not a write: it holds one
    (:func:`live_objects`, whose order the run keeps) and has no versions. A value with no
    versions that holds no live object (a lock inside plain data) stays a write: the run orders
    its readers after it (:mod:`nbsteps.run.observed_writes`)."""
    return bool(live_objects(value)) and not has_versions(value)
