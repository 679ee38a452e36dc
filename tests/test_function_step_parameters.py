"""Which parameters of a function step receive upstream results: read from the
function's code for a plain function, from inspect.signature for anything else
(functools.wraps wrappers, partials, methods, builtins). Both give what
inspect.signature gives."""

import functools
import inspect

import pytest

import nbsteps
from nbsteps.errors import StepDefinitionError
from nbsteps.model.step import _parameters


def _by_signature(func):
    return [
        (p.name, p.default is not p.empty)
        for p in inspect.signature(func).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _positional_only(a, b=1, /, c=2, *args, d, e=3, **kw):
    local = a + b
    return local


def _keyword_only(a, *, b):
    return a + b


def _wrapped(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


class _Holder:
    def method(self, a, b=2):
        return a + b


@pytest.mark.parametrize(
    "func",
    [
        _positional_only,
        _keyword_only,
        lambda x, y=1: x + y,
        lambda *args, **kwargs: None,
        _wrapped(_keyword_only),
        _Holder.method,
        _Holder().method,
        functools.partial(_keyword_only, 1),
        print,
    ],
)
def test_parameters_are_those_inspect_signature_gives(func):
    names, has_default = _parameters("s", func)
    assert [(p, has_default(p)) for p in names] == _by_signature(func)


def test_a_wrapped_function_step_receives_the_upstream_results_its_wrapped_signature_names():
    plan = nbsteps.Plan()
    plan.step("a")(lambda: 2)
    plan.step("b", after=())(lambda: 3)

    @_wrapped
    def total(a, b, *, scale=10):
        return (a + b) * scale

    plan.step("total")(total)
    assert plan.run().ok
    assert plan["total"].result == 50
    assert plan.steps["total"].params == ("a", "b")


def test_a_keyword_only_parameter_without_default_that_names_no_step_is_refused():
    plan = nbsteps.Plan()
    plan.step("a")(lambda: 1)

    def needs(a, *, missing):
        return a

    with pytest.raises(StepDefinitionError, match="parameter 'missing' names no registered step"):
        plan.step("needs")(needs)
