"""The closing summary of a run (SPEC 2.10): what completed, what failed and
why, what was blocked, and how to resume."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from nbsteps.formatting import clean_text, fmt_clock
from nbsteps.model.record import StepRecord
from nbsteps.model.status import BLOCKED, CANCELLED, COMPLETED, FAILED
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


def restored_text(names, records, sources: dict, where: str) -> str:
    """Where the steps of *names* that completed without executing came from:
    ``2 already completed earlier in this session, 1 restored from the
    checkpoint of 10:42:13 in .nbsteps`` ('' when none). *sources*: step ->
    ``events.FROM_SESSION`` or ``FROM_STORE`` (an unknown one counts as the store)."""
    done = [s for s in names if records[s].status == COMPLETED and records[s].cached]
    session = [s for s in done if sources.get(s) == ev.FROM_SESSION]
    store = [s for s in done if sources.get(s) != ev.FROM_SESSION]
    parts = []
    if session:
        parts.append(f"{len(session)} already completed earlier in this session")
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

    def freeze(self) -> "RunSummary":
        """Keep the records as they are now, so the summary still tells what
        this run did after later runs, resets or undos change the plan."""
        self.records = {s: self.records[s].snapshot() for s in self.steps}
        return self

    def add_upstream(self, steps: list) -> None:
        """A run of one cell considered the cell alone, its upstream being up
        to date: the summary covers *steps* (cell and upstream), the upstream
        counted as completed from checkpoint, as a full run would."""
        records = dict(self.records)
        for s in steps:
            if s not in self.steps and records[s].status == COMPLETED and not records[s].cached:
                records[s] = records[s].snapshot()
                records[s].cached = True
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
        return [s for s in self.completed if self.records[s].cached]

    @property
    def ok(self) -> bool:
        """True when every step of the run completed (optional failures allowed)."""
        return not self.interrupted and all(
            self.records[s].status == COMPLETED or (self.records[s].status == FAILED and self._optional(s))
            for s in self.steps
        )

    optional_steps: frozenset = frozenset()

    def _optional(self, name: str) -> bool:
        return name in self.optional_steps

    @property
    def text(self) -> str:
        n, done = len(self.steps), self.completed
        parts = [f"{len(done)} of {n} steps completed"]
        if self.cached:
            parts[0] += f" ({restored_text(self.steps, self.records, self.restored_from, self.store)})"
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
        if self.interrupted:
            text += f" Interrupted: completed steps are kept; run {self.resume_hint} to resume."
        elif not self.ok:
            fix = [s for s in self.failed if not self._optional(s)]
            if fix:
                text += f" Fix {_names(fix)} and run {self.resume_hint} to resume."
            elif self.cancelled or self.blocked:
                text += f" Run {self.resume_hint} to resume."
        return clean_text(text)

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
                rec.status, rec.message, rec.cached = CANCELLED, "interrupted", False
                rec.error, rec.traceback = None, ""
        summary = RunSummary(
            steps=list(names), records=ctx.records, resume_hint=ctx.resume_hint, store=store_where(ctx)
        )
        summary.optional_steps = frozenset(s for s in names if s in ctx.steps and ctx.steps[s].optional)
    summary.interrupted = True
    ctx.last_summary = summary.freeze()
    ev.emit_to(listeners, ev.Event(ev.FINISHED, ctx, summary=summary, steps=list(summary.steps)))
