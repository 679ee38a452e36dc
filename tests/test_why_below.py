"""Every explanation of a step's staleness makes the decision the run makes (nbsteps.run.decide.staleness).

A file a step read that a step *below* it removed or rewrote is, as Run All leaves it, no change of
the step's input: the plan keeps the step (``RunContext.written_below``). ``%steps why`` (and
``nbsteps status``) called it stale all the same ("changed since: the step is stale"; joblib's user
guide, jl_memory: cell 2 reads the cache the last cell removes), although the next run executed
nothing. Here: ``%steps why``, the status line, the JupyterLab badge, the results table, the preview,
``nbsteps status`` and the run agree, before and after a real change of the file by an ordinary cell.
"""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from conftest import run_ok, shell_on_store
from nbformat.v4 import new_code_cell, new_notebook

import nbsteps
from nbsteps.ipython.lab import step_state
from nbsteps.views import table
from nbsteps.views.step_view import status_line

READ = "%%step a\ngot = open('data.txt').read()"
BELOW = {  # each changes the file after the reader read it, as Run All does
    "removes": "%%step b\nimport os\nos.remove('data.txt')",
    "rewrites": "%%step b\nwith open('data.txt', 'w') as fh:\n    fh.write('two')",
}
STALE_MARK = "the step is stale"


def why(shell, capsys, name: str) -> str:
    capsys.readouterr()
    run_ok(shell, f"%steps why {name}")
    return capsys.readouterr().out


def views(shell, capsys) -> dict:
    """What each view says of step a: (stale?, its words)."""
    plan = nbsteps.current()
    plan.refresh_stale()
    ctx = plan.context
    badge = step_state(ctx, "a")
    row = {r["step"]: r for r in table.rows(ctx)}["a"]
    line = status_line(ctx, "a")
    text = why(shell, capsys, "a")
    return {
        "why": (STALE_MARK in text, text),
        "line": ("stale" in line, line),
        "badge": (badge["stale"], badge["stale_reason"]),
        "table": (row["stale"], ""),
        "preview": ("a" in plan.plan().to_run, ""),
    }


def executed() -> list:
    return sorted(nbsteps.current().last_summary.completed_order)


@pytest.mark.parametrize("how", sorted(BELOW))
def test_a_file_changed_by_a_step_below_is_not_called_a_change_in_any_view(
    shell, tmp_path, monkeypatch, tmp_key, capsys, how
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("one")
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    run_ok(shell, READ)
    run_ok(shell, BELOW[how])
    assert shell.user_ns["got"] == "one"

    seen = views(shell, capsys)
    assert {k: v[0] for k, v in seen.items()} == dict.fromkeys(seen, False), seen
    assert "data.txt" in seen["why"][1] and "a step below" in seen["why"][1]
    run_ok(shell, "%steps run")
    assert executed() == []

    # a real change of the file, by an ordinary cell: a is stale everywhere, and the next run executes it
    run_ok(shell, "with open('data.txt', 'w') as fh:\n    fh.write('three')")
    seen = views(shell, capsys)
    assert {k: v[0] for k, v in seen.items()} == dict.fromkeys(seen, True), seen
    assert "file data.txt changed" in seen["line"][1] and seen["badge"][1] == "file data.txt changed"
    run_ok(shell, "%steps run")
    assert executed() == ["a"] and shell.user_ns["got"] == "three"
    assert STALE_MARK not in why(shell, capsys, "a")


REPORT = """
import io, contextlib
from nbsteps.views.step_view import status_line
def why():
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        ip.run_line_magic("steps", "why a")
    return text.getvalue()
plan.refresh_stale()
out["before"] = [why(), status_line(plan.context, "a"), plan["a"].stale, plan.plan().to_run]
with contextlib.redirect_stdout(io.StringIO()):
    ip.run_line_magic("steps", "run")
out["ran"] = sorted(plan.last_summary.completed_order)
with open("data.txt", "w") as fh:
    fh.write("three")
plan.refresh_stale()
out["after"] = [why(), status_line(plan.context, "a"), plan["a"].stale, plan.plan().to_run]
with contextlib.redirect_stdout(io.StringIO()):
    ip.run_line_magic("steps", "run")
out["ran_after"] = sorted(plan.last_summary.completed_order)
"""


def test_a_new_kernel_asks_the_store_what_the_steps_below_left(shell, tmp_path, monkeypatch, tmp_key):
    """A new process restores only the reader (``%steps run a``): the step below is not restored yet,
    what it wrote is read from its checkpoint (``RunContext.written_below``'s store peek)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("one")
    store = tmp_path / "store"
    run_ok(shell, f"%steps store {store}")
    run_ok(shell, READ)
    run_ok(shell, BELOW["removes"])
    cells = ["%steps mode plan", READ, BELOW["removes"], "%steps run a"]
    out = shell_on_store(store, cells, tmp_path, REPORT)
    text, line, stale, to_run = out["before"]
    assert STALE_MARK not in text and "a step below" in text, text
    assert "stale" not in line and not stale and to_run == [], line
    assert out["ran"] == []
    text, line, stale, to_run = out["after"]
    assert STALE_MARK in text and "stale: file data.txt changed" in line and stale and to_run == ["a"]
    assert out["ran_after"] == ["a"]


@pytest.mark.kernel
def test_nbsteps_status_judges_a_removal_below_as_the_run_does(tmp_path, kernel_name):
    """``nbsteps status`` on a notebook whose last cell removes the file the first cell read: done, as
    the next ``nbsteps run`` (which executes nothing); a real change of the file: stale, and executed."""
    cells = ["got = open('data.txt').read()", "import os\nos.remove('data.txt')"]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    nbformat.write(nb, tmp_path / "n.ipynb")
    reader = f"cell-{nb.cells[0].id[:8]}"

    def nbs(*args):
        cmd = [sys.executable, "-m", "nbsteps", *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)

    def status() -> dict:
        proc = nbs("status", "n.ipynb", "--store", "st", "--json")
        return {r["step"]: (r["state"], r["why"]) for r in json.loads(proc.stdout)["steps"]}

    def run() -> str:
        proc = nbs("run", "n.ipynb", "--store", "st", "--kernel", kernel_name)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    (tmp_path / "data.txt").write_text("one")
    run()
    assert status()[reader][0] == "done"
    assert " started" not in run()  # restored, both
    (tmp_path / "data.txt").write_text("three")
    assert status()[reader] == ("stale", "file data.txt changed")
    assert f"▶ {reader} started" in run()
