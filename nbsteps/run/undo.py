"""Compensation (SPEC 2.9): ``%%undo NAME`` code, ``%steps undo NAME`` and
``%steps run --rollback``.

Undo code runs with the step's outputs and the user namespace visible. Undoing
a step marks it and its downstream not completed (their checkpoints are
dropped). A rollback undoes, in reverse completion order, the steps completed
in the failed run; an undo that fails stops the rollback and is reported.
"""

from __future__ import annotations

import builtins
from typing import Callable

from nbsteps.errors import NbstepsError
from nbsteps.model.analysis import analyse_cell
from nbsteps.model.status import COMPLETED


def register_undo(ctx, name: str, code: "str | Callable") -> None:
    step = ctx.require(name)
    if isinstance(code, str):
        analyse_cell(f"{name}-undo", code)  # syntax check now, with a clear error
    step.undo = code


def _run_undo(ctx, name: str) -> None:
    step = ctx.steps[name]
    rec = ctx.records[name]
    if callable(step.undo):
        step.undo()
        return
    analysis = analyse_cell(f"{name}-undo", step.undo)
    ns = {"__builtins__": builtins, "__name__": "__main__"}
    ns.update(ctx.namespace)
    ns.update(rec.outputs)
    exec(analysis.body, ns)
    if analysis.result is not None:
        eval(analysis.result, ns)


def _mark_undone(ctx, name: str) -> list[str]:
    affected = [n for n in ctx.order(ctx.downstream([name])) if ctx.records[n].status == COMPLETED]
    for n in affected:
        ctx.store.drop(n)
        ctx.records[n].reset(message=f"undone ({name})")
    return affected


def undo_step(ctx, name: str) -> str:
    step = ctx.require(name)
    if step.undo is None:
        raise NbstepsError(f"step {name!r} has no undo code; register it with %%undo {name} in a cell.")
    try:
        _run_undo(ctx, name)
    except Exception as exc:
        raise NbstepsError(
            f"undo of step {name!r} failed: {type(exc).__name__}: {exc}. The step stays completed; "
            f"fix the %%undo {name} cell and run %steps undo {name} again."
        ) from None
    affected = _mark_undone(ctx, name)
    return f"nbsteps: undid {name}; not completed now: {', '.join(affected)}"


def rollback(ctx, summary) -> None:
    """Undo the steps completed in *summary*'s run, newest first."""
    for name in reversed(summary.completed_order):
        step = ctx.steps.get(name)
        if step is None or step.undo is None:
            continue
        try:
            _run_undo(ctx, name)
        except Exception as exc:
            summary.rollback_errors[name] = f"{type(exc).__name__}: {exc}"
            return  # stop: what is left stays completed, and the summary says so
        _mark_undone(ctx, name)
        summary.rolled_back.append(name)
