"""Writes checked at run time: the values a step changed that the analysis did not predict.

The analysis (:mod:`nbsteps.model.analysis`) predicts which inputs a step changes in
place; those get a private copy (:func:`nbsteps.run.attempt.task.private_copy`). It
cannot see every change: ``np.add.at(counts, idx, 1)``, ``np.negative(A, out=A)``, or a
function of a library nobody listed that changes its argument and returns something
(``n = mylib.scale_inplace(arr)``). So around every attempt the task takes a cheap
:func:`digest` of each input it was predicted *not* to change, and compares after the
attempt succeeds (:func:`watch`, :func:`changed`). A name whose digest differs was
written by the step: the attempt returns it as an output (the changed object is that
step's version, as in Run All), and the executor and the plan make it a write of the
step from then on (``Step.observed``; see :mod:`nbsteps.run.executor`).

The digest is a walk of the value's object graph, bounded (:data:`DEPTH` levels,
:data:`LIMIT` objects, :data:`ITEMS` items per container):

- anything exposing a buffer (numpy arrays, ``bytearray``, ``array.array``): its shape,
  strides and format and a CRC-32 of its bytes (``zlib.crc32`` reads the buffer in
  place, without a copy, at about 2 GB/s and releases the GIL; a non-contiguous array is
  copied once); pandas objects by the arrays of their block manager, the same way (an
  Arrow-backed column by its Arrow array, which pandas replaces on a write);
- lists, dicts, sets, deques and numpy object arrays (``fig, axs = plt.subplots(1, 2)``):
  which objects they hold (identities, in order), then those objects in turn;
- any other object: its attribute layout (``__dict__`` and ``__slots__``: which
  attributes, bound to which objects), then those objects: the comparison
  :mod:`nbsteps.run.upstream_caches` makes, made general. A dict, list or set held in a
  private attribute (``_cache``) is the object's own bookkeeping, which reads fill
  (statsmodels' ``cache_readonly``, pandas' indexes): it is compared by identity only, and
  one that appears is no change (:func:`same`: a read binds it the first time,
  ``self.__dict__.setdefault("_summary_statistics_cache", {})``);
  a pandas object's index and columns likewise (pandas replaces them, never changes them);
- an object of a class that defines both value equality and a hash (``__eq__`` and
  ``__hash__``, not ``object``'s, and the hash works): Python's data model asks such objects
  not to change in a way that changes their value, so its value is its hash, and its private
  attributes (``_``-prefixed) are its own memos, which reads fill: SymPy's expressions cache
  their hash (``_mhash``, ``None`` until the first ``hash()``) and what was found of their
  assumptions; ``expr.subs(z, 0)`` hashes ``z`` and did not change it. Compared by its hash
  and its public attributes (walked as any others): matplotlib's ``FontProperties``, whose
  hash is that of its properties, shows a ``set_size()`` as before.

- a handle on a native object (every attribute a native object Python cannot see into, no
  attributes, buffer or value hash of its own, or a scalar: polars' DataFrame holds only
  ``_df``, a Rust ``PyDataFrame``; ``df.insert_column(1, s)`` changes it and nothing Python
  sees): also a CRC-32 of the state its class says it holds, its own ``__getstate__`` (what
  pickle stores: a polars frame's columns in Arrow's IPC format, about 3 times the cost of the
  CRC of a numpy array of the same bytes). Richer objects holding native parts (a lock, an
  ``itertools.count``) are walked as any others. A state a read changes (a polars LazyFrame
  holding a Python function, once collected) makes the reading step a writer of the value:
  more executes, the values are the same;

Immutable values (numbers, strings, bytes, ``None``, tuples and frozensets of them,
frozen dataclasses of them, enums) are never checked: ``random_state=SEED`` only reads
``SEED``. Modules, classes and functions are not checked either (a module's dict is large
and names are bound in it on import). State kept in C (a random generator's bit
generator) is not seen: the analysis' rules cover draws.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import pickle
import time
import types
import zlib
from collections import deque
from typing import Any

from nbsteps.run.attempt import walk

DEPTH = 3  # res -> model -> data -> predict_dates
LIMIT = 2000  # objects looked at per input
ITEMS = 10_000  # items of a list, dict or set whose identities are compared (and then walked)

_SCALARS = (int, float, complex, str, bytes, bool, type(None), range, slice, enum.Enum)
#: never checked, never walked into: the walk's (:data:`nbsteps.run.attempt.walk.OPAQUE`: modules,
#: classes, functions, code, frames), and generators and coroutines, whose state is in their frame.
#: Not the walk's other two: a ``threading.Thread``'s attributes change when a step starts it (a
#: write of that step); a traceback is looked at as a native object (:func:`_blind`)
_OPAQUE = (*walk.OPAQUE, types.GeneratorType, types.CoroutineType)

_CONTAINERS = (dict, list, set, deque)

#: time spent digesting and inputs digested, for measurements (``python -m bench``)
COST = {"seconds": 0.0, "inputs": 0}


def immutable(value: Any, depth: int = 0) -> bool:
    """Whether *value* can never change: scalars, and tuples, frozensets and frozen
    dataclasses made of them (to a small depth)."""
    if isinstance(value, _SCALARS):
        return True
    if depth > 3:
        return False
    if type(value) in (tuple, frozenset):
        return len(value) <= ITEMS and all(immutable(v, depth + 1) for v in value)
    params = getattr(type(value), "__dataclass_params__", None)
    if params is not None and params.frozen and not isinstance(value, type):
        return all(immutable(getattr(value, f.name, None), depth + 1) for f in dataclasses.fields(value))
    return False


def _buffer(obj: Any):
    """``(shape, strides, format, crc)`` of an object exposing a buffer, else None."""
    try:
        view = memoryview(obj)
    except (TypeError, ValueError):  # no buffer
        return None
    try:
        if view.contiguous:
            crc = zlib.crc32(view if view.c_contiguous else view.tobytes("A"))
        else:
            crc = zlib.crc32(view.tobytes())
        return (view.shape, view.strides, view.format, crc)
    except (TypeError, ValueError, BufferError):  # an unusual buffer: compared by identity only
        return ()
    finally:
        view.release()


def _frame_arrays(obj: Any) -> "list | None":
    """The arrays holding a pandas object's data (its block manager's), else None."""
    mgr = getattr(obj, "_mgr", None) if type(obj).__module__.startswith("pandas") else None
    if mgr is None:
        return None
    try:
        arrays = list(mgr.arrays)
    except Exception:  # pragma: no cover - another kind of manager
        return None
    out = []
    for a in arrays:  # an extension array keeps its data in numpy arrays (codes, mask) or arrow
        inner = [getattr(a, k, None) for k in ("_ndarray", "_data", "_mask", "_codes", "_pa_array")]
        out.extend([x for x in inner if x is not None] or [a])
    return out


def _object_items(obj: Any) -> list:
    """The first :data:`ITEMS` objects a numpy object array holds (``plt.subplots(2)``'s axes); none for
    anything else: ``tolist()`` of an array that holds no Python objects (pandas' Arrow-backed strings, whose
    dtype is an object dtype too) makes new ones on every call, new identities, no change."""
    if type(obj).__module__.partition(".")[0] != "numpy":
        return []
    try:
        return obj.ravel()[:ITEMS].tolist()
    except Exception:  # an unusual array: its objects are not walked
        return []


def _children(obj: Any) -> "tuple[tuple, list, frozenset | None]":
    """``(layout, objects to walk, bookkeeping)`` of a container or an ordinary object
    (bookkeeping: an ordinary object's private containers, ``{(attribute, id)}``; else None)."""
    if isinstance(obj, (list, deque)):
        items = list(obj) if len(obj) <= ITEMS else list(obj)[:ITEMS]
        return (len(obj), tuple(map(id, items))), items, None
    if isinstance(obj, dict):
        pairs = list(obj.items())[:ITEMS]
        return (
            (len(obj), tuple((k, id(v)) for k, v in pairs if isinstance(k, _SCALARS))),
            [v for _, v in pairs],
            None,
        )
    if isinstance(obj, (set, frozenset)):
        items = list(obj)[:ITEMS]
        return (len(obj), frozenset(map(id, items))), items, None
    attrs = _attributes(obj)
    # a container in a private attribute (``_cache``) is the object's own bookkeeping, filled by reads
    # (statsmodels' cache_readonly, pandas' Index): compared by identity, not walked into; one bound
    # since is a cache a read made (see same()). A private attribute bound to None is left out: a
    # slot a read fills the first time (xarray's ``_attrs``: None, then ``{}``) is such a container
    # appearing, and None -> any other object still shows in the layout as a change.
    own = [(k, v) for k, v in attrs if isinstance(k, str) and k[:1] == "_" and isinstance(v, _CONTAINERS)]
    if own or any(v is None for _, v in attrs):
        attrs = [
            (k, v)
            for k, v in attrs
            if not (isinstance(k, str) and k[:1] == "_" and (v is None or isinstance(v, _CONTAINERS)))
        ]
    return tuple((k, id(v)) for k, v in attrs), [v for _, v in attrs], frozenset((k, id(v)) for k, v in own)


def _cached_properties(cls: type) -> frozenset:
    """The names of ``functools.cached_property`` attributes of *cls*: the first read stores the
    value in the instance's ``__dict__`` (networkx's ``G.edges``), a cache, not a change."""
    found = _CACHED.get(cls)
    if found is None:
        found = frozenset(
            n for k in cls.__mro__ for n, v in vars(k).items() if isinstance(v, functools.cached_property)
        )
        if len(_CACHED) < 10_000:
            _CACHED[cls] = found
    return found


_CACHED: dict = {}


def _value_hash(obj: Any) -> "int | None":
    """The hash of an object whose class defines value equality and a hash (see the module doc),
    else None. Builtin types and tuples are left to the other rules (their items are walked)."""
    cls = type(obj)
    ok = _VALUE_CLASSES.get(cls)
    if ok is None:
        h = getattr(cls, "__hash__", None)
        ok = (
            h is not None
            and h is not object.__hash__
            and getattr(cls, "__eq__", None) is not object.__eq__
            and cls.__module__ != "builtins"
            and not issubclass(cls, (tuple, frozenset, *_CONTAINERS))
        )
        if len(_VALUE_CLASSES) < 10_000:
            _VALUE_CLASSES[cls] = ok
    if not ok:
        return None
    try:
        return hash(obj)
    except Exception:  # a class that refuses a hash (pandas' Index raises TypeError): not a value
        if len(_VALUE_CLASSES) < 10_000:
            _VALUE_CLASSES[cls] = False
        return None


_VALUE_CLASSES: dict = {}


def _attributes(obj: Any) -> list:
    try:
        d = object.__getattribute__(obj, "__dict__")
    except (AttributeError, TypeError):
        d = None
    attrs = list(d.items()) if isinstance(d, dict) and d is not obj else []
    if attrs:
        cached = _cached_properties(type(obj))
        if cached:
            attrs = [(k, v) for k, v in attrs if k not in cached]
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            try:
                attrs.append((slot, object.__getattribute__(obj, slot)))
            except (AttributeError, TypeError):
                pass
    return attrs


def _blind(obj: Any) -> bool:
    """Whether *obj* is an object whose data Python cannot see: not a scalar, container, module or
    function, no buffer, no attributes, no value hash (a native object: polars' ``PyDataFrame``,
    which holds a DataFrame's columns in Rust)."""
    if isinstance(obj, (*_OPAQUE, *_SCALARS, *_CONTAINERS, tuple, frozenset)):
        return False
    if hasattr(type(obj), "__dict__") and "__dict__" in type(obj).__dict__ or _attributes(obj):
        return False  # a Python class's instance (whose attributes are walked), or one with slots
    return _buffer(obj) is None and _value_hash(obj) is None


def _handle(children: list) -> bool:
    """Whether an object whose attributes (all of them, private ones too) are *children* is a
    handle on a native object: each attribute is one Python cannot see into (:func:`_blind`)
    or a scalar, and one at least is native (polars' DataFrame holds only ``_df``, its Series
    only ``_s``). A richer object (a figure, an estimator, matplotlib's ``_AxesStack`` with its
    ``itertools.count``) is walked attribute by attribute as before: its native parts (locks,
    counters, weak references) are not where its data is."""
    return any(not isinstance(c, _SCALARS) for c in children) and all(
        isinstance(c, _SCALARS) or _blind(c) for c in children
    )


def _state(obj: Any) -> "int | None":
    """A CRC-32 of the state *obj*'s class says it holds (its own ``__getstate__``, what pickle
    stores): polars' DataFrame and Series give their columns in Arrow's IPC format, a LazyFrame its
    plan. None when the class does not say (``object``'s ``__getstate__``) or refuses."""
    getstate = getattr(type(obj), "__getstate__", None)
    if getstate is None or getstate is object.__getstate__:
        return None
    try:
        state = getstate(obj)
        if isinstance(state, str):
            state = state.encode()
        elif not isinstance(state, (bytes, bytearray, memoryview)):
            state = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        return zlib.crc32(state)
    except Exception:  # a state that cannot be had or pickled: not compared
        return None


def digest(value: Any) -> "tuple | None":
    """A bounded summary of *value* that changes when it is changed in place (see the
    module doc); None for a value that is never checked."""
    if isinstance(value, _OPAQUE) or immutable(value):
        return None
    parts = []
    seen: set = set()
    todo = [(value, 0)]
    while todo and len(seen) < LIMIT:
        obj, depth = todo.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE) or isinstance(obj, _SCALARS):
            continue
        seen.add(id(obj))
        buf = _buffer(obj)
        if buf is not None:
            parts.append((id(obj), buf))
            if buf and buf[2] == "O" and depth < DEPTH:  # an object array's buffer holds pointers only:
                # the objects it points to in turn (bars drawn on ``axs[1]`` change an axes in the array)
                todo.extend((c, depth + 1) for c in _object_items(obj) if not isinstance(c, _SCALARS))
            continue
        arrays = _frame_arrays(obj)
        if arrays is not None:
            # axes by identity (pandas replaces an Index, never changes one; they cache on reads)
            axes = (id(obj.index), id(getattr(obj, "columns", None)))
            parts.append((id(obj), tuple(map(id, arrays)), axes))
            todo.extend((a, depth) for a in arrays if a is not None)  # the frame's own data: same level
            continue
        key = _value_hash(obj)
        if key is not None:  # a value object: its hash, and its public attributes (see the module doc)
            public = [(k, v) for k, v in _attributes(obj) if not (isinstance(k, str) and k[:1] == "_")]
            parts.append((id(obj), type(obj), (tuple((k, id(v)) for k, v in public), key)))
            if depth < DEPTH:
                todo.extend((v, depth + 1) for _, v in public if not isinstance(v, _SCALARS))
            continue
        layout, children, own = _children(obj)
        parts.append((id(obj), type(obj), layout) if own is None else (id(obj), type(obj), layout, own))
        if _handle([v for _, v in _attributes(obj)]):  # its data is out of Python's sight: what it pickles
            parts.append((id(obj), "state", _state(obj)))
        if depth < DEPTH:
            todo.extend((c, depth + 1) for c in children if not isinstance(c, _SCALARS))
    return tuple(parts)


def watch(inputs: dict, names) -> dict:
    """``{name: digest}`` of the *names* of *inputs* worth checking."""
    t0 = time.perf_counter()
    out = {}
    for n in names:
        if n in inputs:
            d = digest(inputs[n])
            if d is not None:
                out[n] = d
    COST["seconds"] += time.perf_counter() - t0
    COST["inputs"] += len(out)
    return out


def same(before: "tuple | None", after: "tuple | None") -> bool:
    """Whether digest *after* shows no change since *before*: equal, but for private containers
    bound on an object since (its own bookkeeping, a cache a read made: statsmodels' results
    ``self.__dict__.setdefault("_summary_statistics_cache", {})`` when ``res.aic`` is read).
    A private container rebound or removed is a change."""
    if before == after:
        return True
    if before is None or after is None or len(before) != len(after):
        return False
    return all(
        a == b or (len(a) == len(b) == 4 and a[:3] == b[:3] and a[3] <= b[3])
        for a, b in zip(before, after, strict=True)
    )


def changed(before: dict, inputs: dict) -> tuple:
    """The names of *before* whose value's digest shows a change (sorted; see :func:`same`)."""
    t0 = time.perf_counter()
    out = tuple(sorted(n for n, d in before.items() if not same(d, digest(inputs[n]))))
    COST["seconds"] += time.perf_counter() - t0
    return out
