"""nbsteps.model.graphs: levels and longest paths, written once."""

from __future__ import annotations

from nbsteps.model import graphs

#   a   b
#   |\ /
#   c d
#   |/
#   e
UPS = {"a": [], "b": [], "c": ["a"], "d": ["a", "b"], "e": ["c", "d"]}
ORDER = ["a", "b", "c", "d", "e"]


def test_levels_and_width():
    level = graphs.levels(ORDER, UPS.__getitem__)
    assert level == {"a": 0, "b": 0, "c": 1, "d": 1, "e": 2}
    assert graphs.width(level) == 2
    assert graphs.width({}) == 1


def test_longest_path_by_weight():
    weight = {"a": 1.0, "b": 5.0, "c": 1.0, "d": 1.0, "e": 1.0}
    path, dist = graphs.longest_path(ORDER, UPS.__getitem__, weight.__getitem__)
    assert path == ["b", "d", "e"]
    assert dist["e"] == 7.0


def test_ties_follow_the_notebook_order_and_tuples_compare_lexicographically():
    path, _ = graphs.longest_path(ORDER, UPS.__getitem__, lambda s: (0.0, 1))
    assert path == ["a", "c", "e"]  # every chain of length 3 ties: the earliest steps win
    assert graphs.longest_path([], UPS.__getitem__, lambda s: 1) == ([], {})


def test_chain_links_join_a_step_to_its_only_downstream_when_it_is_that_ones_only_upstream():
    # a has two downstream steps (c, d), d two upstream ones (a, b): no link there
    links = graphs.chain_links(ORDER, UPS.__getitem__)
    assert links == {}  # b -> d: d also waits for a; c -> e: e also waits for d
    line = {"a": [], "b": ["a"], "c": ["b"], "d": ["c"], "x": ["c"], "y": ["d"]}
    #  a - b - c - d - y
    #           \- x        c is a branch point: the chain a-b-c ends there, d-y starts again
    assert graphs.chain_links(list(line), line.__getitem__) == {"a": "b", "b": "c", "d": "y"}
    assert graphs.chain_links([], {}.__getitem__) == {}
