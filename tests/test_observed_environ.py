"""A step that changes the process environment inside called code, where the analysis cannot
see the write (``pl.Config.set_tbl_rows`` writes ``os.environ``), is observed doing it (the
audit events ``os.putenv`` / ``os.unsetenv``; nbsteps.run.attempt.opened) and carries the label
``environ`` as an effect from then on: in this kernel (it keeps its order with the environment's
other writers and is replayed as they are) and in a new one restoring it (its checkpoint keeps
the label: tests/test_corpus_polars_defects.py, defect 1)."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest

from tests.conftest import run_ok

ENVLIB = """
import os

def set_rows(n):
    os.environ["NBSTEPS_ENVLIB_ROWS"] = str(n)

def drop_rows():
    del os.environ["NBSTEPS_ENVLIB_ROWS"]

def show(values):
    return list(values)[: int(os.environ.get("NBSTEPS_ENVLIB_ROWS", "100"))]
"""


@pytest.fixture
def envlib(tmp_path, monkeypatch):
    (tmp_path / "envlib_observed.py").write_text(textwrap.dedent(ENVLIB))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("NBSTEPS_ENVLIB_ROWS", raising=False)
    yield
    sys.modules.pop("envlib_observed", None)
    os.environ.pop("NBSTEPS_ENVLIB_ROWS", None)


def test_a_step_seen_changing_the_environment_is_labelled_and_its_checkpoint_keeps_it(
    shell, envlib, tmp_path, tmp_key
):
    from nbsteps.ipython import session
    from nbsteps.model.state import state_of

    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    run_ok(shell, "%%step imp\nimport envlib_observed")
    run_ok(shell, "%%step setter\nenvlib_observed.set_rows(3)")
    run_ok(shell, "%%step dropper\nenvlib_observed.drop_rows()")
    run_ok(shell, "%%step plain\nvalues = list(range(10))")
    plan = session.current()
    assert state_of(plan.steps["setter"]) == ("environ",)
    assert state_of(plan.steps["dropper"]) == ("environ",)
    assert state_of(plan.steps["plain"]) == ()  # no write: nothing observed
    assert state_of(plan.steps["imp"]) == ()
    assert plan.context.store.peek("setter").parts.get("state") == ["environ"]
    assert "state" not in (plan.context.store.peek("plain").parts or {})


def test_an_edited_writer_above_is_followed_by_the_writer_below_it_as_in_run_all(shell, envlib):
    """Two steps set the environment inside a library (unseen by the analysis); the first is
    edited and runs again, then a step reading the environment (``os.environ``, seen) is edited:
    the second writer, observed in the environment's chain, is replayed before it, so it reads
    what Run All gives it (the second's 5, not the edited first's 3)."""
    run_ok(shell, "%%step imp\nimport os\nimport envlib_observed")
    run_ok(shell, "%%step first\nenvlib_observed.set_rows(2)")
    run_ok(shell, "%%step second\nenvlib_observed.set_rows(5)")
    run_ok(shell, "%%step show\nshown = os.environ['NBSTEPS_ENVLIB_ROWS']")
    assert shell.user_ns["shown"] == "5"
    run_ok(shell, "%%step first\nenvlib_observed.set_rows(3)")
    run_ok(shell, "%%step show\nshown = os.environ['NBSTEPS_ENVLIB_ROWS'] + ''")
    assert shell.user_ns["shown"] == "5"  # Run All of these cells


def test_a_new_kernel_restores_what_a_run_found_below_an_unseen_environment_writer(tmp_path, envlib):
    """A run of the whole plan finds the writer (inside a library) only when it has run: the
    reader below it (``os.environ``, labelled) ran before the writer was known to be in the
    environment's chain, so the selection runs once more (as for a write of a name seen at run
    time): its checkpoint holds the graph a new kernel builds from the store, and the new
    kernel restores every step (the writer is replayed, not executed by a run)."""
    from tests.conftest import shell_on_store

    cells = [
        "%steps mode plan",
        "%%step c0\nimport os\nimport envlib_observed",
        "%%step c1\nenvlib_observed.set_rows(2)",
        "%%step c2\nshown = os.environ.get('NBSTEPS_ENVLIB_ROWS')",
        "%steps run --workers 4",
    ]
    report = (
        "from nbsteps.ipython import session\n"
        "out['value'] = {s: r.origin for s, r in session.current().records.items()}\n"
        "out['shown'] = ip.user_ns.get('shown')"
    )
    first = shell_on_store(tmp_path / "store", cells, tmp_path, report)
    assert first["shown"] == "2"
    again = shell_on_store(tmp_path / "store", cells, tmp_path, report)
    assert again["value"] == {"c0": "restored", "c1": "restored", "c2": "restored"}
