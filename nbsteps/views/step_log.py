"""A step's log (SPEC 4: "clicking a step shows its log"): what happened to
the step (status, attempts, start and finish, why it ran, what it asks, its
error) followed by what it printed and displayed and its traceback, as the
step's own cell shows them (:func:`nbsteps.views.step_view.step_bundle`).

:class:`LogPanel` is the live view's part: a ``Dropdown`` to pick a step and
the picked step's log. Which log is shown is switched in the browser, with no
round trip to the kernel (``jslink`` between the picker's and the clickable
views' ``index``): the kernel is busy running the plan while the user
clicks. Only the logs of steps whose record changed are redrawn.
"""

from __future__ import annotations

import html

from nbsteps.formatting import fmt_clock, fmt_seconds
from nbsteps.model.status import COMPLETED, FAILED

HINT = "click a step in the graph, timeline or table (or choose it here) to see its log"


def _facts(ctx, name: str, rec) -> list[tuple[str, str]]:
    step = ctx.steps.get(name)
    status = str(rec.status)
    if rec.confirming and status == "pending":
        status = f"waiting for confirmation ({rec.confirming})"
    elif rec.status == COMPLETED and rec.cached:
        status += f" ({rec.origin}, not executed)"
    if rec.stale and rec.status == COMPLETED:
        status += " · stale"
    facts = [("status", status)]
    if rec.attempts:
        most = f" of {step.retry + 1}" if step is not None and step.retry else ""
        facts.append(("attempts", f"{rec.attempts}{most}"))
    if rec.started and status != "pending":
        facts.append(("started", fmt_clock(rec.started)))
    if rec.finished and rec.status in (COMPLETED, FAILED):
        facts.append(("finished", fmt_clock(rec.finished)))
    if rec.duration is not None and rec.status in (COMPLETED, FAILED):
        facts.append(("duration", fmt_seconds(rec.duration)))
    if rec.reason:
        said = "reason" if rec.status == "pending" else ("why not run" if rec.cached else "why it ran")
        reason = "its first run" if said == "why it ran" and rec.reason == "never run" else rec.reason
        facts.append((said, reason))
    if rec.message:
        facts.append(("note", rec.message))
    if step is not None and step.confirm:
        facts.append(("asks", step.confirm))
    if rec.ok and rec.outputs:
        facts.append(("outputs", ", ".join(rec.outputs)))
    for attempt, error in rec.attempt_errors:  # the failed attempts before the last
        facts.append((f"attempt {attempt} failed", error))
    if rec.error is not None:
        facts.append(("error", rec.error_text))
    return facts


def step_log_html(ctx, name: str, live: bool = False) -> str:
    """The log of step *name* as HTML (user text escaped). *live*: light,
    for the live view (see :func:`_light`)."""
    from nbsteps.views.step_view import step_bundle

    rec = ctx.records.get(name)
    if rec is None or name not in ctx.steps:
        return f'<div class="nbsteps-log">step {html.escape(name)} is not in the plan (any more)</div>'
    cell = "text-align:left;padding:1px 10px 1px 0;line-height:1.3;vertical-align:top"
    rows = "".join(
        f'<tr><th style="{cell};color:#555">{html.escape(k)}</th>'
        f'<td style="{cell}">{html.escape(v)}</td></tr>'
        for k, v in _facts(ctx, name, rec)
    )
    try:
        body = step_bundle(ctx, name, output=_light(rec.output) if live else None)["text/html"]
    except Exception as exc:  # pragma: no cover - a log must not break the view
        body = f"<pre>{html.escape(repr(exc))}</pre>"
    said = (
        ""
        if rec.output
        else '<div style="color:#777;font-size:12px">(it printed and displayed nothing)</div>'
    )
    return (
        f'<div class="nbsteps-log" data-log="{html.escape(name, quote=True)}" '
        f'style="border:1px solid #ddd;padding:4px 8px;margin-top:4px">'
        f'<div style="font-weight:bold;margin-bottom:2px">log of step {html.escape(name)}</div>'
        f'<table class="nbsteps-log-facts" style="font-size:12px;border-collapse:collapse">{rows}</table>'
        f"{body}{said}</div>"
    )


def step_log_text(ctx, name: str) -> str:
    """The log of step *name* as plain text (frontends without HTML, tests)."""
    from nbsteps.views.step_view import step_bundle

    rec = ctx.records.get(name)
    if rec is None or name not in ctx.steps:
        return f"step {name} is not in the plan (any more)"
    lines = [f"log of step {name}"] + [f"  {k}: {v}" for k, v in _facts(ctx, name, rec)]
    return "\n".join(lines) + "\n" + step_bundle(ctx, name)["text/plain"]


def _signature(rec) -> tuple:
    """What a log shows changes only when one of these does."""
    return (
        rec.status,
        rec.origin,
        rec.attempt_errors,
        rec.stale,
        rec.attempts,
        rec.started,
        rec.finished,
        rec.confirming,
        rec.message,
        rec.reason,
        id(rec.output),
        len(rec.output),
        id(rec.error),
    )


def _light(output) -> tuple:
    """Captured output for the live view's log: printed text (its end) and
    text displays; figures and rich displays are in the step's own cell."""
    out = []
    for kind, payload in output:
        if kind in ("stdout", "stderr"):
            text = str(payload)
            out.append((kind, text if len(text) <= LIVE_TEXT else "[…]" + text[-LIVE_TEXT:]))
        elif kind == "display":
            data = payload.get("data", {}) if isinstance(payload, dict) else {}
            plain = data.get("text/plain") if isinstance(data.get("text/plain"), str) else ""
            note = "[a figure or rich display: shown in the step's cell]"
            out.append(
                (
                    "display",
                    {
                        "data": {
                            "text/plain": plain[:LIVE_TEXT]
                            if set(data) == {"text/plain"}
                            else note + (f"\n{plain[:200]}" if plain else "")
                        }
                    },
                )
            )
    return tuple(out)


#: printed text of each stream kept in a live log (its end); the record keeps it all
LIVE_TEXT = 4000


class LogPanel:
    """The live view's step logs: a picker and the log of the picked step.

    The logs of all steps are one synced dict of a small anywidget
    (:class:`~nbsteps.views.clickable.StepLogs`), which shows the one at the
    picker's index: choosing or clicking a step needs no kernel. Logs are
    light (printed text capped, figures left to the step's cell) and the
    dict is sent only when a step's record changed."""

    def __init__(self, ctx) -> None:
        import ipywidgets as w

        from nbsteps.views.clickable import StepLogs

        self.ctx = ctx
        self.names: list[str] = []
        self._seen: dict[str, tuple] = {}
        self.logs: dict[str, str] = {}
        self.picker = w.Dropdown(
            options=[(HINT, "")],
            value="",
            description="step log:",
            layout=w.Layout(width="max-content", min_width="360px"),
        )
        self.picker.add_class("nbsteps-log-picker")
        self._links: list = []
        if StepLogs is not None:
            self.view = StepLogs()
            self._links.append(w.jslink((self.picker, "index"), (self.view, "index")))
        else:  # pragma: no cover - without anywidget: the picker works when the kernel is idle
            self.view = w.HTML(value="")
            self.picker.observe(lambda change: self._show(change["new"]), names="value")
        self.view.add_class("nbsteps-log-widget")
        self.box = w.VBox([self.picker, self.view])

    def _show(self, name) -> None:  # pragma: no cover - the fallback
        self.view.value = self.logs.get(name, "") if name else ""

    def link(self, clickable) -> None:
        """Clicks on *clickable* (a :class:`~nbsteps.views.clickable.ClickableHTML`) pick a step."""
        import ipywidgets as w

        if hasattr(clickable, "index") and hasattr(self.view, "logs"):
            # two-way: choosing in the picker is also the clickable's choice
            self._links.append(w.jslink((clickable, "index"), (self.picker, "index")))

    def prepare(self, clickables=()) -> None:
        """The picker's, the logs' and *clickables*' step lists follow the plan's steps."""
        names = self.ctx.order()
        if names != self.names:
            self.names = names
            self._seen = {}
            self.picker.options = [(HINT, "")] + [(n, n) for n in names]
            for c in (self.view, *clickables):
                if hasattr(c, "steps"):
                    c.steps = [""] + names

    def update(self, clickables=()) -> None:
        """Redraw the logs whose step changed (one message for all of them)."""
        self.prepare(clickables)
        records, changed = self.ctx.records, False
        for name in self.names:
            rec = records.get(name)
            if rec is None:
                continue
            sig = _signature(rec)
            if self._seen.get(name) != sig:
                self._seen[name] = sig
                self.logs[name] = step_log_html(self.ctx, name, live=True)
                changed = True
        if changed:
            if hasattr(self.view, "logs"):
                self.view.logs = {n: self.logs[n] for n in self.names if n in self.logs}
            else:  # pragma: no cover
                self._show(self.picker.value)

    def widgets(self) -> list:
        return [*self._links, self.view, self.picker, self.box]

    def close(self) -> None:
        for widget in self.widgets():
            for part in (getattr(widget, "style", None), getattr(widget, "layout", None), widget):
                if part is not None and hasattr(part, "close"):
                    part.close()
