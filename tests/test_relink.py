"""An edited cell re-registered: the plan's graph equals a full resolve of its steps, whether the
edit kept what the cell reads, writes and touches (the graph is kept: ``linked_alike``) or not
(resolved again); and what a run gives afterwards is what Run All of the edited cells gives."""

from __future__ import annotations

import random

import nbsteps
from nbsteps.model import dependencies as D

#: every part of the graph that resolve() builds
_PARTS = (
    "deps",
    "sources",
    "writers",
    "results",
    "readers",
    "referenced",
    "position",
    "state_labels",
    "state_chain",
    "maybe_draws",
    "maybe_of",
    "callers",
    "version_readers",
    "observed",
)


def _assert_graph_is_a_full_resolve(plan) -> None:
    g, full = plan.context.deps, D.resolve(plan.steps)
    for part in _PARTS:
        assert getattr(g, part) == getattr(full, part), part
    assert g.topological(plan.steps) == full.topological(plan.steps)
    assert g.downstream_map() == full.downstream_map()


#: cell bodies over the names v0..v5, with constants the edits change: reads, writes, changes in
#: place, shared state (random, files, display), results, functions reading globals
_SHAPES = [
    "v{a} = v{b} + {k}",
    "v{a} = [v{b}] * {k}",
    "v{a}.append({k})",
    "v{a} = {k}\nv{b} = v{a} * 2",
    "import random\nrandom.seed({k})\nv{a} = random.random()",
    "v{a} = {k} + len(str(v{b}))\nv{a}",
    "def f{a}(x):\n    return x + v{b} + {k}\nv{a} = f{a}({k})",
    "with open('out{a}.txt', 'w') as fh:\n    fh.write(str({k}))",
    "print(v{a}, {k})",
    "v{a} = sorted(v{b} for _ in range({k}))",
]


def _cell(rng: random.Random, shape: str | None = None, k: int | None = None) -> tuple[str, dict]:
    shape = shape or rng.choice(_SHAPES)
    a, b = rng.sample(range(6), 2)
    return shape, {"a": a, "b": b, "k": rng.randint(1, 9) if k is None else k}


def test_random_edits_leave_the_graph_a_full_resolve():
    rng = random.Random(20261207)
    kept = resolved = 0
    for _trial in range(6):
        plan = nbsteps.Plan()
        cells = {}
        for i in range(25):
            shape, params = _cell(rng)
            cells[f"c{i}"] = (shape, params)
            plan.add_cell(f"c{i}", shape.format(**params))
        _assert_graph_is_a_full_resolve(plan)
        for _edit in range(40):
            name = rng.choice(list(cells))
            shape, params = cells[name]
            if rng.random() < 0.6:  # the same names, another constant
                params = {**params, "k": params["k"] % 9 + 1}
            else:  # another cell altogether (other names, state, result)
                shape, params = _cell(rng)
            cells[name] = (shape, params)
            before = plan.context.deps
            plan.add_cell(name, shape.format(**params))
            if plan.context.deps is before:
                kept += 1
            else:
                resolved += 1
            _assert_graph_is_a_full_resolve(plan)
    assert kept > 50 and resolved > 50, (kept, resolved)  # both ways were exercised


def test_an_edit_keeping_the_names_is_run_again_below(tmp_path, monkeypatch):
    """The upstream cell edited (x = 1 -> x = 2, registered only) and the cell below run alone:
    it sees the new value, as in Run All (the edited step is no longer known to be up to date)."""
    monkeypatch.chdir(tmp_path)
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    plan.add_cell("b", "y = x + 1")
    plan.add_cell("c", "z = y * 10")
    assert plan.run().ok
    assert plan.run(["c"]).ok  # everything known to be up to date now
    graph = plan.context.deps
    plan.add_cell("a", "x = 2")
    assert plan.context.deps is graph  # kept: the edit reads and writes what it did
    assert plan.run(["c"]).ok
    assert plan.namespace["z"] == 30
    assert plan["b"].outputs == {"y": 3}


def test_an_edit_changing_the_names_is_resolved():
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    plan.add_cell("b", "y = x + 1")
    plan.add_cell("c", "z = y * 10")
    assert plan.run().ok
    plan.add_cell("b", "y = 5\nw = 1")  # reads nothing now, writes w too
    assert plan.dependencies("b") == {}
    _assert_graph_is_a_full_resolve(plan)
    assert plan.run(["c"]).ok
    assert plan.namespace["z"] == 50


def test_nearest_above_is_the_last_writer_placed_before():
    rng = random.Random(7)
    for _ in range(300):
        position = {f"s{i}": i for i in range(rng.randint(0, 30))}
        writers = sorted(rng.sample(list(position), rng.randint(0, len(position))), key=position.get)
        pos = rng.randint(0, len(position) + 1)
        before = [w for w in writers if position[w] < pos]
        assert D.nearest_above(writers, position, pos) == (before[-1] if before else None)


def test_an_edit_keeping_the_names_shows_the_cells_below_stale():
    from nbsteps.run.decide.staleness import refresh_stale

    plan = nbsteps.Plan()
    for name, src in [("a", "x = 1"), ("b", "y = x + 1"), ("c", "z = y * 10"), ("d", "w = 5")]:
        plan.add_cell(name, src)
    assert plan.run().ok
    refresh_stale(plan.context)  # what the views call before they draw
    graph = plan.context.deps
    plan.add_cell("a", "x = 2")
    assert plan.context.deps is graph
    refresh_stale(plan.context)
    assert [plan.records[s].stale for s in "abcd"] == [True, True, True, False]
