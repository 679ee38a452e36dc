"""The executor: runs a plan's steps in dependency order, in parallel where
they are independent, with retries, timeouts, confirmations, fail-fast and
interrupts, and emits events. It never imports IPython or widgets.

The loop is graphlib's ``get_ready() / done()`` over the selected steps (a
:class:`~nbsteps.run.decide.selection.Sorter`; the graph of a selection is cached
per resolved plan graph, see :mod:`nbsteps.run.decide.selection`).
Records and the namespace change only on the calling thread; workers only run
attempts and hand back outcomes through a queue.
"""

from __future__ import annotations

import heapq
import itertools
import os
import queue
import time
from collections import deque
from typing import Callable

from nbsteps.errors import CheckpointUnavailable, StepTimeout
from nbsteps.formatting import error_text
from nbsteps.interrupts import deferred_interrupts, watching_interrupts
from nbsteps.model import file_inputs
from nbsteps.model.checkpoint import Checkpoint, LazyValues
from nbsteps.model.file_inputs import why as files_why
from nbsteps.model.fingerprint import combine
from nbsteps.model.record import set_executed, set_running, set_to_execute
from nbsteps.model.state import state_of
from nbsteps.model.status import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    FAILED,
    KEPT,
    PENDING,
    RETRYING,
    RUNNING,
)
from nbsteps.model.step import Step
from nbsteps.run import confirmation, fusion, observed_writes, recovery, upstream_caches
from nbsteps.run import events as ev
from nbsteps.run.attempt import live, retry, stack, threads
from nbsteps.run.attempt.inputs import blocked_by, held_inputs, make_task
from nbsteps.run.attempt.notebook_functions import bound_to, to_namespace
from nbsteps.run.attempt.task import Outcome, Task, run_task, trim_traceback
from nbsteps.run.context import RunContext
from nbsteps.run.decide.selection import default_workers, in_order, run_graph
from nbsteps.run.decide.staleness import (
    NOT_STORED,
    explained_below,
    files_moved,
    fingerprint_parts,
    not_stored,
    outside_names,
    rewritten_above,
    stale_reason,
)
from nbsteps.run.summary import RunSummary, store_where

#: execution tokens: unique per execution, cheap (no uuid per step)
_NONCE = os.urandom(6).hex()
_EXECUTIONS = itertools.count(1)


def still_written(before: dict, now: dict) -> dict:
    """What a step executed again wrote: *now* (what this attempt was seen writing), with the files
    its previous execution wrote (*before*) that are still as it left it. Code that changes a file
    only when it is not so already (a cache entry removed again: nothing left to remove, no removal
    seen) leaves it as Run All does after the step: the step still explains that version of the
    file to the steps above that read it (RunContext.written_below)."""
    kept = {p: fp for p, fp in before.items() if p not in now and file_inputs.fingerprint(p) == fp}
    return {**kept, **now} if kept else now


def _upstream_unstored(ctx: RunContext, name: str) -> str:
    """Why step *name*, never run in this kernel, runs: its upstream steps whose values were not stored."""
    ups = [d for d in ctx.dependencies(name) if ctx.records[d].not_stored]
    return f"upstream {', '.join(ups)} ran again: its values were {NOT_STORED}"


class Executor:
    def __init__(
        self,
        ctx: RunContext,
        names: list[str],
        *,
        workers: int | None = None,
        fail_fast: bool = False,
        force: set | frozenset = frozenset(),
        yes: bool = False,
        confirm: Callable[[str, str], bool] | None = None,
        backend,
        backend_name: str = "threads",
        emit: Callable[[ev.Event], None],
        resume_hint: str = "plan.run()",
    ) -> None:
        self.ctx = ctx
        self.names = names
        self.workers = workers or default_workers(ctx, names)
        self.fail_fast = fail_fast
        self.force = force
        self.yes = yes
        self.confirm = confirm
        self.backend = backend  # chosen by the plan (nbsteps.backends.make_backend)
        self.backend_name = backend_name
        self.emit_event = emit
        self.resume_hint = resume_hint
        self.stopping = ""  # why scheduling stopped (fail-fast), '' while running
        self._done_q: queue.SimpleQueue = queue.SimpleQueue()
        self._running: dict[str, Task] = {}
        self._waiting: deque[Task] = deque()
        #: ready tasks held back: a step above them reads a live object they read (run.attempt.live)
        self._gated: list[Task] = []
        self._live_memo: dict = {}  # id of a value -> ids of the live objects it holds (this run)
        self._timers, self._seq = [], itertools.count()  # heap of (when, seq, kind, name, task)
        #: a further pass of the run follows when this one sees writes (Plan._observed_writes sets it)
        self.later_pass = True
        #: steps executed in the run's earlier passes (Plan._observed_writes sets it): see _done_once
        self.ran_before: frozenset = frozenset()
        self._rerun_memo: dict = {}  # step -> the step above it that runs again (_rerun_above)
        self._held_live: list = []  # (position, step, ids of its live objects, of its objects) held
        self._pinned: dict[str, int] = {}  # steps started where a value they read lives (_home)
        self._again: dict[str, int] = {}  # attempts run again after a half-made import (run.attempt.threads)
        self._parts: dict[str, dict] = {}
        self._layouts: dict[
            str, tuple
        ] = {}  # steps calling methods: their inputs' layout (run.upstream_caches)
        self._held: set[str] = set()  # completed before the run: their values are held by their records
        # files steps of the plan read: an attempt that changes one (in C too) wrote it
        self._files_known: set[str] = set(ctx.files_read())
        self._files_known_t: "tuple | None" = None  # the same, as the tuple each task is given
        #: writes seen at run time that the analysis did not predict (run.observed_writes)
        self.observed = observed_writes.Observed(ctx)
        self.state_seen: list[str] = []  # steps seen changing process state the analysis did not label
        self.completed_order: list[str] = []
        self.replay: dict[
            str, list[str]
        ] = {}  # up-to-date steps to execute again (nbsteps.run.decide.replay)
        self._replay_tokens: dict[str, str] = {}
        #: replays a run left pending, settled later (Plan.settle): one at a time in the order of
        #: ``names``, their output kept, not shown again (their cells show it already)
        self.settling = False
        #: up-to-date steps whose version a step below changed in place: executed again, same token
        self.rebuild: dict[str, str] = {}
        #: steps forced because a step beside them was seen changing what they read
        #: (run.observed_writes) -> why: their record's reason, not "forced" (nobody forced them)
        self.rerun: dict[str, str] = {}
        #: the global generators' states each began with when it first ran: it draws that again
        self.rebuild_generators: dict[str, dict] = {}
        self._fused: dict[
            str, tuple
        ] = {}  # name -> (task, outcome): ran already in a fused chain (run.fusion)
        self.restored: dict[str, str] = {}  # steps completed without executing: where from (events.FROM_*)
        self._chain_links: "dict[str, str] | None" = None  # links of linear chains (run.fusion), once per run
        #: the run uses none of the optional features decided per run (forced steps, replays,
        #: rebuilds, settling, fused chains): their hooks are skipped (set by ``run``; see _plain_run)
        self._plain = False
        #: lost checkpoints recomputed in this run (run.recovery)
        self.recovery = recovery.Recovery(
            ctx, prepare=self._prepare, queue=self._waiting.append, include=self._include, emit=self._emit
        )

    # -- helpers -------------------------------------------------------------
    def _emit(self, kind: str, name: str | None = None, message: str = "", **kw) -> None:
        if self.emit_event is None:
            return
        rec = self.ctx.records.get(name) if name else None
        self.emit_event(ev.Event(kind, self.ctx, name, rec, message, **kw))

    # -- deciding what to do with a ready step --------------------------------
    def _prepare(self, name: str):
        """Returns a Task to run, or None when the step was settled here."""
        ctx, step = self.ctx, self.ctx.steps[name]
        rec = ctx.records[name]
        if self.stopping:
            return self._settle(name, CANCELLED, self.stopping)
        records = ctx.records
        for d in ctx.deps.deps.get(name, ()):
            if records[d].status != COMPLETED:  # rare: find out why (in dependency order)
                why = blocked_by(ctx, name)
                if why:
                    return self._settle(name, BLOCKED, why)
                break
        if ctx.deferred:  # outside names it reads that wait in a lazily restored checkpoint
            ctx.load(outside_names(ctx, step))
        parts = fingerprint_parts(ctx, step)
        fp = combine(parts)
        if self.ran_before and name in self.ran_before and self._done_once(name, rec, fp):
            return None
        cp, reason = self._checkpoint_for(name, step, rec, parts, fp)
        if cp is not None:
            self._complete_from(name, rec, cp, fp)
            return None
        return self._to_execute(name, step, rec, parts, fp, reason)

    def _checkpoint_for(self, name: str, step: Step, rec, parts, fp: str):
        """``(checkpoint, "")`` when step *name* need not execute (the checkpoint
        is its record itself when its values are held in this kernel), else
        ``(None, reason)``: forced, its checkpoint lost, stale, or replayed; then
        ``rec.not_stored`` says whether it runs because its values (or its upstream's) were
        not stored by an earlier kernel, as the store's note says."""
        ctx = self.ctx
        cp, reason, unstored = None, "", ""
        plain = self._plain
        if not plain and name in self.force:
            reason = self.rerun.get(name, "forced")
        elif (self.recovery.lost or ctx.lost) and (lost := self.recovery.reason(name)) is not None:
            reason = lost
        elif step.cache and name in self._held and rec.fingerprint == fp and not self._files_moved(name, rec):
            cp = rec  # up to date, its values are in this kernel already: used as they are, never re-read
        else:  # lazy: a directory store reads the metadata now, each value when first needed
            store = ctx.store
            cp = store.get(name, fp, lazy=True) if step.cache else None
            if cp is None:
                last = store.peek(name)
                below = (
                    None if last is None else explained_below(ctx, name)
                )  # (a step's first run: no files to ask about)
                reason = stale_reason(step, parts, last, rec, below)
                unstored = not_stored(store, name, fp, reason)  # the store could not keep them
                if reason == "never run" and not unstored:  # it may have run below one
                    records = ctx.records
                    for d in ctx.deps.deps.get(name, ()):  # (a loop: no comprehension a step)
                        if records[d].not_stored:  # its checkpoint went with its upstream's version
                            unstored = _upstream_unstored(ctx, name)
                            break
                reason = unstored or reason
            elif moved := files_why((cp.parts or {}).get("files"), explained_below(ctx, name)):
                cp, reason = None, moved  # a file it read changed since
        if (
            cp is not None and not plain and (name in self.replay or name in self.rebuild)
        ):  # again, same token
            token = rec.token if cp is rec else (cp.parts or {}).get("token", fp)
            self._replay_tokens[name], cp = token or fp, None
            # shared-state effect, or its version changed in place by a step below (run.observed_writes)
            reason = self.rebuild.get(name) or f"replayed: sets {', '.join(self.replay[name])}"
        if cp is not None and (again := rewritten_above(ctx, name, cp)):  # again for a file, same token
            token = rec.token if cp is rec else (cp.parts or {}).get("token", fp)
            self._replay_tokens[name], cp, reason = token or fp, None, again
        if cp is None and rec.not_stored != unstored:
            rec.not_stored = unstored
        return cp, reason

    def _complete_from(self, name: str, rec, cp, fp: str) -> None:
        """Complete step *name* without executing it: as it is when *cp* is its
        record (held in this kernel), else restored from the store's checkpoint."""
        ctx = self.ctx
        if cp is rec:  # held: completed again as it is (what its run printed and took stays)
            # executed in an earlier pass of this run (writes seen): why it executed stays its reason
            reason = rec.reason if self.ran_before and name in self.ran_before else "up to date"
            with deferred_interrupts():
                ctx.publish(rec.outputs, name)
                rec.update(origin=KEPT, stale=False, status=COMPLETED, reason=reason)
            self.restored[name] = ev.FROM_SESSION
            if self.emit_event is not None:
                self._emit(ev.COMPLETED, name, info={"restored": ev.FROM_SESSION})
            return
        self._bind_functions(name, cp.outputs)
        with deferred_interrupts():  # up to date: restored, published and completed at once
            ctx.publish(cp.outputs, name)
            rec.restore(cp, fp)
        self.restored[name] = ev.FROM_STORE
        if self.emit_event is not None:
            self._emit(ev.COMPLETED, name, info={"restored": ev.FROM_STORE})

    def _to_execute(self, name: str, step: Step, rec, parts, fp: str, reason: str):
        """Step *name* executes unless the user declines: its record is reset for
        a first attempt; its Task, or None when it was settled here (declined, or
        an input restored lazily cannot be read)."""
        reason = reason or "stale"
        if step.confirm:  # the question is asked with the reason on the record
            rec.reason = reason
            declined = confirmation.ask(self, name)
            if declined:
                return self._settle(name, CANCELLED, declined)
        self._parts[name] = parts
        self.ctx.note_baseline(name)  # the files it may write, as they are before (decide.staleness)
        set_to_execute(rec, reason, fp, step.static_digest)  # (rec.update's fields, written out)
        try:
            return self._fused[name][0] if self._fused and name in self._fused else self._task(step)
        except CheckpointUnavailable as exc:  # an input restored lazily cannot be read
            return self.recovery.upstream_lost(name, exc)

    emit = _emit

    def _include(self, name: str) -> None:
        """Step *name*, held from an earlier run, is recomputed in this one (run.recovery)."""
        self.restored.pop(name, None)
        if name not in self.names:
            self.names = [*self.names, name]

    def yes_hint(self) -> str:
        hint = self.resume_hint.partition("; ")[0]  # "COMMAND; NOTE" (summary._resume): the command
        return hint.replace("run()", "run(yes=True)") if "(" in hint else hint + " --yes"

    def _task(self, step: Step) -> Task:
        task = make_task(self.ctx, step)
        known = self._files_known_t
        if known is None or len(known) != len(self._files_known):  # (the set only grows)
            known = self._files_known_t = tuple(self._files_known)
        task.files_known = known
        # its output was shown when it ran (or was restored): kept, not shown again
        if self._plain:
            return task  # (quiet is False: neither settling nor rebuilding)
        if step.name in self.rebuild:
            task.quiet, task.generators = True, self.rebuild_generators.get(step.name)
        else:
            task.quiet = self.settling
        return task

    def _files_moved(self, name: str, rec) -> list:
        """The files step *name* read that changed since, but for what a step below it wrote."""
        return files_moved(self.ctx, name, rec.files)

    def _settle(self, name: str, status: str, message: str):
        rec = self.ctx.records[name]
        ran = rec.status in (RUNNING, RETRYING)
        if ran:
            rec.update(status=status, message=message, origin="", error=None, traceback="")
        else:  # settled before it ran in this run: no times of an earlier run
            rec.update(
                status=status,
                message=message,
                origin="",
                error=None,
                traceback="",
                started=None,
                finished=None,
                duration=None,
                attempts=0,
                attempt_errors=(),
            )
        self._emit(ev.CANCELLED if status == CANCELLED else ev.BLOCKED, name, message)
        return None

    # -- running ---------------------------------------------------------------
    def _start(self, task: Task, backend, inline: bool = False, home: int = 0) -> None:
        name = task.name
        ctx = self.ctx
        rec, step = ctx.records[name], ctx.steps[name]
        attempts = task.attempt = rec.attempts + 1
        fused = self._fused.pop(name, None) if self._fused else None  # it ran in a chain: its outcome
        fused = fused if fused is not None and fused[0] is task else None
        if attempts == 1:  # (rec.update(attempts=, status=RUNNING, started=), written out)
            set_running(rec, attempts, (fused and fused[1].started) or time.time())
        else:
            set_running(rec, attempts)
        self.observed.started(name)
        if (
            step.analysis is not None
            and (before := upstream_caches.watched(ctx, step, task.inputs)) is not None
        ):
            self._layouts[name] = (before, task.inputs)
        self._running[name] = task
        if not inline:
            timeout = step.timeout
            if timeout:
                heapq.heappush(
                    self._timers, (time.monotonic() + timeout, next(self._seq), "timeout", name, task)
                )
        if self.emit_event is not None:
            self._emit(ev.STARTED, name, f"attempt {attempts}" if attempts > 1 else "")
        if (
            inline or fused
        ):  # a lone ready step: run it here (nothing else could run meanwhile), or a fused one
            outcome = fused[1] if fused else run_task(task)
            if self._watch.hit:  # the step swallowed a Ctrl-C (bare except): the run stops all the same
                raise KeyboardInterrupt
            self._handle(task, outcome)
        else:
            if getattr(backend, "fuses", False):  # the steps that follow it in a linear chain go along
                if (
                    self._chain_links is None
                ):  # once per run (finding the run graph again hashes the selection)
                    self._chain_links = run_graph(self.ctx, self.names).links()
                task.then = fusion.followers(
                    self.ctx, self._chain_links, task, replay=self.replay, yes=self.yes
                )
            if not home or not threads.send_home(home, task, self._on_done):
                backend.submit(task, self._on_done)

    def _next_pass(self, task: Task) -> str:
        """Why *task* waits for the run's next pass, else '': a step at or above it runs again in
        that pass (``observed.rerun``: a write seen at run time) and it reads a live object
        (run.attempt.live: a connection, an engine), so what it does through it (an ``INSERT``)
        would be done twice, and Run All does it once. The next pass runs it after the steps above,
        as the graph with the writes seen then orders them."""
        rerun = self.observed.rerun
        values = (task.inputs if task.kind == "cell" else task.args) or {}
        ids = live.live_ids(values, self._live_memo, self.ctx.tied)
        if not ids and not self._held_live:
            return ""
        objects = frozenset(id(v) for v in values.values() if not threads.plain_data(v))
        ahead = self._rerun_above(task.name, rerun) if ids else None
        pos = self.ctx.deps.position.get(task.name, 0)
        if ahead is not None:
            why = (
                f"held for the run's next pass: {ahead} runs again ({rerun[ahead]}) and "
                f"{task.name} uses a live object (what it does through it would be done twice)"
            )
        else:  # below a held step that uses the same live object, or an object it used one with
            held = next(
                (
                    s
                    for p, s, used, objs in self._held_live
                    if p < pos and not (used.isdisjoint(ids) and objs.isdisjoint(objects))
                ),
                None,
            )
            if held is None:
                return ""
            why = f"held for the run's next pass: {held} above it, which uses the same live object, is"
        self._held_live.append((pos, task.name, ids, objects))
        return why

    def _done_once(self, name: str, rec, fp: str) -> bool:
        """A later pass of the run (writes seen: ``ran_before``): step *name*, executed in an earlier
        pass, reads a live object, so it is not executed again (what it did through it, an
        ``INSERT``, would be done twice; Run All does it once): kept as it is, up to date with the
        graph this pass knows. Whether it was."""
        if name not in self._held or not live.live_ids(held_inputs(self.ctx, name), self._live_memo):
            return False
        with deferred_interrupts():
            rec.fingerprint = fp  # (its token stays: nothing below it is stale for it)
            self._complete_from(name, rec, rec, fp)  # (why it executed in that pass stays its reason)
        return True

    def _rerun_above(self, name: str, rerun: dict) -> "str | None":
        """The step at or above *name* (itself, or upstream of it) that runs again in the next pass
        (*rerun*), else None; memoised while *rerun* does not grow."""
        memo = self._rerun_memo
        if memo.get("") != len(rerun):
            memo.clear()
            memo[""] = len(rerun)
        deps = self.ctx.deps.deps
        stack = [name]
        while stack:  # (iterative: the chains of a long notebook are deep)
            s = stack[-1]
            if s in memo:
                stack.pop()
                continue
            if s in rerun:
                memo[s] = s
                stack.pop()
                continue
            todo = [d for d in deps.get(s, ()) if d not in memo]
            if todo:
                stack.extend(todo)
                continue
            memo[s] = next((memo[d] for d in deps.get(s, ()) if memo[d] is not None), None)
            stack.pop()
        return memo[name]

    def _requeue_gated(self) -> bool:
        """The tasks held back (``_gated``) are asked again, in their order, first (a step finished
        since). True when nothing runs: what they wait for cannot finish first, the first starts."""
        if not self._gated:
            return False
        # in notebook order: a step above that became ready since goes first (Run All's order)
        pos = self.ctx.deps.position
        waiting = sorted([*self._gated, *self._waiting], key=lambda t: pos.get(t.name, 0))
        self._waiting.clear()
        self._waiting.extend(waiting)
        self._gated.clear()
        return not self._running and not self._timers

    def _lane_waits(self, task: Task, stuck: bool = False) -> bool:
        """Whether *task* waits (kept in ``_gated``): with several workers on threads, a step above
        it in this run, not finished, reads a live object it reads (run.attempt.live: Run All uses
        it one cell after another). Never when nothing else is in flight, or *stuck*."""
        if not self._homes or stuck or task.kind != "cell":
            return False
        if not (self._running or self._waiting or self._timers or self._final):
            return False  # (a step that finished here and is not yet done in the sorter may free one above)
        pending = {**{t.name: t for t in self._waiting}, **{t.name: t for t in self._gated}, **self._running}
        inputs_of = lambda s: held_inputs(self.ctx, s, pending)  # noqa: E731
        above = live.waits_for(self.ctx, self.names, task, inputs_of, self._live_memo, self.ctx.tied)
        if above is None:
            return False
        self._gated.append(task)
        return True

    def _home(self, task: Task) -> "int | None":
        """Where *task* must run, when an input is bound to the thread that made it
        (run.attempt.threads): a home thread's ident, 0 for this thread, else None."""
        ctx = self.ctx
        if task.kind == "cell":
            sources, values = ctx.sources(task.name), task.inputs
        else:  # a function step's arguments are its upstream steps' results
            sources, values = {p: p for p in task.args}, task.args
        home = threads.home_of(ctx.threads, sources, values)[0]
        if home is None and ctx.affine:  # what a step on one thread made from a value bound to it
            home = threads.derived_home(ctx.affine, sources, values)[0]
        if home is not None:
            self._pinned[task.name] = home
        return home

    def _on_done(self, task: Task, outcome: Outcome) -> None:  # any thread
        self._done_q.put((task, outcome))

    def _handle(self, task: Task, outcome: Outcome) -> None:
        if self._running.get(task.name) is not task or task.abandoned:
            return  # late outcome of an abandoned attempt: discarded, never published
        del self._running[task.name]
        self.observed.ended(task.name)
        for follower, later in outcome.then:  # a fused chain: the outcomes of the steps that follow
            self._fused[follower.name] = (follower, later)
        if outcome.ok:  # (its duration and output are set with the rest of its completion)
            if self._homes and task.kind == "cell":  # several workers: what it used live objects with
                self._tie(task, outcome)
            self._complete(task.name, outcome)
        else:
            self._conclude(task, outcome)

    def _tie(self, task: Task, outcome: Outcome) -> None:
        """*task* succeeded: when it read live objects, what else it read or made is tied to them
        (run.attempt.live.tie): the steps using those keep notebook order with the live objects'."""
        ids = live.live_ids(task.inputs, self._live_memo, self.ctx.tied)
        if ids:
            outs = outcome.outputs
            values = [*task.inputs.values(), *(outs.values() if type(outs) is dict else ())]
            live.tie(self.ctx.tied, self._live_memo, values, ids)

    def _conclude(self, task: Task, outcome: Outcome) -> None:
        name = task.name
        if outcome.ok:  # (its duration and output are set with the rest of its completion)
            self._complete(name, outcome)
            return
        rec, step = self.ctx.records[name], self.ctx.steps[name]
        err = outcome.error
        if err is not None and step.func is None:
            trim_traceback(err, name, getattr(task.analysis, "filename", None))
        rec.update(duration=outcome.duration, output=outcome.output, error=err, traceback=outcome.traceback)
        if outcome.half_imported and not self.stopping:  # read half made by another step's first import
            self._again[name] = self._again.get(name, 0) + 1  # not one of its --retry attempts
            rec.status = RETRYING
            rec.attempt_errors = (*rec.attempt_errors, (rec.attempts, rec.error_text))
            heapq.heappush(self._timers, (time.monotonic(), next(self._seq), "retry", name, None))
            self._emit(
                ev.RETRYING,
                name,
                f"attempt {rec.attempts} read module {outcome.half_imported} while another step was "
                "importing it for the first time; running it again now that the import has ended",
                info={"delay": 0.0},
            )
            return
        if not self.stopping and retry.retryable(step, rec.attempts - self._again.get(name, 0), err):
            delay = retry.backoff(step, rec.attempts)
            rec.status = RETRYING
            rec.attempt_errors = (*rec.attempt_errors, (rec.attempts, rec.error_text))
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), "retry", name, None))
            self._emit(
                ev.RETRYING,
                name,
                f"attempt {rec.attempts} of {step.retry + 1} failed: {rec.error_text}; "
                f"retrying in {delay:.2f}s",
                info={"delay": delay},
            )
            return
        self._fail(name)

    def _complete(self, name: str, outcome: Outcome) -> None:
        """Store the checkpoint, then publish and mark completed (at once). An
        interrupt during the put leaves the step running (then cancelled) with
        nothing published, unless the store had committed it: then it completes."""
        ctx, rec = self.ctx, self.ctx.records[name]
        home = outcome.thread  # the worker it ran on keeps what it made (run.attempt.threads)
        if home or ctx.threads or self._pinned or ctx.affine:
            self._where(name, home)
        parts = self._parts.pop(name, {})
        if outcome.files:  # the files it read: its checkpoint holds while they are unchanged
            parts["files"] = outcome.files
            self._files_known.update(outcome.files)
        wrote = still_written(rec.wrote, outcome.wrote) if rec.wrote else outcome.wrote
        if wrote:  # the files it wrote, as it left them
            parts["wrote"] = wrote
        if (outcome.appended or ctx.appended) and (appended := ctx.note_appended(name, outcome.appended)):
            parts["appended"] = appended  # of those, the ones it only appended to (decide.staleness)
        token = parts["token"] = (
            self._replay_tokens.pop(name, None)  # a replay keeps its token
            or f"{rec.fingerprint}:{_NONCE}:{next(_EXECUTIONS)}"
        )
        step = self.ctx.steps[name]
        if outcome.changed or step.observed or step.hints:  # recorded with the checkpoint
            parts["observed"] = self.observed.seen(name, outcome)
            if step.hints or outcome.hinted:  # writes found by hints keyed by type
                parts["hints"] = self.observed.hints(name, outcome)
        if outcome.state or step.observed_state:  # seen changing the environment: kept with the checkpoint
            parts["state"] = self._observed_state(step, outcome.state)  # (a new kernel replays it)
        if step.unchanged:  # predicted writes its values showed are reads: a new kernel decides the
            parts["unchanged"] = sorted(step.unchanged)  # same before reading them (recorded_reads)
        cp = Checkpoint(  # (positional: step, fingerprint, outputs, result, has_result, parts,
            name,  # duration, finished, started, attempts, output; no keyword names to match)
            rec.fingerprint,
            outcome.outputs,
            outcome.result,
            outcome.has_result,
            parts,
            outcome.duration,
            time.time(),
            rec.started or 0.0,
            rec.attempts,
            outcome.output,
        )
        try:
            ctx.store.put(cp)  # may take a while (a disk store); an interrupt stops it cleanly
            with deferred_interrupts():
                self._mark_completed(rec, cp, token, outcome.context)
        except BaseException:  # KeyboardInterrupt (put itself never raises)
            if rec.status != COMPLETED:
                with deferred_interrupts():  # was it committed before the interrupt? (stores never raise)
                    rec.update(duration=cp.duration, output=cp.output)  # the attempt's, as for a failed one
                    stored = ctx.store.peek(name)
                    if stored is not None and (stored.parts or {}).get("token") == token:
                        self._mark_completed(rec, cp, token)
            raise
        if self.emit_event is not None:
            self._emit(ev.COMPLETED, name)
        if name in self._layouts:  # caches it left on the values above are kept in their checkpoints
            upstream_caches.refresh(ctx, name, *self._layouts.pop(name))

    def _where(self, name: str, home: int) -> None:
        """Note where step *name* ran, when a thread-bound value made that matter: *home*, the
        worker that keeps what it made (0: none); ``ctx.affine``: the thread it ran on because a
        value it read or made is bound to it (run.attempt.threads.derived_home)."""
        ctx = self.ctx
        if home:
            ctx.threads[name] = home
        elif ctx.threads:
            ctx.threads.pop(name, None)
        pinned = self._pinned.pop(name, None) if self._pinned else None
        if pinned is not None or home:
            ctx.affine[name] = home or pinned
        elif ctx.affine:
            ctx.affine.pop(name, None)

    def _observed_state(self, step, seen: frozenset) -> list:
        """Add the process state labels *seen* changed by *step*'s attempt to its observed
        effects (model.state); the labels, sorted, for its checkpoint. A label the step had
        neither observed nor from the analysis: the plan resolves the state chains again."""
        if seen and not seen <= step.observed_state:
            step.observed_state = step.observed_state | seen
            if step.analysis is None or seen.difference(step.analysis.state):
                self.state_seen.append(step.name)
        return sorted(step.observed_state)

    def _bind_functions(self, name: str, outputs) -> None:
        """A cell step's functions (executed, or restored: each value as it is read) look their
        globals up in the notebook's namespace from now on (run.attempt.notebook_functions)."""
        step = self.ctx.steps.get(name)
        if step is None or step.analysis is None:  # (a function step's outputs are the caller's)
            return
        if type(outputs) is LazyValues:
            outputs.adapt(bound_to(self.ctx.namespace))
        elif type(outputs) is dict:
            to_namespace(outputs, self.ctx.namespace)

    def _mark_completed(self, rec, cp: Checkpoint, token: str, context: "dict | None" = None) -> None:
        """Publish and mark: run with interrupts deferred (all or nothing)."""
        self._bind_functions(rec.name, cp.outputs)
        self.ctx.publisher.publish(cp.outputs, rec.name)  # (RunContext.publish's)
        for var, value in (context or {}).items():  # np.set_printoptions in a step: as after a cell
            var.set(value)
        parts = cp.parts or {}
        set_executed(  # rec.update(status=COMPLETED, origin=EXECUTED, ...), written out
            rec,
            cp.duration,
            cp.output,
            cp.outputs,
            cp.result,
            cp.has_result,
            cp.finished,
            token,
            parts.get("files") or {},
            parts.get("wrote") or {},
        )
        step, maybe = self.ctx.steps[rec.name], self.ctx.deps.maybe_of.get(rec.name)
        labelled = step.analysis is not None and getattr(step.analysis, "state", None)
        if maybe or labelled or step.observed_state:
            for label in (*state_of(step), *(maybe or ())):
                self.ctx.state_head[label] = rec.name  # the process state is now as after this step
        self.completed_order.append(rec.name)
        self._final.append(rec.name)

    def _fail(self, name: str) -> None:
        rec = self.ctx.records[name]
        rec.update(status=FAILED, finished=time.time())
        self._final.append(name)
        self._emit(ev.FAILED, name, rec.error_text)
        if self.fail_fast and not self.ctx.steps[name].optional and not self.stopping:
            self.stopping = f"fail-fast: stopped after {name} failed"

    def _fire_timers(self, backend) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, name, task = heapq.heappop(self._timers)
            if kind == "timeout":
                if self._running.get(name) is not task:
                    continue  # finished in time
                del self._running[name]
                backend.abandon(task)
                limit = self.ctx.steps[name].timeout
                note = getattr(backend, "abandon_note", "a thread cannot be killed")
                err = StepTimeout(
                    f"step {name!r} timed out after {limit:g} s; it was abandoned "
                    f"({note}) and its late outputs will be discarded"
                )
                self._conclude(
                    task, Outcome(False, error=err, traceback=f"StepTimeout: {err}", duration=limit)
                )
            elif self.stopping:  # a retry that fail-fast stopped
                self._fail(name)
            else:
                self._waiting.append(self._task(self.ctx.steps[name]))

    # -- the loop ------------------------------------------------------------
    def run(self) -> RunSummary:
        # the attempts it runs inline in a chunk of the frame stack of their own (run.attempt.stack)
        return stack.call(self._run)

    def _run(self) -> RunSummary:
        ctx, names, backend, records = self.ctx, self.names, self.backend, self.ctx.records
        flush = getattr(backend, "flush", None)
        self._final: list[str] = []
        final = self._final
        interrupted = False
        t0, began = time.perf_counter(), time.time()
        watch = self._watch = watching_interrupts()
        # thread-bound values and first imports matter when steps run on other threads (run.attempt.threads)
        self._homes = getattr(backend, "homes", False) and self.workers > 1
        calling = threads.calling_thread(self._homes)
        calling.__enter__()
        try:
            watch.__enter__()  # every Ctrl-C of the run is noted, even one a step swallows
            # graphlib's loop, without its per-run cycle search
            ts = in_order(names) if self.settling else run_graph(ctx, names).sorter()
            self._held = {s for s in names if records[s].status == COMPLETED}
            self._plain = self._plain_run(backend)
            with deferred_interrupts():  # every step of the run is pending, or none
                for s in names:
                    rec = records[s]
                    if rec.status != PENDING or rec.message or rec.origin:  # (a new record is so already)
                        rec.update(status=PENDING, message="", origin="")
            self._emit(
                ev.PLANNED, steps=list(names), info={"workers": self.workers, "backend": self.backend_name}
            )
            while ts.is_active():
                if watch.hit:  # a Ctrl-C that a step or a listener caught: the run stops all the same
                    raise KeyboardInterrupt
                settled = False
                for name in ts.get_ready():
                    settled = self.recovery.ready(ts, name) or settled
                if settled:
                    continue  # their dependents may be ready now
                stuck = self._requeue_gated() if self._gated else False  # (no call when none waits)
                while self._waiting and len(self._running) < self.workers:
                    task = self._waiting.popleft()
                    # cancelled: fail-fast, or held for the run's next pass (only once a step runs again)
                    why = self.stopping or (self.observed.rerun and self.later_pass and self._next_pass(task))
                    if why:
                        self._settle(task.name, CANCELLED, why)
                        final.append(task.name)
                        continue
                    if self._homes and self._lane_waits(task, stuck):  # (lanes: only with homes)
                        continue
                    stuck = False
                    # a value it reads is bound to the thread that made it: it runs there
                    home = self._home(task) if self._homes else None
                    # else on this thread when nothing else could run meanwhile: a lone
                    # ready step, or any step with one worker (no hand-off to pay for)
                    inline = home == 0 or (
                        home is None
                        and backend.inline_ok
                        and not ctx.steps[task.name].timeout
                        and not self._running
                        and (self.workers == 1 or (not self._waiting and not self._timers))
                    )
                    self._start(task, backend, inline, home or 0)
                if flush is not None:  # a backend that sends what was submitted together (dask)
                    flush()
                if not final:  # (a step ran inline: nothing to wait for)
                    self._wait(backend)
                self.recovery.finished_all(ts, final)
                final.clear()
        except KeyboardInterrupt:
            interrupted = True
            with deferred_interrupts():
                self._cancel_rest(backend, "interrupted")
            try:  # the checkpoints of the completed steps are committed, or said not to be, before the report
                ctx.store.flush()
            except KeyboardInterrupt:  # Ctrl-C again: stop waiting (the commits go on, waited for at exit)
                pass
        except BaseException as exc:  # a bug or a broken store: no step is left running
            with deferred_interrupts():
                self._cancel_rest(backend, f"the run stopped: {error_text(exc)}")
            raise
        finally:
            try:
                backend.close()
            finally:
                calling.__exit__(None, None, None)
                watch.__exit__()
        summary = RunSummary(
            steps=list(names),
            records=ctx.records,
            wall=time.perf_counter() - t0,
            interrupted=interrupted,
            completed_order=list(self.completed_order),
            resume_hint=self.resume_hint,
            started=began,
            restored_from=dict(self.restored),
            store=store_where(ctx),
        )
        steps = ctx.steps
        summary.optional_steps = frozenset([s for s in names if steps[s].optional])
        return summary

    def _plain_run(self, backend) -> bool:
        """Whether this run uses none of the features decided before it starts: no step forced,
        replayed or rebuilt, not settling replays, no fused chains. Then their hooks are skipped
        for every step (``_plain``): the same path, with nothing to look up for them."""
        return not (
            self.force or self.replay or self.rebuild or self.settling or getattr(backend, "fuses", False)
        )

    def _wait(self, backend) -> None:
        """Block until some step reaches a final state or can be started."""
        done_q = self._done_q
        while not self._final:
            if self._waiting and len(self._running) < self.workers:
                return
            if not self._running and not self._timers and done_q.empty():
                return  # nothing in flight (e.g. everything was settled)
            timeout = 0.5
            if self._timers:
                timeout = min(timeout, max(0.0, self._timers[0][0] - time.monotonic()))
            try:
                task, outcome = done_q.get(timeout=timeout)
            except queue.Empty:
                pass
            else:
                self._handle(task, outcome)
                # take every other outcome that is already there: one wake-up, many steps
                while not done_q.empty():
                    task, outcome = done_q.get_nowait()
                    self._handle(task, outcome)
            if self._timers:
                self._fire_timers(backend)

    def _cancel_rest(self, backend, why: str) -> None:
        """Interrupt: abandon running attempts, cancel every unsettled step."""
        for task in self._running.values():
            task.abandoned = True
        self._running.clear()
        self._waiting.clear()
        self._gated.clear()
        self._timers.clear()
        for name in self.names:
            if self.ctx.records[name].status in (PENDING, RUNNING, RETRYING):
                self._settle(name, CANCELLED, why)
