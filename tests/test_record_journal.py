"""The journal of record changes (``model/record.py``: what ``RunContext.changes_since``
reads): ``StepRecord.update`` sets several fields as one journaled change, exactly as
setting each would (the properties' setters included), and every record the executor
changes in a run is in the journal, those it does not touch are not."""

from __future__ import annotations

import pytest

import nbsteps
from nbsteps.model import record as R
from nbsteps.model.status import COMPLETED, PENDING, RETRYING, RUNNING, IllegalTransition


def _changed(position: int) -> list:
    names, _ = R.changed_since(position)
    return names


def test_update_sets_every_field_as_setting_each_would_and_is_journaled_once():
    rec = R.StepRecord("u")
    start, version = R.journal_position(), R.files_version()
    rec.update(status=RUNNING, attempts=2, result=[1], files={"data.txt": "fp"}, reason="stale")
    assert _changed(start) == ["u"]  # one change, not one per field
    assert (rec.status, rec.attempts, rec.result, rec.files, rec.reason) == (
        RUNNING,
        2,
        [1],
        {"data.txt": "fp"},
        "stale",
    )
    assert R.files_version() != version  # as setting ``files`` does: the files read are cached by it
    assert rec.result_loaded
    copy = rec.snapshot()
    assert copy.status == RUNNING and copy.files == {"data.txt": "fp"}


def test_update_refuses_an_unknown_field_or_a_transition_and_sets_nothing():
    rec = R.StepRecord("v")
    start = R.journal_position()
    with pytest.raises(TypeError, match="statsu"):
        rec.update(statsu=COMPLETED, reason="typo")
    with pytest.raises(IllegalTransition):  # (the test suite checks every transition)
        rec.update(status=RETRYING, reason="never ran")
    assert rec.status == PENDING and rec.reason == ""
    assert _changed(start) == []


def test_reset_and_restore_are_one_change_each():
    plan = nbsteps.Plan()

    @plan.step("a")
    def a():
        return 1

    plan.run()
    rec = plan["a"]
    start = R.journal_position()
    rec.reset("undone")
    assert _changed(start) == ["a"]
    assert (rec.status, rec.message, rec.result, rec.files, rec.token) == (PENDING, "undone", None, {}, None)


def test_every_record_a_run_changes_is_in_the_journal_and_no_other():
    plan = nbsteps.Plan()

    @plan.step("a")
    def a():
        return 1

    @plan.step("bad")
    def bad():
        raise ValueError("no")

    @plan.step("after_bad")
    def after_bad(bad):
        return bad

    @plan.step("lone")
    def lone():
        return 2

    ctx = plan.context
    _, mark = ctx.changes_since(None)
    plan.run(["a", "after_bad"])  # executed, failed, blocked; lone is not selected
    assert (plan["a"].ok, plan["bad"].status, plan["after_bad"].status) == (True, "failed", "blocked")
    changed, mark = ctx.changes_since(mark)
    assert changed == {"a", "bad", "after_bad"}
    plan.run(["a"])  # kept: up to date, completed again as it is
    changed, mark = ctx.changes_since(mark)
    assert changed == {"a"} and plan["a"].origin == "kept"
    plan.run(["lone"])
    changed, mark = ctx.changes_since(mark)
    assert changed == {"lone"} and plan["lone"].result == 2
    changed, _ = ctx.changes_since(mark)
    assert changed == set()
