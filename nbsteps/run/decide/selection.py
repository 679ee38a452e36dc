"""The graph of a run's selection: which selected steps each one waits for,
and the widest level (the default number of workers). Computed once per
resolved plan graph and selection (cached per Dependencies object and
generation: a graph replaced or changed in place is computed again)."""

from __future__ import annotations

import weakref

from nbsteps.model import graphs
from nbsteps.model.dependencies import Dependencies
from nbsteps.run.context import RunContext


class _RunGraph:
    """What a run of *names* needs to know about the graph, computed once per
    resolved graph and selection (see :func:`run_graph`)."""

    __slots__ = ("ups", "width", "names", "_links")

    def __init__(self, ctx: RunContext, names: list[str]) -> None:
        deps = ctx.deps.deps
        selected = set(names)
        self.ups: dict[str, list[str]] = {s: [d for d in deps.get(s, ()) if d in selected] for s in names}
        self.width = graphs.width(graphs.levels(names, self.ups.__getitem__))  # plan order is topological
        self.names, self._links = names, None

    def links(self) -> dict[str, str]:
        """``{a: b}`` for the links of linear chains (see graphs.chain_links)."""
        if self._links is None:
            self._links = graphs.chain_links(self.names, self.ups.__getitem__)
        return self._links


#: per resolved graph: (its generation, {selection: _RunGraph}); a graph that is
#: replaced is forgotten with it, one changed in place has a new generation
_RUNS: "weakref.WeakKeyDictionary[Dependencies, tuple[int, dict]]" = weakref.WeakKeyDictionary()


def run_graph(ctx: RunContext, names: list[str]) -> _RunGraph:
    g = ctx.deps
    entry = _RUNS.get(g)
    if entry is None or entry[0] != g.generation:
        entry = _RUNS[g] = (g.generation, {})
    cache = entry[1]
    key = tuple(names)
    rg = cache.get(key)
    if rg is None:
        if len(cache) > 16:
            cache.clear()
        rg = cache[key] = _RunGraph(ctx, names)
    return rg


#: steps in flight at once on the dask backend by default: the cluster queues
#: and schedules them; more in flight hides each task's round trip
DASK_IN_FLIGHT = 256


def default_workers(ctx: RunContext, names: list[str], backend: "str | None" = None) -> int:
    """Enough for the widest level of the selected steps: at most 8 threads,
    or at most DASK_IN_FLIGHT tasks in flight on the dask backend."""
    limit = DASK_IN_FLIGHT if backend == "dask" else 8
    return max(1, min(limit, run_graph(ctx, names).width))
