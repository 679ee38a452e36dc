"""Caches that a step leaves on values of the steps above it.

``fcast = res.forecast(12)`` uses its result, so it is no change of ``res``
(``rules.CACHING_METHODS``: only notebook order is kept between such calls). But
statsmodels keeps the forecast's dates on ``res.model.data``: after Run All, the
model of the cell above holds them. In the kernel that ran the step it holds them
too (the objects are shared), yet the checkpoint of the step above was written
before the call, so a resume in a new kernel gave the model without them.

So, for a step that calls a method of an input and uses its result (other than the
methods known not to change anything, ``rules.PURE_METHODS``; ``res.append(...)``
also caches dates on ``res.model``), the executor takes the *layout* of its
inputs before the attempt (for each object reached through attributes, to a small
depth: which attributes it has and which objects they are; no values are compared,
nothing is pickled) and again after it succeeds. When an input's layout changed,
the checkpoint of the step that made that input is written again, with the same
fingerprint and token: nothing becomes stale, and a resume gives back what the
kernel has. A persistent store only: a memory store holds the objects themselves.
"""

from __future__ import annotations

import types
from typing import Any

from nbsteps.model.checkpoint import Checkpoint, LazyValues
from nbsteps.model.status import COMPLETED
from nbsteps.run.context import RunContext

#: modules, classes and functions hold no caches of a value (and a module's dict is large)
_NOT_WATCHED = (types.ModuleType, type, types.FunctionType, types.MethodType, types.BuiltinFunctionType)
DEPTH = 3  # res -> model -> data -> predict_dates
LIMIT = 5000  # objects looked at per input


def layout(value: Any) -> dict:
    """``{id(obj): ((attribute, id(value)), ...)}`` for *value* and the objects
    its attributes reach, to ``DEPTH`` levels."""
    seen: dict = {}
    todo = [(value, 0)]
    while todo and len(seen) < LIMIT:
        obj, depth = todo.pop()
        if id(obj) in seen:
            continue
        if isinstance(obj, _NOT_WATCHED):
            continue
        try:
            attrs = object.__getattribute__(obj, "__dict__")
        except (AttributeError, TypeError):
            continue
        if not isinstance(attrs, dict):
            continue
        items = tuple((k, id(v)) for k, v in list(attrs.items()))
        seen[id(obj)] = items
        if depth < DEPTH:
            todo.extend((v, depth + 1) for v in list(attrs.values()))
    return seen


def watched(ctx: RunContext, step, inputs: dict) -> "dict | None":
    """The layouts to compare after the attempt (``None``: nothing to watch)."""
    analysis = step.analysis
    if analysis is None or not analysis.called_on or not getattr(ctx.store, "persistent", False):
        return None
    return {
        n: layout(inputs[n])
        for n in analysis.called_on
        if n in inputs and not isinstance(inputs[n], _NOT_WATCHED)
    } or None


def refresh(ctx: RunContext, name: str, before: dict, inputs: dict) -> list[str]:
    """Write again the checkpoints of the steps that made the inputs whose layout
    changed; returns their names."""
    sources = ctx.sources(name)
    ups = sorted(
        {sources.get(n) for n, was in before.items() if n in inputs and layout(inputs[n]) != was}
        - {None, name}
    )
    done = []
    for up in ups:
        rec = ctx.records.get(up)
        if rec is None or rec.status != COMPLETED:
            continue
        stored = ctx.store.peek(up, rec.fingerprint)
        if stored is None:
            continue
        outputs = dict(rec.outputs) if isinstance(rec.outputs, LazyValues) else rec.outputs
        ctx.store.put(
            Checkpoint(
                up,
                rec.fingerprint,
                outputs,
                rec.result,
                rec.has_result,
                parts=stored.parts,
                duration=stored.duration,
                finished=stored.finished,
                started=stored.started,
                attempts=stored.attempts,
                output=rec.output,
            )
        )
        done.append(up)
    return done
