"""A function a step defines looks its globals up in the notebook's namespace when it is called,
as in Run All, not in the private namespace the step ran in.

``T = 5``, then ``%%step c0`` defines ``def f(): return T * 2``, then an ordinary cell sets
``T = 10`` and calls ``f()``: Run All gives 20. The step ran in a private copy of the namespace,
and before this its functions kept that copy as their globals: ``f()`` gave 10 (a silently wrong
value), and a name first assigned after the step (``later = 5``) raised ``NameError``. The same
for the methods of a class the step defines, static and class methods and properties included.
Real components: IPython's InteractiveShell with nbsteps loaded, interactive and plan mode.
"""

from __future__ import annotations

import pytest
from test_semantics import new_kernel, run_all

import nbsteps
from tests.conftest import run_ok

DEFINE = (
    "def f():\n    return T * 2\n\n"
    "def g():\n    return later + f()\n\n"
    "class Scale:\n"
    "    def times(self, x):\n        return x * T\n"
    "    @staticmethod\n    def plus(x):\n        return x + later\n"
    "    @classmethod\n    def name(cls):\n        return f'{cls.__name__}{T}'\n"
    "    @property\n    def big(self):\n        return T > 7\n\n"
    "h = f  # the same function under two names"
)
CELLS = [
    "T = 5",
    "%%step c0\n" + DEFINE,
    "T = 10\nlater = 1",
    "got = [f(), g(), Scale().times(3), Scale.plus(2), Scale.name(), Scale().big, h is f, h()]",
]


def _reference() -> list:
    ref = run_all([c.split("\n", 1)[1] if c.startswith("%%step") else c for c in CELLS])
    return ref["got"]


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_functions_a_step_defines_see_the_notebook_when_called(shell, mode):
    ref = _reference()
    assert ref == [20, 21, 30, 3, "Scale10", True, True, 20]
    run_ok(shell, f"%steps mode {mode}")
    run_ok(shell, CELLS[0])
    run_ok(shell, CELLS[1])
    if mode == "plan":
        run_ok(shell, "%steps run")
    run_ok(shell, CELLS[2])
    run_ok(shell, CELLS[3])
    assert shell.user_ns["got"] == ref
    # what the notebook holds is the step's output (one value current, not two)
    assert shell.user_ns["f"] is nbsteps.step("c0").outputs["f"]


def test_a_step_calling_them_still_sees_the_versions_above_it(shell):
    """A step below calls the function: it sees the value the step above it wrote (Run All's at
    that point), also when the notebook's value is another one later."""
    run_ok(shell, "T = 5")
    run_ok(shell, "%%step c0\n" + DEFINE)
    run_ok(shell, "%%step c1\nT = 3")
    run_ok(shell, "%%step c2\nr = f()")
    assert shell.user_ns["r"] == 6
    run_ok(shell, "T = 100")
    assert run_ok(shell, "f()") == 200  # an ordinary cell: the namespace's T, as in Run All
    run_ok(shell, "%%step c2\nr = f()")  # run again: up to date, c1's T
    assert shell.user_ns["r"] == 6


def test_restored_functions_see_the_new_kernels_notebook(shell, tmp_path, tmp_key):
    """In a new kernel the step is restored: its functions, read back from the checkpoint (with
    the values they were stored with), look their globals up in the new kernel's namespace."""
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    for cell in CELLS:
        run_ok(shell, cell)
    new_kernel(shell, tmp_path / "store")
    for cell in CELLS:
        run_ok(shell, cell)
    assert "restored" in nbsteps.current()["c0"].reason or nbsteps.current()["c0"].cached
    assert shell.user_ns["got"] == _reference()  # h is f: read back as one function (stores.sharing)
