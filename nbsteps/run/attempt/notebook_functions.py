"""Notebook functions called by a step see the names defined after them.

In Run All every cell shares one global namespace, so a function looks its
global names up when it is called: a helper defined in one cell may use a
module imported, or a value assigned, only in a later cell that calls it::

    def rescale(c):            # cell 3
        return c - np.log(c)   # np is not defined yet
    import numpy as np         # cell 4
    r = rescale(2.0)

A step runs in a private namespace, and a function another step (or an
ordinary cell) defined keeps its own namespace as its globals, so the call
above would raise ``NameError``. Before a step runs, :func:`link_helpers` looks
at the notebook-defined functions its code names (and, transitively, the ones
their code names): when one of them uses a name its own globals lack but the
step has or defines, they are rebound to the step's namespace (copies of the
functions; the originals are untouched), as Run All's single namespace would
have it, and so they are when the step holds another version of a name they use
(Run All looks a global up when the function is called); the names they use
that the step does not mention get the version of the nearest step above the
step, else keep the values their own cell gave them. Otherwise nothing changes
(same objects). Methods of notebook classes are not followed. The global names
these functions read are inputs of the calling step (``Step.called_reads``), so
it comes after the steps writing them and is stale when one changes.
"""

from __future__ import annotations

import builtins
import types
from typing import Callable, Iterable

_BUILTINS = vars(builtins)


def _code_names(code: types.CodeType) -> set:
    names: set = set()
    stack = [code]
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))
    return names


def _is_helper(obj) -> bool:
    return type(obj) is types.FunctionType and getattr(obj, "__module__", None) in ("__main__", None)


def _rebind(fn: types.FunctionType, globs: dict) -> types.FunctionType:
    new = types.FunctionType(fn.__code__, globs, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__module__ = fn.__module__
    new.__dict__.update(fn.__dict__)
    if fn.__annotations__:
        new.__annotations__ = dict(fn.__annotations__)
    return new


def link_helpers(
    codes: Iterable[types.CodeType], ns: dict, above: "Callable[[str], tuple[bool, object]] | None" = None
) -> None:
    """Before a step's *codes* run in *ns* (its namespace): if a notebook
    function they reach by global name (transitively) uses a name its own
    globals lack and the step has or defines, the reachable functions are
    rebound to *ns*, as in Run All's single namespace. A name they use that
    the step does not mention gets the version the step's position implies:
    *above(name)* gives ``(True, value)`` for the nearest step above that
    wrote it; else the function's own cell's value, else what *ns* has."""
    mentioned: set = set()
    for code in codes:
        if code is not None:
            mentioned |= _code_names(code)
    reach, needs = _reachable(mentioned, ns)
    if not needs:
        return
    rebound = {i: _rebind(fn, ns) for i, fn in reach.items()}
    _overlay(reach.values(), rebound, mentioned, ns, above)
    for k, v in list(ns.items()):
        if type(v) is types.FunctionType and id(v) in rebound:
            ns[k] = rebound[id(v)]


def _reachable(mentioned: set, ns: dict) -> "tuple[dict[int, types.FunctionType], bool]":
    """The notebook functions reached from the *mentioned* names of *ns* (by
    id), and whether they must be rebound to *ns*: one uses a name its own
    globals lack that the step has or mentions, or that the step has in
    another version."""
    reach: dict[int, types.FunctionType] = {}
    needs = False
    todo = [(n, ns) for n in mentioned]
    while todo:
        name, where = todo.pop()
        fn = where.get(name)
        if not _is_helper(fn) or id(fn) in reach or fn.__globals__ is ns:
            continue
        reach[id(fn)] = fn
        globs = fn.__globals__
        for n in _code_names(fn.__code__):
            if n in globs:
                todo.append((n, globs))
                if n in ns and ns[n] is not globs[n] and not _is_helper(globs[n]):
                    needs = True  # the step has another version of it: Run All looks it up when called
            elif n not in _BUILTINS and (n in ns or n in mentioned):
                needs = True  # Run All would find it; the function's own namespace would not
    return reach, needs


def _overlay(functions, rebound: dict, mentioned: set, ns: dict, above) -> None:
    """Put in *ns* each name the *functions* use that the step does not
    mention: the nearest step above's value (*above*), else the function's own
    cell's; functions among them as rebound."""
    overlaid: set = set()
    for fn in functions:
        globs = fn.__globals__
        for n in _code_names(fn.__code__):
            if n in mentioned or n in overlaid:
                continue
            found, v = above(n) if above is not None else (False, None)
            if not found:
                if n not in globs:
                    continue
                v = globs[n]
            ns[n] = rebound.get(id(v), v) if type(v) is types.FunctionType else v
            overlaid.add(n)


def _private(fn: types.FunctionType, user_ns: dict) -> bool:
    """Whether *fn* is a notebook function bound to another namespace than *user_ns* (the
    private one of the step that defined it)."""
    g = fn.__globals__
    return g is not user_ns and fn.__module__ == "__main__" and g.get("__name__") == "__main__"


def _member(m, user_ns: dict, memo: dict):
    """Class member *m* with its functions rebound to *user_ns* (itself if none is)."""
    if type(m) is types.FunctionType:
        return _rebound(m, user_ns, memo)
    if isinstance(m, (staticmethod, classmethod)):
        fn = m.__func__
        new = _rebound(fn, user_ns, memo) if type(fn) is types.FunctionType else fn
        return m if new is fn else type(m)(new)
    if type(m) is property:
        old = (m.fget, m.fset, m.fdel)
        parts = [_rebound(f, user_ns, memo) if type(f) is types.FunctionType else f for f in old]
        if all(a is b for a, b in zip(parts, old, strict=True)):
            return m
        return property(*parts, m.__doc__)
    return m


def _rebound(fn: types.FunctionType, user_ns: dict, memo: dict) -> types.FunctionType:
    if not _private(fn, user_ns):
        return fn
    hit = memo.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    new = _rebind(fn, user_ns)
    memo[id(fn)] = (fn, new)  # (the original kept: its id is not another function's meanwhile)
    return new


def _bound(value, user_ns: dict, memo: dict):
    """*value* with the notebook functions in it bound to *user_ns*: a function's copy, or a
    class of the notebook with its methods rebound in place (itself)."""
    if type(value) is types.FunctionType:
        return _rebound(value, user_ns, memo)
    if isinstance(value, type) and value.__module__ == "__main__":
        for attr, m in list(vars(value).items()):
            new = _member(m, user_ns, memo)
            if new is not m:
                setattr(value, attr, new)
    return value


def to_namespace(outputs: dict, user_ns: dict) -> None:
    """When a step that executed completes: the notebook functions it defined (among its
    *outputs*, and the methods of the classes it defined) look their globals up in *user_ns*,
    the notebook's, from now on. In Run All a function called later, from an ordinary cell or
    a step, sees the notebook's values as they are then (``T = 10`` after ``def f(): return
    T * 2`` makes ``f()`` 20), not those of the private namespace the step ran in. The
    functions are replaced in *outputs* by copies (:func:`_rebind`; one copy per function),
    the methods of a class in place. Its checkpoint was written before, with the functions as
    they ran. Calls from a step still see the versions its position implies
    (:func:`link_helpers`)."""
    memo: dict = {}  # id of a function -> it and its copy
    for k, v in outputs.items():
        new = _bound(v, user_ns, memo)
        if new is not v:
            outputs[k] = new


def bound_to(user_ns: dict) -> "Callable[[object], object]":
    """What a restored value is in the kernel whose namespace is *user_ns*: a notebook function
    (or class) read back from a checkpoint looks its globals up there, as the function it was
    (:func:`to_namespace`) and as in Run All."""
    memo: dict = {}  # one copy of a function read under two names (h = f: h is f)
    return lambda value: _bound(value, user_ns, memo)


def names_read(value) -> "set[str]":
    """The global names a notebook function (or the methods of a notebook class) *value* reads
    when called: what must be in the namespace for it to run (none for other values)."""
    if type(value) is types.FunctionType:
        return _code_names(value.__code__)
    if isinstance(value, type) and value.__module__ == "__main__":
        names: set = set()
        for m in vars(value).values():
            fn = m.__func__ if isinstance(m, (staticmethod, classmethod)) else m
            if type(fn) is types.FunctionType:
                names |= _code_names(fn.__code__)
        return names
    return set()
