"""The bounded walk of what a value holds, which finds the thread-bound values
(:mod:`nbsteps.run.attempt.threads`) and the live objects (:mod:`nbsteps.run.attempt.live`) a
value holds.

What an object holds is the values of its ``__dict__`` (its first 64), of its ``__slots__`` (member
descriptors, C ones included) and the items of a list, tuple, set, frozenset or dict of at most 64
(subclasses too, read through the base type, so no code of the object's class runs)
(:func:`children`). :func:`walk` goes breadth-first from the value, each object once (by id), a
number of levels down, within budgets of attributes and items looked at. Never looked into: plain
values (numbers, strings, bytes, None), modules, classes, functions and methods (shared by every
thread), ``threading.Thread`` objects, code, frames and tracebacks, larger containers; an
array-like (a class with ``__array__``: numpy arrays, pandas objects, tensors) is never walked
below its own attributes (its data). What a type is (skipped, a kind a caller looks for, its
slots) is kept per type (:func:`type_info`).
"""

from __future__ import annotations

import itertools
import math
import threading
import types
from collections import deque

#: values never looked into, and never found (checked first, by exact type)
PLAIN = frozenset({int, float, complex, str, bytes, bool, type(None), range, slice})
#: never looked into, here nor by the check of writes (:mod:`nbsteps.run.attempt.observe`, which
#: adds its own): modules, classes and functions are shared by every thread (whatever thread-locals
#: they keep); code and frames are the interpreter's
OPAQUE = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
)
#: never looked into, nor found: OPAQUE; a ``threading.Thread`` holds its own ident, not its
#: maker's; tracebacks are the interpreter's. Not observe's generators and coroutines: nothing
#: is found below one (its code only), but one can be found itself (a value held with a changed
#: one, :mod:`nbsteps.run.attempt.together`), which a type skipped here never is
_NEVER = (*OPAQUE, types.TracebackType, threading.Thread)
SCAN = 64  # attributes or items of one object looked at (a larger container: none)
_CONTAINERS = (dict, list, tuple, set, frozenset)

SKIP = 0
#: kinds -> type -> what the walk does with its objects (_type_info)
_types: dict = {}


def type_name(t: type) -> str:
    return t.__name__ if t.__module__ in ("builtins", "__main__") else f"{t.__module__}.{t.__name__}"


def _type_info(t: type, kinds: tuple):
    """``SKIP`` (never looked into), the name of one of *kinds*, or ``(container base or None,
    data, slot descriptors, has a __dict__)``; *data*: an array-like (a class with
    ``__array__``: numpy arrays, pandas objects, tensors)."""
    if t in PLAIN or issubclass(t, _NEVER):
        return SKIP
    if issubclass(t, kinds):
        return type_name(t)
    mro = t.__mro__
    base = next((b for b in _CONTAINERS if issubclass(t, b)), None)
    data = any("__array__" in c.__dict__ for c in mro)
    slots = tuple(
        v
        for c in mro
        if c is not object
        for v in c.__dict__.values()
        if type(v) is types.MemberDescriptorType
    )
    return (base, data, slots, t.__dictoffset__ != 0)


def type_info(t: type, kinds: tuple = ()):
    """_type_info, kept (one table per tuple of kinds: threads may walk with different ones)."""
    table = _types.get(kinds)
    if table is None or len(table) > 4096:  # new kinds loaded; classes made on the fly
        table = _types[kinds] = {}
    info = table.get(t)
    if info is None:
        info = table[t] = _type_info(t, kinds)
    return info


def children(obj, info) -> list:
    """The attributes (``__dict__``, ``__slots__``) and items (of a container of at most SCAN)
    of *obj*, read without running code of its class."""
    base, _, slots, has_dict = info
    out: list = []
    try:
        if base is not None and base.__len__(obj) <= SCAN:
            out.extend(dict.values(obj) if base is dict else base.__iter__(obj))
        if has_dict:
            d = object.__getattribute__(obj, "__dict__")
            if type(d) is dict:
                out.extend(d.values() if len(d) <= SCAN else itertools.islice(d.values(), SCAN))
    except Exception:  # a __dict__ that is none, a container changed meanwhile
        pass
    for s in slots:
        try:
            out.append(s.__get__(obj))
        except Exception:  # an empty slot
            pass
    return out


class Budget:
    """Attributes and items left to look at, shared by the walks of one call (several values)."""

    __slots__ = ("left",)

    def __init__(self, left: float = math.inf):
        self.left = left


_UNLIMITED = Budget()  # (its left stays infinite)


def walk(
    value,
    *,
    depth: int,
    budget: int,
    kinds: tuple = (),
    shared: "Budget | None" = None,
    own_free: bool = False,
    data_attrs: bool = True,
    found=None,
    number=None,
    first: bool = False,
    avoid: "set | None" = None,
    deques: int = 0,
) -> "tuple[list, list]":
    """Breadth-first below *value* (an object :func:`type_info` does not skip), at most *depth*
    attributes or items down; ``(hits, nodes)``: *hits* are ``(index in nodes of the object
    holding it, object, kind)``, *nodes* ``(object, index of the one holding it)`` of the objects
    walked, *value* first (the path to a hit, for a message).

    A hit: an object of one of *kinds* (its kind: its type's name), one *found(obj)* is true of
    (kind ``''``), an ``int`` above 0xFFFF *number(n)* is true of (kind ``''``); a hit is not
    walked, and with *first* the walk ends at the first one. *budget*: attributes and items
    looked at below *value* (with *own_free*, the value's own are not counted: they are always
    looked at), also counted in *shared*; the walk ends when one is spent. *data_attrs*: an
    array-like's own attributes are looked at, not what they hold (*value* too); else an
    array-like below *value* is not looked into (*value* is walked as any object). *avoid*: ids
    of objects never looked at. *deques*: the items of a ``collections.deque`` of at most that
    many are looked at too (a pool's idle connections sit in one)."""
    nodes = [(value, -1)]
    level = [0]
    seen = {id(value)} if avoid is None else {id(value), *avoid}
    hits: list = []
    left = budget
    shared = _UNLIMITED if shared is None else shared
    once = found is not None  # seen first, so that an object is found once (else: before walking it)
    free = 1 if own_free else 0  # levels whose attributes and items are not counted
    plain, known, add, put = PLAIN, _types.setdefault(kinds, {}).get, seen.add, nodes.append
    d = 0
    while level and d < depth:
        d += 1
        below = []
        for i in level:
            obj = nodes[i][0]
            oinfo = known(type(obj)) or type_info(type(obj), kinds)
            kids = children(obj, oinfo)
            if deques and type(obj) is deque and len(obj) <= deques:
                kids.extend(obj)
            if d > free:
                left -= len(kids)
                shared.left -= len(kids)
            deeper = d < depth and not (data_attrs and oinfo[1])
            for child in kids:
                ct = type(child)
                if ct in plain:
                    if ct is int and number is not None and child > 0xFFFF and number(child):
                        hits.append((i, child, ""))
                        if first:
                            return hits, nodes
                    continue
                cinfo = known(ct)
                if cinfo is None:
                    cinfo = type_info(ct, kinds)
                if cinfo is SKIP or (once and id(child) in seen):
                    continue
                if type(cinfo) is str or (once and found(child)):
                    add(id(child))
                    hits.append((i, child, cinfo if type(cinfo) is str else ""))
                    if first:
                        return hits, nodes
                elif deeper and (data_attrs or not cinfo[1]) and (once or id(child) not in seen):
                    add(id(child))
                    below.append(len(nodes))
                    put((child, i))
            if left <= 0 or shared.left <= 0:
                return hits, nodes
        level = below
    return hits, nodes
