"""A module's own object that a step only hands to a call is given to it as it is, not as a private
copy: Run All gives the library its own object, which the library may know by identity (found by the
corpus, py_decimal: ``setcontext(ExtendedContext)`` copies decimal's template contexts and sets the
copy; given a private copy, it set that copy itself as the current context, and the next cells'
``getcontext().traps[DivisionByZero] = 1`` and divisions changed the notebook's ``ExtendedContext``: its
traps and flags differed from Run All's in the interactive, resume and edit ways).

A step that changes such an object itself (an attribute assigned) still gets its private copy.
Real IPython shell, real steps (interactive mode: each ``%%step`` cell executes as it is run).
"""

from __future__ import annotations

import decimal

CELLS = [
    "from decimal import *\ngetcontext().prec = 28",
    "setcontext(ExtendedContext)\ngetcontext().clear_flags()\nq = Decimal(355) / Decimal(113)",
    "getcontext().traps[DivisionByZero] = 1\nr = Decimal(1) / Decimal(7)",
]


def _run(ip, cells):
    for i, code in enumerate(cells, 1):
        result = ip.run_cell(f"%%step cell{i}\n{code}")
        assert result.success, result.error_in_exec


def test_a_module_template_handed_to_a_call_stays_the_modules(shell):
    saved = decimal.getcontext()
    try:
        _run(shell, CELLS)
        ns = shell.user_ns
        assert ns["ExtendedContext"] is decimal.ExtendedContext
        # as after Run All: the template is unchanged, its copy is the current context
        assert ns["ExtendedContext"].traps[decimal.DivisionByZero] == 0
        assert not any(ns["ExtendedContext"].flags.values())
        assert str(ns["q"]) == "3.14159292" and str(ns["r"]) == "0.142857143"
    finally:
        decimal.setcontext(saved)


def test_a_module_object_the_step_changes_is_still_copied(shell, module_from_source):
    lib = module_from_source(
        "nbsteps_test_owned",
        "class Settings:\n    def __init__(self):\n        self.level = 1\n\nSETTINGS = Settings()\n",
    )
    _run(shell, ["from nbsteps_test_owned import SETTINGS", "print(SETTINGS)\nSETTINGS.level = 2"])
    # the step's version is its own: the module's object is as the import left it
    assert shell.user_ns["SETTINGS"].level == 2
    assert lib.SETTINGS.level == 1
