"""Objects that define value equality and a hash are values (found by the corpus: SymPy's tutorial).

Python's data model asks an object whose class defines ``__eq__`` and ``__hash__`` not to change
in a way that changes its value. Such objects often memoize in private attributes what reads
compute: SymPy's expressions cache their hash (``_mhash``, ``None`` until the first ``hash()``).
``expr.subs(z, 0)`` hashes the symbol ``z``: the step was seen changing ``z`` in place
(nbsteps.run.attempt.observe), became a writer of it, and the step that made ``z`` and every step
below it ran again in a new kernel (``sym_basic_operations`` resume: 13 of 23 steps). Such an
object is now compared by its hash and its public attributes: a memo a read fills is no change, a
change of its value still is.
"""

from __future__ import annotations

import pytest
from conftest import run_ok
from test_semantics import run_all, steps

import nbsteps

POINT = """\
class Point:
    __slots__ = ("x", "y", "_hash")
    def __init__(self, x, y):
        self.x, self.y, self._hash = x, y, None
    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)
    def __hash__(self):
        if self._hash is None:  # a memo, as SymPy's _mhash
            self._hash = hash((self.x, self.y))
        return self._hash
p = Point(1, 2)"""
HASHED = [POINT, "seen = {p: 'first'}", "other = len(seen)"]

MOVER = """
def move(point, x):
    point.x = x  # a change of its value, which the analysis cannot see
    point._hash = None
    return x
"""


@pytest.fixture(autouse=True)
def mover(module_from_source):
    return module_from_source("mover_values", MOVER)


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_hashing_a_value_object_is_no_write(shell, mode):
    run_ok(shell, f"%steps mode {mode}")
    steps(shell, HASHED)
    if mode == "plan":
        run_ok(shell, "%steps run --workers 4")
    plan = nbsteps.current()
    assert shell.user_ns["other"] == run_all(HASHED)["other"] == 1
    assert not plan.steps["c1"].observed and "p" not in plan.steps["c1"].outputs


def test_a_change_of_a_value_objects_value_is_still_seen(shell):
    """(passes before the rule too: it guards against a rule that hides real changes)"""
    cells = [POINT, "import mover_values\nn = mover_values.move(p, 5)", "q = p.x"]
    steps(shell, cells)
    plan = nbsteps.current()
    assert "p" in plan.steps["c1"].observed  # the rule does not hide a real change
    assert shell.user_ns["q"] == run_all(cells)["q"] == 5
