"""``views.step_view.status_key``: the views that redraw every step after each cell (the step
cells' status lines, the JupyterLab badges) skip a step whose key did not change, so every
change of what its status line says must change the key."""

import dataclasses
import os

import nbsteps
from nbsteps.model.status import COMPLETED, FAILED, KEPT, PENDING, RESTORED, RUNNING
from nbsteps.views.step_view import same_status, status_key, status_line


def _plan():
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    plan.add_cell("b", "y = x + 1")
    plan.run()
    return plan


def _status(rec, status) -> None:
    """Set a record's status directly (the key is under test here, not the steps' life)."""
    rec.__dict__["_status"] = status


def _changes(rec):
    """(what, change) pairs, each a change of one record field the status line reads."""
    return [
        ("status", lambda: _status(rec, FAILED)),
        ("origin kept", lambda: setattr(rec, "origin", KEPT)),
        ("origin restored", lambda: setattr(rec, "origin", RESTORED)),
        ("finished", lambda: setattr(rec, "finished", (rec.finished or 0) + 3600)),
        ("duration", lambda: setattr(rec, "duration", (rec.duration or 0) + 2.5)),
        ("attempts", lambda: setattr(rec, "attempts", rec.attempts + 2)),
        ("attempt errors", lambda: setattr(rec, "attempt_errors", ((1, "ValueError: flaky"),))),
        ("outputs", lambda: setattr(rec, "outputs", {**dict(rec.outputs), "extra": 1})),
    ]


def test_every_change_of_a_status_line_changes_the_key():
    plan = _plan()
    ctx = plan.context
    for what, change in _changes(ctx.records["b"]):
        keep = ctx.records["b"].snapshot()
        before_key, before_line = status_key(ctx, "b", ctx.records["b"]), status_line(ctx, "b")
        change()
        after_key, after_line = status_key(ctx, "b", ctx.records["b"]), status_line(ctx, "b")
        assert after_line != before_line, what
        assert not same_status(before_key, after_key), what
        ctx.records["b"].__dict__ = keep.__dict__  # back as it was
        assert same_status(before_key, status_key(ctx, "b", ctx.records["b"])), what


def test_pending_failed_running_and_restored_lines():
    plan = _plan()
    ctx = plan.context
    rec = ctx.records["b"]
    _status(rec, PENDING)
    rec.token = None
    key = status_key(ctx, "b", rec)
    rec.message = "waiting for you"
    assert not same_status(key, status_key(ctx, "b", rec))
    key = status_key(ctx, "b", rec)
    rec.confirming = "Delete the table?"
    assert not same_status(key, status_key(ctx, "b", rec))

    rec = ctx.records["a"]
    _status(rec, RUNNING)
    key = status_key(ctx, "a", rec)
    rec.attempts += 1
    assert not same_status(key, status_key(ctx, "a", rec))

    _status(rec, FAILED)
    rec.error = ValueError("one")
    key = status_key(ctx, "a", rec)
    rec.error = ValueError("two")
    assert not same_status(key, status_key(ctx, "a", rec))

    _status(rec, COMPLETED)
    rec.error, rec.origin = None, RESTORED
    key = status_key(ctx, "a", rec)
    here = os.getcwd()
    try:
        os.chdir(os.path.dirname(here) or "/")  # "restored … in DIR" is relative to the cwd
        assert not same_status(key, status_key(ctx, "a", rec))
    finally:
        os.chdir(here)


def test_a_step_registered_again_or_stale_is_never_the_same():
    plan = _plan()
    ctx = plan.context
    key = status_key(ctx, "b", ctx.records["b"])
    assert same_status(key, status_key(ctx, "b", ctx.records["b"]))
    plan.add_cell("b", "y = x + 2")  # a new Step object
    assert not same_status(key, status_key(ctx, "b", ctx.records["b"]))
    rec = dataclasses.replace(ctx.records["b"])
    rec.stale = True
    assert status_key(ctx, "b", rec) is None and not same_status(None, None)
