"""Which completed steps are known to be up to date, so that running one cell
costs what the cell costs, not what the whole notebook above it costs.

Running a step first brings its upstream up to date. Checking the upstream
step by step (fingerprint, checkpoint lookup) is linear in its size, which a
long notebook pays on every interactive ``%%step`` cell. :class:`Validity`
keeps the set of steps that a run found up to date (``valid``: step -> its
execution token then) and what can make them out of date:

- a step that executes, is restored, fails or is cancelled: it and its
  downstream leave the set before the run (:meth:`before`) and the completed
  ones come back after it (:meth:`after`), so the set stays closed upwards: a
  step is in it only if its upstream steps are;
- a step redefined, a graph resolved anew, a reset, a removal: the plan
  clears the set (:meth:`clear`);
- an outside value that a step reads (a parameter set in an ordinary cell, a
  helper function redefined): the digests of the outside names read above a
  target are compared with the ones seen when their readers were checked
  (:meth:`quick`); any change clears the set;
- a file that a step in the set read (``StepRecord.files``, see
  :mod:`nbsteps.model.file_inputs`): :meth:`quick` checks them (one ``os.stat``
  each, for the files of the steps in the set); any change clears the set.

``quick(ctx, targets)`` returns just the targets when every step they depend
on is in the set and no outside value above them changed: the run then
considers the targets only (their upstream records are used as they are). Its
cost is the number of distinct outside names above the targets, not the number
of steps. Otherwise it returns None and the run checks the whole upstream, as
always; that run's :meth:`after` refills the set.
"""

from __future__ import annotations

from nbsteps.model.fingerprint import outside_parts
from nbsteps.model.state import state_of
from nbsteps.model.status import COMPLETED
from nbsteps.run.context import RunContext
from nbsteps.run.decide.staleness import files_moved, static_parts

_MISSING = object()


class _Unread:
    """What :meth:`Validity._check` sees of an outside name whose value waits, unread, in a
    lazily restored checkpoint (its :class:`~nbsteps.model.checkpoint.LazyValues`): equal
    only to the same name unread from the same checkpoint (the object is held, so its id
    is not reused)."""

    __slots__ = ("values",)

    def __init__(self, values) -> None:
        self.values = values

    def __eq__(self, other) -> bool:
        return type(other) is _Unread and other.values is self.values

    def __ne__(self, other) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]


class Validity:
    def __init__(self) -> None:
        self.valid: dict[str, str] = {}  # step -> execution token when found up to date
        self.seen: dict[str, object] = {}  # outside name -> digest when its readers were checked
        self._graph = None  # the Dependencies object the memo below belongs to
        self._above: dict[str, "frozenset[str] | None"] = {}
        self._checked: "set[str]" = set()  # outside names checked at the start of the current run
        self.files: dict[str, dict] = {}  # step in the set -> the files it read (StepRecord.files)
        self._tokens: dict[str, object] = {}  # the run's steps -> their tokens before it (before/after)

    def clear(self) -> None:
        self.valid.clear()
        self.seen.clear()
        self.files.clear()

    def _files_unchanged(self, ctx: RunContext) -> bool:
        """False (and the set cleared) when a file read by a step in the set changed
        (but for what a step below it wrote, as in Run All)."""
        valid = self.valid
        for s, files in self.files.items():
            if s in valid and files_moved(ctx, s, files):
                self.valid.clear()
                self.files.clear()
                return False
        return True

    # -- outside names above a step --------------------------------------------
    def _own(self, ctx: RunContext, name: str) -> "frozenset[str] | None":
        """Outside names *name* reads from the plan's namespace; None when it
        cannot be tracked here (a function step with its own globals, --no-cache)."""
        step = ctx.steps[name]
        if not step.cache:
            return None
        _, names, globs = static_parts(ctx, step)
        if globs is not None and globs is not ctx.namespace:
            return None
        return frozenset(names)

    def above(self, ctx: RunContext, name: str) -> "frozenset[str] | None":
        """Outside names read by *name* and every step above it (None: some
        step there cannot be tracked). Memoized per resolved graph; iterative,
        so a chain of 10,000 steps needs no recursion."""
        g = ctx.deps
        if self._graph is not g:
            self._graph, self._above = g, {}
        memo = self._above
        if name in memo:
            return memo[name]
        deps = g.deps
        stack = [(name, False)]
        while stack:
            s, ready = stack.pop()
            if s in memo:
                continue
            ups = deps.get(s, ())
            if not ready:
                stack.append((s, True))
                stack.extend((u, False) for u in ups if u not in memo)
                continue
            own = self._own(ctx, s)
            acc = None if own is None else set(own)
            for u in ups:
                m = memo.get(u)
                if m is None or acc is None:
                    acc = None
                    break
                acc |= m
            memo[s] = None if acc is None else frozenset(acc)
        return memo[name]

    # -- the check ------------------------------------------------------------------
    def _check(self, ctx: RunContext, names: "set[str]") -> bool:
        """Record the digests of the outside *names*; False if one changed
        since seen (then nothing is known to be up to date any more).

        A name restored lazily and not read yet (``ctx.deferred``: out of the namespace) is
        seen as :class:`_Unread`, not as missing: a global that a notebook function above
        reads and that a step below defines appears when that step is restored, as when it
        executes, and the run of a cell below then considers its chain, which reads the value
        and fingerprints the function's cell again (as the kernel that ran it did). Once
        read, it counts as changed once more (what the object held when read is not known:
        one more run over the chain, never a change missed)."""
        self._checked = names
        if not names:
            return True
        params, helpers = outside_parts(names, ctx.namespace)
        deferred = ctx.deferred
        ok = True
        seen = self.seen
        for n in names:
            if deferred and n in deferred:
                digest = _Unread(deferred[n])
            else:
                digest = params.get(n) or helpers.get(n)
            old = seen.get(n, _MISSING)
            if old is not _MISSING and old != digest:
                ok = False
            seen[n] = digest
        if not ok:
            self.valid.clear()
        return ok

    def quick(self, ctx: RunContext, targets: "list[str]") -> "list[str] | None":
        """The targets alone, when everything they depend on is up to date."""
        records, deps, valid = ctx.records, ctx.deps.deps, self.valid
        chosen = set(targets)
        names: set[str] = set()
        for t in targets:
            own = self._own(ctx, t)
            if own:
                names |= own
            for p in deps.get(t, ()):
                if p in chosen:
                    continue
                rec = records[p]
                if rec.status != COMPLETED or rec.token is None or valid.get(p) != rec.token:
                    return None
                above = self.above(ctx, p)
                if above is None:
                    return None
                names |= above
        if not self._check(ctx, names) or not self._files_unchanged(ctx):
            return None
        return list(targets) if len(targets) == 1 else ctx.order(targets)

    def alone(self, ctx: RunContext, targets: "list[str]") -> "tuple[list[str] | None, list[str] | None]":
        """``(names, chain)``: a run of *targets* considers *names* alone (:meth:`quick`; else
        None: their upstream is checked). Their upstream is then neither prepared nor completed
        again, nor announced: a new kernel restoring a notebook cell by cell does not go over
        the notebook above each cell. *chain* is None, or, for targets on shared process state
        (or that may draw from a global generator unseen), the targets and their upstream:
        what to replay above them (:mod:`nbsteps.run.decide.replay`) is decided over it, as for
        a run of the whole chain. A step of it whose checkpoint was lost (run.recovery) or that
        is not completed: the chain is checked (None, None)."""
        names = self.quick(ctx, targets)
        if names is None:
            return None, None
        steps, maybe = ctx.steps, ctx.deps.maybe_of
        if not any(state_of(steps[t]) or maybe.get(t) for t in targets):
            return names, None
        chain = ctx.select(targets)
        records, lost, alone = ctx.records, ctx.lost, set(names)
        if any(s in lost or records[s].status != COMPLETED for s in chain if s not in alone):
            return None, None
        return names, chain

    def before(self, ctx: RunContext, names: "list[str]", checked: bool = False) -> None:
        """A run of *names* may change them and so their downstream: they leave the set, and
        :meth:`after` drops the downstream of those whose token the run changed (a cell run
        again and kept as it was leaves the steps below it known up to date: no walk over
        them). Unless :meth:`quick` *checked* them, the outside values *names* read are
        recorded as the run sees them."""
        valid, records = self.valid, ctx.records
        self._tokens = {s: records[s].token for s in names}
        if valid:
            for s in names:
                valid.pop(s, None)
        if not checked:
            out: set = set()
            steps, namespace = ctx.steps, ctx.namespace
            for s in names:  # (the names of _own, without a frozenset of them per step)
                step = steps[s]
                if step.cache:
                    _, own, globs = static_parts(ctx, step)
                    if own and (globs is None or globs is namespace):
                        out.update(own)
            self._check(ctx, out)

    def after(self, ctx: RunContext, names: "list[str]") -> None:
        """The steps of the run that completed are up to date now (in plan
        order, each only if everything it depends on is), unless an outside
        value checked before the run changed during it."""
        records, deps, valid = ctx.records, ctx.deps.deps, self.valid
        tokens, self._tokens = self._tokens, {}
        changed = [s for s in names if s not in tokens or records[s].token != tokens[s]]
        if changed and valid:
            for s in ctx.deps.downstream(changed):
                valid.pop(s, None)
        if not self._check(ctx, self._checked):
            return
        steps, namespace = ctx.steps, ctx.namespace
        for s in names:
            rec = records[s]
            ok = rec.status == COMPLETED and rec.token is not None
            if ok:  # tracked here (_own is not None), and its upstream up to date (loops: no generator)
                step = steps[s]
                globs = static_parts(ctx, step)[2] if step.cache else None
                ok = step.cache and (globs is None or globs is namespace)
                if ok:
                    for d in deps.get(s, ()):
                        if valid.get(d) != records[d].token:
                            ok = False
                            break
            if ok:
                valid[s] = rec.token
                if rec.files:
                    self.files[s] = rec.files
                else:
                    self.files.pop(s, None)
            else:
                valid.pop(s, None)
