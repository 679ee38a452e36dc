"""Graph algorithms over a plan's steps, written once.

Orders come from the plan (a topological order: dependencies first); ``ups``
gives the upstream steps of a step *within the selection*. Cycle detection and
the scheduling loop use :mod:`graphlib` directly.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Iterable, Sequence

Ups = Callable[[str], Iterable[str]]


def levels(order: Sequence[str], ups: Ups) -> dict[str, int]:
    """Parallel level of each step: 0 without upstream, else 1 + the deepest upstream."""
    level: dict[str, int] = {}
    for s in order:
        deepest = -1
        for u in ups(s):  # (a loop, not max() over a generator: one per step)
            if level[u] > deepest:
                deepest = level[u]
        level[s] = deepest + 1
    return level


def width(level: dict[str, int]) -> int:
    """The number of steps of the widest level (1 for an empty plan)."""
    return max(Counter(level.values()).values(), default=1)


def _add(a, b):
    if isinstance(a, tuple):
        return tuple(x + y for x, y in zip(a, b, strict=True))
    return a + b


def longest_path(order: Sequence[str], ups: Ups, weight: Callable[[str], object]) -> tuple[list[str], dict]:
    """The heaviest chain through *order* and every step's distance.

    ``weight(step)`` is a number or a tuple of numbers (compared
    lexicographically: e.g. ``(seconds, 1)`` breaks ties by chain length).
    Ties go to the steps earliest in *order* (the notebook's order).
    """
    dist: dict = {}
    pred: dict[str, "str | None"] = {}
    index = {s: i for i, s in enumerate(order)}
    for s in order:
        best = None
        for u in ups(s):  # ties: the upstream step earliest in the order
            if best is None or dist[u] > dist[best] or (dist[u] == dist[best] and index[u] < index[best]):
                best = u
        w = weight(s)
        dist[s] = w if best is None else _add(w, dist[best])
        pred[s] = best
    if not dist:
        return [], dist
    end: "str | None" = max(order, key=lambda s: (dist[s], -index[s]))
    path = []
    while end is not None:
        path.append(end)
        end = pred[end]
    return path[::-1], dist


def chain_links(order: Sequence[str], ups: Ups) -> dict[str, str]:
    """Links of linear chains: ``{a: b}`` when *b* is the only step downstream
    of *a* and *a* the only step upstream of *b* (such a pair can run as one
    unit: nothing else waits for *a* or feeds *b*)."""
    downs: dict[str, list[str]] = {}
    single: set[str] = set()
    for s in order:
        up = list(ups(s))
        if len(up) == 1:
            single.add(s)
        for u in up:
            downs.setdefault(u, []).append(s)
    return {a: ds[0] for a, ds in downs.items() if len(ds) == 1 and ds[0] in single}
