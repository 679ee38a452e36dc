"""What an attempt of a step is given (its inputs, from upstream records and
the namespace), the values a step reads that this kernel holds now, and why a step cannot run
(a blocking upstream step)."""

from __future__ import annotations

import ast
import sys
from types import ModuleType

from nbsteps.model import hints
from nbsteps.model.dependencies import LAST_RESULT, ORDER_ONLY, bound_with, nearest_above
from nbsteps.model.immutable import is_immutable
from nbsteps.model.scopes import root_name
from nbsteps.model.state import needs_kernel
from nbsteps.model.status import BLOCKED, COMPLETED, FAILED, TERMINAL
from nbsteps.model.step import Step
from nbsteps.run.attempt import together
from nbsteps.run.attempt.array_views import copy_with_views, views_of
from nbsteps.run.attempt.task import Task, private_copies
from nbsteps.run.context import RunContext


def blocked_by(ctx: RunContext, name: str) -> str:
    """``upstream d failed`` (the first step in the way), or '' if none is."""
    recs = ctx.records
    deps = ctx.dependencies(name)
    for d, kind in deps.items():
        r = recs[d]
        if r.status == COMPLETED:
            continue
        if ctx.steps[d].optional and r.status in (FAILED, BLOCKED):
            continue  # an optional step's failure blocks nothing
        if kind in ORDER_ONLY:
            continue  # an order-only edge (shared state) blocks nothing
        return f"upstream {d} {r.status}"
    return ""


def held_inputs(ctx: RunContext, name: str, running: "dict | None" = None) -> dict:
    """``{input: value}`` of the values step *name* reads that this kernel holds now, without
    reading any (a value not made yet, or restored lazily and not read yet, is left out): from the
    namespace, or the outputs of the step above that wrote it, as its record holds them. What
    decides on them asks it: the plan's preview of the steps that run on one thread
    (:func:`nbsteps.run.attempt.threads.thread_notes`) or wait for a step above
    (:func:`nbsteps.run.attempt.live.lane_notes`), and during a run which steps a ready step waits
    for (:func:`nbsteps.run.attempt.live.waits_for`). *running* (during a run): step -> its Task,
    running or waiting to start: that task's inputs; of a record only a step settled in the run
    (``TERMINAL``) gives values, its lazily restored ones once read. Without it (the preview): a
    record's outputs when it holds them as a dict."""
    if running is not None:
        task = running.get(name)
        if task is not None:
            return dict(task.inputs)  # (a copy: a worker may be running it)
    records, ns, out = ctx.records, ctx.namespace, {}
    sources = ctx.sources(name)
    for n in ctx.steps[name].inputs:
        src = sources.get(n)
        if src is None:
            if n in ns:
                out[n] = ns[n]
            continue
        rec = records.get(src)
        if rec is None:
            continue
        outs = rec.outputs
        if running is None:
            if type(outs) is dict and n in outs:
                out[n] = outs[n]
        elif (
            rec.status in TERMINAL
            and n in outs
            and (isinstance(outs, dict) or (hasattr(outs, "loaded") and outs.loaded(n)))
        ):
            out[n] = outs[n]
    return out


def make_task(ctx: RunContext, step: Step, after: "str | None" = None) -> Task:
    """The attempt of *step*: a function step's arguments are its upstream
    results; a cell step's inputs come from the upstream records (read now if
    restored lazily) or the namespace; an input it mutates is a private copy.
    *after*: the step just before it in a fused chain (not run yet): what that
    step gives is left out, and named in ``task.links`` (nbsteps.run.fusion)."""
    if step.func is not None:
        records, args = ctx.records, {}
        for p in step.params:  # (a loop: the comprehension made a cell of each name below, each call)
            if p != after:
                args[p] = records[p].result
        task = Task(step.name, "function", "", None, (), step.func, args)  # (positional: a faster call)
        if after is not None and after in step.params:
            task.links = {after: after}
        return task
    return _cell_task(ctx, step, after)


def _cell_task(ctx: RunContext, step: Step, after: "str | None") -> Task:
    """:func:`make_task` of a cell step."""
    links = {}
    sources = ctx.sources(step.name)
    ns = ctx.namespace
    inputs = {}
    for n in step.inputs:
        src = sources.get(n)
        if src is not None and src == after:
            links[n] = src
            continue
        found, value = _version(ctx, n, src) if src is not None else (n in ns, ns.get(n))
        if found:  # else: an optional upstream failed, the name stays undefined
            inputs[n] = value
    changed = {n: inputs[n] for n in step.mutated if n in inputs}
    outputs = step.outputs
    only = step.analysis.changed_only if step.analysis is not None else ()
    kept = {
        n for n in changed if n in only and (is_immutable(changed[n]) or isinstance(changed[n], ModuleType))
    }
    # hints keyed by the type of each value it is given (nbsteps.model.hints)
    hits = hints.resolve_calls(step.analysis.calls, inputs) if step.analysis.calls else {}
    # x.plot() on what is no axes: a read, as an immutable value (model.immutable)
    kept.update(n for n in step.analysis.assumed if n in changed and n not in hits and n not in step.observed)
    # a module's own object only handed to a call: given as it is (Run All gives the library its own object)
    kept.update(_given_as_owned(step, changed, only, hits))
    if kept:  # predicted changes of immutable values: reads (nbsteps.model.immutable)
        changed = {n: v for n, v in changed.items() if n not in kept}
        outputs = tuple(n for n in outputs if n not in kept)
    hinted = {n: str(h) for n, h in hits.items() if n not in changed and n in inputs}
    hinted_with: list = []
    if hinted:  # writes the graph did not know: on a private copy, reported as seen (run.observed_writes)
        changed.update((n, inputs[n]) for n in hinted)
        # with the names bound to the same objects above (ax and its fig): copied together, written too
        for p, value in _bound_above(ctx, hinted, sources).items():
            if p not in changed and p not in outputs:
                changed[p] = inputs.setdefault(p, value)
                hinted_with.append(p)
        outputs = outputs + tuple(n for n in sorted({*hinted, *hinted_with}) if n not in outputs)
    together_names: tuple = ()
    if changed:  # copied together: names bound to one object graph stay bound (nbsteps.model.aliases)
        # (not skipped: what an earlier run saw it write with them, its views and the names held with
        # them: looked for again, in what the namespace holds now)
        own = step.inputs | (set(outputs) - step.observed if step.observed else set(outputs))
        views = views_of(ns, changed, skip=own)
        # arrays viewing what it changes: copied with it, as views of the copy, and written too
        group = {n: changed[n] for n, _ in views.values()}
        group.update((name, value) for name, (_, value) in views.items())
        alone = {n: v for n, v in changed.items() if n not in group}
        # what other names share with it (a pipeline and its scaler): copied together, written too
        held = held_with(ctx, step, sources, alone, own | set(views))
        copies = private_copies({**alone, **{p: v for p, (_, v) in held.items()}})
        # only with a value that was copied (one with no versions is not: nbsteps.run.attempt.live)
        # and not one the copy left as it is (a SymPy symbol, interned: the same object)
        held = {p for p, (n, v) in held.items() if copies[n] is not alone[n] and copies[p] is not v}
        inputs.update((n, v) for n, v in copies.items() if n in alone or n in held)
        if group:
            inputs.update(copy_with_views(group))
        if views or held:
            outputs = outputs + tuple(sorted({*views, *held}))
            # written by the step, views too: a step below reading one reads the change, as in Run All
            together_names = tuple(sorted({*views, *held}))
    task = Task(
        step.name,
        "cell",
        step.source,
        inputs,
        outputs,
        analysis=step.analysis,
        base=ns,
        above=_versions_above(ctx, step.name),
    )
    task.links = links
    task.hinted = hinted
    task.together = together_names
    task.kernel = needs_kernel(step, ctx.deps.maybe_of.get(step.name, ()))
    # what it was given as it is (no private copy): checked for changes (nbsteps.run.attempt.observe)
    # not: private copies (and the views copied with them); receivers of method calls whose result is
    # used, whose caches run.upstream_caches keeps in the checkpoints above (res.forecast(12))
    skip = set(changed) | (set(outputs) - set(step.outputs)) | step.analysis.called_on
    task.watched = tuple(n for n in inputs if n not in skip)
    # names bound to one object graph with a watched input above it (``fig, ax = plt.subplots()``): given
    # too, so that a change seen on ``ax`` (``df.plot(ax=ax[1])``) is a change of ``fig`` as well
    for n in task.watched:
        bound = _bound_above(ctx, [n], sources)
        bound = {p: v for p, v in bound.items() if p not in skip and inputs.setdefault(p, v) is v}
        if bound:
            task.bound[n] = tuple(sorted(bound))
    return task


def _given_as_owned(step: Step, changed: dict, only, hits) -> tuple:
    """The names of *changed* (inputs predicted changed) bound to an object a module owns under that
    name (``from decimal import *``: ``ExtendedContext`` is ``decimal.ExtendedContext``, the module of
    its class or a package above it) that the step only hands to calls (``setcontext(ExtendedContext)``):
    no attribute or item of it assigned or deleted, no method of it called. Run All gives the library
    its own object, which it may know by identity (``setcontext`` copies its templates, then changes
    only the copy); a private copy is not one of them (it became the current context itself, and
    ``getcontext().traps[...] = 1`` below changed the notebook's ``ExtendedContext``). Given as it is,
    the input is watched: a call that does change it is a write seen at run time
    (:mod:`nbsteps.run.observed_writes`), as for any value."""
    owned = []
    for n, value in changed.items():
        if n not in only or n in hits or n in step.observed or isinstance(value, (type, ModuleType)):
            continue
        parts = (getattr(type(value), "__module__", None) or "").split(".")
        for k in range(len(parts), 0, -1):
            module = sys.modules.get(".".join(parts[:k]))
            if module is not None and getattr(module, "__dict__", {}).get(n) is value:
                owned.append(n)
                break
    if owned and step.source:
        owned = [n for n in owned if n not in _changed_directly(step.source)]
    return tuple(owned)


def _changed_directly(source: str) -> set:
    """The names whose attributes or items the code assigns or deletes, or whose methods it calls."""
    try:
        tree = ast.parse(source)
    except SyntaxError:  # (a magic line: such a step is not looked into)
        return {"*"}
    names: set = set()
    for node in ast.walk(tree):
        targets = ()
        if isinstance(node, (ast.Assign, ast.Delete)):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = (node.target,)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            names.add(root_name(node.func.value))
        names.update(root_name(t) for t in targets if isinstance(t, (ast.Attribute, ast.Subscript)))
    return names


def held_with(ctx: RunContext, step: Step, sources: dict, changed: dict, skip) -> dict:
    """``{name: (changed name, value)}`` of the names whose values share objects with a value in *changed*
    (:mod:`nbsteps.run.attempt.together`), as the step sees them (the nearest step above that wrote
    each, else the namespace)."""
    changed = together.walkable_values(changed)
    if not changed:  # (a frame, an array, a number: most changed values)
        return {}
    names = together.candidates(
        lambda s: (ctx.steps[s].inputs, ctx.steps[s].outputs) if s in ctx.steps else ((), ()),
        sources,
        changed,
        skip,
    )
    if not names:
        return {}
    above, ns, values = _versions_above(ctx, step.name), ctx.namespace, {}
    for p in names:
        found, value = above(p)
        if found:
            values[p] = value
        elif p in ns:
            values[p] = ns[p]
    return {p: (n, values[p]) for p, n in together.held_with(changed, values).items()}


def _bound_above(ctx: RunContext, names, sources: dict) -> dict:
    """``{name: value}`` of the names bound to one object graph with *names* in the steps
    that wrote them (nbsteps.model.aliases), as those steps wrote them."""
    out = {}
    for n in names:
        src = sources.get(n)
        if src is None or src not in ctx.steps:
            continue
        for p in bound_with(ctx.steps[src], n):
            found, value = _version(ctx, p, src)
            if found:
                out.setdefault(p, value)
    return out


def _version(ctx: RunContext, n: str, src: str) -> tuple:
    """(found, value) of *n* as written by step *src*; a step predicted to change it that left it
    out (an immutable value: nbsteps.model.immutable) passes on the version it read, from the step
    above it or the namespace."""
    g = ctx.deps
    if n == LAST_RESULT and n not in g.writers:  # ``_``: the Out of the nearest step above that showed one
        return _last_result(ctx, src)
    while src is not None:
        rec = ctx.records[src]
        outs = rec.outputs
        if n in outs:
            return True, outs[n]
        if rec.status != COMPLETED or n not in ctx.steps[src].mutated:
            return False, None
        ws = g.writers.get(n)
        src = nearest_above(ws, g.position, g.position[src]) if ws else None
    return (True, ctx.namespace[n]) if n in ctx.namespace else (False, None)


def _last_result(ctx: RunContext, src: str) -> tuple:
    """``(found, value)`` of ``_`` for a step whose nearest step above with an ``Out`` is *src*:
    that step's result, or, when it was None (IPython's displayhook leaves ``_`` alone), the
    result of the one above it, as in Run All."""
    g = ctx.deps
    while src is not None:
        rec = ctx.records.get(src)
        if rec is not None and rec.status == COMPLETED and rec.has_result and rec.result is not None:
            return True, rec.result
        src = nearest_above(g.results, g.position, g.position[src])
    return (True, ctx.namespace[LAST_RESULT]) if LAST_RESULT in ctx.namespace else (False, None)


def _versions_above(ctx: RunContext, name: str):
    """name -> (True, value) of the nearest completed step above *name* that
    wrote it, for the notebook functions a step calls (see nbsteps.run.attempt.notebook_functions)."""
    g = ctx.deps
    pos = g.position.get(name)

    def above(n: str):
        ws = g.writers.get(n)
        w = nearest_above(ws, g.position, pos) if ws and pos is not None else None
        if w is not None:
            r = ctx.records.get(w)
            if r is not None and r.status == COMPLETED and n in r.outputs:
                return True, r.outputs[n]
        return False, None

    return above
