"""Which step depends on which: inferred from names in notebook order, or explicit.

Steps have a position: the order in which they were first registered
(re-registering an edited step keeps its place; ``nbsteps run`` registers in
the order of the cells in the file). A step that reads a name depends on the
**nearest step above it** that writes the name, exactly as Restart & Run All
binds it; a name that no step above writes comes from the user namespace.
Several versions of a name coexist: each reader receives the version its
position implies (``sources[step][name]``).

Steps that touch the same process-wide state keep their notebook order even
when no name links them (edge kinds ``state`` and ``order``, their labels in
``state_labels``; the rules are in :mod:`nbsteps.model.state`).

``--after`` and function-step parameters add explicit edges; a cycle (only
possible through them) is rejected with the cycle named.
"""

from __future__ import annotations

import bisect
import builtins
import dataclasses
import graphlib
import heapq
from collections import deque
from typing import Iterable

from nbsteps.errors import CycleError, UnknownStepError
from nbsteps.model.immutable import is_immutable
from nbsteps.model.state import (
    DISPLAY,
    FILES_REMOVED,
    USE_IS_EFFECT,
    effects_of,
    is_file,
    may_draw,
    state_of,
)
from nbsteps.model.step import NOTHING, Step

_BUILTINS = vars(builtins)

INFERRED, EXPLICIT, STATE, ORDER = "inferred", "explicit", "state", "order"
#: a step reads a name that the step above it was seen changing in place at run time (``Step.observed``,
#: nbsteps.run.attempt.observe): an edge like an inferred one, drawn and explained as observed
OBSERVED = "observed"
#: edges that only order execution: they make nothing stale and block nothing
ORDER_ONLY = frozenset({ORDER})


class Dependencies:
    """The resolved graph: ``deps[step] = {upstream: kind}`` and, for every
    input name a step reads from another step, ``sources[step][name] = upstream``."""

    def __init__(self) -> None:
        self.deps: dict[str, dict[str, str]] = {}
        self.sources: dict[str, dict[str, str]] = {}
        self.writers: dict[str, list[str]] = {}
        #: steps whose cell ends with an expression (its Out), in notebook order: what ``_`` is below
        self.results: list[str] = []
        self.readers: dict[str, set[str]] = {}  # name -> steps that read it
        self.referenced: set[str] = set()  # step names used in after/params
        self.position: dict[str, int] = {}  # notebook order
        self.state_labels: dict[tuple[str, str], list[str]] = {}  # (up, down) -> shared state
        # state label -> (lowest step that changed it, steps using it since)
        self.state_chain: dict[str, tuple["str | None", list[str]]] = {}
        # global generator -> the lowest step that may draw from it unseen (see nbsteps.model.state)
        self.maybe_draws: dict[str, str] = {}
        self.maybe_of: dict[str, set[str]] = {}  # step -> the generators it may draw from unseen
        self.callers: dict[tuple, str] = {}  # (name, its writer) -> the last step calling its caching methods
        self.decorated: set[tuple] = set()  # (name, its writer): a function a decorated def made (a cache)
        self.version_readers: dict[tuple, list[str]] = {}  # (name, its writer) -> the steps reading it
        self.observed: dict[str, frozenset] = {}  # step -> the names it writes only as observed at run time
        #: steps whose code may bind names the analysis cannot list (``analysis.dynamic``: globals(),
        #: exec, a magic), in notebook order: a step reading a name no step above writes comes after
        #: those above it (``order`` edges; its first run, before the names are known: see _link)
        self.dynamic: list[str] = []
        self._down: dict[str, set[str]] | None = None
        self._topo: list[str] | None = None  # cached order, see topological()
        #: every edge goes down the notebook order (no ``--after`` or parameter naming a step
        #: below): the order of the steps is then their topological order
        self.in_order = True
        #: counts the changes made in place (a step appended): what others derive
        #: from the graph (the executor's run graphs, nbsteps.run.decide.selection) is
        #: valid for one generation of one Dependencies object
        self.generation = 0

    # -- queries -------------------------------------------------------------
    def topological(self, steps: Iterable[str]) -> list[str]:
        """All *steps* (given in registration order), dependencies first, ties
        in registration order; cached until the graph changes."""
        if self._topo is not None:
            return self._topo
        steps = list(steps)
        if self.in_order and len(steps) == len(self.position):
            # (the loop below would hand them out in this order: each is ready when its turn comes)
            self._topo = steps
            return steps
        down = self.downstream_map()
        indeg = {s: len(self.deps.get(s, ())) for s in steps}
        position = {s: i for i, s in enumerate(steps)}
        heap = [(position[s], s) for s, d in indeg.items() if d == 0]
        heapq.heapify(heap)
        out = []
        while heap:
            _, s = heapq.heappop(heap)
            out.append(s)
            for d in down.get(s, ()):
                indeg[d] -= 1
                if indeg[d] == 0:
                    heapq.heappush(heap, (position[d], d))
        self._topo = out
        return out

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
    """name -> the steps writing it, in notebook order."""
    writers: dict[str, list[str]] = {}
    for name, step in steps.items():
        for out in step.outputs if step.analysis else ():
            writers.setdefault(out, []).append(name)
    return writers


def _index(g: Dependencies, step: Step) -> None:
    if step.observed:
        g.observed[step.name] = step.observed - set(step.analysis.outputs if step.analysis else ())
    readers, name = g.readers, step.name
    for n in step.inputs:
        r = readers.get(n)
        if r is None:
            readers[n] = {name}
        else:
            r.add(name)
    if step.after:
        g.referenced.update(step.after)
    if step.params:
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


def add_writer(g: Dependencies, name: str, step: str) -> None:
    """Record *step* as a writer of *name*, keeping ``g.writers[name]`` in notebook order: the one
    ordered structure that :func:`nearest_above`, the publisher (the lowest writer's version) and the
    executor (the version above a step) read. Names a step writes through an alias it changes
    (``link_aliases``) are found after its ordinary outputs are listed, so they are inserted."""
    ws = g.writers.setdefault(name, [])
    if step not in ws:
        bisect.insort(ws, step, key=g.position.__getitem__)


def nearest_above(writers: list[str], position: dict[str, int], pos: int) -> "str | None":
    """The last of *writers* (in notebook order) placed before *pos* (a binary search: a name
    written by many cells, ``df = ...``, is not scanned from the top for each reader)."""
    if writers and position[writers[-1]] < pos:  # all above (a step appended, a resolve in order)
        return writers[-1]
    i = bisect.bisect_left(writers, pos, key=position.__getitem__)
    return writers[i - 1] if i else None


#: IPython's last result: in Run All, the ``Out`` of the nearest cell above that showed one
LAST_RESULT = "_"


def has_result(step: Step) -> bool:
    return step.analysis is not None and bool(step.analysis.has_result)


def _link(g: Dependencies, step: Step, deps: dict[str, str], pos: int, writers: dict[str, list[str]]) -> None:
    """Inferred and shared-state edges of *step* at position *pos*."""
    position = g.position
    sources: dict[str, str] = {}
    for n in step.inputs:
        ws = writers.get(n) or (g.results if n == LAST_RESULT else None)
        if ws:
            src = nearest_above(ws, position, pos)
            if src is not None:
                sources[n] = src
                kind = OBSERVED if n in g.observed.get(src, ()) else INFERRED
                if deps.get(src, OBSERVED) == OBSERVED:  # inferred wins over observed
                    deps[src] = kind
    if LAST_RESULT in sources and LAST_RESULT not in writers:
        # its Out may be None (``print(...)``): ``_`` is then an Out further up; they all come first
        for w in g.results:
            if position[w] >= pos:
                break
            deps.setdefault(w, ORDER)
    _after_dynamic(g, step, deps, sources, pos)
    _changed_after_readers(g, step, deps, sources)
    labels = state_of(step)
    if has_result(step) and DISPLAY not in labels:  # its Out is formatted as the display state is then
        labels = (*labels, DISPLAY)
    # (read only for a state it touches: most steps touch none)
    effects = (effects_of(step) if step.analysis is not None else frozenset()) if labels else ()
    for label in labels:
        changed, users = g.state_chain.get(label, (None, []))
        if label in effects:  # after everything that touched the state before
            ups = _after_change(g, label, changed, users, pos)
            g.state_chain[label] = (step.name, [])
        else:  # after the nearest change above
            ups = [(changed, STATE)] if changed else []
            g.state_chain[label] = (changed, users + [step.name])
        maybe = g.maybe_draws.pop(label, None) if label in USE_IS_EFFECT else None
        if maybe is not None:
            ups.append((maybe, ORDER))
        for up, kind in ups:
            deps.setdefault(up, kind)
            g.state_labels.setdefault((up, step.name), []).append(label)
    if step.analysis is not None and getattr(step.analysis, "opaque", False):  # (may_draw: most do not)
        _hidden_draws(g, step, deps)
    a = step.analysis
    if a is not None and (a.cached_on or a.called or a.decorated):
        _cache_calls(g, step, deps, sources)
    g.deps[step.name] = deps
    g.sources[step.name] = sources


def _after_change(g: Dependencies, label: str, changed: "str | None", users: list, pos: int) -> list:
    """The steps a step changing *label* at *pos* comes after, with the kind of each edge: every
    step that touched it above (*changed*: the last change, *users*: the uses since); writing a
    file does not depend on earlier writes (``order``). A removal of files the analysis cannot
    name (``files?``) comes after every step above (``order`` edges, model.state.FILES_REMOVED)."""
    if label == FILES_REMOVED:
        return [(up, ORDER) for up, p in g.position.items() if p < pos]
    kind = ORDER if is_file(label) else STATE
    return [(u, ORDER) for u in users] + ([(changed, kind)] if changed else [])


def _cache_calls(g: Dependencies, step: Step, deps: dict[str, str], sources: dict[str, str]) -> None:
    """Steps calling caching methods (``res.predict``) of the same version of a
    name keep notebook order (``order`` edges: nothing stale, nothing blocked)."""
    a = step.analysis
    # calls of a function a decorated def made (a cache, joblib's Memory.cache): the same, as its caching
    # methods (h(a) in two cells: the first computes and prints, the second finds it cached)
    made = [n for n in a.called if (n, sources.get(n)) in g.decorated] if a.called and g.decorated else ()
    for n in sorted({*a.cached_on, *made}) if made else sorted(a.cached_on):
        key = (n, sources.get(n))
        up = g.callers.get(key)
        if up is not None and up != step.name:
            deps.setdefault(up, ORDER)
            g.state_labels.setdefault((up, step.name), []).append(f"{n} (caches)")
        g.callers[key] = step.name
    if a.decorated:  # (after its own calls: the steps below calling them come after it anyway)
        g.decorated.update((n, step.name) for n in a.decorated)


def _after_dynamic(
    g: Dependencies, step: Step, deps: dict[str, str], sources: dict[str, str], pos: int
) -> None:
    """A step reading a name that no step above writes comes after the steps above it whose code
    may bind names the analysis cannot list (``g.dynamic``: ``globals()[n] = v``, ``exec``, a
    magic's ``--out``): ``order`` edges, as in Run All. Once a run saw one bind the name (an
    observed write: nbsteps.run.observed_writes) the step reads it from there; before (a plan's
    first run) this keeps it from running too early."""
    dynamic, position, a = g.dynamic, g.position, step.analysis
    if not dynamic or position[dynamic[0]] >= pos or a is None:  # (most steps: none above)
        return
    if all(n in sources or n == LAST_RESULT for n in a.inputs):
        return
    for d in dynamic:
        if position[d] >= pos:
            break
        deps.setdefault(d, ORDER)


def _changed_after_readers(
    g: Dependencies, step: Step, deps: dict[str, str], sources: dict[str, str]
) -> None:
    """A step that changes a name in place comes after the steps above it that read
    the same version (``order`` edges: nothing stale, nothing blocked): what they made
    may view it (``a = x[2:]``, masked arrays), and sees the change in Run All."""
    mutated = step.mutated if step.analysis is not None else ()
    for n, src in sources.items():
        readers = g.version_readers.setdefault((n, src), [])
        if n in mutated:
            for r in readers:
                deps.setdefault(r, ORDER)
                g.state_labels.setdefault((r, step.name), []).append(f"{n} (changed after)")
        readers.append(step.name)


def _hidden_draws(g: Dependencies, step: Step, deps: dict[str, str]) -> None:
    """Order a step that may draw from a global generator unseen after the
    random steps above it (``order`` edges: nothing stale, nothing blocked)."""
    if not may_draw(step):
        return
    touched = state_of(step)
    for label in USE_IS_EFFECT:
        if label in touched or label not in g.state_chain:
            continue
        changed = g.state_chain[label][0]
        for up in {changed, g.maybe_draws.get(label)} - {None}:
            deps.setdefault(up, ORDER)
            g.state_labels.setdefault((up, step.name), []).append(label + "?")
        g.maybe_draws[label] = step.name
        g.maybe_of.setdefault(step.name, set()).add(label)


def bound_with(step: Step, name: str) -> frozenset:
    """The other names *step* binds to one object graph with *name* (``fig`` for ``ax`` of
    ``fig, ax = plt.subplots()``; nbsteps.model.aliases)."""
    return frozenset().union(*(g for g in _groups(step) if name in g)) - {name}


def _groups(step: Step) -> tuple:
    groups = step.analysis.groups if step.analysis is not None else ()
    return groups + ((step.linked | step.mutated,) if step.linked else ())


def link_called(step: Step, steps: dict[str, Step], g: Dependencies, pos: int) -> None:
    """Set ``step.called_reads``: the global names that the notebook functions *step*
    reads (and the ones they call, transitively) look up when called, which a step
    above *step* writes, or no step writes (set in an ordinary cell; not a builtin's name),
    and *step* does not bind itself. Run All's single namespace gives the function the
    value above the calling cell; so do these inputs. They are the caller's, not the
    defining cell's (``CellAnalysis.later_reads``: no parameters of it)."""
    step.called_reads = frozenset()
    a = step.analysis
    if a is None:
        return
    own, found, seen = set(a.outputs), set(), set()
    todo = list(a.inputs)
    while todo:
        n = todo.pop()
        if n in seen:
            continue
        seen.add(n)
        ws = g.writers.get(n)
        src = nearest_above(ws, g.position, pos) if ws else None
        fr = steps[src].analysis.func_reads if src in steps and steps[src].analysis else ()
        reads = dict(fr).get(n, ()) if fr else ()  # (most steps define no function)
        for r in reads:
            if r not in own and r not in a.inputs:
                wr = g.writers.get(r)
                if nearest_above(wr, g.position, pos) if wr else r not in _BUILTINS:
                    found.add(r)
            todo.append(r)  # a function it calls
    step.called_reads = frozenset(found)


def link_aliases(step: Step, steps: dict[str, Step], g: Dependencies, pos: int) -> frozenset:
    """Set ``step.linked``: the names bound together (nbsteps.model.aliases)
    with a name *step* changes, in the step above that wrote that name.
    Returns the names it adds."""
    step.linked = frozenset()
    changed = step.changes
    if not changed:
        return step.linked
    linked: set = set()
    for n in changed:
        ws = g.writers.get(n)
        src = nearest_above(ws, g.position, pos) if ws else None
        if src is not None and src in steps:
            for group in _groups(steps[src]):
                if n in group:
                    linked |= group
    step.linked = frozenset(linked - changed - set(step.analysis.outputs))
    return step.linked


def immutable_reads(step: Step, steps: dict[str, Step], namespace: dict) -> frozenset:
    """The names *step* was predicted to change in place without binding them (``random_state=SEED``)
    that no step above it writes and whose value in *namespace* is immutable: they are only read
    (nbsteps.model.immutable). *steps* is in notebook order and holds *step* at its place."""
    a = step.analysis
    if a is None or not a.changed_only:
        return frozenset()
    written: set = set()
    module: dict = {}  # name -> whether the nearest step above writing it binds it by `import`
    for name, other in steps.items():
        if name == step.name:
            break
        written.update(other.outputs)
        mods = other.analysis.modules if other.analysis is not None else frozenset()
        module.update((o, o in mods) for o in other.outputs)
    # a module is never changed by calling what it holds (``nx.write_edgelist(G, path)``): decided from
    # the code (the `import` above), so a new kernel, with nothing in its namespace yet, decides the same;
    # process state its functions change is state (nbsteps.model.state)
    return frozenset(
        n
        for n in a.changed_only
        if module.get(n) or (n not in written and n in namespace and is_immutable(namespace[n]))
    )


def resolve(steps: dict[str, Step]) -> Dependencies:
    """Resolve the whole plan (dict order is notebook order). Raises
    UnknownStepError or CycleError (with the cycle)."""
    g = Dependencies()
    for step in steps.values():
        step.linked = frozenset()
    g.writers = writers = _writers(steps)
    g.position = {name: i for i, name in enumerate(steps)}
    g.results = [name for name, step in steps.items() if has_result(step)]
    g.dynamic = [name for name, step in steps.items() if step.analysis is not None and step.analysis.dynamic]
    for name, step in steps.items():
        deps = _explicit(step, steps)
        pos = g.position[name]
        if g.in_order:  # (inferred and state edges come from above: an explicit one may not)
            g.in_order = all(g.position[d] < pos for d in deps)
        for n in link_aliases(step, steps, g, g.position[name]):
            add_writer(g, n, name)
        link_called(step, steps, g, g.position[name])
        _index(g, step)
        _link(g, step, deps, g.position[name], writers)
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


#: what resolving the plan sets on a step from the steps above it (not part of its registration)
_DERIVED = frozenset({"linked", "called_reads"})
_REGISTERED = tuple(f.name for f in dataclasses.fields(Step) if f.name not in _DERIVED)


def registered_alike(old: Step, new: Step) -> bool:
    """Whether *new* registers what *old* did: the same code and analysis, options,
    and what the plan found from values and runs (``unchanged``, ``observed``,
    ``hints``). Resolving the plan with *new* in *old*'s place then gives the same
    graph, and *new* gets *old*'s ``linked`` and ``called_reads`` (a cell run again
    unchanged: no pass over the whole plan)."""
    for f in _REGISTERED:
        a, b = getattr(old, f), getattr(new, f)
        if a is not b and a != b:
            return False
    return True


#: what a step runs, which nothing in the graph is derived from: the Step's ...
_CODE = frozenset({"source", "static_digest", "undo"})
_RELINKED = tuple(f for f in _REGISTERED if f not in _CODE and f != "analysis")
#: ... and its analysis's (the code it compiled, what nbsteps cannot see in it)
_ANALYSIS_CODE = frozenset({"source", "digest", "body", "result", "warnings"})


def linked_alike(old: Step, new: Step) -> bool:
    """Whether *new*, an edit of *old*, is linked as *old* is: every field of the Step and of its
    analysis that :func:`resolve` reads is equal (all but the code: the cell computes something
    else from the same names, e.g. ``x = 1`` edited to ``x = 2``). Resolving the plan with *new* in
    *old*'s place then gives the same graph, and *new* gets *old*'s ``linked`` and ``called_reads``:
    an edited cell is re-linked without a pass over the whole plan. Unlike
    :func:`registered_alike`, the step and its downstream are no longer known to be up to date."""
    for f in _RELINKED:
        a, b = getattr(old, f), getattr(new, f)
        if a is not b and a != b:
            return False
    a, b = old.analysis, new.analysis
    if a is None or b is None:
        return a is b
    for f in a.__dataclass_fields__:
        if f not in _ANALYSIS_CODE and getattr(a, f) != getattr(b, f):
            return False
    return True


def add_appended(g: Dependencies, steps: dict[str, Step], new: Step) -> bool:
    """Fast path for registering a brand-new step: it is the lowest in the
    notebook, so no registered step can read from it (reads bind upwards) and
    only its own edges are new, unless a registered step names it in
    ``--after``. Returns False when a full resolve is needed."""
    if new.name in g.deps or new.name in g.referenced:
        return False
    deps = _explicit(new, steps) if new.after or new.params else {}
    if new.analysis is None and not new.observed and not new.observed_state:
        # a function step (nothing seen of it at run time): its explicit edges are all there is
        # (what the calls below give such a step, without them)
        g.position[new.name] = len(g.position)
        new.linked = new.called_reads = NOTHING
        g.referenced.update(new.after)
        g.referenced.update(new.params)
        g.deps[new.name], g.sources[new.name] = deps, {}
        _appended(g, new.name, deps)
        return True
    pos = g.position[new.name] = len(g.position)
    if new.changes:
        link_aliases(new, steps, g, pos)
    else:  # (what it sets for a step changing nothing: most steps)
        new.linked = NOTHING
    link_called(new, steps, g, pos)
    _index(g, new)
    outputs = new.outputs if new.analysis else ()  # (_link changes none of what it is made of)
    for out in outputs:
        g.writers.setdefault(out, [])
    _link(g, new, deps, pos, g.writers)
    for out in outputs:
        g.writers[out].append(new.name)
    if has_result(new):
        g.results = [*g.results, new.name]
    if new.analysis.dynamic:
        g.dynamic = [*g.dynamic, new.name]
    _appended(g, new.name, deps)
    return True


def _appended(g: Dependencies, name: str, deps: dict) -> None:
    """The caches of *g* after step *name*, with upstream *deps*, was appended."""
    if g._topo is not None:
        # topological() pops the ready step with the smallest registration
        # position; nothing depends on the new step and its position is the
        # largest, so it always comes last: append instead of recomputing (a
        # new list: callers may hold the old one).
        g._topo = g._topo + [name]
    g.generation += 1
    if g._down is not None:
        g._down[name] = set()
        for u in deps:
            g._down.setdefault(u, set()).add(name)
