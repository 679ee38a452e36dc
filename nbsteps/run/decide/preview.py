"""``%steps plan`` / ``plan.plan()``: what a run would do and why, before it
runs: order, parallel levels, which steps run (never run, code changed,
upstream changed, parameter changed, forced) and which are cached, the
critical path with an estimated wall time from earlier durations, and the
confirmations ahead. Nothing is executed."""

from __future__ import annotations

from dataclasses import dataclass, field

from nbsteps.formatting import fmt_seconds
from nbsteps.model import graphs
from nbsteps.model.dependencies import ORDER_ONLY
from nbsteps.model.fingerprint import combine
from nbsteps.model.status import COMPLETED
from nbsteps.run.attempt.inputs import held_inputs
from nbsteps.run.attempt.live import lane_notes
from nbsteps.run.attempt.threads import thread_notes
from nbsteps.run.decide.staleness import (
    explained_below,
    fingerprint_parts,
    not_stored,
    rewritten_above,
    rewritten_ahead,
    stale_reason,
)


@dataclass
class PlanPreview:
    rows: list = field(default_factory=list)  # dicts: step level action reason estimate_s confirm
    critical_path: list = field(default_factory=list)
    estimate_s: float = 0.0
    unknown: list = field(default_factory=list)  # steps to run with no earlier duration
    #: step -> names a run saw it change in place, not predicted (nbsteps.run.attempt.observe)
    observed: dict = field(default_factory=dict)
    #: step -> why it runs on the thread that made a value it reads (nbsteps.run.attempt.threads)
    threads: dict = field(default_factory=dict)
    #: step -> why it waits for a step above it that uses the same live object (nbsteps.run.attempt.live)
    lanes: dict = field(default_factory=dict)

    @property
    def to_run(self) -> list[str]:
        return [r["step"] for r in self.rows if r["action"] == "run"]

    @property
    def cached(self) -> list[str]:
        return [r["step"] for r in self.rows if r["action"] == "cached"]

    def reason(self, step: str) -> str:
        return next(r["reason"] for r in self.rows if r["step"] == step)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["step", "level", "action", "reason", "estimate_s", "confirm"])

    @property
    def text(self) -> str:
        if not self.rows:
            return "The plan is empty: register steps with %%step NAME (or @plan.step)."
        n_levels = max(r["level"] for r in self.rows) + 1
        steps = "step" if len(self.rows) == 1 else "steps"
        levels = "level" if n_levels == 1 else "levels"
        lines = [
            f"Plan: {len(self.rows)} {steps} in {n_levels} {levels}; {len(self.to_run)} to run, "
            f"{len(self.cached)} cached."
        ]
        by_level: list[list] = [[] for _ in range(n_levels)]
        for r in self.rows:  # (one pass: a scan of the rows per level was quadratic in a chain)
            by_level[r["level"]].append(r)
        for lv in range(n_levels):
            cells = []
            for r in by_level[lv]:
                tag = "run: " + r["reason"] if r["action"] == "run" else "cached"
                est = (
                    f", ~{fmt_seconds(r['estimate_s'])}"
                    if r["action"] == "run" and r["estimate_s"] is not None
                    else ""
                )
                conf = f", asks: {r['confirm']!r}" if r["confirm"] and r["action"] == "run" else ""
                cells.append(f"{r['step']} ({tag}{est}{conf})")
            lines.append(f"  level {lv}: " + "; ".join(cells))
        if self.critical_path:
            lines.append(f"Critical path: {' -> '.join(self.critical_path)}")
        if self.unknown:
            lines.append(f"Estimated wall time: unknown (no earlier duration for {', '.join(self.unknown)})")
        else:
            lines.append(f"Estimated wall time: {fmt_seconds(self.estimate_s)}")
        for s, seen in self.observed.items():
            lines.append(f"Writes seen at run time: {s} changes {_names(seen)} in place (observed)")
        confirms = [r["step"] for r in self.rows if r["confirm"] and r["action"] == "run"]
        if confirms:
            lines.append(f"Confirmation needed before: {', '.join(confirms)}")
        if self.threads:
            lines.append("On the thread that made a value they read (serially):")
            lines.extend(f"  {s}: {why}" for s, why in self.threads.items())
        if self.lanes:
            lines.append("After the step above that uses the same live object (serially):")
            lines.extend(f"  {s}: {why}" for s, why in self.lanes.items())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(self.text)


def preview(ctx, names: list[str], force: frozenset, force_all: bool) -> PlanPreview:
    levels = ctx.levels(names)
    chosen = set(names)
    tokens: dict[str, str | None] = {}
    will_run: set[str] = set()
    again: set[str] = set()  # steps executed again for a file they wrote: their token is kept
    out = PlanPreview()
    earlier_of: dict[str, float] = {}
    todo: dict[str, float] = {}  # longest path by what this run will execute: the estimate
    for s in names:
        step = ctx.steps[s]
        if step.observed:
            out.observed[s] = step.observed
        deps = [d for d in ctx.dependencies(s) if d in chosen]
        kinds = ctx.dependencies(s)
        for d in kinds:  # not selected (a run of one cell whose upstream is up to date): as it is now
            if d not in chosen and d not in tokens:
                rec = ctx.records.get(d)
                tokens[d] = rec.token if rec is not None and rec.status == COMPLETED else None
        running_up = [d for d in deps if d in will_run and d not in again and kinds[d] not in ORDER_ONLY]
        # (settled=False: the version of a step whose commit is still pending counts, as it will
        # be stored: a preview never waits for the previous cell's fsyncs)
        if force_all or s in force:
            cp = ctx.store.peek(s, settled=False)
            reason = "forced"
        else:
            parts = fingerprint_parts(ctx, step, tokens)
            # a checkpoint of this very fingerprint restores; else the latest says why not
            fp = combine(parts)
            cp = ctx.store.peek(s, fp, settled=False) or ctx.store.peek(s, settled=False)
            reason = stale_reason(step, parts, cp, ctx.records.get(s), explained_below(ctx, s))
            reason = not_stored(ctx.store, s, fp, reason) or reason
            if running_up and (not reason or reason.startswith("upstream")):
                reason = f"upstream {', '.join(running_up)} will run"
            elif not reason and cp is not None and cp.fingerprint != fp:
                reason = "stale"
            if not reason and cp is not None:  # a file it wrote, written again above (SPEC 1, "Files")
                reason = rewritten_above(ctx, s, cp) or rewritten_ahead(ctx, s, cp, will_run)
                if reason:
                    again.add(s)
        run = bool(reason)
        if run:
            will_run.add(s)
            tokens[s] = (cp.parts or {}).get("token", cp.fingerprint) if s in again else None
        else:
            tokens[s] = (cp.parts or {}).get("token", cp.fingerprint)
        rec = ctx.records.get(s)
        earlier = (
            rec.duration
            if rec is not None and rec.duration is not None
            else (cp.duration if cp is not None else None)
        )
        est = earlier if run else 0.0
        if run and earlier is None:
            out.unknown.append(s)
        earlier_of[s] = earlier or 0.0
        todo[s] = (est or 0.0) + max((todo[d] for d in deps), default=0.0)
        out.rows.append(
            {
                "step": s,
                "level": levels[s],
                "action": "run" if run else "cached",
                "reason": reason or "up to date",
                "estimate_s": est,
                "confirm": step.confirm or "",
            }
        )
    if names:
        # the critical path of what will execute: longest by earlier durations, then by number of steps
        out.critical_path, _ = graphs.longest_path(
            [s for s in names if s in will_run],
            lambda s: (d for d in ctx.dependencies(s) if d in will_run),
            lambda s: (earlier_of[s], 1),
        )
        out.estimate_s = max(todo.values())
        # the values the cell steps that will execute read, held now (read once for both notes)
        held = {s: held_inputs(ctx, s) for s in names if s in will_run and ctx.steps[s].func is None}
        out.threads = thread_notes(ctx, held)
        out.lanes = lane_notes(held)
    return out


def _names(names) -> str:
    return ", ".join(sorted(names))
