"""The text reporter: a listener printing progress lines and the summary.
Works in any frontend (terminal, notebook, nbclient, CI logs)."""

from __future__ import annotations

import sys

from nbsteps.formatting import clean_text, fmt_clock
from nbsteps.formatting import fmt_seconds as _fmt
from nbsteps.model.status import KEPT
from nbsteps.run import events as ev
from nbsteps.views.static import attempts_failed, store_where


def _of(rec) -> str:
    return f" of {fmt_clock(rec.finished)}" if rec is not None and rec.finished else ""


class TextReporter:
    """Prints one line per step event. *quiet* (interactive single steps)
    prints only steps that executed or failed, no counters and no
    plan/summary lines. Step *omit* is not reported (its cell shows it),
    except its store warnings (a checkpoint kept in memory only): the cell
    does not show those."""

    def __init__(self, stream=None, quiet: bool = False, omit: str | None = None, flush: bool = True) -> None:
        self.stream = stream
        self.flush = flush
        self.quiet = quiet
        self.omit = omit
        self._n = 0
        self._done = 0

    def _count(self) -> str:
        return "" if self.quiet else f" [{self._done}/{self._n}]"

    def _print(self, text: str) -> None:
        stream = self.stream or sys.stdout
        print(clean_text(text), file=stream, flush=self.flush)  # user text may hold lone surrogates

    def __call__(self, e: ev.Event) -> None:
        if e.step is not None and e.step == self.omit and e.kind != ev.WARNING:  # its cell shows no warnings
            if e.kind == ev.COMPLETED:
                self._done += 1
            return
        handler = self._HANDLERS.get(e.kind)
        if handler is not None:
            handler(self, e)

    def _planned(self, e: ev.Event) -> None:
        """A run starts: the counters restart; the line says how many steps run on what."""
        self._n, self._done = len(e.steps), 0
        if not self.quiet:
            n, w = self._n, e.info.get("workers")
            backend = e.info.get("backend", "threads")
            where = f"{w} thread{'s' if w != 1 else ''}" if backend == "threads" else f"dask ({w} at a time)"
            self._print(f"nbsteps: running {n} step{'s' if n != 1 else ''} on {where}")

    def _started(self, e: ev.Event) -> None:
        """A step started (not said when quiet)."""
        if not self.quiet:
            extra = f" ({e.message})" if e.message else ""
            self._print(f"  ▶ {e.step} started{extra}")

    def _retrying(self, e: ev.Event) -> None:
        """A step failed and is tried again."""
        self._print(f"  ↻ {e.step} {e.message}")

    def _completed(self, e: ev.Event) -> None:
        """A step completed: executed (its time, attempts and outputs), or, unless
        quiet, taken from this session or restored from its checkpoint."""
        rec = e.record
        self._done += 1
        outs = ", ".join(rec.outputs) if rec and rec.outputs else ""
        outs = f" → {outs}" if outs else ""
        if not rec.cached:
            tries = f", {rec.attempts} attempts" if rec.attempts > 1 else ""
            self._print(
                f"  ✓ {e.step} completed in {_fmt(rec.duration)}{tries}{outs}{self._count()}"
                f"{attempts_failed(rec)}"
            )
        elif self.quiet:
            pass
        elif rec.origin == KEPT:  # its values are in this kernel already
            self._print(f"  ✓ {e.step} kept: up to date, already in this kernel{outs}{self._count()}")
        else:
            self._print(
                f"  ✓ {e.step} restored from its checkpoint{_of(rec)} in {store_where(e.context)}"
                f"{outs}{self._count()}"
            )

    def _failed(self, e: ev.Event) -> None:
        """A step failed for good (after how many attempts)."""
        rec = e.record
        tries = f" after {rec.attempts} attempts" if rec and rec.attempts > 1 else ""
        self._print(f"  ✗ {e.step} failed{tries}: {e.message}")

    def _not_run(self, e: ev.Event) -> None:
        """A step is blocked or cancelled, and why."""
        self._print(f"  – {e.step} {e.kind}: {e.message}")

    def _warning(self, e: ev.Event) -> None:
        """A warning, of a step or of the run."""
        self._print(f"  ! {e.step}: {e.message}" if e.step else f"  ! {e.message}")

    def _finished(self, e: ev.Event) -> None:
        """The run ended: its summary line (not when quiet)."""
        if e.summary is not None and not self.quiet:
            self._print(f"nbsteps: {e.summary.text} ({_fmt(e.summary.wall)})")

    #: the handler of each kind of event; other kinds print nothing
    _HANDLERS = {
        ev.PLANNED: _planned,
        ev.STARTED: _started,
        ev.RETRYING: _retrying,
        ev.COMPLETED: _completed,
        ev.FAILED: _failed,
        ev.BLOCKED: _not_run,
        ev.CANCELLED: _not_run,
        ev.WARNING: _warning,
        ev.FINISHED: _finished,
    }
