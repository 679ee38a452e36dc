"""The live view (SPEC 4): an ipywidgets view of a plan *while a run is
live*, plugged in as an event listener: a segmented progress bar
(completed, restored, failed, blocked, cancelled, running, waiting for
confirmation counted apart) with the elapsed time, the dependency graph
re-coloured as steps start, retry, complete, fail or wait for the user's
confirmation, the timeline of the run (:mod:`nbsteps.views.timeline`), the
results table, and the log of the step the user clicks (a node, a timeline
bar or a table row: :mod:`nbsteps.views.step_log`, switched in the browser).

It exists only while the run does. When the run finishes it draws the final
state, replaces its own output (through its display id) by the static
picture of :mod:`nbsteps.views.static` (graph as an image, table as HTML: what
a saved notebook shows in JupyterLab trusted or not, with or without a kernel,
on GitHub and nbviewer) and closes its widgets, so nothing accumulates over
thousands of runs.

Updating is cheap for the thread that runs the plan: an event only records
what changed and arms a timer; the drawing happens on a timer thread, at most
``1 / min_interval`` times per second (10 by default), less when drawing
itself is slow (the gap is at least three times the last drawing time). The graph is
laid out by ``dot`` once per plan structure and re-coloured in Python
(:func:`nbsteps.views.graph_live.live_svg`).

Safe to call from any thread: the state is guarded by a lock and widget
values are written by one drawer at a time.
"""

from __future__ import annotations

import contextvars
import html
import threading
import time
from typing import Callable

from nbsteps.run import events as ev
from nbsteps.run.context import RunContext
from nbsteps.views import static

VIEW_MIME = "application/vnd.jupyter.widget-view+json"

_GRAPH_BOX = '<div class="nbsteps-graph" style="overflow:auto;max-height:{h}px;max-width:100%">{svg}</div>'


class LiveView:
    """A live view of a plan's run context: call it with events (it is a listener).

    ``LiveView(ctx).display()`` shows it; when the run finishes it replaces
    itself by the static picture and closes (``close()`` does the latter
    only). ``min_interval`` is the shortest gap between two drawings (seconds).
    *refresh*, given by the frontend (``Plan.refresh_stale``), brings the
    records' stale flags up to date before a drawing between runs: the view
    itself only reads records.
    """

    def __init__(
        self,
        ctx: RunContext,
        *,
        min_interval: float = 0.1,
        graph_height: int = 600,
        table_height: int = 400,
        tick: float = 1.0,
        refresh: "Callable[[], None] | None" = None,
    ) -> None:
        import ipywidgets as w

        self.ctx = ctx
        self._refresh = refresh
        self.min_interval = float(min_interval)
        self.graph_height = graph_height
        self.table_height = table_height
        self.tick_interval = tick
        # state, guarded by _lock
        self._lock = threading.RLock()
        self._draw_lock = threading.Lock()
        self._names: list[str] | None = None  # steps of the current/last run
        self._t0: float | None = None
        self._running = False
        self._summary = None
        self._dirty = False
        self._timer: threading.Timer | None = None
        self._last_draw = 0.0
        self._cost = 0.0
        self._closed = False
        self._handles: list = []
        self._sources: dict[str, str] = {}  # restored steps of the run: where from (events.FROM_*)
        #: the static picture that replaced the view when its run finished
        self.final: dict | None = None
        #: counters for tests and benchmarks
        self.draws = 0
        self.layouts = 0
        self.draw_seconds = 0.0
        self.errors: list[str] = []

        from nbsteps.views.clickable import clickable_html
        from nbsteps.views.step_log import LogPanel

        self.bar = w.HTML(value="")
        self.bar.add_class("nbsteps-progress-widget")
        self.graph = clickable_html("nbsteps-graph-widget")
        self.timeline = clickable_html("nbsteps-timeline-widget")
        self.table = clickable_html("nbsteps-table-widget")
        self.log = LogPanel(ctx)
        for clickable in (self.graph, self.timeline, self.table):
            self.log.link(clickable)
        self.log.prepare((self.graph, self.timeline, self.table))
        self.box = w.VBox([self.bar, self.graph, self.timeline, self.table, self.log.box])
        self.box.add_class("nbsteps-view")
        self._html_bar = ""
        #: (svg, legend, table) of the last drawing: the static picture that replaces the view
        #: when its run finishes is made of the same, right after the final drawing (finish)
        self._drawn: tuple = (None, None, None)
        #: the thread laying the graph out when the run starts (:meth:`_lay_out`)
        self._laying_out: "threading.Thread | None" = None

    # -- the listener ---------------------------------------------------------
    def __call__(self, e: ev.Event) -> None:
        final = False
        with self._lock:
            if self._closed:
                return
            if e.kind == ev.PLANNED:
                self._names = list(e.steps)
                self._t0 = e.time
                self._running, self._summary, self._sources = True, None, {}
                self._lay_out()  # (before the timer is armed: a drawing waits for it)
            elif e.kind == ev.COMPLETED and e.info.get("restored"):
                self._sources[e.step] = e.info["restored"]
            elif e.kind == ev.FINISHED:
                self._running = False
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
            self.finish()

    # -- the graph's layout ------------------------------------------------------
    def _lay_out(self) -> None:
        """The run starts: lay its graph out with ``dot`` on a thread of its own, while the
        steps run (the first drawing and the static picture at the end then only recolour it,
        :func:`~nbsteps.views.graph_live.lay_out`); they wait for it (:meth:`_laid_out`). Caller
        holds _lock: the thread is started before anyone can join it."""
        thread = threading.Thread(target=self._lay_out_now, name="nbsteps-layout", daemon=True)
        thread.start()
        self._laying_out = thread

    def _lay_out_now(self) -> None:
        try:
            from nbsteps.views.graph_live import lay_out

            self.layouts += bool(lay_out(self.ctx))
        except Exception:  # e.g. no `dot`: the drawing says so
            pass

    def _laid_out(self) -> None:
        """Wait for the layout started with the run, if any (then a drawing does not make it too)."""
        with self._lock:
            thread, self._laying_out = self._laying_out, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    # -- scheduling -----------------------------------------------------------
    def joining(self, names: "list[str]") -> None:
        """The view is shown while a run of *names* is already on (``%steps show``
        during a run): draw it as running until the run's ``finished`` event."""
        with self._lock:
            self._names, self._running = list(names), True

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
                self._draw_header(timeline=True)  # elapsed time while steps run
        finally:
            with self._lock:
                self._timer = None
                if self._dirty:
                    self._schedule()
                elif self._running and self.tick_interval:
                    self._schedule(self.tick_interval)

    # -- drawing ----------------------------------------------------------------
    def _header(self) -> str:
        """The progress bar and its line (caller holds _lock)."""
        names = self._names if self._names is not None else self.ctx.order()
        elapsed = time.time() - (self._t0 or time.time())
        text = static.state_text(
            self.ctx,
            names,
            running=self._running,
            summary=self._summary,
            elapsed=elapsed,
            count=False,
            sources=self._sources,
        )
        return static.progress_html(self.ctx, names, text)

    def _draw_header(self, timeline: bool = False) -> None:
        """The progress line (elapsed time) and, *timeline*, the timeline
        (running steps' bars grow)."""
        with self._lock:
            header, names, since = self._header(), self._names, self._t0
        if timeline:
            from nbsteps.views.timeline import timeline_html

            strip = timeline_html(self.ctx, names, since)
        with self._draw_lock:
            self._html_bar = self.bar.value = header
            if timeline and strip != self.timeline.value:
                self.timeline.value = strip

    def draw(self) -> None:
        """Draw the current state now (on the calling thread). Between runs
        the stale flags are refreshed first (*refresh*), so graph and table agree."""
        t0 = time.perf_counter()
        with self._draw_lock:
            with self._lock:
                running = self._running
            if not running and self._refresh is not None:
                try:
                    self._refresh()
                except Exception as exc:  # pragma: no cover - never break a drawing
                    self.errors.append(repr(exc))
            with self._lock:
                header = self._header()
            svg = legend = None
            self._laid_out()
            try:
                from nbsteps.views.graph_live import legend_html, live_svg

                svg, info = live_svg(self.ctx)
                self.layouts += bool(info["new_layout"])
                legend = legend_html(info["statuses"], info["kinds"], info["critical"])
                graph = legend + _GRAPH_BOX.format(h=self.graph_height, svg=svg)
            except Exception as exc:  # e.g. no `dot`: the rest of the view still works
                svg = legend = None
                graph = f'<div class="nbsteps-graph"><pre>{html.escape(str(exc))}</pre></div>'
                if len(self.errors) < 20:
                    self.errors.append(repr(exc))
            table = static.table_html(self.ctx)
            self._drawn = (svg, legend, table)
            with self._lock:
                names, since = self._names, self._t0
            from nbsteps.views.timeline import timeline_html

            timeline = timeline_html(self.ctx, names, since)
            self._html_bar = self.bar.value = header
            self.graph.value = graph
            self.timeline.value = timeline
            self.table.value = table
            try:
                self.log.update((self.graph, self.timeline, self.table))
            except Exception as exc:  # pragma: no cover - the log must not break the view
                self.errors.append(repr(exc))
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
            names = self._names if self._names is not None else self.ctx.order()
            return "nbsteps: " + static.state_text(
                self.ctx,
                names,
                running=self._running,
                summary=self._summary,
                elapsed=time.time() - (self._t0 or time.time()),
                sources=self._sources,
            )

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        if self._closed:
            return self.final or {"text/plain": self.text()}
        data = dict(self.box._repr_mimebundle_(**kwargs) or {})
        data["text/html"] = f'<div class="nbsteps-view">{self._html_bar}</div>'
        data["text/plain"] = self.text()
        return data

    def display(self, draw: bool = True):
        """Display the view and return its display handle. *draw=False* shows
        it at once and draws on the timer thread."""
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

    def finish(self) -> None:
        """The run is over: draw the final state into the widgets (for anyone
        still looking at them), replace every display of the view by the
        static picture, then close the widgets. A view shown by :meth:`display`
        only (what ``%steps run`` shows) is not drawn again: each of its displays
        is replaced by the static picture at once, so nobody would see that drawing
        (its graph and table, the widgets' messages: ~0.1 ms a step of an 80-step run)."""
        with self._lock:
            handles = list(self._handles)
        self._drawn = (None, None, None)
        if handles and self._refresh is not None:
            try:  # what draw() does first between runs: the picture's stale flags up to date
                self._refresh()
            except Exception as exc:  # pragma: no cover - never break a drawing
                self.errors.append(repr(exc))
        elif not handles:
            try:
                self.draw()
            except Exception as exc:  # pragma: no cover
                self.errors.append(repr(exc))
        drawn, self._drawn = self._drawn, (None, None, None)
        self._laid_out()
        try:  # the graph and the table as the final drawing just made them (the same state)
            self.final = static.static_bundle(
                self.ctx, self._names, summary=self._summary, since=self._t0, drawn=drawn
            )
        except Exception as exc:  # pragma: no cover - a display problem must not break a run
            self.errors.append(repr(exc))
            self.final = {"text/plain": self.text()}
        for handle in handles:
            try:
                handle.update(_Final(self.final))
            except Exception as exc:  # pragma: no cover
                if len(self.errors) < 20:
                    self.errors.append(repr(exc))
        self.close()

    def settle(self) -> None:
        """The run ended without finishing (it could not start): leave the
        static picture all the same."""
        if not self._closed:
            with self._lock:
                self._running = False
            self.finish()

    def close(self) -> None:
        """Stop updating: detach from the plan and close the widgets (their
        layouts and styles too)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cancel_timer()
        try:
            self.ctx.listeners.remove(self)
        except ValueError:
            pass
        self.log.close()
        for widget in (self.bar, self.graph, self.timeline, self.table, self.box):
            for part in (getattr(widget, "style", None), getattr(widget, "layout", None), widget):
                if part is not None and hasattr(part, "close"):
                    part.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        return f"<nbsteps.LiveView {self.text()}>"


class _Output:
    """What a display of a live view shows: the widget view, plus a text
    line and its progress bar for frontends without widgets."""

    def __init__(self, view: LiveView) -> None:
        self.view = view

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        return self.view._repr_mimebundle_(include, exclude, **kwargs)


class _Final:
    def __init__(self, bundle: dict) -> None:
        self.bundle = bundle

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        return self.bundle
