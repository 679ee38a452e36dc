"""Registering a step takes short paths for the common case (a function step without
options, new to the plan, nothing recorded of it; a graph whose edges all go down the
notebook order): they must give what the general paths give."""

from __future__ import annotations

import dataclasses

import nbsteps
from nbsteps.model import dependencies as D
from nbsteps.model.step import Step, cell_step, function_step


def _plan() -> nbsteps.Plan:
    plan = nbsteps.Plan()

    @plan.step
    def a():
        return 1

    @plan.step("b")
    def b(a, unused=2):
        return a + 1

    @plan.step(after=["a"], retry=1)
    def c(b):
        return b * 2

    plan.add_cell("d", "x = 5")

    @plan.step
    def e(a, c, *, scale=3):
        return (a + c) * scale

    plan.add_cell("f", "y = x * 2")
    return plan


_GRAPH = ("deps", "sources", "writers", "results", "readers", "referenced", "position", "state_labels")


def test_steps_appended_one_by_one_give_the_graph_a_full_resolve_gives():
    plan = _plan()
    full = D.resolve(dict(plan.steps))  # (sets linked / called_reads on the same steps again)
    for attr in _GRAPH:
        assert getattr(plan.deps, attr) == getattr(full, attr), attr
    assert plan.deps.in_order and full.in_order
    assert plan.run().ok
    assert plan["e"].result == (1 + 4) * 3 and plan.namespace["y"] == 10


def test_the_order_of_a_graph_in_notebook_order_is_the_one_the_sort_gives():
    plan = _plan()
    order = plan.topological()
    assert order == list(plan.steps)
    g = D.resolve(dict(plan.steps))
    g.in_order = False  # the general path: Kahn's algorithm, ties in registration order
    assert g.topological(plan.steps) == order


def test_an_after_naming_a_step_below_leaves_the_notebook_order():
    steps = {
        "a": cell_step("a", "x = 1", after=("b",)),
        "b": cell_step("b", "y = 2"),
        "c": cell_step("c", "z = x + y"),
    }
    g = D.resolve(steps)
    assert not g.in_order
    assert g.topological(steps) == ["b", "a", "c"]


def test_a_function_step_without_options_has_the_fields_the_dataclass_gives():
    def f(a):
        return a

    made = function_step("f", f, {"a": None})
    made_too = function_step("f", f, {"a": None})
    want = Step(name="f", func=f, params=("a",), static_digest=made.static_digest)
    for field in dataclasses.fields(Step):
        assert getattr(made, field.name) == getattr(want, field.name), field.name
    assert list(vars(made)) == list(vars(want))  # the same fields, in the same order
    assert made.hints is not made_too.hints  # a dict of its own


def test_options_given_as_their_defaults_are_no_options():
    def f():
        return 1

    plain = function_step("f", f, {})
    spelled = function_step(
        "f",
        f,
        {},
        after=(),
        retry=0,
        retry_delay=1.0,
        retry_on=(),
        timeout=None,
        optional=False,
        confirm=None,
        cache=True,
    )
    for field in dataclasses.fields(Step):
        if field.name != "hints":
            assert getattr(plain, field.name) == getattr(spelled, field.name), field.name
