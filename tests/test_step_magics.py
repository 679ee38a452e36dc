"""``%timeit`` inside a step keeps to the step's namespace (nbsteps/ipython/step_magics.py).

IPython's line ``%timeit`` copies the caller's names into the user namespace
and, when done, puts back what was there before: from a step that reverted
whatever other steps published meanwhile (the corpus' sm_stl_decomposition
ended with an earlier cell's ``fig``) and leaked the step's private names."""

import pytest


@pytest.fixture
def ip(shell):
    return shell


def test_a_step_timing_does_not_revert_what_another_step_published(ip):
    ip.run_line_magic("steps", "mode plan")
    assert ip.run_cell("fig = 'the notebook cell'").success
    assert ip.run_cell(
        "%%step slow\nimport time\n%timeit -n 1 -r 1 time.sleep(0.6)\nslow_done = True"
    ).success
    assert ip.run_cell("%%step quick\nimport time\ntime.sleep(0.1)\nfig = 'quick'").success
    assert ip.run_cell("%steps run --workers 2").success
    assert ip.user_ns["fig"] == "quick"  # Run All: quick's fig
    assert ip.user_ns["slow_done"] is True


def test_timeit_in_a_step_leaks_nothing_and_times_the_steps_names(ip):
    cell = "%%step t\nsecret = 41\n%timeit -n 2 -r 1 secret + 1\ndel secret\nkept = 1"
    assert ip.run_cell(cell).success
    assert "secret" not in ip.user_ns and ip.user_ns["kept"] == 1


def test_timeit_outside_steps_is_ipythons_own(ip):
    assert ip.run_cell("x = 3").success
    assert ip.run_cell("%timeit -n 2 -r 1 x * 2").success
    assert ip.run_cell(
        "def f():\n    y = 5\n    get_ipython().run_line_magic('timeit', '-n 1 -r 1 y')\nf()"
    ).success


def test_prun_in_a_step_runs_on_the_steps_names(ip):
    """``%prun`` runs its statement in the user namespace: from a step it must see the
    step's names and bind into the step (its outputs), as in an ordinary cell."""
    cell = "%%step p\nbase = 20\n%prun -q total = sum(range(base))\ndoubled = total * 2"
    assert ip.run_cell(cell).success
    assert ip.user_ns["doubled"] == 2 * sum(range(20)) and ip.user_ns["total"] == sum(range(20))
    assert ip.run_cell("%prun -q outside = 1 + 1").success  # IPython's own outside steps
    assert ip.user_ns["outside"] == 2
