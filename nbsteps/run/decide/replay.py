"""Replaying steps whose effect is on shared process state.

A step that seeds a global random generator, draws from one, sets a pyplot
style or library option, changes the working directory or the environment
leaves its effect in the process, not in its outputs: restoring it from a
checkpoint would not redo the effect. When a step below it in the same state
chain executes in a run, such a step is executed again (replayed) instead of
restored, in notebook order, so the executing step sees the state Restart &
Run All would give it. A replayed step whose fingerprint did not change keeps
its execution token: nothing downstream becomes stale because of the replay.
A step that may draw from a global generator unseen (see
:mod:`nbsteps.model.state`) is in that generator's chain too: the seeds and
draws above it are replayed before it executes (it is not replayed itself).
When nothing below executes, the run still ends with the state Run All leaves
(:func:`settles`): a new kernel restoring every step replays those that set
rcParams, print options or the working directory, and no other. A frontend that
runs a hook before each cell (IPython) asks for these replays to be *pending*
instead: they are left in ``ctx.pending_replay`` and executed (:func:`due`, by
``Plan.settle``) only once code runs that is not a restore, so a notebook resumed
from its store executes nothing while each restored cell runs.
"""

from __future__ import annotations

from nbsteps.model.fingerprint import combine
from nbsteps.model.state import USE_IS_EFFECT, effects_of, is_file, replayable
from nbsteps.model.status import COMPLETED
from nbsteps.run.decide.staleness import fingerprint_parts, outside_names

__all__ = ["due", "effects_of", "replay_set"]


def replay_set(
    ctx, names: list[str], will_run: "set[str]", pending: "dict[str, list[str]] | None" = None
) -> dict[str, list[str]]:
    """``{step: labels}``: up-to-date steps of *names* to execute again because
    a step below them in a state chain will execute (*will_run*).

    ``ctx.state_head[label]`` is the step that last changed that state in this
    process: when it is the chain step just above an executing step, the
    process already holds the right state and nothing is replayed for it.
    The steps replayed only so that the run ends with Run All's state
    (:func:`settles`) go into *pending* instead when it is given (lazy: not
    executed by this run; a step this run replays anyway is left out of it).
    """
    steps = ctx.steps
    heads = getattr(ctx, "state_head", {})
    maybe = ctx.deps.maybe_of  # a step that may draw unseen: the seeds above it are replayed, not it
    chains: dict[str, list[str]] = {}
    for s in names:  # notebook order
        step = steps[s]
        a, seen = step.analysis, step.observed_state  # the analysis's labels, and those a run observed
        labels = (getattr(a, "state", ()) or ()) if a is not None else ()
        for label in (*labels, *(seen.difference(labels) if seen else ()), *maybe.get(s, ())):
            chains.setdefault(label, []).append(s)
    replay: dict[str, list[str]] = {}
    for label, chain in chains.items():
        if not replayable(label):  # a file that exists: restoring its writers leaves it as it is
            continue
        head = heads.get(label)
        live = chain.index(head) if head in chain else -1  # the state is as after chain[live]
        first = True
        for i, s in enumerate(chain):
            executes = s in will_run or label in replay.get(s, ())
            if not executes:
                continue
            if live != i - 1 and first and _holds(ctx, label, head, s):
                live = i - 1  # a step outside the run left the state Run All gives s (cell by cell, in order)
            first = False
            if live != i - 1:  # not the state this step would see after Run All: redo the effects above
                start = live + 1 if -1 <= live < i - 1 else 0
                for j in range(start, i):
                    up = chain[j]
                    if up not in will_run and label in effects_of(steps[up]):
                        replay.setdefault(up, []).append(label)
            live = i
        if settles(label) and (not first or head is None or head in chain):
            # the run leaves the state as after chain[live] (known: a fresh process, or a step of
            # the chain): the changes restored below it are replayed, so it ends as Run All does
            at_end = replay if pending is None else pending
            for up in chain[live + 1 :]:
                if up not in will_run and label in effects_of(steps[up]):
                    at_end.setdefault(up, []).append(label)
    return replay


def due(ctx, pending: "dict[str, list[str]]") -> list[str]:
    """The steps of *pending* (``ctx.pending_replay``) to replay now, in notebook order: those
    still completed as their record holds them (upstream completed, fingerprint unchanged).
    One edited, reset or failed since executes when it runs, as any step does."""
    records, out = ctx.records, []
    for s in ctx.order(s for s in pending if s in ctx.steps):
        step, rec = ctx.steps[s], records.get(s)
        if rec is None or rec.status != COMPLETED or not step.cache:
            continue
        if any(records[d].status != COMPLETED for d in ctx.dependencies(s)):
            continue
        if ctx.deferred:  # outside names it reads that wait in a lazily restored checkpoint
            ctx.load(outside_names(ctx, step))
        if combine(fingerprint_parts(ctx, step)) == rec.fingerprint:
            out.append(s)
    return out


def settles(label: str) -> bool:
    """Whether a run whose restored steps changed *label* replays them even when nothing below
    them executes: process state set by a call (a style, rcParams, a library's options, the
    working directory, the environment, ``sys.path``). Not a file (outside the process), nor
    a global random generator: every draw changes it, so its state after Run All would cost
    executing every drawing step again; a step below that draws replays them (above)."""
    return not is_file(label) and label not in USE_IS_EFFECT


def _holds(ctx, label: str, head: "str | None", step: str) -> bool:
    """Whether the process state *label*, as the step *head* left it, is what
    Run All gives *step*: *head* is above *step*, and no step between them (nor
    *head*'s own chain above it) changes the state otherwise. Only asked when
    *head* is not in the run (the rare path: it walks the whole plan)."""
    if head is None:
        return False
    position = ctx.deps.position
    top, bottom = position.get(head), position.get(step)
    if top is None or bottom is None or top >= bottom:
        return False
    return not any(
        top < position.get(s, -1) < bottom and label in effects_of(st) for s, st in ctx.steps.items()
    )
