"""The dependency graph (SPEC 4): a graphviz ``Digraph`` of the plan.

One node per step, fill colour and shape by status (plus the ``cached`` and
``stale`` flags), a legend, inferred edges solid and explicit edges dashed,
the critical path drawn thick, and a tooltip per node with status, duration,
attempts and error. ``%steps graph`` renders it (``graph_command``).

User text (error messages) is escaped for DOT (backslashes, ``&`` entities,
``<...>`` HTML-like labels) and Graphviz escapes it again for SVG; the live
views' tooltips are escaped with ``html.escape``. An error such as
``<script>alert(1)</script>`` only ever appears as text.

Live views (:mod:`nbsteps.views.live`) use :func:`live_svg`: one ``dot`` layout
per structure, recoloured in Python as statuses change.

Building the ``Digraph`` needs only the ``graphviz`` Python package; rendering
needs Graphviz's ``dot`` binary. When it is missing, rendering raises
:class:`~nbsteps.errors.NbstepsError` with the install command, and the rest
of nbsteps (and ``plan_graph(ctx).source``) keeps working.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import graphviz

from nbsteps.errors import NbstepsError
from nbsteps.formatting import fmt_seconds
from nbsteps.model import graphs
from nbsteps.model.status import BLOCKED, CANCELLED, COMPLETED, FAILED, PENDING, RETRYING, RUNNING

#: style key -> (fill colour, shape, corners); "cached" is completed from a checkpoint.
#: Borders add: running/retrying thick, cancelled dotted, stale dashed orange,
#: critical path thick purple; optional steps have a double border.
STYLES = {
    PENDING: ("#f4f4f4", "box", "rounded"),
    RUNNING: ("#ffe66d", "box", "rounded"),
    RETRYING: ("#ffb347", "box", "rounded"),
    COMPLETED: ("#8fd694", "box", "rounded"),
    "kept": ("#c5e8c7", "box", "rounded"),  # completed as this kernel held it, not executed
    "cached": ("#a9d6ff", "box", "rounded"),
    FAILED: ("#ff6b6b", "octagon", ""),
    BLOCKED: ("#b8b8b8", "box", "diagonals"),
    CANCELLED: ("#d7ccc8", "box", ""),  # its dotted border is NodeLook.dash, not a corner style
    "confirming": ("#f8d3ec", "box", "rounded"),  # a --confirm step waiting for the user's answer
}
#: legend order, and the legend's words where they are not the key's
LEGEND = [
    PENDING,
    "confirming",
    RUNNING,
    RETRYING,
    COMPLETED,
    "kept",
    "cached",
    "stale",
    FAILED,
    BLOCKED,
    CANCELLED,
]
#: completed nodes say what the run did (nbsteps.model.status): executed, kept or restored
LEGEND_TEXT = {
    COMPLETED: "executed",
    "kept": "kept (already in this kernel)",
    "cached": "restored from checkpoint",
    "confirming": "waiting for confirmation",
}
CONFIRM_COLOR = "#c2185b"
STALE_COLOR = "#e08a00"
#: a stale step (completed, but its code or inputs changed since) is pale: not to be trusted as green
STALE_FILL = "#f1ecc8"
CRITICAL_COLOR = "#7b2cbf"
EDGE_COLOR = "#555555"
#: inferred edges solid, --after dashed, shared process state dotted (labelled):
#: "state" after a step that changed it, "order" only keeping uses apart
EDGE_STYLES = {
    "inferred": "solid",
    "observed": "solid",  # a write seen at run time (nbsteps.run.attempt.observe), drawn in its own colour
    "explicit": "dashed",
    "state": "dotted",
    "order": "dotted",
}
OBSERVED_COLOR = "#00838f"
#: graphs with more steps than this are drawn compact (smaller font and spacing)
LARGE = 40

INSTALL_HINT = (
    "Graphviz's `dot` program is not installed, so the graph cannot be rendered. "
    "Install it with `apt-get install graphviz` (Debian/Ubuntu) or `conda install graphviz`, "
    "then run the command again. Everything else in nbsteps works without it; "
    "`%steps graph --format dot` (or nbsteps.graph().source) still gives the DOT source."
)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_SPECIAL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")


def clip_text(text, limit: int) -> str:
    text = str(text)
    if not _SPECIAL.search(text):  # the common case: nothing to remove
        return text if len(text) <= limit else text[: limit - 1] + "…"
    text = _ANSI.sub("", text)
    text = _CONTROL.sub("", text).replace("\r", "")
    text = text.encode("utf-8", "replace").decode("utf-8")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def label_text(text, limit: int = 200) -> str:
    """User text for a DOT label: literal backslashes and ``&``, never HTML."""
    text = " ".join(clip_text(text, limit).split())
    return graphviz.nohtml(text.replace("\\", "\\\\").replace("&", "&amp;"))


def tooltip_text(lines, limit: int = 600) -> str:
    """Lines of user text for a DOT tooltip. Graphviz expands escapes in
    tooltips twice, hence the doubled backslashes; lines join with ``\\n``."""
    out = []
    for line in lines:
        for part in clip_text(line, limit).split("\n"):
            out.append(part.replace("\\", "\\\\\\\\").replace("&", "&amp;"))
    return graphviz.nohtml("\\n".join(out))


def node_status(rec) -> str:
    """The style key of a record: its status (``completed``: executed), "kept" for a step
    kept as this kernel held it, or "cached" for a restored step."""
    if rec is None:
        return PENDING
    if rec.status == COMPLETED and rec.cached:
        return "kept" if rec.origin == "kept" else "cached"
    if rec.confirming and rec.status == PENDING:
        return "confirming"
    return rec.status if rec.status in STYLES else PENDING


# -- the critical path -------------------------------------------------------
def critical_path(ctx, names=None, preview: bool = True) -> list[str]:
    """The longest chain of the plan weighted by step durations.

    Durations come from the records (this session's runs). Before any run the
    preview's path is used (``run.decide.preview.preview(...).critical_path``: durations of
    earlier checkpoints); with no duration known at all there is no critical
    path (``[]``): it would only be a guess.
    """
    names = ctx.order(names)
    if not names:
        return []
    chosen = set(names)
    known = {  # what executed: a step kept or restored took no time in this run
        s: r.duration
        for s in names
        if (r := ctx.records.get(s)) is not None and r.duration is not None and not r.cached
    }
    if not known:
        if not preview:
            return []
        try:
            from nbsteps.run.decide.preview import preview as plan_preview

            preview = plan_preview(ctx, ctx.select(names), frozenset(), False)
        except Exception:  # a preview problem must not break the picture
            return []
        path = list(preview.critical_path)
        return path if len(path) > 1 and preview.estimate_s > 0 else []
    path, _ = graphs.longest_path(
        names, lambda s: (u for u in ctx.dependencies(s) if u in chosen), lambda s: known.get(s, 0.0)
    )
    return path


def choose_rankdir(ctx, names) -> str:
    """Left-to-right for small plans (reads like a pipeline); for large ones
    the long dimension of the DAG (depth or width) goes down the page."""
    if len(names) <= 12:
        return "LR"
    per_level = Counter(ctx.levels(names).values())
    depth, width = len(per_level), max(per_level.values(), default=1)
    return "TB" if depth >= width else "LR"


# -- what each node and edge looks like ---------------------------------------
class PlanGraph(graphviz.Digraph):
    """A ``graphviz.Digraph`` that, displayed without ``dot`` installed, shows
    the install hint instead of a formatter traceback."""

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        try:
            bundle = super()._repr_mimebundle_(include, exclude, **kwargs)
        except graphviz.ExecutableNotFound:
            return {"text/plain": INSTALL_HINT}
        # a stable text form (no memory address) so saved notebooks do not churn
        bundle.setdefault("text/plain", repr(self))
        svg = bundle.get("image/svg+xml")
        if isinstance(svg, str) and (include is None or "text/html" in include):
            # JupyterLab renders neither image/svg+xml nor inline <svg> in untrusted
            # notebooks; an <img> carrying the SVG as a data: URI it does (and GitHub, nbviewer)
            import base64

            data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
            bundle["text/html"] = (
                f'<img class="nbsteps-graph-img" alt="nbsteps dependency graph" '
                f'src="data:image/svg+xml;base64,{data}">'
            )
        return bundle

    def __repr__(self) -> str:
        return f"<nbsteps graph: {self.comment or 'plan'}>"


@dataclass
class NodeLook:
    name: str
    key: str  # style key: a status or "cached"
    fill: str
    shape: str
    corners: str  # "rounded" | "diagonals" | "" (part of the layout)
    stroke: str = "#333333"
    penwidth: float = 1.0
    dash: str = ""  # "" | "dashed" | "dotted"
    peripheries: int = 1
    stale: bool = False
    tooltip: list = field(default_factory=list)  # lines of plain text

    @property
    def layout(self) -> tuple:
        """What changes the geometry (needs a new layout by ``dot``)."""
        return (self.shape, self.corners, self.peripheries)


@dataclass
class EdgeLook:
    up: str
    down: str
    kind: str  # "inferred" | "observed" | "explicit" | "state" | "order" (shared process state)
    critical: bool
    tooltip: str
    label: str = ""  # the shared state a "state" edge keeps in order

    @property
    def style(self) -> str:
        return EDGE_STYLES.get(self.kind, "solid")

    @property
    def color(self) -> str:
        return CRITICAL_COLOR if self.critical else OBSERVED_COLOR if self.kind == "observed" else EDGE_COLOR

    @property
    def penwidth(self) -> float:
        return 3.5 if self.critical else 1.0


def _tooltip_lines(ctx, name: str, rec, critical: bool) -> list[str]:
    lines = [
        f"{name}: {rec.status if rec else PENDING}"
        + (f" ({LEGEND_TEXT['kept' if rec.origin == 'kept' else 'cached']})" if rec and rec.cached else "")
        + (f" (waiting for confirmation: {rec.confirming})" if rec is not None and rec.confirming else "")
        + (" (stale: code or inputs changed)" if rec is not None and rec.stale and rec.ok else "")
    ]
    if rec is not None:
        if rec.duration is not None:
            lines.append(f"duration: {fmt_seconds(rec.duration, missing='')}")
        if rec.attempts:
            lines.append(f"attempts: {rec.attempts}")
        if rec.error_text:
            lines.append(f"error: {rec.error_text}")
    deps = ctx.dependencies(name)
    if deps:
        lines.append("needs: " + ", ".join(f"{u} ({k})" for u, k in deps.items()))
    step = ctx.steps.get(name)
    if step is not None and step.optional:
        lines.append("optional: a failure blocks nothing")
    if critical:
        lines.append("on the critical path")
    return lines


def looks(ctx, names=None, critical: list | None = None, preview: bool = True):
    """``(names, nodes, edges, path)``: how to draw every step and dependency now."""
    names = ctx.order(names)
    chosen = set(names)
    path = critical if critical is not None else critical_path(ctx, names, preview)
    on_path = set(path) if len(path) > 1 else set()
    path_edges = set(zip(path, path[1:], strict=False)) if len(path) > 1 else set()
    nodes = []
    for name in names:
        rec = ctx.records.get(name)
        key = node_status(rec)
        fill, shape, corners = STYLES[key]
        look = NodeLook(name, key, fill, shape, corners)
        if key in (RUNNING, RETRYING):
            look.penwidth = 2.0
        if key == CANCELLED:
            look.dash = "dotted"
        if key == "confirming":
            look.stroke, look.penwidth = CONFIRM_COLOR, 3.0
        if rec is not None and rec.stale and rec.status == COMPLETED:
            look.stale, look.stroke, look.penwidth, look.dash = True, STALE_COLOR, 2.5, "dashed"
            look.fill = STALE_FILL
        if name in on_path and not look.stale:  # a stale border says more (the path's edges stay)
            look.stroke, look.penwidth = CRITICAL_COLOR, 2.5
        step = ctx.steps.get(name)
        if step is not None and step.optional:
            look.peripheries = 2
        look.tooltip = _tooltip_lines(ctx, name, rec, name in on_path)
        nodes.append(look)
    edges = []
    for name in names:
        sources = ctx.sources(name)
        for up, kind in ctx.dependencies(name).items():
            if up not in chosen:
                continue
            reads = sorted(n for n, src in sources.items() if src == up)
            labels = (
                getattr(ctx.deps, "state_labels", {}).get((up, name), [])
                if kind in ("state", "order")
                else []
            )
            if reads and kind == "observed":
                why = f"reads {', '.join(reads)}, which {up} was seen changing in place"
            elif reads:
                why = f"reads {', '.join(reads)}"
            elif labels:
                why = (
                    f"{up} changes {', '.join(labels)}"
                    if kind == "state"
                    else f"both use {', '.join(labels)}: kept in notebook order"
                )
            else:
                why = "--after" if kind == "explicit" else kind
            edges.append(
                EdgeLook(
                    up,
                    name,
                    kind,
                    (up, name) in path_edges,
                    f"{up} -> {name} ({kind}: {why})",
                    label=", ".join(labels),
                )
            )
    return names, nodes, edges, path if on_path else []


def graph_attrs(g, rankdir: str, large: bool) -> None:
    g.graph_attr.update(
        rankdir=rankdir,
        bgcolor="white",
        tooltip="nbsteps plan",
        nodesep="0.12" if large else "0.3",
        ranksep="0.3" if large else "0.45",
        fontname="Helvetica",
        fontsize="10" if large else "12",
    )
    g.node_attr.update(
        fontname="Helvetica",
        fontsize="10" if large else "12",
        height="0.3" if large else "0.4",
        margin="0.06,0.03" if large else "0.12,0.06",
    )
    g.edge_attr.update(arrowsize="0.6" if large else "0.8")


def style_attr(*parts) -> str:
    return ",".join(p for p in parts if p)


def plan_graph(
    ctx, names=None, *, rankdir: str | None = None, legend: bool = True, critical: list | None = None
) -> PlanGraph:
    """The plan's dependency graph as a ``graphviz.Digraph`` (not rendered).

    *names* restricts it to some steps; *rankdir* ("LR", "TB") overrides the
    choice by size; *critical* overrides the critical path.
    """
    names, nodes, edges, path = looks(ctx, names, critical)
    rankdir = rankdir or choose_rankdir(ctx, names)
    large = len(names) > LARGE
    g = PlanGraph("nbsteps", comment="nbsteps plan")
    graph_attrs(g, rankdir, large)
    for n in nodes:
        attrs = {"peripheries": str(n.peripheries)} if n.peripheries != 1 else {}
        g.node(
            n.name,
            label=label_text(n.name),
            shape=n.shape,
            fillcolor=n.fill,
            color=n.stroke,
            penwidth=f"{n.penwidth:g}",
            style=style_attr("filled", n.corners, n.dash),
            tooltip=tooltip_text(n.tooltip),
            **{"class": f"nbsteps-step nbsteps-{n.key}"},
            **attrs,
        )
    for e in edges:
        tip = e.tooltip + (", critical path" if e.critical else "")
        g.edge(
            e.up,
            e.down,
            color=e.color,
            penwidth=f"{e.penwidth:g}",
            style=e.style,
            tooltip=tooltip_text([tip]),
            **(
                {"label": label_text(e.label, 40), "fontsize": "9", "fontcolor": EDGE_COLOR}
                if e.label
                else {}
            ),
            **{"class": f"nbsteps-{e.kind}" + (" nbsteps-critical" if e.critical else "")},
        )
    if legend:
        statuses = {n.key for n in nodes if not n.stale} | (
            {"stale"} if any(n.stale for n in nodes) else set()
        )
        _legend(g, statuses, {e.kind for e in edges}, bool(path), large, rankdir)
    return g


def _legend(g, statuses: set, kinds: set, critical: bool, large: bool, rankdir: str = "LR") -> None:
    """A boxed legend of the statuses and edge kinds the graph uses: status
    nodes side by side (a column in LR layouts), then one sample edge per kind."""
    keys = [k for k in LEGEND if k in statuses] or [PENDING]
    with g.subgraph(name="cluster_legend") as lg:
        lg.attr(
            label="legend",
            fontsize="9" if large else "10",
            color="#cccccc",
            style="rounded",
            fontcolor="#666666",
            tooltip="legend",
        )
        lg.attr("node", fontsize="9" if large else "10", height="0.25", margin="0.05,0.02")
        row = []
        for key in keys:
            if key == "stale":
                fill, shape, corners = STALE_FILL, *STYLES[COMPLETED][1:]
                attrs = {"color": STALE_COLOR, "penwidth": "2.5", "style": "filled,rounded,dashed"}
            else:
                fill, shape, corners = STYLES[key]
                attrs = {
                    "color": "#333333",
                    "style": style_attr("filled", corners, "dotted" if key == CANCELLED else ""),
                    "penwidth": "2" if key in (RUNNING, RETRYING) else "1",
                }
            text = LEGEND_TEXT.get(key, key)
            node = f"legend.{key}"
            lg.node(
                node,
                label=text,
                shape=shape,
                fillcolor=fill,
                tooltip=f"legend: {text}",
                **{"class": "nbsteps-legend"},
                **attrs,
            )
            row.append(node)
        samples = [
            ("inferred", "solid", EDGE_COLOR, "1"),
            ("observed", "solid", OBSERVED_COLOR, "1"),
            ("explicit", "dashed", EDGE_COLOR, "1"),
            ("state", "dotted", EDGE_COLOR, "1"),
            ("order", "dotted", "#999999", "1"),
            ("critical path", "solid", CRITICAL_COLOR, "3.5"),
        ]
        for text, style, color, width in samples:
            if (text == "critical path" and not critical) or (text in EDGE_STYLES and text not in kinds):
                continue
            a, b = f"legend.{text}.from", f"legend.{text}"
            lg.node(a, label=text, shape="plaintext", style="", **{"class": "nbsteps-legend"})
            lg.node(b, label="", shape="point", width="0.05", color="#999999")
            lg.edge(a, b, style=style, color=color, penwidth=width, tooltip=f"legend: {text} edge")
            row.append(a)
        with lg.subgraph() as same:
            same.attr(rank="same")
            for node in row:
                same.node(node)
        if rankdir in ("LR", "RL"):  # a column: dot stacks a same-rank chain bottom-up
            row.reverse()
        for left, right in zip(row, row[1:], strict=False):
            lg.edge(left, right, style="invis")


# -- rendering ------------------------------------------------------------------
def missing_dot() -> NbstepsError:
    return NbstepsError(INSTALL_HINT)


def render(graph, fmt: str = "svg") -> bytes:
    """Render *graph* with ``dot``; a clear NbstepsError when ``dot`` is missing."""
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise missing_dot() from None


def dot_available() -> bool:
    import shutil

    return shutil.which("dot") is not None
