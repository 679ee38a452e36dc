"""Values held together with a value a step changes in place, so that its private copy
keeps what other names share with it.

A step that changes an input in place works on a private copy
(:func:`nbsteps.run.attempt.task.private_copy`), so that the version above it stays intact. In
Run All, the other names that share objects with the changed value see the change:
``scaler = StandardScaler(); pipe = make_pipeline(scaler, clf)``, then ``pipe.fit(X, y)`` fits
``scaler`` too; ``user_table = Table("user", metadata)``, then ``Table("address", metadata)``
adds a table that ``user_table.metadata`` holds. A copy of the changed value alone leaves the
other name on the original, unchanged (``scaler.mean_`` missing), which is not what Run All ends
with.

:func:`held_with` finds those names: the names whose value one changed value holds, or that hold
it (a bounded walk, :mod:`nbsteps.run.attempt.walk`, of the names the step that wrote the changed
value wrote or read: what it was made with or beside). They are copied together with it (one deep
copy: what they share stays shared) and are writes of the step found at run time, on a private copy
(``Task.together``): the plan learns them as observed writes (:mod:`nbsteps.run.observed_writes`),
and the steps below that read them read the step's version. Arrays that view a changed array are
copied with it by :mod:`nbsteps.run.attempt.array_views`. Not done: a change seen at run time that
was not predicted (no copy; the step above is rebuilt, its other names new objects); making them
writes of the step, as the same objects, made SQLAlchemy's tutorial execute its ``INSERT`` steps
again through the rebuilds and re-runs that followed.
"""

from __future__ import annotations

from typing import Any, Callable

from nbsteps.run.attempt import walk

_DEPTH = 6  # levels below a value the walk looks for the other
_BUDGET = 300  # attributes and items looked at below one value


def walkable(value: Any) -> bool:
    """Whether *value* is an object the walk looks into (not a number, string, module, class or
    function) and not an array-like (their copies are made by their library: numpy views are
    found by array_views)."""
    info = walk.type_info(type(value))
    return info is not walk.SKIP and not info[1]


def walkable_values(values: dict) -> dict:
    """The items of *values* (``{name: value}``) whose value the walk looks into (:func:`walkable`)."""
    return {n: v for n, v in values.items() if walkable(v)}


def _holds(value: Any, ids: set) -> list:
    """The objects among *ids* (ids) that *value* holds, within the walk's bounds."""
    hits, _ = walk.walk(value, depth=_DEPTH, budget=_BUDGET, own_free=True, found=lambda o: id(o) in ids)
    return [obj for _, obj, _ in hits]


def held_with(targets: dict, candidates: dict) -> dict:
    """``{name: changed name}`` of the *candidates* (``{name: value}``) that share objects with
    a value of *targets* (``{name: value}``, changed values the walk looks into: the caller
    keeps those, :func:`walkable_values`, and needs none of this when there are none): a changed
    value holds it, or it holds a changed value."""
    others = walkable_values(candidates)
    if not targets or not others:
        return {}
    found: dict = {}
    by_id = {id(v): p for p, v in others.items()}
    for n, v in targets.items():  # a changed value holds another name's value (pipe, scaler)
        for obj in _holds(v, set(by_id)):
            found.setdefault(by_id[id(obj)], n)
    changed_ids = {id(v): n for n, v in targets.items()}
    for p, v in others.items():  # another name's value holds a changed one (user_table, metadata)
        if p not in found:
            held = _holds(v, set(changed_ids))
            if held:
                found[p] = changed_ids[id(held[0])]
    return found


def candidates(step_names: Callable[[str], "tuple[frozenset, tuple]"], sources: dict, changed, skip) -> set:
    """The names to look at for :func:`held_with`: what the steps that wrote the *changed* names
    read and wrote (*step_names(step)*: its inputs and outputs), except *skip* and private names."""
    out: set = set()
    for n in changed:
        src = sources.get(n)
        if src is not None:
            ins, outs = step_names(src)
            out.update(ins)
            out.update(outs)
    return {p for p in out if p not in skip and p not in changed and not p.startswith("_")}
