"""A step that fails while another step ran beside it runs again alone before its failure
counts (found by the corpus: SymPy's tutorial; nbsteps.run.attempt.alone).

SymPy evaluates integrals with mpmath, whose working precision is one module-level context:
``Integral(1/sqrt(x), (x, 0, 1)).evalf()`` raised ``TypeError: cannot unpack non-iterable
ComplexInfinity object`` in plan mode while another step evaluated an integral (``sym_calculus``
plan and headless), never in Run All, which runs every cell alone. The library here is a
stand-in for any that keeps such state: entered twice at once, it fails.
"""

from __future__ import annotations

import sys
import types

import pytest
from conftest import run_ok
from test_semantics import run_all, steps

import nbsteps
from nbsteps.errors import StepsFailed

RACY = """
import time
_inside = []

def compute(n):
    # keeps its working state at module level, as mpmath's precision: not to be entered twice at once
    _inside.append(n)
    try:
        time.sleep(0.2)
        if len(_inside) > 1:
            raise TypeError("cannot unpack non-iterable ComplexInfinity object")
        if n < 0:
            raise ValueError("negative")
        return n * 10
    finally:
        _inside.remove(n)
"""
CELLS = ["import racy_nbsteps as racy", "a = racy.compute(1)", "b = racy.compute(2)", "c = racy.compute(3)"]


@pytest.fixture(autouse=True)
def racy():
    mod = types.ModuleType("racy_nbsteps")
    exec(RACY, mod.__dict__)
    sys.modules["racy_nbsteps"] = mod
    yield mod
    sys.modules.pop("racy_nbsteps", None)


def test_steps_failing_beside_others_run_again_alone_as_in_run_all(shell):
    ref = run_all(CELLS)
    run_ok(shell, "%steps mode plan")
    steps(shell, CELLS)
    run_ok(shell, "%steps run --workers 4")
    assert [shell.user_ns[n] for n in "abc"] == [ref[n] for n in "abc"] == [10, 20, 30]
    plan = nbsteps.current()
    assert all(plan[f"c{i}"].attempts == 1 for i in range(len(CELLS)))  # not a --retry attempt


def test_a_step_that_fails_alone_too_fails_as_in_run_all(shell):
    run_ok(shell, "%steps mode plan")
    steps(shell, [*CELLS, "d = racy.compute(-1)"])
    result = shell.run_cell("%steps run --workers 4")
    assert isinstance(result.error_in_exec, StepsFailed)
    plan = nbsteps.current()
    assert plan["c4"].status == "failed" and "negative" in plan["c4"].error_text
    assert [shell.user_ns[n] for n in "abc"] == [10, 20, 30]
