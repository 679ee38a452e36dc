"""The closing summary of a run (SPEC 2.10): what completed, what failed and
why, what was blocked, and how to resume."""
from __future__ import annotations

from dataclasses import dataclass, field

from nbsteps.formatting import clean_text
from nbsteps.model.status import BLOCKED, CANCELLED, COMPLETED, FAILED
from nbsteps.model.record import StepRecord
from nbsteps.run import events as ev


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _names(names: list[str]) -> str:
    return ", ".join(names)


@dataclass
class RunSummary:
    steps: list  # names considered by the run, in plan order
    records: dict  # name -> StepRecord (live objects of the plan)
    wall: float = 0.0
    interrupted: bool = False
    #: steps completed by execution in this run, in completion order
    completed_order: list = field(default_factory=list)
    resume_hint: str = "plan.run()"
    rolled_back: list = field(default_factory=list)
    rollback_errors: dict = field(default_factory=dict)

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
            parts[0] += f" ({len(self.cached)} from checkpoint)"
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


def record_interrupt(plan, targets, names, summary: "RunSummary | None", listeners) -> None:
    """A run of *targets* was interrupted outside the executor's loop: before
    it started (every step of the run not completed is cancelled) or after it
    ended (its *summary* is marked interrupted). ``plan.last_summary`` then tells
    this run, never an earlier one. Call with interrupts deferred."""
    if summary is not None and plan.last_summary is summary:
        summary.interrupted = True
        return
    if names is None:
        try:
            names = plan.select([targets] if isinstance(targets, str) else targets)
        except Exception:  # an unknown step: the run would not have started
            names = []
    if summary is None:
        for name in names:
            rec = plan.records.get(name)
            if rec is not None and rec.status != COMPLETED:
                rec.status, rec.message, rec.cached = CANCELLED, "interrupted", False
                rec.error, rec.traceback = None, ""
        summary = RunSummary(steps=list(names), records=plan.records, resume_hint=plan.resume_hint)
        summary.optional_steps = frozenset(s for s in names if s in plan.steps and plan.steps[s].optional)
    summary.interrupted = True
    plan.last_summary = summary.freeze()
    ev.emit_to(listeners, ev.Event(ev.FINISHED, plan, summary=summary, steps=list(summary.steps)))
