"""What the executor does with a write seen at run time that the analysis did not predict.

An attempt reports the inputs it changed in place although the analysis predicted it
would not (``Outcome.changed``, :mod:`nbsteps.run.attempt.observe`); the changed objects
come back as its outputs, so its checkpoint holds its version. Here, before that
checkpoint is written (:meth:`Observed.seen`):

- the step's observed writes go into the checkpoint (``parts["observed"]``), so that a
  new kernel resuming from a directory store knows them (the plan reads them when it
  registers the step);
- a value with no versions (it cannot be pickled: :mod:`nbsteps.run.attempt.live`) that is
  not a live object (those are a use, not a write: the attempt does not report them) stays a
  write, but the step above is not executed again: that would make a new object, not its
  version; the version above is the changed object (``shared``), as in Run All;
- the upstream step's version must stay what it was (it is never the changed object):
  with a persistent store its value is read again from its checkpoint, written before
  the change; when it cannot be (a memory store holds the object itself, now changed),
  the upstream step is executed again with its token kept (``rebuild``, as a replay:
  nothing below it becomes stale, and the changing step is not executed a second
  time: its values, as Run All leaves them, are published after it). *Restored from the store, or recomputed*
  is the price of a first observation; from then on the step gets a private copy
  (``Step.observed`` is part of ``Step.mutated``), so there is no pre-attempt copy of
  every input of every step;
- steps of this run that read the same version and whose attempt was not over when
  this attempt started (a parallel step may have seen the change happen) run again
  (``rerun``, with why: the second pass forces them, and their record says why, not
  ``forced``: nobody forced them).

After the run, the plan (:meth:`nbsteps.plan.Plan.run`) adds ``writes`` to its steps'
``observed``, resolves the graph again (the step is now a writer of the name: readers
below it read its version, an ``observed`` edge; it keeps notebook order with the
readers above it) and runs the selection once more, with ``rerun`` forced: readers
below it whose source changed are stale and run again after it, as in Run All.
"""

from __future__ import annotations

import time

from nbsteps.model.checkpoint import LazyValues
from nbsteps.model.dependencies import nearest_above
from nbsteps.model.status import COMPLETED
from nbsteps.run.attempt import generators
from nbsteps.run.attempt.inputs import held_inputs
from nbsteps.run.attempt.live import has_versions, live_objects
from nbsteps.run.context import RunContext


class Observed:
    """The observed writes of one run (see module doc)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.writes: dict[str, set] = {}  # step -> names it was seen changing, not known before
        #: steps to run again once the plan knows the writes -> why (their record's reason)
        self.rerun: dict[str, str] = {}
        #: step above -> why its version must be made again (same token): a memory store
        #: held the very object a step below changed
        self.rebuild: dict[str, str] = {}
        #: step -> {name: hint} of the writes a hint keyed by type found (nbsteps.model.hints)
        self.hinted: dict[str, dict] = {}
        #: step -> the global generators' states when its latest attempt began, for a step that may
        #: draw: a rebuild draws what it drew (nbsteps.run.attempt.generators)
        self.generators: dict[str, dict] = {}
        #: step above -> {name: the step that changed it}: values with no versions (a lock inside:
        #: :func:`~nbsteps.run.attempt.live.has_versions`), changed in place and not made again
        self.shared: dict[str, dict[str, str]] = {}
        self._live: dict[str, bool] = {}  # step above -> whether it reads a live object (_used_live)
        self._began: dict[str, float] = {}  # step -> when its latest attempt began (monotonic)
        self._ended: dict[str, float] = {}

    def started(self, name: str) -> None:
        self._began[name] = time.monotonic()
        self._ended.pop(name, None)
        found = generators.labels(self.ctx, name)
        if found:
            self.generators[name] = generators.taken(found)

    def ended(self, name: str) -> None:
        self._ended[name] = time.monotonic()

    def seen(self, name: str, outcome) -> list:
        """Step *name* succeeded with *outcome*: note its new writes, keep the versions
        above it intact; the names to record in its checkpoint (all its observed writes)."""
        step = self.ctx.steps[name]
        new = [n for n in outcome.changed if n not in step.observed]
        if new:
            self.writes.setdefault(name, set()).update(new)
        hinted = getattr(outcome, "hinted", None) or {}
        if hinted:
            self.hinted.setdefault(name, {}).update(hinted)
        loaded: dict = {}  # src -> its checkpoint, read once: names bound together (fig, ax) stay bound
        # bound anew at run time (globals()[n] = v: nbsteps.run.attempt.task), or made on a private copy
        # (hinted, or held with one): the version above is intact
        copied = {*hinted, *getattr(outcome, "together", ()), *getattr(outcome, "dynamic", ())}
        for n in new:
            self._keep_upstream(name, n, intact=n in copied, loaded=loaded)
        return sorted(step.observed | step.hinted | set(outcome.changed))

    def hints(self, name: str, outcome) -> dict:
        """The hints keyed by type that found writes of step *name* (at registration or in
        this attempt), for its checkpoint: a new kernel knows them before the values exist."""
        return {**self.ctx.steps[name].hints, **(getattr(outcome, "hinted", None) or {})}

    def _keep_upstream(self, name: str, n: str, intact: bool = False, loaded: "dict | None" = None) -> None:
        ctx = self.ctx
        src = ctx.sources(name).get(n)
        if src is None and n in ctx.deps.writers:  # not read, bound with what it read (fig with ax)
            src = nearest_above(ctx.deps.writers[n], ctx.deps.position, ctx.deps.position[name])
        if src is None:  # an ordinary cell's value: changed as Run All changes it
            return
        began = self._began.get(name, 0.0)
        pos = ctx.deps.position
        for r in ctx.deps.version_readers.get((n, src), ()):
            if r == name:
                continue
            if intact:  # changed on a copy: every reader below it reads (or will read) the old version
                if pos.get(r, -1) > pos.get(name, -1):
                    self.rerun.setdefault(r, f"ran again: {name} above it changes {n} in place")
            elif r in self._began and self._ended.get(r, began + 1) > began:
                # read the value while it was being changed, or after
                self.rerun.setdefault(r, f"ran again: {name} changed {n} in place while it read it")
        if intact:
            return
        rec = ctx.records.get(src)
        if rec is None or rec.status != COMPLETED or self._read_again(src, rec, n, loaded):
            return
        value = _held(rec.outputs, n)
        if value is not _MISSING and (not has_versions(value) or rec.wrote or self._used_live(src)):
            # executing the step above again would make a new object beside it, not its version; or
            # it wrote files (a cache entry, a removal), or used a live object (a database: rows
            # inserted, a table registered), which executing it again would change after the steps
            # below changed them, or twice: Run All executes it once, its value is then shared too
            self.shared.setdefault(src, {})[n] = name
            return
        self.rebuild[src] = f"rebuilt: its {n} was changed in place by {name}"

    def _used_live(self, src: str) -> bool:
        """Whether step *src* reads or makes a live object (:func:`nbsteps.run.attempt.live.live_objects`:
        a connection, an engine, an open file): what it did through it is outside its values, and
        executing it again does it again (or makes a second one). Asked only for a step above an
        observed write."""
        ctx = self.ctx
        used = self._live.get(src)
        if used is None:
            values = list(held_inputs(ctx, src).values()) if src in ctx.steps else []
            rec = ctx.records.get(src)
            outs = rec.outputs if rec is not None else None
            if type(outs) is dict:  # (a lazily restored one: not read for this)
                values += outs.values()
            used = self._live[src] = any(live_objects(v) for v in values)
        return used

    def _read_again(self, src: str, rec, n: str, loaded: "dict | None" = None) -> bool:
        """Give step *src* its version of *n* back from its checkpoint (*loaded*: the
        checkpoints read already, by step); whether it could."""
        ctx = self.ctx
        if not getattr(ctx.store, "persistent", False):
            return False
        loaded = {} if loaded is None else loaded
        try:
            cp = loaded.get(src)
            if cp is None:
                cp = loaded[src] = ctx.store.get(src, rec.fingerprint, lazy=True)
            if cp is None or n not in cp.outputs or n not in rec.outputs:
                return False
            value, changed = cp.outputs[n], rec.outputs[n]
        except Exception:  # unreadable: recomputed instead
            return False
        if value is changed:  # the store holds the object itself
            return False
        if isinstance(rec.outputs, LazyValues):
            rec.outputs.replace(n, value)
        else:
            rec.outputs = {**rec.outputs, n: value}
        return True


_MISSING = object()


def _held(outputs, n: str):
    """Output *n* as the record holds it in memory (a value restored lazily and not read
    yet is not read here: :data:`_MISSING`)."""
    if isinstance(outputs, LazyValues):
        return outputs[n] if outputs.loaded(n) else _MISSING
    return outputs.get(n, _MISSING) if isinstance(outputs, dict) else _MISSING


def latest_parts(store, name: str) -> dict:
    """The parts of the latest checkpoint of step *name* (a persistent store: what an
    earlier kernel found when it ran the step), else none."""
    if not getattr(store, "persistent", False):
        return {}
    try:
        cp = store.peek(name)
    except Exception:  # an unreadable store says nothing
        return {}
    return (cp.parts or {}) if cp is not None else {}


def recorded(parts: dict) -> frozenset:
    """The observed writes checkpoint *parts* record (:func:`latest_parts`: a new kernel
    knows what an earlier one saw)."""
    return frozenset(parts.get("observed", ()))


def recorded_hints(parts: dict) -> dict:
    """``{name: "type.method"}`` of the writes hints keyed by type found, as checkpoint
    *parts* record them (nbsteps.model.hints), else none."""
    hints = parts.get("hints")
    return {str(k): str(v) for k, v in hints.items()} if isinstance(hints, dict) else {}


def recorded_reads(parts: dict) -> frozenset:
    """The names the step was predicted to change (``x.plot()``, ``random_state=SEED``) that
    its values showed it only reads when it was registered (``Step.unchanged``), as
    checkpoint *parts* record them: a new kernel, whose restored values are not read yet,
    decides as the kernel that made the checkpoints did."""
    reads = parts.get("unchanged")
    return frozenset(str(n) for n in reads) if isinstance(reads, (list, tuple)) else frozenset()


def merged(first, second):
    """The summary of a run made of two passes (the second after observed writes):
    a step executed in the first and held in the second counts as executed."""
    ran = [s for s in first.completed_order if s not in second.completed_order]
    for s in ran:
        rec = second.records.get(s)
        if rec is not None and rec.status == COMPLETED and second.restored_from.get(s):
            rec.cached = False
            second.restored_from.pop(s, None)
    second.completed_order = ran + list(second.completed_order)
    second.wall += first.wall
    second.started = first.started or second.started
    return second
