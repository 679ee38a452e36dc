"""Values already in the kernel are never re-read; a value restored from a
directory store is read when first needed, at most once; an interactive cell
considers only itself when its upstream is known to be up to date (issue 14).
Counts reads and steps considered; no timings asserted."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import run_err, run_ok

import nbsteps
from nbsteps.ipython import session
from nbsteps.model.checkpoint import LazyValues
from nbsteps.stores import layout


@pytest.fixture
def reads(monkeypatch):
    """Every value file the disk store reads: (file name) in order."""
    seen: list = []
    real = layout.load_value

    def spy(folder, entry, meta, key, meta_file=layout.META, **kw):
        seen.append(entry["file"])
        return real(folder, entry, meta, key, meta_file, **kw)

    monkeypatch.setattr(layout, "load_value", spy)
    return seen


def three_steps(store, **kw):
    plan = nbsteps.Plan(store=store, **kw)
    plan.add_cell("a", "import numpy as np\nx = np.arange(100_000.0)\nsmall = 1")
    plan.add_cell("b", "y = x * 2\ny.sum()")
    plan.add_cell("c", "z = small + 1")
    return plan


def test_new_process_rerun_reads_no_value_until_needed(tmp_path, tmp_key, reads):
    three_steps(tmp_path / "s").run()
    assert reads == []  # writing reads nothing back
    plan = three_steps(tmp_path / "s")
    plan.lazy_publish = True  # as in a notebook: values are read when used
    summary = plan.run()
    assert summary.cached == ["a", "b", "c"] and reads == []
    assert isinstance(plan["a"].outputs, LazyValues) and "x" not in plan.namespace
    assert set(plan.deferred.pending) == {"np", "x", "small", "y", "z"}
    assert plan["b"].result == 2 * np.arange(100_000.0).sum() and len(reads) == 1  # the result's file only
    assert plan["b"].outputs["y"][3] == 6.0 and len(reads) == 2
    assert plan["b"].outputs["y"][4] == 8.0 and plan["b"].result and len(reads) == 2  # read once, kept
    # a step that executes reads the inputs it needs, and nothing else
    plan.add_cell("d", "w = z * 10")
    plan.run(["d"])
    assert plan.namespace["w"] == 20 and len(reads) == 3
    assert plan.load(["x"]) == ["x"] and plan.namespace["x"][5] == 5.0 and len(reads) == 4
    plan.load()
    assert not plan.deferred and len(reads) == 6  # every value (5 outputs, 1 result) read exactly once
    assert plan.namespace["y"] is plan["b"].outputs["y"]


def test_plan_without_a_frontend_publishes_at_the_end_of_the_run(tmp_path, tmp_key, reads):
    three_steps(tmp_path / "s").run()
    plan = three_steps(tmp_path / "s")
    plan.run()
    assert (
        sorted(reads) == sorted(set(reads)) and len(reads) == 5
    )  # each output once (b's result is not needed)
    assert plan.namespace["z"] == 2 and plan.namespace["x"][1] == 1.0 and not plan.deferred


def test_values_the_kernel_holds_are_never_re_read(tmp_path, tmp_key, reads, monkeypatch):
    plan = three_steps(tmp_path / "s")
    plan.run()
    gets: list = []
    real_get = plan.store.get
    monkeypatch.setattr(
        plan.store, "get", lambda step, fp=None, **kw: gets.append(step) or real_get(step, fp, **kw)
    )
    plan.add_cell("d", "w = y[:10].sum() + z")
    plan.run(["d"])  # one cell: its upstream is known up to date, and in memory
    assert plan.namespace["w"] == 2 * 45 + 2 and reads == [] and gets == ["d"]
    plan.run()  # a full run checks every step, still without reading anything back
    assert reads == [] and gets == ["d"]
    assert plan.last_summary.cached == ["a", "b", "c", "d"]


def test_lost_checkpoint_values_fail_clearly_and_are_recomputed(tmp_path, tmp_key):
    three_steps(tmp_path / "s").run()
    plan = three_steps(tmp_path / "s")
    plan.lazy_publish = True
    warnings: list = []
    plan.store.warn = lambda step, message: warnings.append((step, message))
    plan.run()
    shutil.rmtree(tmp_path / "s" / "a")  # another kernel removed it after it was restored here
    plan.add_cell("d", "w = x[:3].sum()")
    summary = plan.run(["d"])  # a is recomputed in this run (its checkpoint is gone), then d runs
    assert summary.ok and summary.completed_order == ["a", "d"] and plan.namespace["w"] == 3.0
    assert [step for step, message in warnings if "output 'x' of step 'a' could not be read" in message] == [
        "a"
    ]


def test_interactive_cell_considers_itself_alone_when_upstream_is_up_to_date(shell):
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%%step b\ny = x + 1")
    plan = session.current()
    run_ok(shell, "%%step c\nz = y + 1")
    assert plan.last_summary.steps == ["c"] and shell.user_ns["z"] == 3
    # an outside value above changes: the whole upstream is checked again
    run_ok(shell, "k = 10")
    run_ok(shell, "%%step a\nx = 1 + k")  # redefined: a runs, its downstream is stale
    run_ok(shell, "%%step d\nw = z * 2")
    assert plan.last_summary.steps == ["a", "b", "c", "d"] and shell.user_ns["w"] == 26
    assert plan.last_summary.completed_order == ["b", "c", "d"]
    run_ok(shell, "%%step e\nv = w + 1")
    assert plan.last_summary.steps == ["e"]
    run_ok(shell, "k = 20")  # a parameter of a step far above
    run_ok(shell, "%%step f\nu = v + 1")
    assert plan.last_summary.completed_order == ["a", "b", "c", "d", "e", "f"] and shell.user_ns["u"] == 48
    run_ok(shell, "def helper(v):\n    return v * 100")
    run_ok(shell, "%%step g\nt = helper(u)")
    run_ok(shell, "%%step h\ns = t + 1")
    assert plan.last_summary.steps == ["h"] and shell.user_ns["s"] == 4801
    run_ok(shell, "def helper(v):\n    return v * 1000")  # a helper used above is edited
    run_ok(shell, "%%step i\nr = s + 1")
    assert plan.last_summary.completed_order == ["g", "h", "i"] and shell.user_ns["r"] == 48002


def test_interactive_failure_summary_still_names_the_upstream(shell, capsys):
    run_ok(shell, "%%step ok\nbase = 10")
    run_ok(shell, "%%step fine\nmore = base + 1")
    err = run_err(shell, "%%step boom\nvalue = more / 0")
    assert "2 of 3 steps completed (2 kept in this kernel); boom failed" in str(err)


def test_reset_and_redefinition_keep_the_quick_path_honest(shell):
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%%step b\ny = x + 1")
    run_ok(shell, "%steps reset a")
    run_ok(shell, "%%step c\nz = y + 1")  # a and b were reset: they run again first
    plan = session.current()
    assert plan.last_summary.completed_order == ["a", "b", "c"]
    run_ok(shell, "%%step b\ny = x + 5")  # b redefined (not run here: plan mode off, it runs now)
    run_ok(shell, "%%step d\nw = z + 1")  # c is stale (b changed): it runs before d
    assert shell.user_ns["w"] == 8 and "c" in plan.last_summary.completed_order


def test_restored_values_are_read_when_a_cell_uses_them(shell, tmp_path, tmp_key, reads):
    cells = [
        f"%steps store {tmp_path / 's'}",
        "%%step load\nimport numpy as np\nframe = np.arange(10.0)\nother = np.ones(5)",
        "%%step total\ntotal = float(frame.sum())",
    ]
    for c in cells:
        run_ok(shell, c)
    # a new kernel: a fresh plan and namespace, the same cells
    session._plan = None
    shell.reset(new_session=False)
    session.bind(shell)
    for c in cells:
        run_ok(shell, c)
    plan = session.current()
    assert reads == [] and "frame" not in shell.user_ns and plan.deferred
    run_ok(shell, "seen = frame[2]")  # a plain cell names it: read, then the cell runs
    assert shell.user_ns["seen"] == 2.0 and reads and len(reads) == 1
    run_ok(shell, "def report():\n    return total * 2")
    run_ok(shell, "doubled = report()")  # used through a notebook function
    assert shell.user_ns["doubled"] == 90.0 and len(reads) == 2
    run_ok(shell, "%steps load")
    assert "other" in shell.user_ns and not plan.deferred
    assert len(reads) == len(set(reads))  # nothing read twice


def test_results_table_reads_only_small_restored_results(tmp_path, tmp_key, reads, monkeypatch):
    from nbsteps.views import table as table_view

    three_steps(tmp_path / "s").run()
    plan = three_steps(tmp_path / "s")
    plan.lazy_publish = True
    plan.run()
    with monkeypatch.context() as m:  # a result too large to read for the table: it says so
        m.setattr(table_view, "EAGER_RESULT_BYTES", 0)
        table = plan.results()
        assert reads == [] and table.set_index("step").loc["b", "result"] == "(on disk, not read yet)"
    # a small one is read, so that a saved table shows the results (issue 24)
    assert plan.results().set_index("step").loc["b", "result"] == str(float(plan["b"].result))
    assert len(reads) == 1
