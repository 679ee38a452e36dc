"""Zero edits with cell magics that run Python (corpus ipy_capturing_output, zero-edit way).

``nbsteps run`` on a notebook without ``%%step`` cells made no step of a cell starting with a cell
magic: ``%%capture``, ``%%time``... ran as plain cells while the steps were registered, before
``%steps run`` published any value, so a ``%%capture`` cell reading ``sys`` imported above failed
(NameError), and what its body bound was not the notebook's. A cell magic that hands its body to
IPython (``shell.run_cell`` / ``transform_cell``: ``%%capture``, ``%%time``, ``%%timeit``,
``%%prun``; and a line magic that hands its argument to ``transform_cell``: ``%time w = ...``)
now makes its cell a step, as a ``%%step`` cell with that body is: in notebook order, seeing the
values above it, its bindings published below (nbsteps.ipython.auto.runs_python). Other magics
(``%%bash``, ``%%html``, ``%%writefile``, ``%matplotlib``, ``%rerun``) stay plain cells, and such
a cell runs at its place: after the steps above it ran (nbsteps.cli.driver), so ``%%bash`` reads
the file a step above wrote.
"""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

import nbsteps
from nbsteps.cli.cells import notebook_steps
from tests.conftest import cell_text, execute_notebook, run_ok

SPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
CELLS = [
    "import sys\nx = 1",
    "%%capture cap\nprint('to stderr', file=sys.stderr)\nx = x + 1\nprint('to stdout')",
    "%%time\ny = x * 10",
    "%%timeit -n1 -r1\ntimed = y + 1  # (timeit runs it in a function of its own: binds nothing)",
    "%time w = y + 2",
    "print(x, y, w, 'timed' in dir(), repr(cap.stdout), repr(cap.stderr))",
    "with open('n.txt', 'w') as fh:\n    fh.write(str(w))",
    "%%bash\necho from bash\ncat n.txt",  # a plain cell, at its place: after the steps above it
    "%matplotlib inline",
]
LAST = "2 20 22 False 'to stdout\\n' 'to stderr\\n'"


def test_python_cell_magics_are_steps_and_others_are_not():
    cells = [new_code_cell(c) for c in [*CELLS, "%%html\n<b>x</b>", "%%writefile f.py\nz = 1", "%rerun 1"]]
    steps, zero, _ = notebook_steps(cells)
    assert zero and [s.index for s in steps] == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_steps_auto_makes_a_capture_cell_a_step_that_cells_below_read(shell, mode):
    """``%steps auto`` (a real InteractiveShell): the ``%%capture`` cell rebinds x; the cell
    below reads that x, as in Run All, not the version of the step above. In plan mode the
    steps run on workers, where ``%%capture`` runs its body as a cell: not a step of its own."""
    run_ok(shell, f"%steps mode {mode}")
    run_ok(shell, "%steps auto")
    try:
        for cell in ("x = 1", "%%capture cap\nx = x + 1\nprint('hidden')", "y = x * 10"):
            # (a shell sends no cell id: the steps are named after the execution count)
            assert shell.run_cell(cell, store_history=True).success, cell
        if mode == "plan":
            run_ok(shell, "%steps run --workers 2")
    finally:
        run_ok(shell, "%steps auto off")
    assert (shell.user_ns["x"], shell.user_ns["y"], shell.user_ns["cap"].stdout) == (2, 20, "hidden\n")
    assert len(nbsteps.current().steps) == 3


@pytest.mark.kernel
def test_nbsteps_run_runs_capture_and_time_cells_as_run_all_does(tmp_path, kernel_name):
    plain = execute_notebook(CELLS, kernel_name, tmp_path)
    assert LAST in cell_text(plain.cells[5])
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in CELLS], metadata=SPEC), tmp_path / "m.ipynb")
    for attempt in ("first", "resumed"):
        proc = subprocess.run(
            [sys.executable, "-m", "nbsteps", "run", "m.ipynb", "--store", ".nbsteps", "-o", "out.ipynb",
             "--workers", "2", "--kernel", kernel_name],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, (attempt, proc.stdout + proc.stderr)
        assert "7 of 7 steps" in proc.stdout, proc.stdout
        out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
        assert [c.source for c in out.cells] == CELLS  # the notebook keeps its sources
        assert LAST in cell_text(out.cells[5]), (attempt, cell_text(out.cells[5]))
        assert "Wall time" in cell_text(out.cells[2]) or attempt == "resumed"
        assert "from bash\n22" in cell_text(out.cells[7]), cell_text(out.cells[7])
