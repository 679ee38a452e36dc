"""Asking before a ``--confirm`` step runs (SPEC 3).

The executor calls :func:`ask` on the thread that runs the plan, when the
step is about to be executed (never for a step restored from its checkpoint).
While the user's answer is awaited the step's record says so
(``record.confirming``: the question) and a ``confirming`` event tells the
views, which draw the step as *waiting for confirmation*; the answer is
followed by a ``confirmed`` event, or by the step's ``cancelled`` one. The
question itself is asked by the *confirm* callable the frontend gave
(IPython's ``input()`` in a notebook); nothing here knows about it.
"""

from __future__ import annotations

from nbsteps.run import events as ev


def ask(executor, name: str) -> str:
    """'' when step *name* may run now, else why it is cancelled."""
    step = executor.ctx.steps[name]
    if not step.confirm or executor.yes:
        return ""
    yes = executor.yes_hint()
    if executor.confirm is None:
        return f"needs confirmation ({step.confirm}); approve with {yes}"
    rec = executor.ctx.records[name]
    rec.confirming = step.confirm
    approved = False
    try:
        executor.emit(ev.CONFIRMING, name, step.confirm)
        approved = bool(executor.confirm(name, step.confirm))
    except (EOFError, OSError, RuntimeError):
        approved = False
    finally:
        rec.confirming = ""
    if not approved:
        return f"declined ({step.confirm}); approve with {yes} or answer y"
    executor.emit(ev.CONFIRMED, name, "approved")
    return ""
