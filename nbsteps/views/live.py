"""The live view (SPEC 4): an ipywidgets view of a plan that plugs in as an
event listener: the dependency graph re-coloured as steps start, retry,
complete or fail, a progress bar ``k/N`` with the elapsed time, and the
results table.

Updating is cheap for the thread that runs the plan: an event only records
what changed and arms a timer; the drawing happens on a timer thread, at most
``1 / min_interval`` times per second (10 by default), less when drawing
itself is slow (the gap is at least three times the last drawing time). The graph is
laid out by ``dot`` once per plan structure and re-coloured in Python
(:func:`nbsteps.views.graph_live.live_svg`). The ``finished`` event draws the final state
synchronously, so it is in the cell's output before the cell ends (nbclient
saves it with ``store_widget_state=True``).

The displayed output carries, besides the widget view, a static fallback
(``text/html``: the graph SVG, the legend and the results table, every user
string escaped) that is refreshed through a display handle when a run
finishes: a saved notebook shows the last state on GitHub, nbviewer and after
reopening without a kernel.

Safe to call from any thread: the state is guarded by a lock and widget
values are written by one drawer at a time.
"""
from __future__ import annotations

import contextvars
import html
import threading
import time

from nbsteps.formatting import fmt_seconds as _fmt
from nbsteps.run import events as ev
from nbsteps.model.status import BLOCKED, CANCELLED, COMPLETED, FAILED

DONE = (COMPLETED, FAILED, BLOCKED, CANCELLED)
VIEW_MIME = "application/vnd.jupyter.widget-view+json"

_GRAPH_BOX = '<div class="nbsteps-graph" style="overflow:auto;max-height:{h}px;max-width:100%">{svg}</div>'
_TABLE_BOX = '<div class="nbsteps-table" style="overflow:auto;max-height:{h}px;max-width:100%;font-size:12px">{table}</div>'


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _table(plan, running: bool) -> str:
    """The escaped results table. During a run the stale flags are not
    recomputed (that fingerprints inputs while steps publish outputs)."""
    from nbsteps.views.table import html_table

    return html_table(plan, refresh=not running)


class LiveView:
    """A live view of *plan*: call it with events (it is a listener).

    ``LiveView(plan).display()`` shows it; ``view.close()`` detaches it.
    ``min_interval`` is the shortest gap between two drawings (seconds).
    """

    def __init__(self, plan, *, min_interval: float = 0.1, graph_height: int = 600, table_height: int = 400,
                 tick: float = 1.0) -> None:
        import ipywidgets as w

        self.plan = plan
        self.min_interval = float(min_interval)
        self.graph_height = graph_height
        self.table_height = table_height
        self.tick_interval = tick
        # state, guarded by _lock
        self._lock = threading.RLock()
        self._draw_lock = threading.Lock()
        self._names: list[str] | None = None  # steps of the current/last run
        self._done: set[str] = set()
        self._t0: float | None = None
        self._t1: float | None = None
        self._running = False
        self._summary = None
        self._dirty = False
        self._timer: threading.Timer | None = None
        self._last_draw = 0.0
        self._cost = 0.0
        self._closed = False
        self._handles: list = []
        #: counters for tests and benchmarks
        self.draws = 0
        self.layouts = 0
        self.draw_seconds = 0.0
        self.errors: list[str] = []

        self.progress = w.IntProgress(value=0, min=0, max=1, description="0/0",
                                      layout=w.Layout(width="360px"))
        self.progress.add_class("nbsteps-progress")
        self.label = w.Label(value="")
        self.label.add_class("nbsteps-label")
        self.graph = w.HTML(value="")
        self.graph.add_class("nbsteps-graph-widget")
        self.table = w.HTML(value="")
        self.table.add_class("nbsteps-table-widget")
        self.box = w.VBox([w.HBox([self.progress, self.label]), self.graph, self.table])
        self.box.add_class("nbsteps-view")
        self._html_graph = ""
        self._html_table = ""

    # -- the listener ---------------------------------------------------------
    def __call__(self, e: ev.Event) -> None:
        final = False
        with self._lock:
            if self._closed:
                return
            if e.kind == ev.PLANNED:
                self._names = list(e.steps)
                self._done = set()
                self._t0, self._t1 = e.time, None
                self._running, self._summary = True, None
            elif e.kind in (ev.COMPLETED, ev.FAILED, ev.BLOCKED, ev.CANCELLED) and e.step:
                self._done.add(e.step)
            elif e.kind == ev.RETRYING and e.step:
                self._done.discard(e.step)
            elif e.kind == ev.FINISHED:
                self._running = False
                self._t1 = e.time
                self._summary = e.summary
                if e.steps:
                    self._names = list(e.steps)
                final = True
            if final:
                self._cancel_timer()
                self._dirty = False
            else:
                self._dirty = True
                self._schedule()
        if final:
            self.draw()
            self.update_static()

    # -- scheduling -----------------------------------------------------------
    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, delay: float | None = None) -> None:
        """Arm the timer (caller holds _lock). The gap between drawings is at
        least min_interval and three times the last drawing's cost."""
        if self._timer is not None or self._closed:
            return
        if delay is None:
            gap = max(self.min_interval, 3.0 * self._cost)
            delay = max(0.0, self._last_draw + gap - time.monotonic())
        ctx = contextvars.copy_context()  # the cell that caused it (its output)
        timer = threading.Timer(delay, ctx.run, args=(self._on_timer,))
        timer.daemon = True
        timer.name = "nbsteps-live-view"
        self._timer = timer
        timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            if self._timer is None or self._closed:
                return  # cancelled: a final drawing replaced it
            dirty, self._dirty = self._dirty, False
        try:
            if dirty:
                self.draw()
            else:
                self._draw_header()  # elapsed time while steps run
        finally:
            with self._lock:
                self._timer = None
                if self._dirty:
                    self._schedule()
                elif self._running and self.tick_interval:
                    self._schedule(self.tick_interval)

    # -- drawing ----------------------------------------------------------------
    def _counts(self) -> tuple[int, int, str, str]:
        """(k, N, bar style, label text) of the current state (caller holds
        _lock). The text names steps and counts, never error messages: those
        are user text, shown escaped in the table and the tooltips."""
        plan = self.plan
        names = self._names if self._names is not None else plan.order()
        recs = plan.records
        n = len(names)
        by_status: dict[str, list[str]] = {}
        for s in names:
            r = recs.get(s)
            by_status.setdefault(r.status if r is not None else "pending", []).append(s)
        failed = by_status.get(FAILED, [])
        if self._running:
            k = len(self._done)
            elapsed = time.time() - (self._t0 or time.time())
            text = f"running: {k}/{n} steps done, {_fmt(elapsed)} elapsed"
            if failed:
                text += f"; failed: {_names(failed)}"
            return k, n, "danger" if failed else "info", text
        k = sum(len(by_status.get(st, ())) for st in DONE)
        if not n:
            return 0, 0, "", "no steps registered yet (%%step NAME in a cell)"
        summary = self._summary if self._summary is not None else plan.last_summary
        parts = []
        done = by_status.get(COMPLETED, [])
        if done:
            cached = sum(1 for s in done if recs[s].cached)
            parts.append(f"{len(done)} completed" + (f" ({cached} restored)" if cached else ""))
        for status in (FAILED, BLOCKED, CANCELLED):
            if by_status.get(status):
                parts.append(f"{len(by_status[status])} {status}: {_names(by_status[status])}")
        waiting = n - k
        if waiting:
            parts.append(f"{waiting} not run")
        text = ", ".join(parts)
        if summary is not None and self._summary is not None:
            wall = summary.wall or ((self._t1 or 0) - (self._t0 or 0))
            text = f"finished in {_fmt(max(0.0, wall))}: {text}"
            if summary.interrupted:
                text = "interrupted; " + text
        if failed or by_status.get(BLOCKED) or by_status.get(CANCELLED):
            style = "warning" if summary is not None and summary.interrupted else "danger"
        else:
            style = "success" if k == n else ""
        return k, n, style, text

    def _draw_header(self) -> None:
        with self._lock:
            k, n, style, text = self._counts()
        with self._draw_lock:
            self.progress.max = max(1, n)
            self.progress.value = min(k, max(1, n))
            self.progress.description = f"{k}/{n}"
            self.progress.bar_style = style
            self.label.value = text

    def draw(self) -> None:
        """Draw the current state now (on the calling thread)."""
        from nbsteps.views.graph_live import legend_html, live_svg

        t0 = time.perf_counter()
        with self._draw_lock:
            with self._lock:
                k, n, style, text = self._counts()
                running = self._running
            try:
                svg, info = live_svg(self.plan)
                self.layouts += bool(info["new_layout"])
                graph = legend_html(info["statuses"], info["kinds"], info["critical"]) + _GRAPH_BOX.format(
                    h=self.graph_height, svg=svg)
            except Exception as exc:  # e.g. no `dot`: the rest of the view still works
                graph = f'<div class="nbsteps-graph"><pre>{html.escape(str(exc))}</pre></div>'
                if len(self.errors) < 20:
                    self.errors.append(repr(exc))
            table = _TABLE_BOX.format(h=self.table_height, table=_table(self.plan, running))
            self._html_graph, self._html_table = graph, table
            self.progress.max = max(1, n)
            self.progress.value = min(k, max(1, n))
            self.progress.description = f"{k}/{n}"
            self.progress.bar_style = style
            self.label.value = text
            self.graph.value = graph
            self.table.value = table
            cost = time.perf_counter() - t0
        with self._lock:
            self._cost = cost
            self._last_draw = time.monotonic()
            self.draws += 1
            self.draw_seconds += cost

    # -- display ------------------------------------------------------------------
    def text(self) -> str:
        """One line: what the view shows (the text/plain of its output)."""
        with self._lock:
            k, n, _, text = self._counts()
        return f"nbsteps [{k}/{n}]: {text}"

    def static_html(self) -> str:
        """The static fallback: header line, legend, graph SVG, results table."""
        return (f'<div class="nbsteps-view nbsteps-static">'
                f'<div class="nbsteps-header" style="font-family:monospace;margin:2px 0">'
                f'{html.escape(self.text())}</div>'
                f"{self._html_graph}{self._html_table}</div>")

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        data = dict(self.box._repr_mimebundle_(**kwargs) or {})
        data["text/html"] = self.static_html()
        data["text/plain"] = self.text()
        return data

    def display(self, draw: bool = True):
        """Display the view (widget + static fallback) and return its display
        handle. *draw=False* shows it at once and draws on the timer thread."""
        from IPython.display import display

        if draw:
            self.draw()
        else:
            self._draw_header()
            with self._lock:  # the first drawing after min_interval: a short run draws once, at the end
                self._dirty = True
                self._last_draw = time.monotonic()
                self._schedule()
        handle = display(_Output(self), display_id=True)
        if handle is not None:
            with self._lock:
                self._handles = (self._handles + [handle])[-20:]
        return handle

    def update_static(self) -> None:
        """Refresh the static fallback of every display of this view."""
        with self._lock:
            handles = list(self._handles)
        for handle in handles:
            try:
                handle.update(_Output(self))
            except Exception as exc:  # pragma: no cover - a display problem must not break a run
                if len(self.errors) < 20:
                    self.errors.append(repr(exc))

    def close(self) -> None:
        """Stop updating: detach from the plan and close the widgets."""
        with self._lock:
            self._closed = True
            self._cancel_timer()
        try:
            self.plan.listeners.remove(self)
        except ValueError:
            pass
        for widget in (self.progress, self.label, self.graph, self.table, *self.box.children, self.box):
            widget.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<nbsteps.LiveView {self.text()}>"


class _Output:
    """What a display of a view shows: the widget view, plus text/html and
    text/plain fallbacks for frontends (and saved notebooks) without it."""

    def __init__(self, view: LiveView) -> None:
        self.view = view

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        return self.view._repr_mimebundle_(include, exclude, **kwargs)
