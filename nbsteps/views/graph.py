"""The dependency graph (SPEC 4): a graphviz ``Digraph`` of the plan.

One node per step, fill colour and shape by status (plus the ``cached`` and
``stale`` flags), a legend, inferred edges solid and explicit edges dashed,
the critical path drawn thick, and a tooltip per node with status, duration,
attempts and error. ``%steps graph`` renders it (``graph_command``).

User text (error messages) is escaped for DOT (backslashes, ``&`` entities,
``<...>`` HTML-like labels) and Graphviz escapes it again for SVG; the live
views' tooltips are escaped with ``html.escape``. An error such as
``<script>alert(1)</script>`` only ever appears as text.

Live views (:mod:`nbsteps.widget`) use :func:`live_svg`: one ``dot`` layout
per structure, recoloured in Python as statuses change.

Building the ``Digraph`` needs only the ``graphviz`` Python package; rendering
needs Graphviz's ``dot`` binary. When it is missing, rendering raises
:class:`~nbsteps.errors.NbstepsError` with the install command, and the rest
of nbsteps (and ``plan_graph(plan).source``) keeps working.
"""
from __future__ import annotations

import html
import itertools
import os
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import graphviz

from .errors import NbstepsError
from .step import BLOCKED, CANCELLED, COMPLETED, FAILED, PENDING, RETRYING, RUNNING

#: style key -> (fill colour, shape, corners); "cached" is completed from a checkpoint.
#: Borders add: running/retrying thick, cancelled dotted, stale dashed orange,
#: critical path thick purple; optional steps have a double border.
STYLES = {
    PENDING: ("#f4f4f4", "box", "rounded"),
    RUNNING: ("#ffe66d", "box", "rounded"),
    RETRYING: ("#ffb347", "box", "rounded"),
    COMPLETED: ("#8fd694", "box", "rounded"),
    "cached": ("#a9d6ff", "box", "rounded"),
    FAILED: ("#ff6b6b", "octagon", ""),
    BLOCKED: ("#b8b8b8", "box", "diagonals"),
    CANCELLED: ("#d7ccc8", "box", "dotted"),
}
#: legend order
LEGEND = [PENDING, RUNNING, RETRYING, COMPLETED, "cached", "stale", FAILED, BLOCKED, CANCELLED]
STALE_COLOR = "#e08a00"
CRITICAL_COLOR = "#7b2cbf"
EDGE_COLOR = "#555555"
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


def _clean(text, limit: int) -> str:
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
    text = " ".join(_clean(text, limit).split())
    return graphviz.nohtml(text.replace("\\", "\\\\").replace("&", "&amp;"))


def tooltip_text(lines, limit: int = 600) -> str:
    """Lines of user text for a DOT tooltip. Graphviz expands escapes in
    tooltips twice, hence the doubled backslashes; lines join with ``\\n``."""
    out = []
    for line in lines:
        for part in _clean(line, limit).split("\n"):
            out.append(part.replace("\\", "\\\\\\\\").replace("&", "&amp;"))
    return graphviz.nohtml("\\n".join(out))


def _fmt_duration(seconds) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


def node_status(rec) -> str:
    """The style key of a record: its status, or "cached" for a restored step."""
    if rec is None:
        return PENDING
    if rec.status == COMPLETED and rec.cached:
        return "cached"
    return rec.status if rec.status in STYLES else PENDING


# -- the critical path -------------------------------------------------------
def critical_path(plan, names=None, preview: bool = True) -> list[str]:
    """The longest chain of the plan weighted by step durations.

    Durations come from the records (this session's runs). Before any run the
    preview's path is used (``plan.plan().critical_path``: durations of
    earlier checkpoints); with no duration known at all there is no critical
    path (``[]``): it would only be a guess.
    """
    names = plan.order(names)
    if not names:
        return []
    chosen = set(names)
    known = {s: plan.records[s].duration for s in names
             if s in plan.records and plan.records[s].duration is not None}
    if not known:
        if not preview:
            return []
        try:
            preview = plan.plan(names)
        except Exception:  # a preview problem must not break the picture
            return []
        path = list(preview.critical_path)
        return path if len(path) > 1 and preview.estimate_s > 0 else []
    dist: dict[str, float] = {}
    pred: dict[str, str | None] = {}
    for s in names:  # plan order is topological
        ups = [u for u in plan.dependencies(s) if u in chosen]
        best = max(ups, key=lambda u: dist[u], default=None)
        dist[s] = known.get(s, 0.0) + (dist[best] if best is not None else 0.0)
        pred[s] = best
    index = {s: i for i, s in enumerate(names)}
    end = max(names, key=lambda s: (dist[s], -index[s]))
    path = []
    node: str | None = end
    while node is not None:
        path.append(node)
        node = pred[node]
    return path[::-1]


def choose_rankdir(plan, names) -> str:
    """Left-to-right for small plans (reads like a pipeline); for large ones
    the long dimension of the DAG (depth or width) goes down the page."""
    if len(names) <= 12:
        return "LR"
    per_level = Counter(plan.levels(names).values())
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
    kind: str  # "inferred" | "explicit"
    critical: bool
    tooltip: str

    @property
    def color(self) -> str:
        return CRITICAL_COLOR if self.critical else EDGE_COLOR

    @property
    def penwidth(self) -> float:
        return 3.5 if self.critical else 1.0


def _tooltip_lines(plan, name: str, rec, critical: bool) -> list[str]:
    lines = [f"{name}: {rec.status if rec else PENDING}"
             + (" (restored from checkpoint)" if rec is not None and rec.cached else "")
             + (" (stale: code or inputs changed)" if rec is not None and rec.stale else "")]
    if rec is not None:
        if rec.duration is not None:
            lines.append(f"duration: {_fmt_duration(rec.duration)}")
        if rec.attempts:
            lines.append(f"attempts: {rec.attempts}")
        if rec.error_text:
            lines.append(f"error: {rec.error_text}")
    deps = plan.dependencies(name)
    if deps:
        lines.append("needs: " + ", ".join(f"{u} ({k})" for u, k in deps.items()))
    step = plan.steps.get(name)
    if step is not None and step.optional:
        lines.append("optional: a failure blocks nothing")
    if critical:
        lines.append("on the critical path")
    return lines


def looks(plan, names=None, critical: list | None = None, preview: bool = True):
    """``(names, nodes, edges, path)``: how to draw every step and dependency now."""
    names = plan.order(names)
    chosen = set(names)
    path = critical if critical is not None else critical_path(plan, names, preview)
    on_path = set(path) if len(path) > 1 else set()
    path_edges = set(zip(path, path[1:])) if len(path) > 1 else set()
    nodes = []
    for name in names:
        rec = plan.records.get(name)
        key = node_status(rec)
        fill, shape, corners = STYLES[key]
        look = NodeLook(name, key, fill, shape, corners)
        if key in (RUNNING, RETRYING):
            look.penwidth = 2.0
        if key == CANCELLED:
            look.dash = "dotted"
        if rec is not None and rec.stale:
            look.stale, look.stroke, look.penwidth, look.dash = True, STALE_COLOR, 2.5, "dashed"
        if name in on_path:
            look.stroke, look.penwidth = CRITICAL_COLOR, 2.5
        step = plan.steps.get(name)
        if step is not None and step.optional:
            look.peripheries = 2
        look.tooltip = _tooltip_lines(plan, name, rec, name in on_path)
        nodes.append(look)
    edges = []
    for name in names:
        sources = plan.sources(name)
        for up, kind in plan.dependencies(name).items():
            if up not in chosen:
                continue
            reads = sorted(n for n, src in sources.items() if src == up)
            why = f"reads {', '.join(reads)}" if reads else ("--after" if kind == "explicit" else kind)
            edges.append(EdgeLook(up, name, kind, (up, name) in path_edges, f"{up} -> {name} ({kind}: {why})"))
    return names, nodes, edges, path if on_path else []


def _graph_attrs(g, rankdir: str, large: bool) -> None:
    g.graph_attr.update(rankdir=rankdir, bgcolor="white", tooltip="nbsteps plan",
                        nodesep="0.12" if large else "0.3", ranksep="0.3" if large else "0.45",
                        fontname="Helvetica", fontsize="10" if large else "12")
    g.node_attr.update(fontname="Helvetica", fontsize="10" if large else "12", height="0.3" if large else "0.4",
                       margin="0.06,0.03" if large else "0.12,0.06")
    g.edge_attr.update(arrowsize="0.6" if large else "0.8")


def _style(*parts) -> str:
    return ",".join(p for p in parts if p)


def plan_graph(plan, names=None, *, rankdir: str | None = None, legend: bool = True,
               critical: list | None = None) -> PlanGraph:
    """The plan's dependency graph as a ``graphviz.Digraph`` (not rendered).

    *names* restricts it to some steps; *rankdir* ("LR", "TB") overrides the
    choice by size; *critical* overrides the critical path.
    """
    names, nodes, edges, path = looks(plan, names, critical)
    rankdir = rankdir or choose_rankdir(plan, names)
    large = len(names) > LARGE
    g = PlanGraph("nbsteps", comment="nbsteps plan")
    _graph_attrs(g, rankdir, large)
    for n in nodes:
        attrs = {"peripheries": str(n.peripheries)} if n.peripheries != 1 else {}
        g.node(n.name, label=label_text(n.name), shape=n.shape, fillcolor=n.fill, color=n.stroke,
               penwidth=f"{n.penwidth:g}", style=_style("filled", n.corners, n.dash),
               tooltip=tooltip_text(n.tooltip), **{"class": f"nbsteps-step nbsteps-{n.key}"}, **attrs)
    for e in edges:
        tip = e.tooltip + (", critical path" if e.critical else "")
        g.edge(e.up, e.down, color=e.color, penwidth=f"{e.penwidth:g}",
               style="dashed" if e.kind == "explicit" else "solid", tooltip=tooltip_text([tip]),
               **{"class": f"nbsteps-{e.kind}" + (" nbsteps-critical" if e.critical else "")})
    if legend:
        statuses = {n.key for n in nodes} | ({"stale"} if any(n.stale for n in nodes) else set())
        _legend(g, statuses, {e.kind for e in edges}, bool(path), large, rankdir)
    return g



def _legend(g, statuses: set, kinds: set, critical: bool, large: bool, rankdir: str = "LR") -> None:
    """A boxed legend of the statuses and edge kinds the graph uses: status
    nodes side by side (a column in LR layouts), then one sample edge per kind."""
    keys = [k for k in LEGEND if k in statuses] or [PENDING]
    with g.subgraph(name="cluster_legend") as lg:
        lg.attr(label="legend", fontsize="9" if large else "10", color="#cccccc", style="rounded",
                fontcolor="#666666", tooltip="legend")
        lg.attr("node", fontsize="9" if large else "10", height="0.25", margin="0.05,0.02")
        row = []
        for key in keys:
            if key == "stale":
                fill, shape, corners = STYLES[COMPLETED]
                attrs = {"color": STALE_COLOR, "penwidth": "2.5", "style": "filled,rounded,dashed"}
            else:
                fill, shape, corners = STYLES[key]
                attrs = {"color": "#333333", "style": _style("filled", corners, "dotted" if key == CANCELLED else ""),
                         "penwidth": "2" if key in (RUNNING, RETRYING) else "1"}
            text = "restored (cached)" if key == "cached" else key
            node = f"legend.{key}"
            lg.node(node, label=text, shape=shape, fillcolor=fill, tooltip=f"legend: {text}",
                    **{"class": "nbsteps-legend"}, **attrs)
            row.append(node)
        samples = [("inferred", "solid", EDGE_COLOR, "1"), ("explicit", "dashed", EDGE_COLOR, "1"),
                   ("critical path", "solid", CRITICAL_COLOR, "3.5")]
        for text, style, color, width in samples:
            if (text == "critical path" and not critical) or (text in ("inferred", "explicit") and text not in kinds):
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
        for left, right in zip(row, row[1:]):
            lg.edge(left, right, style="invis")


# -- live rendering: lay out once, recolour many times ------------------------
#: stroke-dasharray Graphviz writes for dashed / dotted lines
_DASH = {"dashed": "5,2", "dotted": "1,5"}
_TOKEN = re.compile(r'((?:fill|stroke)="#[0-9a-f]{6}"|nbstip\d+x|nbstcls\d+x)')


class _Template:
    """An SVG laid out by ``dot`` with placeholder colours, tooltips and
    classes, which :meth:`fill` replaces by the current state's (no new
    layout while only colours, borders or tooltips change)."""

    def __init__(self, names, nodes, edges, rankdir):
        large = len(names) > LARGE
        g = PlanGraph("nbsteps", comment="nbsteps plan (live)")
        _graph_attrs(g, rankdir, large)
        # unique placeholder colours; the template uses no other hex colour
        tokens = (f"#{i:06x}" for i in itertools.count(0x100001))
        self.node_tokens = []
        for i, n in enumerate(nodes):
            fill, stroke = next(tokens), next(tokens)
            self.node_tokens.append((fill, stroke))
            attrs = {"peripheries": str(n.peripheries)} if n.peripheries != 1 else {}
            g.node(n.name, label=label_text(n.name), shape=n.shape, fillcolor=fill, color=stroke,
                   style=_style("filled", n.corners), tooltip=f"nbstip{i}x",
                   **{"class": f"nbstcls{i}x"}, **attrs)
        self.edge_tokens = []
        for e in edges:
            color = next(tokens)
            self.edge_tokens.append(color)
            g.edge(e.up, e.down, color=color, style="dashed" if e.kind == "explicit" else "solid",
                   tooltip=tooltip_text([e.tooltip]), **{"class": f"nbsteps-{e.kind}"})
        svg = render(g, "svg").decode("utf-8", "replace")
        start = svg.find("<svg")
        self.svg = svg[start:] if start >= 0 else svg
        #: text and placeholders alternate: [text, token, text, token, ..., text]
        self.parts = _TOKEN.split(self.svg)

    def fill(self, nodes, edges) -> str:
        sub: dict[str, str] = {}
        for i, (n, (fill, stroke)) in enumerate(zip(nodes, self.node_tokens)):
            sub[f'fill="{fill}"'] = f'fill="{n.fill}"'
            extra = f' stroke-width="{n.penwidth:g}"' if n.penwidth != 1 else ""
            if n.dash:
                extra += f' stroke-dasharray="{_DASH[n.dash]}"'
            sub[f'stroke="{stroke}"'] = f'stroke="{n.stroke}"{extra}'
            tip = "\n".join(_clean(line, 600) for line in n.tooltip)
            sub[f"nbstip{i}x"] = html.escape(tip, quote=True).replace("\n", "&#10;")
            sub[f"nbstcls{i}x"] = f"nbsteps-step nbsteps-{n.key}"
        for e, color in zip(edges, self.edge_tokens):
            sub[f'fill="{color}"'] = f'fill="{e.color}"'
            width = f' stroke-width="{e.penwidth:g}"' if e.penwidth != 1 else ""
            sub[f'stroke="{color}"'] = f'stroke="{e.color}"{width}'
        parts = self.parts[:]
        for i in range(1, len(parts), 2):
            parts[i] = sub.get(parts[i], parts[i])
        return "".join(parts)


_templates: "OrderedDict[tuple, _Template]" = OrderedDict()
_templates_lock = threading.Lock()


def live_svg(plan) -> tuple[str, dict]:
    """The plan's graph as SVG text (no XML prolog, no legend: live views
    show an HTML legend), plus what it shows: ``{"statuses", "kinds",
    "critical", "layouts"}``. A new ``dot`` layout is made only when the
    steps, edges or a node's shape change; otherwise the last layout is
    recoloured (a few milliseconds at 200 steps)."""
    names, nodes, edges, path = looks(plan, preview=False)
    key = (tuple(names), tuple((e.up, e.down, e.kind) for e in edges), tuple(n.layout for n in nodes))
    with _templates_lock:
        template = _templates.get(key)
        if template is not None:
            _templates.move_to_end(key)
    made = template is None
    if made:
        template = _Template(names, nodes, edges, choose_rankdir(plan, names))
        with _templates_lock:
            _templates[key] = template
            while len(_templates) > 6:
                _templates.popitem(last=False)
    info = {
        "statuses": [k for k in LEGEND if k in {n.key for n in nodes} or (k == "stale" and any(n.stale for n in nodes))],
        "kinds": sorted({e.kind for e in edges}),
        "critical": bool(path),
        "new_layout": made,
    }
    return template.fill(nodes, edges), info


def legend_html(statuses, kinds=(), critical: bool = False) -> str:
    """A one-line HTML legend (live views): status swatches and edge kinds."""
    items = []
    for key in statuses:
        if key == "stale":
            fill, border = STYLES[COMPLETED][0], f"2px dashed {STALE_COLOR}"
        else:
            fill, border = STYLES[key][0], "1px solid #333"
            if key == CANCELLED:
                border = "1px dotted #333"
        radius = "0" if key in (FAILED, BLOCKED, CANCELLED) else "4px"
        clip = ";clip-path:polygon(30% 0,70% 0,100% 30%,100% 70%,70% 100%,30% 100%,0 70%,0 30%)" if key == FAILED else ""
        text = "restored (cached)" if key == "cached" else key
        items.append(
            f'<span style="display:inline-flex;align-items:center;margin-right:10px">'
            f'<span style="display:inline-block;width:14px;height:11px;background:{fill};border:{border};'
            f'border-radius:{radius}{clip};margin-right:4px"></span>{html.escape(text)}</span>')
    lines = [(k, "solid" if k == "inferred" else "dashed", EDGE_COLOR, 1) for k in kinds]
    if critical:
        lines.append(("critical path", "solid", CRITICAL_COLOR, 3))
    for text, style, color, width in lines:
        items.append(
            f'<span style="display:inline-flex;align-items:center;margin-right:10px">'
            f'<span style="display:inline-block;width:22px;border-top:{width}px {style} {color};margin-right:4px">'
            f'</span>{html.escape(text)}</span>')
    return f'<div class="nbsteps-legend" style="font-size:11px;color:#444;margin:2px 0">{"".join(items)}</div>'


# -- rendering ------------------------------------------------------------------
def _missing_dot() -> NbstepsError:
    return NbstepsError(INSTALL_HINT)


def render(graph, fmt: str = "svg") -> bytes:
    """Render *graph* with ``dot``; a clear NbstepsError when ``dot`` is missing."""
    try:
        return graph.pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise _missing_dot() from None


def dot_available() -> bool:
    import shutil

    return shutil.which("dot") is not None


FORMATS = ("svg", "png", "dot")


def graph_command(plan, fmt: str | None = None, output: str | None = None):
    """``%steps graph [--format svg|png|dot] [--output FILE]``.

    Without *output*: returns something the notebook displays (the Digraph,
    which renders as SVG; or the DOT source text for ``--format dot``; PNG as
    an IPython Image). With *output*: writes the file (format from *fmt*, else
    from the suffix, else SVG) and returns None.
    """
    if fmt is not None and fmt not in FORMATS:
        raise NbstepsError(f"unknown graph format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    graph = plan_graph(plan)
    if output is None:
        if fmt == "dot":
            return _DotSource(graph.source)
        if not dot_available():
            raise _missing_dot()
        if fmt == "png":
            from IPython.display import Image

            return Image(data=render(graph, "png"))
        return graph
    path = os.fspath(output)
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if fmt is None:
        fmt = {"svg": "svg", "png": "png", "dot": "dot", "gv": "dot"}.get(suffix)
        if fmt is None:
            if suffix:
                raise NbstepsError(
                    f"cannot tell the graph format from {path!r}; use a .svg, .png or .dot file name "
                    f"or --format svg|png|dot.")
            fmt = "svg"
    data = graph.source.encode("utf-8") if fmt == "dot" else render(graph, fmt)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    print(f"nbsteps: wrote {path} ({fmt}, {len(plan.steps)} steps)")
    return None


class _DotSource(str):
    """DOT source text that displays as plain text in a notebook."""

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))
