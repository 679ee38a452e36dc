"""Issue 24 (items 3, 5, 6): what nbsteps shows is what happened.

A scripted sequence of runs (fresh, again, forced, a middle cell edited, a new shell
resuming from a directory store, ``nbsteps run`` three times with ``--store``). For
each, the expected origin of every step (*executed*: ran in this run; *kept*: already in
the kernel and up to date; *restored*: read from the store) is written down from the
scenario, and the summary text, the table, ``results.csv`` and the status lines must
say exactly that. Also: an up-to-date cell says so and ``--force`` runs it; a retry's
failed attempts stay visible; rows of the current run show no earlier run's times; the
timeline draws a step as long as the table says; the critical path and the static
picture's counts agree with what will execute and what is stale.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pandas as pd
import pytest

import nbsteps
from nbsteps.formatting import fmt_seconds
from nbsteps.ipython import session
from nbsteps.views.static import static_bundle
from nbsteps.views.step_log import step_log_text
from nbsteps.views.step_view import status_line
from nbsteps.views.table import rows as table_rows
from nbsteps.views.timeline import bars, timeline_svg
from tests.conftest import run_err, run_ok

CELLS = {
    "a": "%%step a\nx = 1",
    "b": "%%step b\ny = x + 1",
    "c": "%%step c\nz = y * 10",
}
STEPS = ["a", "b", "c"]


def _origins(plan) -> dict:
    table = plan.results().set_index("step")
    return {s: table.loc[s, "origin"] for s in STEPS}


def _check(plan, expected: dict, csv_path) -> None:
    """Summary, table, results.csv and status lines say *expected* (step -> origin)."""
    counts = {o: sum(1 for v in expected.values() if v == o) for o in ("executed", "kept", "restored")}
    text = plan.last_summary.text
    assert text.startswith(f"{len(expected)} of {len(expected)} steps completed"), text
    if counts["kept"] or counts["restored"]:
        said = [f"{counts['executed']} executed"] if counts["executed"] else []
        if counts["kept"]:
            said.append(f"{counts['kept']} kept in this kernel")
        if counts["restored"]:
            said.append(f"{counts['restored']} restored from")
        assert "(" + ", ".join(said) in text, text
    else:
        assert "(" not in text and "restored" not in text and "kept" not in text, text
    assert plan.last_summary.counts() == {**counts, "failed": 0, "blocked": 0, "cancelled": 0, "pending": 0}
    assert _origins(plan) == expected
    plan.export(csv_path)
    csv = pd.read_csv(csv_path).set_index("step")
    assert csv["origin"].to_dict() == expected
    assert csv["cached"].to_dict() == {s: o != "executed" for s, o in expected.items()}
    for s, origin in expected.items():
        line = status_line(plan.context, s)
        want = {"executed": f"✓ {s} completed in", "kept": f"✓ {s} kept", "restored": f"✓ {s} restored from"}
        assert line.startswith(want[origin]), line


def test_interactive_sequence_in_one_kernel(shell, tmp_path, capsys):
    for s in STEPS:  # fresh: each cell executes its step
        run_ok(shell, CELLS[s])
    plan = session.current()
    run_ok(shell, "%steps run")  # nothing changed: every step kept as the kernel holds it
    _check(plan, {"a": "kept", "b": "kept", "c": "kept"}, tmp_path / "r1.csv")

    run_ok(shell, "%steps run --force b")  # forced: b and what reads it execute, a is kept
    _check(plan, {"a": "kept", "b": "executed", "c": "executed"}, tmp_path / "r2.csv")

    run_ok(shell, "%%step b\ny = x + 2")  # the middle cell edited: it executes; c is stale now
    assert plan["b"].origin == "executed"
    run_ok(shell, "%steps run")
    _check(plan, {"a": "kept", "b": "kept", "c": "executed"}, tmp_path / "r3.csv")
    assert shell.user_ns["z"] == 30


def test_up_to_date_cell_says_so_and_force_runs_it(shell, capsys):
    run_ok(shell, "%%step a\nx = 1")
    plan = session.current()
    token = plan["a"].token  # a new one on every execution
    capsys.readouterr()
    run_ok(shell, "%%step a\nx = 1")  # up to date: not run
    out = capsys.readouterr().out
    line = status_line(plan.context, "a")
    assert plan["a"].origin == "kept" and plan["a"].token == token
    assert re.search(r"up to date \(nothing it reads changed since \d\d:\d\d:\d\d\)", line), line
    assert "%%step a --force to run it anyway" in line and line in out
    run_ok(shell, "%%step a --force\nx = 1")
    assert plan["a"].origin == "executed" and plan["a"].token != token
    assert status_line(plan.context, "a").startswith("✓ a completed in")


def test_resume_from_a_directory_store_in_a_new_shell(shell, tmp_path, tmp_key):
    store = tmp_path / "store"
    run_ok(shell, f"%steps store {store}")
    for s in STEPS:
        run_ok(shell, CELLS[s])
    # a new kernel: the same notebook, its last cell edited, run as a plan
    session._plan = None
    shell.reset(new_session=False)
    session.bind(shell)
    run_ok(shell, f"%steps store {store}")
    run_ok(shell, "%steps mode plan")
    run_ok(shell, CELLS["a"])
    run_ok(shell, CELLS["b"])
    run_ok(shell, "%%step c\nz = y * 100")
    run_ok(shell, "%steps run")
    plan = session.current()
    _check(plan, {"a": "restored", "b": "restored", "c": "executed"}, tmp_path / "r.csv")
    assert "restored from checkpoints of" in plan.last_summary.text
    # the saved table shows the restored results (small ones are read), not "(on disk, not read yet)"
    run_ok(shell, "%steps mode interactive")
    run_ok(shell, "%%step d\nx + 41")
    session._plan = None
    shell.reset(new_session=False)
    session.bind(shell)
    run_ok(shell, f"%steps store {store}")
    run_ok(shell, "%steps mode plan")
    for cell in (CELLS["a"], "%%step d\nx + 41"):
        run_ok(shell, cell)
    run_ok(shell, "%steps run")
    plan = session.current()
    assert plan["d"].origin == "restored"
    assert plan.results().set_index("step").loc["d", "result"] == "42"


def test_rows_of_this_run_show_no_earlier_times(shell, tmp_path):
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%%step b\ny = x + 1")
    plan = session.current()
    assert plan["b"].started is not None
    run_err(shell, "%%step a\nx = 1 / 0")  # a fails: b is blocked in this run, never started
    run_err(shell, "%steps run")
    table = plan.results().set_index("step")
    assert table.loc["b", "status"] == "blocked"
    assert pd.isna(table.loc["b", "started"]) and table.loc["b", "attempts"] == 0
    assert table.loc["b", "origin"] == "" and not table.loc["b", "cached"]
    assert "started" not in step_log_text(plan.context, "b")


def test_failed_attempts_stay_visible(shell, monkeypatch):
    monkeypatch.delenv("NBSTEPS_TEST_TRIES", raising=False)
    run_ok(
        shell,
        "%%step flaky --retry 1 --retry-delay 0.01\n"
        "import os\n"
        "if os.environ.setdefault('NBSTEPS_TEST_TRIES', '1') == '1':\n"
        "    os.environ['NBSTEPS_TEST_TRIES'] = '2'\n"
        "    raise RuntimeError('first attempt breaks')\n"
        "v = 1",
    )
    monkeypatch.delenv("NBSTEPS_TEST_TRIES", raising=False)
    plan = session.current()
    rec = plan["flaky"]
    assert rec.ok and rec.attempts == 2
    assert rec.attempt_errors == ((1, "RuntimeError: first attempt breaks"),)
    assert "attempt 1 failed: RuntimeError: first attempt breaks" in status_line(plan.context, "flaky")
    assert "attempt 1 failed: RuntimeError: first attempt breaks" in step_log_text(plan.context, "flaky")


def test_timeline_bar_matches_table_duration_and_axis_has_units():
    plan = nbsteps.Plan()
    plan.add_cell("slow", "x = 1")
    assert plan.run().ok
    rec = plan["slow"]
    rec.started, rec.duration = rec.finished - 0.0005, 8.0  # an 8 s attempt whose record ended at once
    (bar,) = bars(plan.context)
    assert bar.end - bar.start == pytest.approx(8.0)
    svg = timeline_svg([bar])
    (row,) = table_rows(plan.context)  # what the table shows
    took = row["duration"]
    assert took == fmt_seconds(8.0) and f">{took}<" in svg and "&lt;1 ms" not in svg and "time since" in svg
    # the last tick label ends at the picture's edge (never clipped)
    last = re.findall(r'<text x="([\d.]+)" y="\d+" text-anchor="(\w+)" fill="#666">([^<]+)</text>', svg)[-1]
    assert last[1] == "end" or float(last[0]) + 3.5 * len(last[2]) <= 760


@pytest.mark.skipif(not __import__("shutil").which("dot"), reason="graphviz dot not installed")
def test_critical_path_and_static_counts_agree():
    plan = nbsteps.Plan()
    plan.add_cell("load", "x = 1")
    plan.add_cell("tune", "y = x + 1")
    assert plan.run().ok
    assert "Critical path" not in plan.plan().text  # nothing will execute
    plan.add_cell("load", "x = 2")  # edited: both are stale
    assert "Critical path: load -> tune" in plan.plan().text
    plan.refresh_stale()  # as the facade does before views draw
    html = static_bundle(plan.context)["text/html"]
    assert "2/2 completed, 2 stale" in html


CLI = [sys.executable, "-m", "nbsteps"]


def _write_nb(path, *sources):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, str(path))
    return path


@pytest.mark.kernel
def test_nbsteps_run_three_times_with_a_store(tmp_path, tmp_key):
    head = "%load_ext nbsteps"
    cells = [CELLS["a"], CELLS["b"], CELLS["c"], "%steps run"]  # a last run keeps what the cells ran
    nb = _write_nb(tmp_path / "nb.ipynb", head, *cells)
    csv, store = tmp_path / "results.csv", tmp_path / "store"

    def run(expected: dict, said: str):
        proc = subprocess.run(
            [*CLI, "run", str(nb), "--results", str(csv), "--store", str(store)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        table = pd.read_csv(csv).set_index("step")
        assert table["origin"].to_dict() == expected, proc.stdout
        assert table["cached"].to_dict() == {s: o != "executed" for s, o in expected.items()}
        assert said in proc.stdout, proc.stdout

    # fresh: every step executed in this `nbsteps run` (the last %steps run only kept them)
    run({"a": "executed", "b": "executed", "c": "executed"}, "3 of 3 steps completed.")
    # again: every step restored from the store
    run({"a": "restored", "b": "restored", "c": "restored"}, "3 of 3 steps completed (3 restored from")
    # the middle cell edited: a restored, b and c executed
    _write_nb(tmp_path / "nb.ipynb", head, CELLS["a"], "%%step b\ny = x + 5", CELLS["c"], "%steps run")
    run({"a": "restored", "b": "executed", "c": "executed"}, "3 of 3 steps completed (2 executed, 1 restored")
