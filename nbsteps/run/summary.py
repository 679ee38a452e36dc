"""The closing summary of a run (SPEC 2.10): what completed, what failed and
why, what was blocked, and how to resume."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from nbsteps.formatting import clean_text, fmt_clock
from nbsteps.model.record import StepRecord, snapshots
from nbsteps.model.status import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    EXECUTED,
    FAILED,
    KEPT,
    ORIGINS,
    PENDING,
    RESTORED,
)
from nbsteps.run import events as ev


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _names(names: list[str]) -> str:
    return ", ".join(names)


def store_where(ctx) -> str:
    """Where a plan's checkpoints are, for people: this kernel's memory or a short path."""
    try:
        where = ctx.store.describe()
    except Exception:  # pragma: no cover
        return "the store"
    if where == "memory":
        return "this kernel's memory"
    try:
        rel = os.path.relpath(where)
        return rel if not rel.startswith("..") and len(rel) < len(where) else where
    except ValueError:  # pragma: no cover - another drive (Windows)
        return where


def _when(stamps: list) -> str:
    """``10:42:13``, or ``10:40:01–10:42:13``; with the date when not today."""
    if not stamps:
        return ""
    lo, hi = min(stamps), max(stamps)
    today = time.strftime("%Y-%m-%d")
    day = (
        ""
        if time.strftime("%Y-%m-%d", time.localtime(lo)) == today
        else time.strftime("%Y-%m-%d ", time.localtime(lo))
    )
    span = fmt_clock(lo) if hi - lo < 1 else f"{fmt_clock(lo)}–{fmt_clock(hi)}"
    return f" of {day}{span}"


def origin_of(rec, session: bool = False) -> str:
    """``executed``, ``kept`` or ``restored`` for a completed record ('' otherwise); with
    *session*, what the kernel session did (a step kept counts as how its values came)."""
    if rec.status != COMPLETED:
        return ""
    return (rec.origin_in_session if session else rec.origin) or EXECUTED


def origins(names, records, session: bool = False) -> dict:
    """The completed steps of *names* by origin: ``{"executed": [...], "kept": [...], "restored": [...]}``."""
    out: dict = {o: [] for o in ORIGINS}
    for s in names:
        if o := origin_of(records[s], session):
            out[o].append(s)
    return out


def restored_text(
    names, records, sources: "dict | None" = None, where: str = "the store", session=False
) -> str:
    """What happened to the completed steps of *names*, when some did not execute:
    ``1 executed, 2 kept (already in this kernel), 1 restored from the checkpoint of
    10:42:13 in .nbsteps`` ('' when every one executed); the counts add up to the
    completed steps. *session*: count what the kernel session did (``nbsteps run``)."""
    by = origins(names, records, session)
    session_kept, store = by[KEPT], by[RESTORED]
    if not session_kept and not store:
        return ""
    parts = [f"{len(by[EXECUTED])} executed"] if by[EXECUTED] else []
    if session_kept:
        parts.append(f"{len(session_kept)} kept in this kernel")
    if store:
        stamps = [records[s].finished for s in store if records[s].finished]
        what = "the checkpoint" if len(store) == 1 else "checkpoints"
        parts.append(f"{len(store)} restored from {what}{_when(stamps)} in {where}")
    return ", ".join(parts)


@dataclass
class RunSummary:
    steps: list  # names considered by the run, in plan order
    records: dict  # name -> StepRecord (live objects of the run context)
    wall: float = 0.0
    interrupted: bool = False
    #: steps completed by execution in this run, in completion order
    completed_order: list = field(default_factory=list)
    resume_hint: str = "plan.run()"
    rolled_back: list = field(default_factory=list)
    rollback_errors: dict = field(default_factory=dict)
    #: when the run began (``time.time()``; 0 when unknown)
    started: float = 0.0
    #: steps completed without executing -> where from (``events.FROM_SESSION`` / ``FROM_STORE``)
    restored_from: dict = field(default_factory=dict)
    #: where the plan's checkpoints are, for people (see :func:`store_where`)
    store: str = "the store"
    #: the summary of a whole kernel session (``nbsteps run``): a step kept counts as how it came
    session: bool = False

    def freeze(self) -> "RunSummary":
        """Keep the records as they are now, so the summary still tells what
        this run did after later runs, resets or undos change the plan."""
        self.records = snapshots(self.records, self.steps)
        return self

    def add_upstream(self, steps: list) -> None:
        """A run of one cell considered the cell alone, its upstream being up
        to date: the summary covers *steps* (cell and upstream), the upstream
        counted as completed from checkpoint, as a full run would."""
        records = dict(self.records)
        for s in steps:
            if s not in self.steps and records[s].status == COMPLETED and not records[s].cached:
                records[s] = records[s].snapshot()
                records[s].origin = KEPT
                self.restored_from = {**self.restored_from, s: ev.FROM_SESSION}
        self.steps, self.records = list(steps), records

    def _with(self, status: str) -> list[str]:
        return [s for s in self.steps if self.records[s].status == status]

    @property
    def completed(self) -> list[str]:
        return self._with(COMPLETED)

    @property
    def failed(self) -> list[str]:
        return self._with(FAILED)

    @property
    def blocked(self) -> list[str]:
        return self._with(BLOCKED)

    @property
    def cancelled(self) -> list[str]:
        return self._with(CANCELLED)

    @property
    def cached(self) -> list[str]:
        return [s for s in self.completed if origin_of(self.records[s], self.session) != EXECUTED]

    @property
    def executed(self) -> list[str]:
        """Completed by an execution in this run (in plan order)."""
        return [s for s in self.completed if origin_of(self.records[s], self.session) == EXECUTED]

    def counts(self) -> dict:
        """How many steps of the run ended how: executed, kept, restored, failed, blocked,
        cancelled, pending (they add up to the steps of the run)."""
        by = origins(self.steps, self.records, self.session)
        out = {o: len(by[o]) for o in ORIGINS}
        for status in (FAILED, BLOCKED, CANCELLED):
            out[str(status)] = len(self._with(status))
        out["pending"] = len(self.steps) - sum(out.values())
        return out

    @property
    def ok(self) -> bool:
        """True when every step of the run completed (optional failures allowed)."""
        if self.interrupted:
            return False
        records = self.records
        for s in self.steps:  # (a loop, not a generator: once per step of every run)
            status = records[s].status
            if status != COMPLETED and not (status == FAILED and self._optional(s)):
                return False
        return True

    optional_steps: frozenset = frozenset()

    def _optional(self, name: str) -> bool:
        return name in self.optional_steps

    @property
    def text(self) -> str:
        n, done = len(self.steps), self.completed
        parts = [f"{len(done)} of {n} steps completed"]
        if self.cached:
            how = restored_text(self.steps, self.records, self.restored_from, self.store, self.session)
            parts[0] += f" ({how})"
        for s in self.failed:
            r: StepRecord = self.records[s]
            attempts = f" ({r.attempts} attempts)" if r.attempts > 1 else ""
            opt = " [optional]" if self._optional(s) else ""
            parts.append(f"{s} failed{opt}: {_short(r.error_text)}{attempts}")
        if self.blocked:
            parts.append(f"{_names(self.blocked)} blocked")
        if self.cancelled:
            why = self.records[self.cancelled[0]].message
            parts.append(f"{_names(self.cancelled)} cancelled" + (f" ({_short(why, 120)})" if why else ""))
        if self.rolled_back:
            parts.append(f"rolled back: {_names(self.rolled_back)}")
        for s, err in self.rollback_errors.items():
            parts.append(f"undo of {s} failed: {_short(err)}")
        text = "; ".join(parts) + "."
        kept = "; " not in self.resume_hint  # "COMMAND; NOTE": the next run starts over (no store)
        if self.interrupted:
            text += f" Interrupted: {'completed steps are kept; ' if kept else ''}{self._resume()}."
        elif not self.ok:
            fix = [s for s in self.failed if not self._optional(s)]
            if fix:
                text += f" Fix {_names(fix)} and {self._resume()}."
            elif self.cancelled or self.blocked:
                again = self._resume()
                text += f" {again[:1].upper()}{again[1:]}."
        return clean_text(text)

    def _resume(self) -> str:
        """``run CMD to resume``; for a hint ``CMD; NOTE`` (a run that keeps nothing,
        ``nbsteps run`` without --store): ``run CMD again (NOTE)``."""
        cmd, sep, note = self.resume_hint.partition("; ")
        return f"run {cmd} again ({note})" if sep else f"run {cmd} to resume"

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"<RunSummary {self.text}>"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)


def record_interrupt(ctx, targets, names, summary: "RunSummary | None", listeners) -> None:
    """A run of *targets* was interrupted outside the executor's loop: before
    it started (every step of the run not completed is cancelled) or after it
    ended (its *summary* is marked interrupted). ``ctx.last_summary`` then tells
    this run, never an earlier one. Call with interrupts deferred."""
    if summary is not None and ctx.last_summary is summary:
        summary.interrupted = True
        return
    if names is None:
        try:
            names = ctx.select([targets] if isinstance(targets, str) else targets)
        except Exception:  # an unknown step: the run would not have started
            names = []
    if summary is None:
        for name in names:
            rec = ctx.records.get(name)
            if rec is not None and rec.status != COMPLETED:
                if rec.status == PENDING:  # it did not start in this run: no times of an earlier one
                    rec.started = rec.finished = rec.duration = None
                    rec.attempts, rec.attempt_errors = 0, ()
                rec.status, rec.message, rec.origin = CANCELLED, "interrupted", ""
                rec.error, rec.traceback = None, ""
        summary = RunSummary(
            steps=list(names), records=ctx.records, resume_hint=ctx.resume_hint, store=store_where(ctx)
        )
        summary.optional_steps = frozenset(s for s in names if s in ctx.steps and ctx.steps[s].optional)
    summary.interrupted = True
    ctx.last_summary = summary.freeze()
    ev.emit_to(listeners, ev.Event(ev.FINISHED, ctx, summary=summary, steps=list(summary.steps)))
