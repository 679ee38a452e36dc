"""nbsteps.model.dependencies: edges from names, --after and parameters."""

from __future__ import annotations

import pytest

from nbsteps.errors import CycleError, UnknownStepError
from nbsteps.model import dependencies as D
from nbsteps.model.step import cell_step


def steps(*cells, **after):
    out = {}
    for name, src in cells:
        out[name] = cell_step(name, src, after=after.get(name, ()))
    return out


def test_inferred_edges_follow_names():
    g = D.resolve(
        steps(("load", "df = 1"), ("clean", "c = df + 1"), ("plot", "p = c * 2"), ("other", "o = 3"))
    )
    assert g.deps == {"load": {}, "clean": {"load": D.INFERRED}, "plot": {"clean": D.INFERRED}, "other": {}}
    assert g.sources["plot"] == {"c": "clean"}
    assert g.upstream(["plot"]) == {"plot", "clean", "load"}
    assert g.downstream(["load"]) == {"load", "clean", "plot"}


def test_after_adds_an_explicit_edge_and_must_name_a_step():
    g = D.resolve(steps(("a", "x = 1"), ("b", "y = 2"), b=("a",)))
    assert g.deps["b"] == {"a": D.EXPLICIT}
    with pytest.raises(UnknownStepError, match="nope"):
        D.resolve(steps(("a", "x = 1"), b=()) | {"b": cell_step("b", "y = 1", after=("nope",))})


def test_cycles_are_only_possible_through_after_and_are_named():
    g = D.resolve(steps(("a", "x = y"), ("b", "y = x")))  # a reads y before anything writes it
    assert g.deps == {"a": {}, "b": {"a": D.INFERRED}}
    with pytest.raises(CycleError) as info:
        D.resolve({"a": cell_step("a", "x = 1", after=("b",)), "b": cell_step("b", "y = x")})
    assert info.value.cycle[0] == info.value.cycle[-1] and set(info.value.cycle) == {"a", "b"}


def test_reads_bind_to_the_nearest_writer_above():
    g = D.resolve(
        steps(
            ("a", "x = 1"),
            ("b", "total = x + 1"),
            ("c", "x = 10"),
            ("d", "big = x * 2"),
            ("e", "x += 1"),
            ("f", "last = x"),
        )
    )
    assert g.sources["b"] == {"x": "a"}
    assert g.sources["d"] == {"x": "c"}
    assert g.sources["e"] == {"x": "c"}  # a rewrite reads the version above it
    assert g.sources["f"] == {"x": "e"}
    assert "c" not in g.deps["b"]  # a later redefinition is not a dependency


def test_names_no_step_writes_come_from_outside():
    g = D.resolve(steps(("a", "x = outside_value + 1")))
    assert g.deps["a"] == {} and g.sources["a"] == {}


def test_appending_a_step_matches_a_full_resolve():
    base = steps(("a", "x = 1"), ("b", "y = x + 1"))
    g = D.resolve(base)
    new = cell_step("c", "z = y + x")
    everything = {**base, "c": new}
    assert D.add_appended(g, everything, new)
    full = D.resolve(everything)
    assert g.deps == full.deps and g.sources == full.sources
