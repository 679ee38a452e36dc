"""Which step depends on which: inferred from names, or explicit.

A step depends on another when it reads a name the other outputs (inferred),
when ``--after`` names it, or (function steps) when a parameter is named after
it (explicit). When several steps write a name, the reader depends on the last
writer along the dependency chain: a step that rewrites a name reads the
version of the writers registered before it; a pure reader takes the writer
that all other candidates lead to; when there is no such single writer the
error names the candidates and asks for ``--after``.
"""
from __future__ import annotations

import graphlib
from collections import deque
from typing import Iterable

from nbsteps.errors import AmbiguousDependencyError, CycleError, UnknownStepError
from nbsteps.model.step import Step

INFERRED, EXPLICIT = "inferred", "explicit"


class Dependencies:
    """The resolved graph: ``deps[step] = {upstream: kind}`` and, for every
    input name a step reads from another step, ``sources[step][name] = upstream``."""

    def __init__(self) -> None:
        self.deps: dict[str, dict[str, str]] = {}
        self.sources: dict[str, dict[str, str]] = {}
        self.writers: dict[str, list[str]] = {}
        self.readers: dict[str, set[str]] = {}   # name -> steps that read it
        self.referenced: set[str] = set()         # step names used in after/params
        self._down: dict[str, set[str]] | None = None
        self._topo: list[str] | None = None  # cached order, see Plan.topological
        # executor caches (see nbsteps.executor): run structures per selection,
        # static fingerprint inputs per step; cleared whenever the graph changes
        self._runs: dict = {}
        self._fp_static: dict = {}

    # -- queries -------------------------------------------------------------
    def downstream_map(self) -> dict[str, set[str]]:
        if self._down is None:
            down: dict[str, set[str]] = {s: set() for s in self.deps}
            for s, ups in self.deps.items():
                for u in ups:
                    down.setdefault(u, set()).add(s)
            self._down = down
        return self._down

    def upstream(self, names: Iterable[str]) -> set[str]:
        """All steps *names* need, transitively (names included)."""
        seen = set(names)
        queue = deque(seen)
        while queue:
            for u in self.deps.get(queue.popleft(), ()):
                if u not in seen:
                    seen.add(u)
                    queue.append(u)
        return seen

    def downstream(self, names: Iterable[str]) -> set[str]:
        """All steps that need *names*, transitively (names included)."""
        down = self.downstream_map()
        seen = set(names)
        queue = deque(seen)
        while queue:
            for d in down.get(queue.popleft(), ()):
                if d not in seen:
                    seen.add(d)
                    queue.append(d)
        return seen


def _writers(steps: dict[str, Step]) -> dict[str, list[str]]:
    writers: dict[str, list[str]] = {}
    for name, step in steps.items():
        for out in step.outputs if step.analysis else ():
            writers.setdefault(out, []).append(name)
    return writers


def _index(g: Dependencies, step: Step) -> None:
    for n in step.inputs:
        g.readers.setdefault(n, set()).add(step.name)
    g.referenced.update(step.after)
    g.referenced.update(step.params)


def _explicit(step: Step, steps: dict[str, Step]) -> dict[str, str]:
    deps = {}
    for a in step.after + step.params:
        if a not in steps:
            raise UnknownStepError(a, steps, where=f"(named by --after of step {step.name!r})")
        if a == step.name:
            raise CycleError(step.name, [step.name, step.name])
        deps[a] = EXPLICIT
    return deps


def resolve(steps: dict[str, Step]) -> Dependencies:
    """Resolve the whole plan. Raises UnknownStepError, AmbiguousDependencyError
    or CycleError (with the cycle)."""
    g = Dependencies()
    g.writers = writers = _writers(steps)
    order = {name: i for i, name in enumerate(steps)}
    ambiguous: list[tuple[str, str, list[str]]] = []
    for name, step in steps.items():
        deps = _explicit(step, steps)
        _index(g, step)
        sources: dict[str, str] = {}
        for n in step.inputs:
            ws = writers.get(n)
            if not ws:
                continue
            if n in step.outputs:  # rewrites n: reads the version written before it
                cands = [w for w in ws if order[w] < order[name]]
            else:
                cands = [w for w in ws if w != name]
            if len(cands) == 1:
                sources[n] = cands[0]
                deps.setdefault(cands[0], INFERRED)
            elif cands:
                ambiguous.append((name, n, cands))
        g.deps[name] = deps
        g.sources[name] = sources
    # several writers: pick the one all others lead to, given what is known
    for _ in range(len(ambiguous) + 1):
        if not ambiguous:
            break
        left = []
        for name, n, cands in ambiguous:
            g._down = None
            below = g.downstream([name])
            cands = [c for c in cands if c not in below]
            chosen = [c for c in cands if c in g.deps[name]] or cands
            tops = [c for c in chosen if not any(c in g.upstream([o]) for o in chosen if o != c)]
            if len(tops) == 1:
                g.sources[name][n] = tops[0]
                g.deps[name].setdefault(tops[0], INFERRED)
            elif not chosen:
                continue
            else:
                left.append((name, n, tops))
        if len(left) == len(ambiguous):
            name, n, tops = left[0]
            raise AmbiguousDependencyError(name, n, tops)
        ambiguous = left
    g._down = None
    check_acyclic(g, focus=None)
    return g


def check_acyclic(g: Dependencies, focus: str | None) -> None:
    try:
        graphlib.TopologicalSorter({s: list(d) for s, d in g.deps.items()}).prepare()
    except graphlib.CycleError as exc:
        cycle = list(reversed(exc.args[1]))  # graphlib lists it against the edge direction
        step = focus if focus in cycle else cycle[0]
        # rotate so the cycle starts at the step being registered
        i = cycle.index(step)
        cycle = cycle[i:-1] + cycle[:i] + [step]
        raise CycleError(step, cycle) from None


def add_appended(g: Dependencies, steps: dict[str, Step], new: Step) -> bool:
    """Fast path for registering a brand-new step that no registered step can
    depend on (nobody reads its outputs or names it): resolve only it. Returns
    False when a full resolve is needed."""
    if new.name in g.deps:
        return False
    for out in new.outputs if new.analysis else ():
        if out in g.writers:
            return False  # another writer of the same name: ordering rules apply
    if new.name in g.referenced:
        return False
    for out in new.outputs if new.analysis else ():
        if g.readers.get(out):
            return False  # a registered step reads what the new one writes
    deps = _explicit(new, steps)
    _index(g, new)
    sources = {}
    for n in new.inputs:
        ws = g.writers.get(n)
        if ws:
            if len(ws) > 1:
                return False
            sources[n] = ws[0]
            deps.setdefault(ws[0], INFERRED)
    g.deps[new.name] = deps
    g.sources[new.name] = sources
    if g._topo is not None:
        # Plan.topological pops the ready step with the smallest registration
        # position; nothing depends on the new step and its position is the
        # largest, so it always comes last: append instead of recomputing (a
        # new list: callers may hold the old one).
        g._topo = g._topo + [new.name]
    g._runs.clear()
    g._fp_static.pop(new.name, None)
    for out in new.outputs if new.analysis else ():
        g.writers.setdefault(out, []).append(new.name)
    if g._down is not None:
        g._down[new.name] = set()
        for u in deps:
            g._down.setdefault(u, set()).add(new.name)
    return True
