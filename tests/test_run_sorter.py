"""The executor's ready-step sorter (nbsteps.run.decide.selection.Sorter) hands
out the steps of a run graph in graphlib.TopologicalSorter's order and refuses
what graphlib refuses, on real plans' run graphs."""

import graphlib
import random

import pytest

import nbsteps
from nbsteps.run.decide.selection import run_graph


def _plan(n: int, seed: int):
    rnd = random.Random(seed)
    plan = nbsteps.Plan()
    for i in range(n):
        ups = rnd.sample(range(i), k=min(i, rnd.randint(0, 3)))
        plan.step(f"s{i}", after=[f"s{u}" for u in ups])(lambda: None)
    return plan


def _drain(ts, finish_order):
    out = []
    while ts.is_active():
        ready = ts.get_ready()
        out.append(ready)
        for s in finish_order(ready):
            ts.done(s)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_ready_steps_come_in_graphlibs_order(seed):
    plan = _plan(60, seed)
    names = plan.select(None)
    rg = run_graph(plan.context, names)
    for finish in (lambda r: r, lambda r: list(reversed(r))):
        ref = graphlib.TopologicalSorter(rg.ups)
        ref.prepare()
        assert _drain(rg.sorter(), finish) == _drain(ref, finish)


def test_a_step_not_handed_out_or_done_twice_is_refused():
    plan = _plan(5, 1)
    ts = run_graph(plan.context, plan.select(None)).sorter()
    assert ts.is_active()
    first = ts.get_ready()
    with pytest.raises(ValueError, match="not passed out"):
        ts.done("s4" if "s4" not in first else "nope")
    ts.done(first[0])
    with pytest.raises(ValueError, match="already marked done"):
        ts.done(first[0])


def test_a_chain_is_handed_out_one_step_at_a_time_until_inactive():
    plan = nbsteps.Plan()
    plan.step("a")(lambda: 1)
    plan.step("b")(lambda a: a)
    ts = run_graph(plan.context, plan.select(None)).sorter()
    assert ts.get_ready() == ("a",)
    assert ts.is_active()  # handed out, not done
    ts.done("a")
    assert ts.get_ready() == ("b",)
    ts.done("b")
    assert not ts.is_active() and ts.get_ready() == ()
