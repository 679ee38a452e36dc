"""Validity: a cell run again drops the steps below it from the set known up to date only when
its token changed (Validity.before/after); the cell below run alone then sees Run All's values."""

import nbsteps


def _chain():
    plan = nbsteps.Plan()
    plan.namespace["k"] = 1
    plan.add_cell("a", "x = k * 2")
    plan.add_cell("b", "y = x + 1")
    plan.add_cell("c", "z = y * 10")
    assert plan.run().ok
    assert plan.run(["c"]).ok  # all known up to date
    return plan


def test_a_cell_run_again_with_a_new_value_makes_the_cells_below_checked_again():
    plan = _chain()
    plan.namespace["k"] = 5  # an outside value a reads
    assert plan.run(["a"]).ok  # a executes again: a new token
    assert plan.namespace["x"] == 10
    assert plan.run(["c"]).ok
    assert plan.namespace["z"] == 110  # b executed again, as in Run All


def test_a_cell_run_again_unchanged_keeps_the_cells_below_known_up_to_date():
    plan = _chain()
    token = plan.records["b"].token
    assert plan.run(["a"]).ok  # kept: up to date
    assert plan.run(["c"]).ok
    assert plan.namespace["z"] == 30 and plan.records["b"].token == token


def test_a_cell_forced_to_execute_again_makes_the_cells_below_checked_again():
    import itertools

    plan = nbsteps.Plan()
    plan.namespace["counter"] = itertools.count(1)  # untracked: its digest is not known
    plan.add_cell("a", "x = next(counter)")
    plan.add_cell("b", "y = x + 1")
    plan.add_cell("c", "z = y * 10")
    assert plan.run().ok
    assert plan.run(["c"]).ok
    assert plan.run(["a"], force=["a"]).ok  # executed again: x is 2 now, a new token
    assert plan.namespace["x"] == 2
    assert plan.run(["c"]).ok
    assert plan.namespace["z"] == 30  # b executed again on the new x
