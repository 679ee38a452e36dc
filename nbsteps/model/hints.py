"""Hints keyed by type: what a method does to the object it is called on (SPEC 1, "Observed,
not guessed": library name lists are hints keyed by the type of the actual object, never by
how a variable is spelt).

The analysis (:mod:`nbsteps.model.analysis`) records every method call made on a name
(``CellAnalysis.calls``: the name, the method, whether the result is used, ``inplace=True``).
What such a call does depends on what the object is: ``rng.choice(xs)`` advances a random
generator but only reads a list or a pandas frame; ``ax.plot(x)`` draws on an axes (and so on
its figure) but only reads a frame (``df.plot()`` draws with pyplot). That is decided here, on
the actual object, where it is known:

- when a step is registered, from the value the notebook's namespace holds
  (:func:`resolve_calls`, used by the plan);
- when an attempt starts, from the value the attempt is given
  (:mod:`nbsteps.run.attempt.inputs`): a write a hint finds that the graph did not know is
  made on a private copy and reported like a write seen at run time
  (:mod:`nbsteps.run.observed_writes`), so the readers below it run again after it.

:data:`HINTS` is keyed by the qualified public name of a type and a method
(``numpy.ndarray.sort``; ``*``: every method of that type), matched along the method
resolution order of the object's type: a subclass of ``list`` or of ``networkx.Graph``
gets its base's hints. A type is known by its module's public prefixes
(``pandas.core.frame.DataFrame`` is ``pandas.DataFrame``; ``numpy.random._generator.Generator``
is ``numpy.random.Generator``). A call no hint covers is decided by observation: the digests
of :mod:`nbsteps.run.attempt.observe` see the change, if any.
"""

from __future__ import annotations

import threading
from typing import Any, NamedTuple

#: the method changes its receiver
ALWAYS = "always"
#: the method changes its receiver when called with ``inplace=True``
INPLACE = "inplace"


def _hints(text: str) -> dict:
    """``type.{m1,m2} other.* = condition`` by line: ``{"type.m1": condition, ...}``."""
    table = {}
    for line in text.strip().splitlines():
        names, _, cond = line.partition("=")
        for word in names.split():
            head, _, alts = word.partition("{")
            for key in [head + m for m in alts.rstrip("}").split(",")] if alts else [word]:
                table[key] = cond.strip()
    return table


#: ``qualified type.method`` -> condition under which it changes its receiver. Listed: what the digests of
#: nbsteps.run.attempt.observe cannot see (a generator's state is kept in C; an axes keeps its artists and a
#: networkx graph its adjacency in private containers, compared by identity only), and the common
#: in-place methods of arrays, lists and dicts, so the private copy is made before the step runs rather
#: than after an observed write and a second pass; pandas objects change only with ``inplace=True``.
HINTS = _hints("""
numpy.random.Generator.* numpy.random.RandomState.* numpy.random.BitGenerator.* = always
random.Random.* torch.Generator.* = always
matplotlib.axes.Axes.{plot,hist,boxplot,scatter,bar,imshow} = always
networkx.Graph.{add_edge,add_edges_from,add_node,add_nodes_from,remove_edge,remove_node} = always
numpy.ndarray.{sort,fill,resize,put,partition} = always
list.{append,extend,insert,sort,pop} dict.{update,pop,setdefault} set.{add,update} = always
pandas.DataFrame.* pandas.Series.* = inplace
""")

#: the type keys of HINTS -> {method: condition}
_BY_TYPE: dict[str, dict] = {}
for _key, _cond in HINTS.items():
    _t, _, _m = _key.rpartition(".")
    _BY_TYPE.setdefault(_t, {})[_m] = _cond


class Hint(NamedTuple):
    """A hint that applies: the type it is keyed by, the method, and the condition."""

    type: str
    method: str
    condition: str

    def __str__(self) -> str:
        return f"{self.type}.{self.method}"


def type_names(cls: type) -> list:
    """The public names *cls* may be known by, most specific first: ``numpy.random.Generator``
    for ``numpy.random._generator.Generator``; ``list`` for a builtin."""
    module, qual = getattr(cls, "__module__", "") or "", getattr(cls, "__qualname__", cls.__name__)
    if module == "builtins":
        return [qual]
    parts = module.split(".")
    names = [".".join(parts[:i] + [qual]) for i in range(len(parts), 0, -1)]
    # private modules (numpy.random._generator) are left out by the public prefixes above
    return names


_cache: dict = {}
_lock = threading.Lock()


def _lookup(cls: type, method: str) -> "Hint | None":
    key = (cls, method)
    try:
        return _cache[key]
    except (KeyError, TypeError):
        pass
    found = None
    for base in getattr(cls, "__mro__", (cls,)):
        for name in type_names(base):
            methods = _BY_TYPE.get(name)
            if methods is None:
                continue
            cond = methods.get(method, methods.get("*"))
            if cond is not None and not (
                method.startswith("__") and "*" in methods and method not in methods
            ):
                found = Hint(name, method, cond)
                break
        if found is not None:
            break
    with _lock:
        if len(_cache) > 10_000:
            _cache.clear()
        try:
            _cache[key] = found
        except TypeError:  # an unhashable metaclass instance
            pass
    return found


def writes(value: Any, method: str, inplace: bool = False) -> "Hint | None":
    """The hint by which calling *method* on *value* changes *value*, or None (no hint
    says so: a read, or a change left to observation)."""
    hint = _lookup(type(value), method)
    if hint is None:
        return None
    if hint.condition == INPLACE and not inplace:
        return None
    return hint


def resolve_calls(calls, values: dict) -> dict:
    """``{name: Hint}`` for the method *calls* (``(name, method, used, inplace)``, see
    ``CellAnalysis.calls``) on names whose value is in *values* and that a hint says
    change it (the first such call per name)."""
    out: dict = {}
    for name, method, _used, inplace in calls:
        if name in out or name not in values:
            continue
        hint = writes(values[name], method, inplace)
        if hint is not None:
            out[name] = hint
    return out


def at_registration(step, namespace: dict) -> tuple:
    """``(hints, reads)`` for *step* from the values its names have in *namespace* when it is
    registered: ``{name: "type.method"}`` of the calls a hint says change their receiver, and
    the names it was only assumed to change (``x.plot()``) whose value no hint says it changes
    (a frame, a series: read). Names not in *namespace* keep the analysis' prediction."""
    a = step.analysis
    if a is None or not a.calls:
        return {}, frozenset()
    found = resolve_calls(a.calls, namespace)
    reads = frozenset(n for n in a.assumed if n in namespace and n not in found)
    return {n: str(h) for n, h in found.items()}, reads
