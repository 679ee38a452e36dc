"""A cell that defines functions reading a global a later cell assigns is run once, as in Run All.

``def show(a): return len(late)`` does not read ``late``: the call does, in the cell that calls it
(``Step.called_reads``). So ``late`` is no parameter of the defining cell: its appearance (the cell
below that assigns it ran) or a new value of it (that cell edited) does not make the defining cell
stale. Before, a second pass of a plan-mode run (a step seen changing an input nobody predicted,
``Plan._observed_writes``) found it stale ("parameter late changed") and executed it and the steps
below it again; interactively, editing ``late``'s cell executed the defining cell again too. The
caller still reads ``late``: editing its cell re-executes the caller, with the new value.
"""

from __future__ import annotations

import pytest

import nbsteps
from tests.conftest import run_ok

POKE = "def poke(x):\n    x.append(0)\n    return len(x)"  # an ordinary cell: a change nobody predicts
CELLS = [
    "%%step c0\nprint('ran c0')\ndef show(a):\n    return len(late)",
    "%%step c1\nprint('ran c1')\nlate = [1, 2]\nimage = [0]",
    "%%step c2\nprint('ran c2')\nn = poke(image)",
    "%%step c3\nprint('ran c3')\nm = show(1)",
]
EDITED_C1 = "%%step c1\nprint('ran c1')\nlate = [1, 2, 3]\nimage = [0]"


def _counts(out: str) -> dict:
    return {c: out.count(f"ran {c}\n") for c in ("c0", "c1", "c2", "c3")}


def _run(shell, cells, mode):
    for cell in cells:
        run_ok(shell, cell)
    if mode == "plan":
        run_ok(shell, "%steps run")


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_each_step_executes_once_as_in_run_all(shell, capfd, mode):
    run_ok(shell, f"%steps mode {mode}")
    run_ok(shell, POKE)
    capfd.readouterr()
    _run(shell, CELLS, mode)
    assert _counts(capfd.readouterr().out) == {"c0": 1, "c1": 1, "c2": 1, "c3": 1}
    assert shell.user_ns["n"] == 2 and shell.user_ns["m"] == 2 and shell.user_ns["image"] == [0, 0]
    plan = nbsteps.current()
    assert "c2" in plan.dependencies("c3") or "c1" in plan.dependencies("c3")
    # a run again executes nothing
    _run(shell, [] if mode == "plan" else [CELLS[3]], mode)
    assert _counts(capfd.readouterr().out) == {"c0": 0, "c1": 0, "c2": 0, "c3": 0}


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_editing_the_cell_of_the_global_reruns_the_caller_not_the_definition(shell, capfd, mode):
    run_ok(shell, f"%steps mode {mode}")
    run_ok(shell, POKE)
    _run(shell, CELLS, mode)
    capfd.readouterr()
    # late's cell edited, then (interactive) the cells below it run again, in order
    _run(shell, [EDITED_C1] + (CELLS[2:] if mode == "interactive" else []), mode)
    counts = _counts(capfd.readouterr().out)
    assert counts["c0"] == 0, counts  # the definition is not stale: def reads no `late`
    assert counts["c1"] == 1 and counts["c3"] == 1, counts  # the caller reads it: stale, executed
    assert shell.user_ns["m"] == 3  # Run All's: show() sees the new late
    assert nbsteps.current()["c0"].reason != "parameter late changed"


def test_a_global_no_step_writes_makes_the_caller_stale(shell):
    """``THRESH`` set in an ordinary cell: no step writes it; the caller reads it as an input
    (``called_reads``: names a step above writes, or no step writes), so a new value makes the
    caller stale (the value Run All computes), not the defining cell."""
    run_ok(shell, "%steps mode interactive")
    run_ok(shell, "%%step c0\ndef f():\n    return THRESH * 2")
    run_ok(shell, "THRESH = 5")
    run_ok(shell, "%%step c1\ny = f()")
    assert shell.user_ns["y"] == 10
    run_ok(shell, "THRESH = 6")
    run_ok(shell, "%%step c1\ny = f()")
    assert shell.user_ns["y"] == 12
