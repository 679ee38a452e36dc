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

    __slots__ = ("ups", "width", "names", "_links", "_down")

    def __init__(self, ctx: RunContext, names: list[str]) -> None:
        deps = ctx.deps.deps
        selected = set(names)
        if len(selected) == len(deps) and selected.issuperset(deps):  # every step: no upstream to leave out
            self.ups: dict[str, list[str]] = {s: list(deps.get(s, ())) for s in names}
        else:
            self.ups = {s: [d for d in deps.get(s, ()) if d in selected] for s in names}
        # plan order is topological: levels() reads each step's upstream levels, found before it
        # (so every edge goes down the order: the graph has no cycle)
        self.width = graphs.width(graphs.levels(names, self.ups.__getitem__))
        self.names, self._links, self._down = names, None, None

    def sorter(self) -> "Sorter":
        """A fresh :class:`Sorter` over this graph (its downstream map is built once)."""
        if self._down is None:
            down: dict[str, list[str]] = {}
            for s, ups in self.ups.items():
                for u in ups:
                    down.setdefault(u, []).append(s)
            self._down = down
        return Sorter(self.ups, self._down)

    def links(self) -> dict[str, str]:
        """``{a: b}`` for the links of linear chains (see graphs.chain_links)."""
        if self._links is None:
            self._links = graphs.chain_links(self.names, self.ups.__getitem__)
        return self._links


class Sorter:
    """What the executor's loop uses of :class:`graphlib.TopologicalSorter`
    (``is_active``, ``get_ready``, ``done``; the same order of ready steps, the
    same errors for a step not handed out or done twice), over a run graph that
    is acyclic by construction: no ``add`` per node and no cycle search per
    run, which cost graphlib ~1.5 µs a step."""

    __slots__ = ("_left", "_down", "_ready", "_state", "_out", "_done")

    def __init__(self, ups: dict, down: dict) -> None:
        self._left = {s: len(u) for s, u in ups.items()}  # upstream steps not done yet
        self._down = down
        self._ready = [s for s, n in self._left.items() if not n]
        self._state: dict[str, bool] = {}  # handed out: False; done: True
        self._out = self._done = 0

    def prepare(self) -> None:
        """(graphlib's; nothing to do)"""

    def is_active(self) -> bool:
        """Whether a step is ready or handed out and not done (graphlib's meaning)."""
        return self._done < self._out or bool(self._ready)

    def get_ready(self) -> tuple:
        ready = tuple(self._ready)
        self._ready = []
        state = self._state
        for s in ready:
            state[s] = False
        self._out += len(ready)
        return ready

    def done(self, *names: str) -> None:
        state, left, ready, down = self._state, self._left, self._ready, self._down
        for s in names:
            was = state.get(s)
            if was is not False:
                raise ValueError(
                    f"node {s!r} was not passed out (still not ready)"
                    if was is None
                    else f"node {s!r} was already marked done"
                )
            state[s] = True
            for d in down.get(s, ()):
                left[d] -= 1
                if not left[d]:
                    ready.append(d)
        self._done += len(names)


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


def in_order(names: list[str]) -> Sorter:
    """A :class:`Sorter` handing out *names* one at a time, in the order given (replays of
    process state settled after a run: each must see the state the one above it left, even
    when the steps linking them in the plan are not in the selection)."""
    pairs = list(zip(names, names[1:], strict=False))
    ups = {s: [p] for p, s in pairs}
    if names:
        ups[names[0]] = []
    return Sorter(ups, {p: [s] for p, s in pairs})


#: steps in flight at once on the dask backend by default: the cluster queues
#: and schedules them; more in flight hides each task's round trip
DASK_IN_FLIGHT = 256


def default_workers(ctx: RunContext, names: list[str], backend: "str | None" = None) -> int:
    """Enough for the widest level of the selected steps: at most 8 threads,
    or at most DASK_IN_FLIGHT tasks in flight on the dask backend."""
    limit = DASK_IN_FLIGHT if backend == "dask" else 8
    return max(1, min(limit, run_graph(ctx, names).width))
