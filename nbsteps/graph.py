"""The dependency graph (SPEC 4): a graphviz ``Digraph`` of the plan.

One node per step, fill colour and shape by status (plus the ``cached`` and
``stale`` flags), a legend, inferred edges solid and explicit edges dashed,
the critical path drawn thick, and a tooltip per node with status, duration,
attempts and error. ``%steps graph`` renders it (``graph_command``).

User text (error messages) is escaped for DOT (backslashes, ``&`` entities,
``<...>`` HTML-like labels) and Graphviz escapes it again for SVG, so an error
such as ``<script>alert(1)</script>`` only ever appears as text.

Building the ``Digraph`` needs only the ``graphviz`` Python package; rendering
needs Graphviz's ``dot`` binary. When it is missing, rendering raises
:class:`~nbsteps.errors.NbstepsError` with the install command, and the rest
of nbsteps (and ``plan_graph(plan).source``) keeps working.
"""
from __future__ import annotations

import os
import re
import threading

import graphviz

from .errors import NbstepsError
from .step import BLOCKED, CANCELLED, COMPLETED, FAILED, PENDING, RETRYING, RUNNING

#: status -> (fill colour, shape, extra style); "cached" is completed from a checkpoint
STYLES = {
    PENDING: ("#f4f4f4", "box", "rounded"),
    RUNNING: ("#ffe66d", "box", "rounded,bold"),
    RETRYING: ("#ffb347", "box", "rounded,bold"),
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


def _clean(text, limit: int) -> str:
    text = _ANSI.sub("", str(text))
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
def critical_path(plan, names=None) -> list[str]:
    """The longest chain of the plan weighted by step durations.

    Durations come from the records (this session's runs); before any run the
    preview's estimate is used (``plan.plan().critical_path``, from earlier
    checkpoints); without any duration, the longest chain by step count.
    """
    names = plan.order(names)
    if not names:
        return []
    chosen = set(names)
    durations = {s: plan.records[s].duration for s in names if s in plan.records}
    known = {s: d for s, d in durations.items() if d is not None}
    if not known:
        try:
            path = list(plan.plan(names).critical_path)
        except Exception:  # a preview problem must not break the picture
            path = []
        if len(path) > 1:
            return path
        weight = {s: 1.0 for s in names}
    else:
        weight = {s: known.get(s, 0.0) for s in names}
    dist: dict[str, float] = {}
    pred: dict[str, str | None] = {}
    for s in names:  # plan order is topological
        ups = [u for u in plan.dependencies(s) if u in chosen]
        best = max(ups, key=lambda u: dist[u], default=None)
        dist[s] = weight[s] + (dist[best] if best is not None else 0.0)
        pred[s] = best
    end = max(names, key=lambda s: (dist[s], -names.index(s)))
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
    levels = plan.levels(names)
    depth = 1 + max(levels.values(), default=0)
    width = max((list(levels.values()).count(lv) for lv in set(levels.values())), default=1)
    return "TB" if depth >= width else "LR"


# -- building the Digraph ---------------------------------------------------
class PlanGraph(graphviz.Digraph):
    """A ``graphviz.Digraph`` that, displayed without ``dot`` installed, shows
    the install hint instead of a formatter traceback."""

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        try:
            return super()._repr_mimebundle_(include, exclude, **kwargs)
        except graphviz.ExecutableNotFound:
            return {"text/plain": INSTALL_HINT}


def _tooltip(plan, name: str, rec, status: str, critical: bool) -> str:
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
    return tooltip_text(lines)


def plan_graph(plan, names=None, *, rankdir: str | None = None, legend: bool = True,
               critical: list | None = None):
    """The plan's dependency graph as a ``graphviz.Digraph`` (not rendered)."""
    names = plan.order(names)
    chosen = set(names)
    large = len(names) > LARGE
    rankdir = rankdir or choose_rankdir(plan, names)
    path = critical if critical is not None else critical_path(plan, names)
    on_path = set(path) if len(path) > 1 else set()
    path_edges = set(zip(path, path[1:])) if len(path) > 1 else set()

    g = PlanGraph("nbsteps", comment="nbsteps plan")
    g.attr(rankdir=rankdir, bgcolor="white", tooltip="nbsteps plan",
           nodesep="0.12" if large else "0.3", ranksep="0.3" if large else "0.45",
           fontname="Helvetica", fontsize="10" if large else "12")
    g.attr("node", fontname="Helvetica", fontsize="10" if large else "12", height="0.3" if large else "0.4",
           margin="0.06,0.03" if large else "0.12,0.06", penwidth="1")
    g.attr("edge", color=EDGE_COLOR, arrowsize="0.6" if large else "0.8")

    seen = set()
    for name in names:
        rec = plan.records.get(name)
        status = node_status(rec)
        seen.add(status)
        fill, shape, extra = STYLES[status]
        style = ",".join(p for p in ("filled", extra) if p)
        attrs = {"fillcolor": fill, "shape": shape, "color": "#333333"}
        if rec is not None and rec.stale:
            seen.add("stale")
            style += ",dashed" if "dotted" not in style else ""
            attrs.update(color=STALE_COLOR, penwidth="2.5")
        if name in on_path:
            attrs.update(color=CRITICAL_COLOR, penwidth="2.5")
            if rec is not None and rec.stale:
                attrs["color"] = f"{CRITICAL_COLOR}:{STALE_COLOR}"
        step = plan.steps.get(name)
        if step is not None and step.optional:
            attrs["peripheries"] = "2"
        g.node(name, label=label_text(name), style=style, tooltip=_tooltip(plan, name, rec, status, name in on_path),
               **{"class": f"nbsteps-step nbsteps-{status}"}, **attrs)

    kinds = set()
    for name in names:
        for up, kind in plan.dependencies(name).items():
            if up not in chosen:
                continue
            kinds.add(kind)
            attrs = {"style": "dashed" if kind == "explicit" else "solid"}
            reads = [n for n, src in plan.sources(name).items() if src == up]
            why = f"reads {', '.join(sorted(reads))}" if reads else ("--after" if kind == "explicit" else kind)
            tip = f"{up} -> {name} ({kind}: {why})"
            if (up, name) in path_edges:
                attrs.update(color=CRITICAL_COLOR, penwidth="3.5", weight="3")
                tip += ", critical path"
            g.edge(up, name, tooltip=tooltip_text([tip]), **{"class": f"nbsteps-{kind}"}, **attrs)

    if legend:
        _legend(g, seen, kinds, bool(path_edges), large)
    return g


def _legend(g, statuses: set, kinds: set, critical: bool, large: bool) -> None:
    """A boxed legend of the statuses and edge kinds the graph uses: status
    nodes side by side, then one sample edge per kind."""
    keys = [k for k in LEGEND if k in statuses] or [PENDING]
    with g.subgraph(name="cluster_legend") as lg:
        lg.attr(label="legend", fontsize="9" if large else "10", color="#cccccc", style="rounded",
                fontcolor="#666666", tooltip="legend")
        lg.attr("node", fontsize="9" if large else "10", height="0.25", margin="0.05,0.02")
        row = []
        for key in keys:
            if key == "stale":
                fill, shape, extra = STYLES[COMPLETED]
                attrs = {"color": STALE_COLOR, "penwidth": "2.5"}
                extra = "rounded,dashed"
            else:
                fill, shape, extra = STYLES[key]
                attrs = {"color": "#333333"}
            text = "restored (cached)" if key == "cached" else key
            node = f"legend.{key}"
            lg.node(node, label=text, shape=shape, fillcolor=fill, style=",".join(p for p in ("filled", extra) if p),
                    tooltip=f"legend: {text}", **{"class": "nbsteps-legend"}, **attrs)
            row.append(node)
        samples = [("inferred", "solid", EDGE_COLOR, "1"), ("explicit", "dashed", EDGE_COLOR, "1"),
                   ("critical path", "solid", CRITICAL_COLOR, "3.5")]
        for text, style, color, width in samples:
            if (text == "critical path" and not critical) or (text in ("inferred", "explicit") and text not in kinds):
                continue
            a, b = f"legend.{text}.from", f"legend.{text}"
            lg.node(a, label=text, shape="plaintext", style="", **{"class": "nbsteps-legend"})
            lg.node(b, label="", shape="point", width="0.05", color="#999999")
            lg.edge(a, b, style=style, color=color, penwidth=width, tooltip=f"legend: {text} edge",
                    minlen="1")
            row.append(a)
        with lg.subgraph() as same:
            same.attr(rank="same")
            for node in row:
                same.node(node)
        for left, right in zip(row, row[1:]):
            lg.edge(left, right, style="invis")


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


_cache_lock = threading.Lock()
_svg_cache: dict[str, str] = {}


def svg_text(graph) -> str:
    """The SVG of *graph* as text, without the XML prolog (to embed in HTML).
    Identical sources render once (the live views of one plan share it)."""
    source = graph.source
    with _cache_lock:
        hit = _svg_cache.get(source)
    if hit is not None:
        return hit
    svg = render(graph, "svg").decode("utf-8", "replace")
    start = svg.find("<svg")
    svg = svg[start:] if start >= 0 else svg
    with _cache_lock:
        if len(_svg_cache) > 8:
            _svg_cache.clear()
        _svg_cache[source] = svg
    return svg


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
