"""Caches that a step leaves on values of the steps above it.

``fcast = res.forecast(12)`` uses its result, so it is no change of ``res``
(``rules.CACHING_METHODS``: only notebook order is kept between such calls). But
statsmodels keeps the forecast's dates on ``res.model.data``: after Run All, the
model of the cell above holds them. In the kernel that ran the step it holds them
too (the objects are shared), yet the checkpoint of the step above was written
before the call, so a resume in a new kernel gave the model without them.

So, for a step that calls a method of an input and uses its result (other than the
methods known not to change anything, ``rules.PURE_METHODS``; ``res.append(...)``
also caches dates on ``res.model``), the executor takes the digest of those inputs
before the attempt (:func:`nbsteps.run.attempt.observe.digest`, the walk that checks
every input for writes: attribute layouts to a bounded depth, buffers by checksum)
and again after it succeeds. When an input's digest changed, the checkpoint of the
step that made that input is written again, with the same fingerprint and token:
nothing becomes stale, and a resume gives back what the kernel has. A persistent
store only: a memory store holds the objects themselves.

Why not a write observed at run time, like any other change of an input: that would
make the change a new version of ``res`` owned by the calling step, so ``model`` (the
object ``res.model`` is, bound above) would not show the cache as it does in Run All.
A cache belongs to the version above.
"""

from __future__ import annotations

from nbsteps.model.checkpoint import Checkpoint, LazyValues
from nbsteps.model.status import COMPLETED
from nbsteps.run.attempt.live import has_versions
from nbsteps.run.attempt.observe import digest
from nbsteps.run.context import RunContext


def watched(ctx: RunContext, step, inputs: dict) -> "dict | None":
    """The digests to compare after the attempt (``None``: nothing to watch)."""
    analysis = step.analysis
    if analysis is None or not analysis.called_on or not getattr(ctx.store, "persistent", False):
        return None
    out = {}
    for n in analysis.called_on:
        if n in inputs and (d := digest(inputs[n])) is not None:
            out[n] = d
    return out or None


def refresh(ctx: RunContext, name: str, before: dict, inputs: dict) -> list[str]:
    """Write again the checkpoints of the steps that made the inputs whose digest
    changed; returns their names."""
    sources = ctx.sources(name)
    changed = [n for n, was in before.items() if n in inputs and digest(inputs[n]) != was]
    # a value with no versions (an engine whose statement cache a query fills: run.attempt.live)
    # was not stored the first time: writing its step's checkpoint again only warned again
    ups = sorted({sources.get(n) for n in changed if has_versions(inputs[n])} - {None, name})
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
