"""The picture of a plan that lasts (SPEC 4, "What lasts"): what a run's cell
and ``%steps show`` keep once nothing is live any more.

One mime bundle: ``text/html`` holding a segmented progress bar, the legend,
the graph as an ``<img>`` whose ``src`` is the SVG as a ``data:`` URI, the
run's timeline likewise (:mod:`nbsteps.views.timeline`), and the results
table; ``image/png`` of the graph for small plans (for converters that do not
read HTML, such as nbconvert to PDF); ``text/plain``. An ``<img>`` with a
data URI survives JupyterLab's sanitizer for untrusted outputs (inline ``<svg>``
and the ``image/svg+xml`` type do not), and renders without a kernel, on
GitHub, nbviewer and in ``jupyter nbconvert`` output. All user text is escaped.

The live view (:mod:`nbsteps.views.live`) draws the same header and table.
"""

from __future__ import annotations

import base64
import html

from nbsteps.formatting import fmt_seconds
from nbsteps.model.status import BLOCKED, CANCELLED, COMPLETED, FAILED, KEPT, PENDING, RETRYING, RUNNING
from nbsteps.run.context import RunContext
from nbsteps.run.summary import restored_text, store_where  # noqa: F401 (store_where: views use it from here)

#: segments of the progress bar, in order: (key, colour, what the legend says)
SEGMENTS = [
    (COMPLETED, "#8fd694", "executed"),
    ("kept", "#c5e8c7", "kept"),
    ("cached", "#a9d6ff", "restored"),
    (FAILED, "#ff6b6b", "failed"),
    (BLOCKED, "#b8b8b8", "blocked"),
    (CANCELLED, "#d7ccc8", "cancelled"),
    (RUNNING, "#ffe66d", "running"),
    (RETRYING, "#ffb347", "retrying"),
    ("confirming", "#f8d3ec", "waiting for confirmation"),
]
_SAID = {key: label for key, _, label in SEGMENTS}
#: plans up to this many steps also get a PNG of the graph in their static picture
PNG_STEPS = 40


def attempts_failed(rec) -> str:
    """`` (attempt 1 failed: ValueError: flaky)``: the errors of the attempts before the last."""
    said = "; ".join(f"attempt {n} failed: {text}" for n, text in getattr(rec, "attempt_errors", ()) or ())
    return f" ({said})" if said else ""


def names_list(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def by_status(ctx, names) -> dict[str, list[str]]:
    """Step names by progress key: a status, "kept" for a step kept as this kernel held
    it, or "cached" for a restored step (``completed`` is executed)."""
    out: dict[str, list[str]] = {}
    recs = ctx.records
    for s in names:
        r = recs.get(s)
        if r is None:
            key = PENDING
        elif r.status == COMPLETED and r.cached:
            key = "kept" if r.origin == KEPT else "cached"
        else:
            key = "confirming" if r.confirming and r.status == PENDING else r.status
        out.setdefault(str(key), []).append(s)
    return out


def state_text(
    ctx,
    names,
    *,
    running: bool = False,
    summary=None,
    elapsed: float | None = None,
    count: bool = True,
    sources: dict | None = None,
) -> str:
    """One line saying where a run (or the plan) stands. It names steps and
    counts, never error messages (user text is shown escaped elsewhere).
    *count*: say how many completed (the progress bar says it next to it).
    *sources*: where restored steps came from (else the *summary*'s)."""
    if not names:
        return "no steps registered yet (%%step NAME in a cell)"
    groups = by_status(ctx, names)
    n = len(names)
    done = _done(groups)
    parts = [f"{len(done)} of {n} completed{_stale(ctx, done)}"] if count else []
    if groups.get("cached") or groups.get("kept"):
        if sources is None:
            sources = summary.restored_from if summary is not None else {}
        restored = restored_text(names, ctx.records, sources, store_where(ctx))
        parts.append(f"({restored})" if count else restored)
    for status in (RUNNING, RETRYING, "confirming", FAILED, BLOCKED, CANCELLED):
        if groups.get(status):
            parts.append(f"{len(groups[status])} {_SAID.get(status, status)}: {names_list(groups[status])}")
    waiting = len(groups.get(PENDING, []))
    if waiting:
        parts.append(f"{waiting} {'waiting' if running else 'not run'}")
    text = "; ".join(parts).replace("; (", " (")
    if running:
        head = f"running, {fmt_seconds(elapsed or 0.0)} so far"
    elif summary is not None:
        head = (
            f"{'interrupted' if summary.interrupted else 'finished'} in {fmt_seconds(max(0.0, summary.wall))}"
        )
    else:
        return text
    return f"{head}: {text}" if text else head


def _done(groups) -> list[str]:
    return [*groups.get(COMPLETED, ()), *groups.get("kept", ()), *groups.get("cached", ())]


def _stale(ctx, done) -> str:
    """``, 2 stale`` when completed steps of *done* are stale (the next run executes them)."""
    stale = sum(1 for s in done if (r := ctx.records.get(s)) is not None and r.stale)
    return f", {stale} stale" if stale else ""


def progress_html(ctx, names, text: str) -> str:
    """A segmented bar (completed, restored, failed, blocked, cancelled,
    running, retrying counted apart; the rest empty), ``k/N completed`` and
    *text*, escaped."""
    groups = by_status(ctx, names)
    n = max(1, len(names))
    segs = []
    for key, colour, label in SEGMENTS:
        count = len(groups.get(key, ()))
        if count:
            segs.append(
                f'<span class="nbsteps-seg nbsteps-seg-{key}" title="{count} {label}" '
                f'style="display:inline-block;height:14px;width:{100.0 * count / n:.3f}%;'
                f'background-color:{colour}"></span>'
            )
    done = _done(groups)
    bar = (
        '<span class="nbsteps-bar" style="display:inline-block;width:260px;height:14px;'
        "border:1px solid #888;border-radius:3px;background-color:#f4f4f4;overflow:hidden;"
        f'vertical-align:middle;white-space:nowrap;line-height:0">{"".join(segs)}</span>'
    )
    said = f"{len(done)}/{len(names)} completed{_stale(ctx, done)}"
    count = f'<b class="nbsteps-count" style="margin:0 8px">{said}</b>'
    return (
        f'<div class="nbsteps-progress" style="font-family:monospace;font-size:12px;margin:2px 0">'
        f'{bar}{count}<span class="nbsteps-label">{html.escape(text)}</span></div>'
    )


def graph_svg(ctx) -> tuple[str, str]:
    """(SVG text, HTML legend) of the plan's graph now; raises when `dot` is missing."""
    from nbsteps.views.graph_live import legend_html, live_svg

    svg, info = live_svg(ctx)
    return svg, legend_html(info["statuses"], info["kinds"], info["critical"])


def graph_alt(ctx, names) -> str:
    groups = by_status(ctx, names)
    said = ", ".join(f"{len(v)} {k if k != 'cached' else 'restored'}" for k, v in groups.items())
    return f"nbsteps dependency graph of {len(names)} steps ({said})"


def image_html(ctx, names, svg: str, legend: str, max_height: int = 700) -> str:
    """The graph as an <img> carrying the SVG as a data: URI, with its legend."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    alt = html.escape(graph_alt(ctx, names), quote=True)
    return (
        f'{legend}<div class="nbsteps-graph" style="overflow:auto;max-width:100%;max-height:{max_height}px">'
        f'<img class="nbsteps-graph-img" alt="{alt}" src="data:image/svg+xml;base64,{data}"></div>'
    )


def table_html(ctx: RunContext) -> str:
    from nbsteps.views.table import html_table

    return (
        f'<div class="nbsteps-table" style="overflow-x:auto;max-width:100%;font-size:12px">'
        f"{html_table(ctx)}</div>"
    )


def static_bundle(
    ctx,
    names=None,
    *,
    summary=None,
    png: bool | None = None,
    since: float | None = None,
    timeline: str = "image",
    drawn: "tuple | None" = None,
) -> dict:
    """The lasting picture of a plan: see the module docstring. The stale
    flags are the records' (the facade refreshes them before drawing, see
    ``Plan.refresh_stale``), so the graph and the table agree. The timeline shows
    the steps executed since *since* (default: the start of the *summary*'s
    run, else of the plan's last run): as an SVG image (*timeline* ``"image"``) or, for a
    narrow column such as JupyterLab's side panel, as HTML rows (``"rows"``,
    :func:`nbsteps.views.timeline.timeline_rows_html`). *drawn*: ``(svg, legend, table)`` of the
    plan as it is now, made by the caller for another view of it (the live view's final drawing:
    :func:`graph_svg` and :func:`table_html` of the same state, not made twice); their parts
    that are None are made here."""
    names = list(names) if names else ctx.order()
    svg_drawn, legend_drawn, table_drawn = drawn if drawn is not None else (None, None, None)
    text = state_text(ctx, names, summary=summary)
    parts = [progress_html(ctx, names, state_text(ctx, names, summary=summary, count=False))]
    data: dict = {}
    try:
        svg, legend = (svg_drawn, legend_drawn) if svg_drawn is not None else graph_svg(ctx)
    except Exception as exc:  # e.g. no `dot`: the rest still shows
        parts.append(f'<pre class="nbsteps-graph">{html.escape(str(exc))}</pre>')
    else:
        parts.append(image_html(ctx, names, svg, legend))
        if png if png is not None else len(ctx.steps) <= PNG_STEPS:
            try:
                from nbsteps.views.graph import plan_graph, render

                data["image/png"] = base64.b64encode(render(plan_graph(ctx), "png")).decode("ascii")
            except Exception:
                pass
    from nbsteps.views.timeline import timeline_html, timeline_rows_html

    if since is None:
        last = summary if summary is not None else ctx.last_summary
        since = getattr(last, "started", 0.0) or None
    try:
        if timeline == "rows":
            parts.append(timeline_rows_html(ctx, names, since))
        else:
            parts.append(timeline_html(ctx, names, since, inline=False))
    except Exception as exc:  # pragma: no cover - a picture must not fail on it
        parts.append(f'<pre class="nbsteps-timeline">{html.escape(repr(exc))}</pre>')
    parts.append(table_drawn if table_drawn is not None else table_html(ctx))
    data["text/html"] = f'<div class="nbsteps-view nbsteps-static">{"".join(parts)}</div>'
    data["text/plain"] = f"nbsteps: {text}"
    return data


class StaticPicture:
    """Something IPython displays as the static picture of a plan."""

    def __init__(self, ctx, names=None, summary=None) -> None:
        self.bundle = static_bundle(ctx, names, summary=summary)

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        return self.bundle
