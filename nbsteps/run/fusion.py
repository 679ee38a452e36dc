"""Fused chains: a linear run of steps ``a → b → c`` (each the only step
downstream of the one before, which is its only upstream step in the run)
sent to a backend that can fuse (``backend.fuses``, the dask backend) as ONE
task, which runs them in order where it lands and brings back every step's
outcome. The executor then takes the steps one by one as if each had run
alone: each gets its own events, record and checkpoint, in order.

What is decided on the client side is decided in advance, as it would be:
a step follows in the chain only if it will surely execute once the step
before it has (that one gets a new execution token, so it is stale), needs
nothing of the client between the two (no ``confirm`` prompt, no
``timeout``: its timer and abandoning are the client's), and was not slow
the last time it ran. The remote side stops the chain at the first failure
(the executor then handles that failure, and any retry, exactly as unfused:
a retried step is sent again as the head of the rest of the chain) and
starts no further step once the chain has run for :data:`BUDGET` seconds, so
a slow chain is still checkpointed step by step. Steps that were not run
are prepared again by the executor as usual.
"""

from __future__ import annotations

import time
from typing import Callable

from nbsteps.errors import CheckpointUnavailable
from nbsteps.model.analysis import analyse_cell
from nbsteps.model.status import COMPLETED, PENDING
from nbsteps.run.attempt import together
from nbsteps.run.attempt.inputs import make_task
from nbsteps.run.attempt.task import Outcome, Task, private_copies, run_task
from nbsteps.run.context import RunContext
from nbsteps.run.decide.staleness import outside_names

#: seconds: a fused chain starts no further step once it has run this long,
#: and a step that took longer the last time it ran is not fused
BUDGET = 0.2


def followers(ctx: RunContext, links: "dict[str, str]", task: Task, *, replay: dict, yes: bool) -> tuple:
    """The tasks to run right after *task*, in the same remote task (maybe none).
    *links*: ``{a: b}`` of the run's linear chains (``selection.run_graph(...).links()``);
    *replay*: steps this run executes again for shared state; *yes*: confirmations approved."""
    prev = task.name
    nxt = links.get(prev)
    records, deps = ctx.records, ctx.deps.deps
    if nxt is None or prev in replay or ctx.steps[prev].timeout or (records[prev].duration or 0) > BUDGET:
        return ()  # a replayed step keeps its token: the next one may be up to date
    out = []
    while nxt is not None:
        step, rec = ctx.steps[nxt], records[nxt]
        if (
            step.timeout
            or (step.confirm and not yes)
            or rec.status != PENDING
            or (rec.duration or 0) > BUDGET
        ):
            break
        if any(records[d].status != COMPLETED for d in deps.get(nxt, ()) if d != prev):
            break  # waits for something outside the run that did not complete: let the executor decide
        if ctx.deferred:
            ctx.load(outside_names(ctx, step))
        try:
            out.append(make_task(ctx, step, after=prev))
        except CheckpointUnavailable:
            break
        if nxt in replay:
            break
        prev, nxt = nxt, links.get(nxt)
    return tuple(out)


def feed(task: Task, before: Outcome, given: "dict | None" = None) -> None:
    """Give *task* what the step before it in the chain produced. A name that step was
    thought to change but only read (``x.hex()`` on a float: a predicted change of an
    immutable value, left out of its outputs) is what that step was *given*."""
    if task.kind == "function":
        for p in task.links:
            task.args[p] = before.result
        return
    if task.analysis is None:
        task.analysis = analyse_cell(task.name, task.source)
    mutated = task.analysis.mutated | task.analysis.assumed  # x.plot(): x may be an axes (model.hints)
    outputs, given = before.outputs, given or {}
    changed = {}
    for n in task.links:
        if n in outputs or n in given:
            value = outputs[n] if n in outputs else given[n]
            if n in mutated:
                changed[n] = value
            else:
                task.inputs[n] = value
    if changed:  # with what the step before wrote that shares objects with it (nbsteps.run.attempt.together)
        others = {p: v for p, v in outputs.items() if p not in task.links and p not in task.inputs}
        found = together.held_with(together.walkable_values(changed), others) if others else {}
        copies = private_copies({**changed, **{p: outputs[p] for p in found}})
        # (as make_task: only with a value that was copied, and not one its copy left as it is)
        held = {p for p, n in found.items() if copies[n] is not changed[n] and copies[p] is not outputs[p]}
        task.inputs.update((n, v) for n, v in copies.items() if n in changed or n in held)
        if held:
            task.outputs = tuple(task.outputs) + tuple(sorted(p for p in held if p not in task.outputs))
            task.together = tuple(sorted({*task.together, *held}))


def run_chain(task: Task, settle: Callable[[Task, Outcome], object], budget: float = BUDGET) -> list:
    """Run *task*, then its followers in order while each succeeds and the
    budget lasts. ``settle(task, outcome)`` is called after each (it may turn
    the outcome into a failure, e.g. an output that cannot travel); returns
    what it returned, in order."""
    t0 = time.perf_counter()
    outcome = run_task(task)
    done = [settle(task, outcome)]
    before = task
    for follower in task.then:
        if not outcome.ok or time.perf_counter() - t0 > budget:
            break
        feed(follower, outcome, before.inputs)
        outcome, before = run_task(follower), follower
        done.append(settle(follower, outcome))
    return done
