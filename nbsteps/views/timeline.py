"""The timeline of a run (SPEC 4): a Gantt strip of the steps that executed,
one row per step, a bar from its recorded start to its finish (a running
step's bar grows until now), coloured by status as in the graph, over an axis
of seconds since the run began.

Steps that did not execute in the run (restored from a checkpoint, already
completed earlier in the session, blocked, cancelled before starting) have no
bar: a line under the strip counts them. Retried steps have one bar over all
their attempts (its tooltip says how many).

The strip is plain SVG text. The live view puts it inline (each bar is a
``<g data-step="...">``: clicking it shows the step's log); the static picture
carries it as an ``<img>`` with the SVG as a ``data:`` URI, which renders in
untrusted notebooks, on GitHub and nbviewer (no script, no inline ``<svg>``).
Step names and errors are escaped.
"""

from __future__ import annotations

import base64
import html
import math
import time
from dataclasses import dataclass

from nbsteps.formatting import fmt_clock, fmt_seconds
from nbsteps.model.status import CANCELLED, COMPLETED, FAILED, RETRYING, RUNNING
from nbsteps.views.graph import STYLES, node_status

#: rows taller than this many steps are drawn thin, without labels
THIN_ROWS = 60
LABEL_W, ROW_H, AXIS_H, PAD = 130, 18, 22, 8


@dataclass
class Bar:
    name: str
    key: str  # a status style key of the graph (completed, failed, running, ...)
    start: float  # time.time()
    end: float
    attempts: int = 1
    error: str = ""
    #: the duration the table shows (the record's), when the step is settled
    took: "float | None" = None

    @property
    def live(self) -> bool:
        return self.key in (RUNNING, RETRYING)


def bars(ctx, names=None, since: float | None = None, now: float | None = None) -> list[Bar]:
    """The bars of the steps of *names* (default: the plan's) that executed
    at or after *since*, in order of start. A step that has not finished ends
    *now*."""
    now = time.time() if now is None else now
    out = []
    for name in ctx.order(names) if names is None else names:
        rec = ctx.records.get(name)
        if rec is None or rec.started is None or rec.cached:
            continue
        if since is not None and rec.started < since - 0.5:  # from an earlier run
            continue
        key = node_status(rec)
        if key in (RUNNING, RETRYING):
            end = now
        elif key in (COMPLETED, FAILED, CANCELLED) and rec.finished:
            end = rec.finished
        elif key == CANCELLED:  # interrupted while running: it ran until it was cancelled
            end = rec.started + (rec.duration or 0.0)
        else:  # pending again (a new run is starting): not part of this picture
            continue
        took = rec.duration if key in (COMPLETED, FAILED) and rec.duration is not None else None
        end = max(end, rec.started + (took or 0.0))  # never shorter than the duration the table shows
        out.append(Bar(name, key, rec.started, end, max(1, rec.attempts), rec.error_text, took))
    out.sort(key=lambda b: (b.start, b.name))
    return out


def _tick_step(span: float, ticks: int = 6) -> float:
    """A round step (1, 2 or 5 times a power of ten, or whole minutes) for about *ticks* ticks."""
    raw = max(span, 1e-3) / ticks
    if raw >= 60:
        return 60.0 * max(1, _tick_step(raw / 60.0 * ticks, ticks))
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _tick_label(seconds: float, step: float) -> str:
    if step >= 60:
        return f"{int(seconds // 60)} min"
    digits = 0 if step >= 1 else min(3, -math.floor(math.log10(step)))
    return f"{seconds:.{digits}f} s"


def _took(b: Bar) -> str:
    return fmt_seconds(b.took if b.took is not None else b.end - b.start)


def _tip(b: Bar) -> str:
    took = _took(b)
    what = {RUNNING: f"running for {took}", RETRYING: f"retrying, {took} so far"}.get(
        b.key, f"{b.key} in {took}"
    )
    tries = f", {b.attempts} attempts" if b.attempts > 1 else ""
    error = f"\n{b.error[:300]}" if b.error else ""
    return f"{b.name}: {what}{tries} ({fmt_clock(b.start)}–{fmt_clock(b.end)}){error}"


def timeline_svg(items: list[Bar], since: float | None = None, width: int = 760) -> str:
    """The Gantt strip of *items* as SVG text ('' when there is none)."""
    if not items:
        return ""
    t0 = min(b.start for b in items) if since is None else min(since, *(b.start for b in items))
    span = max(max(b.end for b in items) - t0, 1e-3)
    thin = len(items) > THIN_ROWS
    label_w, row_h = (0, 5) if thin else (LABEL_W, ROW_H)
    plot_w = width - label_w - 2 * PAD
    height = AXIS_H + row_h * len(items) + PAD
    step = _tick_step(span)
    scale = plot_w / (math.ceil(span / step) * step)

    def x(t: float) -> float:
        return label_w + PAD + (t - t0) * scale

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'class="nbsteps-timeline-svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="Helvetica,Arial,sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
    ]
    if label_w:  # what the axis counts
        out.append(
            f'<text x="{PAD}" y="{AXIS_H - 8}" fill="#666">'
            f"{html.escape('time since ' + fmt_clock(t0))}</text>"
        )
    tick = 0.0
    while tick <= span + step * 0.999:
        tx, said = x(t0 + tick), _tick_label(tick, step)
        # a label that would cross the right edge ends there (never clipped)
        anchor = "end" if tx + 3.5 * len(said) > width - 1 else "middle"
        out.append(
            f'<line x1="{tx:.1f}" y1="{AXIS_H - 4}" x2="{tx:.1f}" y2="{height - PAD / 2:.0f}" '
            f'stroke="#e3e3e3"/>'
            f'<text x="{tx:.1f}" y="{AXIS_H - 8}" text-anchor="{anchor}" fill="#666">'
            f"{html.escape(said)}</text>"
        )
        tick += step
    for i, b in enumerate(items):
        y = AXIS_H + i * row_h
        fill = STYLES.get(b.key, STYLES[COMPLETED])[0]
        x0, x1 = x(b.start), x(b.end)
        w = max(x1 - x0, 2.0)
        name = html.escape(b.name, quote=True)
        stroke = ' stroke="#333" stroke-width="1.5" stroke-dasharray="3,2"' if b.live else ' stroke="#555"'
        parts = [
            f'<g class="nbsteps-tl-bar nbsteps-{b.key}" data-step="{name}">',
            f"<title>{html.escape(_tip(b))}</title>",
        ]
        if not thin:
            if i % 2:
                parts.append(f'<rect x="0" y="{y}" width="{width}" height="{row_h}" fill="#fafafa"/>')
            label = b.name if len(b.name) <= 18 else b.name[:17] + "…"
            parts.append(
                f'<text x="{label_w - 4}" y="{y + row_h - 5}" text-anchor="end" fill="#222">'
                f"{html.escape(label)}</text>"
            )
        bar_h = row_h - (6 if not thin else 1)
        parts.append(
            f'<rect x="{x0:.1f}" y="{y + (row_h - bar_h) / 2:.1f}" width="{w:.1f}" height="{bar_h}" '
            f'rx="2" fill="{fill}"{stroke}/>'
        )
        if not thin:
            took = _took(b)
            inside = w > 7 * len(took) + 6
            tx, anchor = (x0 + w / 2, "middle") if inside else (x0 + w + 4, "start")
            if not inside and tx + 7 * len(took) >= width:  # no room after the bar: before it
                tx, anchor = x0 - 4, "end"
            if inside or tx - 7 * len(took) > label_w:
                parts.append(
                    f'<text x="{tx:.1f}" y="{y + row_h - 5}" text-anchor="{anchor}" fill="#333" '
                    f'font-size="10">{html.escape(took)}</text>'
                )
        parts.append("</g>")
        out.append("".join(parts))
    out.append("</svg>")
    return "".join(out)


_NOT_SHOWN = {
    "kept": "kept, not executed",
    "restored": "restored, not executed",
    "executed": "executed in an earlier run",
}


def _not_shown(ctx, names, shown: set) -> str:
    """What the steps without a bar are: kept, restored, executed earlier, or not started."""
    counts: dict = {}
    for s in names:
        r = ctx.records.get(s)
        if s in shown or r is None or r.status == "pending":
            continue
        said = _NOT_SHOWN[r.origin or "executed"] if r.status == COMPLETED else f"{r.status}, not started"
        counts[said] = counts.get(said, 0) + 1
    return "; ".join(f"{n} {said}" for said, n in counts.items())


def _caption(note: str, count: int) -> str:
    text = f"timeline: {count} step{'s' if count != 1 else ''} executed" + (f"; {note}" if note else "")
    return (
        '<div class="nbsteps-timeline-note" style="font-size:11px;color:#555;margin:2px 0">'
        f"{html.escape(text)}</div>"
    )


def timeline_html(
    ctx, names=None, since=None, now=None, *, inline: bool = True, max_height: int = 300
) -> str:
    """The timeline as HTML: the SVG inline (live views, clickable bars) or,
    *inline* false, as an ``<img>`` carrying it as a ``data:`` URI (the static
    picture: renders in untrusted notebooks). '' when no step executed."""
    names = ctx.order() if names is None else list(names)
    items = bars(ctx, names, since, now)
    if not items:
        return ""
    svg = timeline_svg(items, since)
    note = _not_shown(ctx, names, {b.name for b in items})
    if inline:
        body = svg
    else:
        data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
        alt = html.escape(f"nbsteps timeline of {len(items)} executed steps", quote=True)
        body = f'<img class="nbsteps-timeline-img" alt="{alt}" src="data:image/svg+xml;base64,{data}">'
    return (
        f'<div class="nbsteps-timeline" style="overflow:auto;max-width:100%;max-height:{max_height}px">'
        f"{_caption(note, len(items))}{body}</div>"
    )


def _short_tick(seconds: float, step: float) -> str:
    """A tick label short enough for a narrow column: 0 s, 20 s, 2 min; under a second in ms."""
    if step >= 1:
        return _tick_label(seconds, step)
    digits = 0 if step >= 1e-3 else min(3, -math.floor(math.log10(step * 1000)))
    return f"{seconds * 1000:.{digits}f} ms"


def _axis_rows(t0: float, total: float, step: float) -> str:
    """The axis of :func:`timeline_rows_html`: one cell per tick, its label (with unit) at its
    left; the axis ends at the right border."""
    n = max(1, round(total / step))
    cells = "".join(
        '<div class="nbsteps-tl-tick" style="flex:1 1 0;min-width:0;border-left:1px solid #ccc;'
        'padding-left:2px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis">'
        f"{html.escape(_short_tick(i * step, step))}</div>"
        for i in range(n)
    )
    return (
        f'<div class="nbsteps-tl-axis" title="{html.escape("time since " + fmt_clock(t0), quote=True)}" '
        f'style="display:flex;color:#666;font-size:11px;border-right:1px solid #ccc;margin-bottom:2px">'
        f"{cells}</div>"
    )


def timeline_rows_html(ctx, names=None, since=None, now=None) -> str:
    """The timeline for a narrow column (JupyterLab's side panel): HTML without SVG, so it
    takes the column's width and its text keeps the page's size (a wide SVG scaled down to a
    sidebar is unreadable). Per executed step a line with its name and duration over its bar,
    under an axis of seconds since the run began (units on every tick); the bars are placed in
    percent of the axis. What the steps without a bar are, as :func:`timeline_html` says it.
    '' when no step executed."""
    names = ctx.order() if names is None else list(names)
    items = bars(ctx, names, since, now)
    if not items:
        return ""
    t0 = min(b.start for b in items) if since is None else min(since, *(b.start for b in items))
    span = max(max(b.end for b in items) - t0, 1e-3)
    step = _tick_step(span, 3)
    total = math.ceil(span / step - 1e-9) * step

    def pct(t: float) -> float:
        return max(0.0, min(100.0, 100.0 * (t - t0) / total))

    rows = []
    for b in items:
        left, width = pct(b.start), max(pct(b.end) - pct(b.start), 0.5)
        fill = STYLES.get(b.key, STYLES[COMPLETED])[0]
        border = "1px dashed #333" if b.live else "1px solid #555"
        tries = f" · {b.attempts} attempts" if b.attempts > 1 else ""
        rows.append(
            f'<div class="nbsteps-tl-row nbsteps-{b.key}" title="{html.escape(_tip(b), quote=True)}" '
            'style="margin:3px 0">'
            '<div style="display:flex;justify-content:space-between;gap:6px">'
            '<span class="nbsteps-tl-name" style="overflow:hidden;text-overflow:ellipsis;white-space:nowrap">'
            f"{html.escape(b.name)}</span>"
            f'<span class="nbsteps-tl-took" style="white-space:nowrap;color:#333">{html.escape(_took(b))}'
            f"{tries}</span></div>"
            '<div style="height:8px;background:#f0f0f0">'
            f'<div class="nbsteps-tl-span" style="margin-left:{left:.2f}%;width:{width:.2f}%;'
            f"min-width:2px;height:8px;box-sizing:border-box;border:{border};border-radius:2px;"
            f'background:{fill}"></div></div></div>'
        )
    note = _not_shown(ctx, names, {b.name for b in items})
    return (
        '<div class="nbsteps-timeline nbsteps-timeline-rows" style="font-size:12px;margin:4px 0">'
        f"{_caption(note, len(items))}{_axis_rows(t0, total, step)}{''.join(rows)}</div>"
    )
