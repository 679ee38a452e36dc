"""The Plan facade: all registered steps of a session, a DAG, and their records.

``Plan`` is the Python API (SPEC 3) and what the magics and the CLI call. Its
state (the steps, the resolved dependencies, the records, the checkpoint store
and the namespace outputs are published to) lives in one
:class:`~nbsteps.run.context.RunContext`, ``plan.context``, which is all the
layers below ever see: running is delegated to the executor (``nbsteps.run``)
on a backend chosen by ``make_backend``, checkpoints to a store chosen by
``open_store``, and ``results()``/``graph()`` to the views, each given the
context. The facade registers steps, validates arguments, chooses the backend
and brings stale flags up to date before the views read them.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

from nbsteps import config
from nbsteps.backends import make_backend
from nbsteps.errors import NbstepsError
from nbsteps.interrupts import deferred_interrupts
from nbsteps.model import dependencies as depmod
from nbsteps.model import hints
from nbsteps.model import why as why_mod
from nbsteps.model.record import StepRecord
from nbsteps.model.record import touch as touch_record
from nbsteps.model.state import recorded_state
from nbsteps.model.status import COMPLETED
from nbsteps.model.step import NOTHING, Step, cell_step, function_step
from nbsteps.run import events as ev
from nbsteps.run import observed_writes
from nbsteps.run.context import RunContext
from nbsteps.run.decide.preview import preview
from nbsteps.run.decide.replay import due, effects_of, replay_set
from nbsteps.run.decide.selection import default_workers
from nbsteps.run.decide.staleness import files_moved, refresh_stale
from nbsteps.run.decide.validity import Validity
from nbsteps.run.deferred import Deferred
from nbsteps.run.executor import Executor
from nbsteps.run.publishing import Publisher
from nbsteps.run.registration import registration_warnings
from nbsteps.run.summary import record_interrupt
from nbsteps.run.undo import register_undo, undo_step
from nbsteps.run.undo import rollback as rollback_run
from nbsteps.stores import Store, open_store


class Plan:
    """A DAG of named steps with checkpoints.

    >>> plan = Plan()
    >>> @plan.step("a")
    ... def a(): return 1
    >>> @plan.step("b")
    ... def b(a): return a + 1
    >>> plan.run().ok, plan["b"].result
    (True, 2)
    """

    def __init__(
        self,
        store: "str | os.PathLike | Store | None" = None,
        namespace: dict | None = None,
        listeners: Iterable[Callable] = (),
        *,
        max_size: "int | str | None" = "default",
    ):
        store_ = open_store(store if store is not None else config.store(), max_size)
        ctx = self.context = RunContext(
            {} if namespace is None else namespace,
            store_,
            deferred=Deferred(),
            validity=Validity(),
            listeners=listeners,
        )
        ctx.publisher = Publisher(ctx)
        store_.warn = ctx.warn
        #: keep them unread after a run (a frontend loads what cells use); else
        #: a run ends by reading and publishing them
        self.lazy_publish = False
        #: leave the replays that only make a run end with Run All's process state pending
        #: (a frontend calls :meth:`settle` before code that is not a restore); else a run
        #: executes them before it ends
        self.lazy_settle = False

    # -- the state, kept in the run context ------------------------------------
    @property
    def steps(self) -> dict[str, Step]:
        """The registered steps, in notebook order."""
        return self.context.steps

    @property
    def records(self) -> dict[str, StepRecord]:
        """What happened to each step (:class:`~nbsteps.model.record.StepRecord`)."""
        return self.context.records

    @property
    def namespace(self) -> dict:
        """Where completed steps' outputs are published."""
        return self.context.namespace

    @namespace.setter
    def namespace(self, namespace: dict) -> None:
        self.context.namespace = namespace

    @property
    def listeners(self) -> list[Callable]:
        """Callables receiving every event (:mod:`nbsteps.run.events`)."""
        return self.context.listeners

    @property
    def deps(self) -> depmod.Dependencies:
        """The resolved dependency graph (replaced whenever a step changes)."""
        return self.context.deps

    @property
    def deferred(self) -> Deferred:
        """Values restored from a directory store and not read yet."""
        return self.context.deferred

    @property
    def validity(self) -> Validity:
        return self.context.validity

    @property
    def state_head(self) -> dict[str, str]:
        return self.context.state_head

    @property
    def pending_replays(self) -> dict[str, list[str]]:
        """``{step: labels}``: restored steps whose effect on process state (a style, rcParams,
        options, the working directory) a run left to replay (:attr:`lazy_settle`); :meth:`settle`
        executes them."""
        return self.context.pending_replay

    @property
    def last_summary(self):
        """The summary of the last run (:class:`~nbsteps.run.summary.RunSummary`), or None."""
        return self.context.last_summary

    @last_summary.setter
    def last_summary(self, summary) -> None:
        self.context.last_summary = summary

    @property
    def resume_hint(self) -> str:
        """How to resume, shown in summaries (``%steps run`` in a notebook)."""
        return self.context.resume_hint

    @resume_hint.setter
    def resume_hint(self, hint: str) -> None:
        self.context.resume_hint = hint

    # -- the store -------------------------------------------------------------
    @property
    def store(self) -> Store:
        return self.context.store

    @store.setter
    def store(self, spec) -> None:
        self.set_store(spec)

    def set_store(self, spec, max_size: "int | str | None" = "default") -> Store:
        """Use *spec* (``"memory"``, a directory, a Store) for checkpoints;
        *max_size* bounds a directory store (``"2GB"``; default 10 GB)."""
        old = self.context.store
        store = self.context.store = open_store(spec, max_size)
        if old is not store:  # the old store's pending commits end now, told to this plan's listeners
            old.flush()
        store.warn = self.context.warn
        if self.background_commits and store.persistent:
            store.background = True
        return store

    @property
    def background_commits(self) -> bool:
        """Whether a directory store commits checkpoints on its own thread (a
        step completes once its values are written; they are durable a few
        fsyncs later, waited for on an interrupt and at exit). The IPython
        frontend turns it on; plain Python runs wait for each commit."""
        return getattr(self, "_background", False)

    @background_commits.setter
    def background_commits(self, on: bool) -> None:
        if self.context.store.persistent:
            self.context.store.background = bool(on)
        self._background = bool(on)

    # -- publishing ------------------------------------------------------------
    def publish(self, outputs: dict, step: "str | None" = None) -> None:
        """Make a completed step's outputs visible (see :mod:`nbsteps.run.publishing`)."""
        self.context.publish(outputs, step)

    def load(self, names: "Iterable[str] | None" = None) -> list[str]:
        """Read and publish restored values not read yet (*names*, default:
        all); the names published. A value that cannot be read back (its
        checkpoint is lost, see :mod:`nbsteps.run.recovery`) has its step
        executed again now, with what it needs, as Run All computed it: what
        it writes is published."""
        ctx = self.context
        names = list(names) if names is not None else None
        before = set(ctx.lost)
        done = ctx.load(names)
        lost = [s for s in ctx.lost if s not in before and s in self.steps]
        if lost:
            self.run(lost)
            for s in lost:
                rec = ctx.records[s]
                done += [
                    n
                    for n in (rec.outputs if rec.ok else ())
                    if (names is None or n in names) and n not in done and n in ctx.namespace
                ]
        return done

    def lost(self, exc) -> None:
        """A value restored from a checkpoint (a
        :class:`~nbsteps.errors.CheckpointUnavailable` naming its step) could not
        be read: warn, and the step executes in the next run (run.recovery)."""
        self.context.publisher.lost(exc)

    # -- registering -------------------------------------------------------------
    def add(self, step: Step) -> Step:
        """Register *step* (replacing one of the same name). On a cycle, an
        unknown --after or an ambiguous name the plan is left unchanged."""
        ctx = self.context
        steps = ctx.steps
        old = steps.get(step.name)
        # a step new to this kernel: what its latest checkpoint says an earlier kernel found (read once)
        found = observed_writes.latest_parts(ctx.store, step.name) if old is None else {}
        if old is None and not found and step.analysis is None:
            # a function step new to this plan, nothing recorded of it: nothing observed, and no
            # analysis to read values for (what the general path below sets, without its calls)
            step.observed = step.observed_state = step.unchanged = NOTHING
            step.hints = {}
            steps[step.name] = step
        else:
            self._learned(step, old, found)
        try:
            if old is not None and depmod.registered_alike(old, step):
                # registered again as it was (a cell run again unchanged): the graph, and what
                # is known to be up to date, stay; resolving would set these two the same
                step.linked, step.called_reads = old.linked, old.called_reads
            elif old is not None and depmod.linked_alike(old, step):
                # an edit that reads, writes and touches what it did (x = 1 -> x = 2): the graph stays;
                # the step and its downstream are no longer known to be up to date
                step.linked, step.called_reads = old.linked, old.called_reads
                for s in self.context.deps.downstream([step.name]):
                    self.validity.valid.pop(s, None)
            elif old is not None or not depmod.add_appended(ctx.deps, steps, step):
                ctx.deps = depmod.resolve(steps)
                self.validity.clear()  # dependencies may have changed anywhere
        except BaseException as exc:  # NbstepsError, or an interrupt: the previous plan stays
            if old is None:
                del self.steps[step.name]
            else:
                self.steps[step.name] = old
            if not isinstance(exc, NbstepsError):
                self.context.deps = depmod.resolve(self.steps)  # the fast path may have started indexing
                raise
            raise exc.with_traceback(None) from None
        rec = ctx.records.get(step.name)
        if rec is None:
            ctx.records[step.name] = StepRecord(step.name)
        else:
            if old is not None and old.static_digest != step.static_digest:
                rec.stale = rec.status == COMPLETED
            touch_record(rec)  # a new Step: what passes over the changed steps see (RunContext.changes_since)
        return step

    def _learned(self, step: Step, old: "Step | None", found: dict) -> None:
        """Set what the plan knows of *step* beyond its code (observed writes and state, reads of
        immutable values, hints keyed by type) from *old*, the step it replaces, or the parts
        *found* in its latest checkpoint, and from the values in the namespace; *step* joins
        the plan's steps."""
        if old is None and not found:  # a step new to this plan, nothing recorded of it (most cells)
            # (what the general path below sets from empty parts, without its calls)
            step.observed = step.observed_state = NOTHING
            steps = self.context.steps
            steps[step.name] = step
            a = step.analysis
            if a is None or not (a.changed_only or a.calls):  # (most cells: what the two calls give then)
                step.unchanged, step.hints = NOTHING, {}
                return
            namespace = self.context.namespace
            step.unchanged = depmod.immutable_reads(step, steps, namespace)
            step.hints, reads = hints.at_registration(step, namespace)
            if reads:
                step.unchanged |= reads
            return
        step.observed = old.observed if old is not None else observed_writes.recorded(found)
        step.observed_state = old.observed_state if old is not None else recorded_state(found)
        self.steps[step.name] = step
        step.unchanged = depmod.immutable_reads(step, self.steps, self.namespace)
        step.hints, reads = hints.at_registration(step, self.namespace)  # keyed by the values' types
        known = old.hints if old is not None else observed_writes.recorded_hints(found)
        if known and step.analysis is not None:  # found when it ran (in this kernel or one before)
            called = {c[0] for c in step.analysis.calls}
            step.hints = {**{n: h for n, h in known.items() if n in called}, **step.hints}
        step.unchanged |= reads
        if step.analysis is not None:  # a value this kernel does not hold yet (restored, not read: deferred)
            # is decided as when it was known (the step's earlier registration, or its checkpoint)
            known_reads = old.unchanged if old is not None else observed_writes.recorded_reads(found)
            step.unchanged |= frozenset(
                n
                for n in known_reads & (step.analysis.changed_only | step.analysis.assumed)
                if n not in self.namespace and n not in step.hints
            )

    def add_cell(self, name: str, source: str, code_name: "str | None" = None, **options) -> Step:
        return self.add(cell_step(name, source, code_name, **options))

    def step(
        self,
        name: str | None = None,
        *,
        after=(),
        retry: int = 0,
        retry_delay: float = 1.0,
        retry_on=(),
        timeout: float | None = None,
        optional: bool = False,
        confirm: str | None = None,
        cache: bool = True,
    ):
        """Decorator registering a function as a step. A parameter named after
        a registered step receives that step's result (and depends on it)."""

        options = {
            "after": after,
            "retry": retry,
            "retry_delay": retry_delay,
            "retry_on": retry_on,
            "timeout": timeout,
            "optional": optional,
            "confirm": confirm,
            "cache": cache,
        }

        def register(func):  # (3 free variables, not the 10 options each: a closure per step)
            self.add(function_step(name or func.__name__, func, self.context.steps, **options))
            return func

        if callable(name):  # @plan.step without parentheses
            func, name = name, None
            return register(func)
        return register

    def remove(self, name: str) -> None:
        """Unregister a step and drop its checkpoint. Steps that depend on it
        explicitly must be removed (or redefined) first."""
        self._require(name)
        users = [s for s, st in self.steps.items() if name in st.after or name in st.params]
        if users:
            raise NbstepsError(
                f"cannot remove step {name!r}: {', '.join(users)} "
                "name it in --after; redefine or remove them first."
            )
        steps = dict(self.steps)
        del steps[name]
        self.context.deps = depmod.resolve(steps)
        self.context.steps = steps
        rec = self.records.pop(name, None)
        if rec is not None:
            self.deferred.forget(rec.outputs)
        self.validity.clear()
        self.store.drop(name)

    def reset(self, *names: str) -> list[str]:
        """Drop the checkpoints of *names* (all steps if none) and of their
        downstream steps; returns the steps reset."""
        for n in names:
            self._require(n)
        targets = self.deps.downstream(names) if names else set(self.steps)
        self.validity.clear()
        for n in self.order(targets):
            self.store.drop(n)
            self.deferred.forget(self.records[n].outputs)
            self.records[n].reset()
        return self.order(targets)

    def registration_warnings(self, name: str) -> list[str]:
        """What the user should know about step *name* right after registering
        it: names that nothing defines (with a "did you mean"), and what the
        analysis could not see (star imports, names inside exec/eval strings)."""
        return registration_warnings(self.context, self._require(name))

    # -- queries -------------------------------------------------------------
    def _require(self, name: str) -> Step:
        return self.context.require(name)

    def __getitem__(self, name: str) -> StepRecord:
        self._require(name)
        return self.records[name]

    def __contains__(self, name: str) -> bool:
        return name in self.steps

    def __iter__(self):
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def why(self, name: str) -> "why_mod.Why":
        """What step *name* reads and writes, each marked *inferred from the code*, *observed at
        run time* or *hint for type T*, and the files its last run read with their fingerprints
        (a :class:`nbsteps.model.why.Why`; ``str()`` of it is what ``%steps why NAME`` prints).
        A misspelt name raises UnknownStepError with "did you mean"."""
        step = self._require(name)
        rec = self.records.get(name)
        files = rec.files if rec is not None else None
        # the files that make it stale are those the run would say so of (not what a step below changed)
        moved = files_moved(self.context, name, files)
        return why_mod.explain(step, self.context.sources(name), files, moved)

    def dependencies(self, name: str) -> dict[str, str]:
        """``{upstream: "inferred" | "explicit"}``"""
        return self.context.dependencies(name)

    def sources(self, name: str) -> dict[str, str]:
        """``{input name: step it comes from}``"""
        return self.context.sources(name)

    def edges(self) -> list[tuple[str, str, str]]:
        """``(upstream, downstream, kind)`` for every dependency."""
        return [(u, s, kind) for s in self.steps for u, kind in self.dependencies(s).items()]

    def upstream(self, names: Iterable[str]) -> set[str]:
        return self.context.upstream(names)

    def downstream(self, names: Iterable[str]) -> set[str]:
        return self.context.downstream(names)

    def order(self, names: Iterable[str] | None = None) -> list[str]:
        """*names* (default: all) in plan order, which is a topological order."""
        return self.context.order(names)

    def topological(self) -> list[str]:
        """All steps, dependencies first, ties in registration order."""
        return self.context.topological()

    def levels(self, names: Iterable[str] | None = None) -> dict[str, int]:
        """Parallel level of each step (0 = no dependencies among *names*)."""
        return self.context.levels(names)

    def select(self, targets: Iterable[str] | None = None) -> list[str]:
        """The steps a run of *targets* needs (targets and their upstream)."""
        return self.context.select(targets)

    # -- running -------------------------------------------------------------
    def run(
        self,
        targets: Iterable[str] | str | None = None,
        *,
        workers: int | None = None,
        fail_fast: bool = False,
        force: Iterable[str] | str = (),
        force_all: bool = False,
        yes: bool = False,
        confirm: Callable[[str, str], bool] | None = None,
        rollback: bool = False,
        backend: str = "threads",
        address=None,
        listeners: Iterable[Callable] = (),
    ):
        """Run *targets* (default: every step) and what they need. Returns a
        :class:`~nbsteps.run.summary.RunSummary`; it never raises for a failing
        step (see ``summary.ok``). KeyboardInterrupt cancels the rest of the
        run, keeps every completed checkpoint, and is re-raised."""

        names, summary = None, None
        ctx = self.context
        try:
            if isinstance(targets, str):
                targets = [targets]
            if isinstance(force, str):
                force = [force]
            for f in force:
                self._require(f)
            # one cell whose upstream is known to be up to date: considered alone (Validity.alone)
            quick_names = chain = None
            if targets and not force and not force_all:
                targets = list(targets)
                for t in targets:
                    self._require(t)
                quick_names, chain = ctx.validity.alone(ctx, targets)
            quick = quick_names is not None
            names = quick_names if quick else self.select(targets)
            forced = frozenset(names) if force_all else frozenset(force)
            if workers is not None and int(workers) < 1:
                raise NbstepsError(f"workers must be at least 1, got {workers!r}.")
            all_listeners = self.listeners + list(listeners)
            workers = int(workers) if workers else default_workers(ctx, names, backend)
            # connect first: a backend that cannot start leaves every record as it was
            executor = self._executor(
                names,
                all_listeners,
                workers=workers,
                backend=backend,
                address=address,
                fail_fast=fail_fast,
                force=forced,
                yes=yes,
                confirm=confirm,
            )
            if self._replays(executor, names, forced, chain):  # replays above a quick cell: the chain
                names = executor.names = chain
                quick = False
            ctx.run_listeners = all_listeners
            ctx.validity.before(ctx, names, checked=quick_names is not None)
            try:
                summary = executor.run()
                if executor.state_seen:  # steps seen changing the environment: in its chain from now on
                    ctx.deps = depmod.resolve(self.steps)
                    ctx.validity.clear()
                if (executor.observed.writes or executor.state_seen) and not summary.interrupted:
                    names, summary = self._observed_writes(executor, targets, summary, address)
                if ctx.deferred and not self.lazy_publish:
                    ctx.load()  # no frontend to load them on use: publish them all now
            finally:
                ctx.run_listeners = []
                ctx.validity.after(ctx, names)
            if quick and not summary.ok:  # tell about the upstream too, as a full run would
                summary.add_upstream(self.select(targets))
            if rollback and not summary.ok and summary.completed_order:
                ctx.validity.clear()
                rollback_run(ctx, summary)
            ctx.last_summary = summary.freeze()
            ctx.emit(ev.Event(ev.FINISHED, ctx, summary=summary, steps=list(names)), all_listeners)
        except KeyboardInterrupt:  # before the executor's loop, or after it: this run's summary all the same
            with deferred_interrupts():
                self.record_interrupt(targets, names, summary, listeners)
            raise
        if summary.interrupted:
            raise KeyboardInterrupt
        return summary

    def _executor(
        self,
        names: list[str],
        all_listeners: list[Callable],
        *,
        workers: int,
        backend: str = "threads",
        address=None,
        **options,
    ) -> Executor:
        """An executor of *names* on a backend made here (a backend that cannot start
        raises before any record changes), emitting its events to *all_listeners*."""
        return Executor(
            self.context,
            names,
            workers=workers,
            backend=make_backend(backend, workers, address),
            backend_name=backend or "threads",
            emit=(lambda e: ev.emit_to(all_listeners, e)) if all_listeners else None,
            resume_hint=self.context.resume_hint,
            **options,
        )

    def _replays(
        self, executor, names: list[str], forced: frozenset, chain: "list[str] | None" = None
    ) -> bool:
        """The up-to-date steps of a run of *names* that *executor* executes again for process
        state (:mod:`nbsteps.run.decide.replay`). When a step will execute, the replays left
        pending are settled first; with :attr:`lazy_settle`, those only for the state the run
        ends with are left pending.

        *chain*: *names* are cells run alone whose upstream is known to be up to date (none of
        it will execute), and *chain* is that upstream with them: the replays are decided over
        it, as for a run of the whole chain. True when the run must consider the whole chain
        after all: a step of it is replayed, or pending replays were settled (a failed one
        leaves its downstream to be checked)."""
        ctx = self.context
        over = names if chain is None else chain
        if not ctx.pending_replay:  # (a loop, not any() of a generator: no call a step when none has effects)
            steps, maybe = ctx.steps, ctx.deps.maybe_of
            for s in over:
                step = steps[s]
                # effects_of(step) is empty when the run saw none and there is no analysis (a function step)
                if step.observed_state or maybe.get(s) or (step.analysis is not None and effects_of(step)):
                    break
            else:
                return False
        will_run = set(preview(ctx, names, forced, False).to_run)
        settled = bool(will_run and ctx.pending_replay)
        if settled:  # a step executes: it sees the state Run All gives it
            self.settle()
        later = {} if self.lazy_settle else None
        executor.replay = replay_set(ctx, over, will_run, later)
        for s, labels in (later or {}).items():
            if s not in executor.replay:  # (else it executes in this run)
                known = ctx.pending_replay.setdefault(s, [])
                known += [label for label in labels if label not in known]
        return chain is not None and (settled or any(s not in names for s in executor.replay))

    def settle(self, listeners: Iterable[Callable] = ()):
        """Execute the replays runs left pending (:attr:`pending_replays`), so that the process
        holds the state Run All leaves (rcParams, styles, options, the working directory) before
        code that may read it runs. Each is replayed as a run replays a step: in notebook order,
        the same token (nothing downstream becomes stale), its output kept and not shown again.
        A step edited, reset or failed since is left to its own run. The run's summary (not the
        plan's ``last_summary``), or None when nothing was pending. An interrupt cancels the
        rest and is re-raised."""
        ctx = self.context
        pending, ctx.pending_replay = ctx.pending_replay, {}
        if not pending:
            return None
        names = due(ctx, pending)
        if not names:
            return None
        all_listeners = self.listeners + list(listeners)
        executor = self._executor(names, all_listeners, workers=1)
        executor.replay = {s: pending[s] for s in names}
        executor.settling = True
        ctx.run_listeners = all_listeners
        try:
            summary = executor.run()
        finally:
            ctx.run_listeners = []
        if not summary.ok:  # what was known to be up to date below a failed replay may not be
            ctx.validity.clear()
        ctx.emit(ev.Event(ev.FINISHED, ctx, summary=summary, steps=list(names)), all_listeners)
        if summary.interrupted:
            raise KeyboardInterrupt
        return summary

    def _observed_writes(self, executor, targets, summary, address=None, rounds: int = 2):
        """The run saw steps change inputs the analysis did not predict
        (nbsteps.run.observed_writes): they become writes of those steps, the graph is
        resolved again, and the selection runs once more (what read the old version
        runs again after the writer; at most *rounds* times). The same when it saw steps change
        process state the analysis did not label (the environment: ``Executor.state_seen``):
        what touches that state below them runs again in its chain. Returns the run's
        names and summary (both passes)."""
        names = executor.names
        began: dict = {}  # step -> the generators' states it first began with in this run
        rerun: dict = {}  # step -> why it runs again (passed as forced: its record says why)
        while (executor.observed.writes or executor.state_seen) and rounds > 0 and not summary.interrupted:
            rounds -= 1
            rebuild, state_seen = executor.observed.rebuild, executor.state_seen
            began = {**executor.observed.generators, **began}
            rerun = {**rerun, **executor.observed.rerun}
            for s, seen in executor.observed.writes.items():
                self.steps[s].observed = self.steps[s].observed | frozenset(seen)
                self.steps[s].hints = {**self.steps[s].hints, **executor.observed.hinted.get(s, {})}
            self.context.deps = depmod.resolve(self.steps)
            self.validity.clear()
            names = self.select(targets)
            ran = executor.ran_before | frozenset(executor.completed_order)  # (Executor._done_once)
            executor = Executor(
                self.context,
                names,
                workers=executor.workers,
                fail_fast=executor.fail_fast,
                force=executor.force | frozenset(executor.observed.rerun),
                yes=executor.yes,
                confirm=executor.confirm,
                backend=make_backend(executor.backend_name, executor.workers, address),
                backend_name=executor.backend_name,
                emit=executor.emit_event,
                resume_hint=executor.resume_hint,
            )
            if state_seen:  # a step below a writer found now executes: the writers above it replay first
                self._replays(executor, names, executor.force)
            executor.rebuild = rebuild  # executed again, same token (run.observed_writes)
            executor.rerun = rerun
            executor.ran_before = ran
            executor.later_pass = rounds > 0  # (steps it holds for the next pass: Executor._next_pass)
            executor.rebuild_generators = {s: began[s] for s in rebuild if s in began}  # drawing as then
            summary = observed_writes.merged(summary, executor.run())
        return names, summary

    def record_interrupt(self, targets=None, names=None, summary=None, listeners=()) -> None:
        """An interrupt outside the executor's loop: ``last_summary`` tells this run (see run.summary)."""
        record_interrupt(self.context, targets, names, summary, self.listeners + list(listeners))

    def refresh_stale(self) -> None:
        """Set ``record.stale`` for completed steps whose code, options,
        upstream executions or outside values changed since they ran. Views
        only read the flags: call this before drawing between runs."""
        refresh_stale(self.context)

    # -- views -------------------------------------------------------------
    def plan(
        self,
        targets: Iterable[str] | str | None = None,
        *,
        force: Iterable[str] = (),
        force_all: bool = False,
    ):
        """Preview what a run would do and why (no step is executed)."""

        if isinstance(targets, str):
            targets = [targets]
        return preview(self.context, self.select(targets), frozenset(force), force_all)

    def results(self):
        """The results table: a pandas DataFrame, one row per step in plan order."""
        from nbsteps.views.table import results_frame

        self.refresh_stale()
        return results_frame(self.context)

    def export(self, path) -> str:
        """Write the results table to *path* (.csv .json .parquet .html), atomically."""
        from nbsteps.views.table import export

        self.refresh_stale()
        return export(self.context, path)

    def graph(self):
        """The dependency graph (a ``graphviz.Digraph``; displays as SVG)."""
        from nbsteps.views.graph import plan_graph

        self.refresh_stale()
        return plan_graph(self.context)

    # -- compensation (SPEC 2.9) ----------------------------------------------------
    def set_undo(self, name: str, code) -> None:
        """Register *code* (cell source or a callable) as the undo of step *name*."""
        register_undo(self.context, name, code)

    def undo(self, name: str) -> str:
        """Run step *name*'s undo code; it and its downstream are not completed then."""
        return undo_step(self.context, name)

    def static_picture(self, names=None, summary=None):
        """The lasting picture (progress, graph, timeline, table) as a mime bundle."""
        from nbsteps.views.static import static_bundle

        self.refresh_stale()
        return static_bundle(self.context, names, summary=summary)

    def __repr__(self) -> str:
        done = sum(1 for r in self.records.values() if r.ok)
        return f"<nbsteps.Plan: {len(self.steps)} steps, {done} completed, store={self.store.describe()}>"
