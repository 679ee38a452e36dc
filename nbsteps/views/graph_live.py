"""Live rendering of the graph: laid out once by ``dot``, recoloured many times.

The live view redraws the graph at every status change; running ``dot`` each
time would dominate a run. The SVG is laid out once per graph shape with
placeholder colours and tooltips, then only the placeholders are substituted.
"""

from __future__ import annotations

import html
import itertools
import re
import secrets
import threading
from collections import OrderedDict

from nbsteps.model.status import BLOCKED, CANCELLED, FAILED
from nbsteps.views.graph import (
    CONFIRM_COLOR,
    CRITICAL_COLOR,
    EDGE_COLOR,
    EDGE_STYLES,
    LARGE,
    LEGEND,
    LEGEND_TEXT,
    STALE_COLOR,
    STALE_FILL,
    STYLES,
    PlanGraph,
    choose_rankdir,
    clip_text,
    graph_attrs,
    label_text,
    looks,
    render,
    style_attr,
    tooltip_text,
)

#: stroke-dasharray Graphviz writes for dashed / dotted lines
_DASH = {"dashed": "5,2", "dotted": "1,5"}


class _Template:
    """An SVG laid out by ``dot`` with placeholder colours, tooltips and
    classes, which :meth:`fill` replaces by the current state's (no new
    layout while only colours, borders or tooltips change)."""

    def __init__(self, names, nodes, edges, rankdir):
        large = len(names) > LARGE
        # tooltip and class placeholders carry a random part: a step named like one
        # (``nbstip0x``) is drawn as its name, not replaced by a tooltip
        nonce = secrets.token_hex(6)
        self.tip, self.cls = f"nbstip{nonce}n{{}}x", f"nbstcls{nonce}n{{}}x"
        token = re.compile(rf'((?:fill|stroke)="#[0-9a-f]{{6}}"|nbs(?:tip|tcls){nonce}n\d+x)')
        g = PlanGraph("nbsteps", comment="nbsteps plan (live)")
        graph_attrs(g, rankdir, large)
        # unique placeholder colours; the template uses no other hex colour
        tokens = (f"#{i:06x}" for i in itertools.count(0x100001))
        self.node_tokens = []
        for i, n in enumerate(nodes):
            fill, stroke = next(tokens), next(tokens)
            self.node_tokens.append((fill, stroke))
            attrs = {"peripheries": str(n.peripheries)} if n.peripheries != 1 else {}
            g.node(
                n.name,
                label=label_text(n.name),
                shape=n.shape,
                fillcolor=fill,
                color=stroke,
                style=style_attr("filled", n.corners),
                tooltip=self.tip.format(i),
                **{"class": self.cls.format(i)},
                **attrs,
            )
        self.edge_tokens = []
        for e in edges:
            color = next(tokens)
            self.edge_tokens.append(color)
            g.edge(
                e.up,
                e.down,
                color=color,
                style=e.style,
                tooltip=tooltip_text([e.tooltip]),
                **{"class": f"nbsteps-{e.kind}"},
            )
        svg = render(g, "svg").decode("utf-8", "replace")
        start = svg.find("<svg")
        self.svg = svg[start:] if start >= 0 else svg
        #: text and placeholders alternate: [text, token, text, token, ..., text]
        self.parts = token.split(self.svg)

    def fill(self, nodes, edges) -> str:
        sub: dict[str, str] = {}
        for i, (n, (fill, stroke)) in enumerate(zip(nodes, self.node_tokens, strict=True)):
            sub[f'fill="{fill}"'] = f'fill="{n.fill}"'
            extra = f' stroke-width="{n.penwidth:g}"' if n.penwidth != 1 else ""
            if n.dash:
                extra += f' stroke-dasharray="{_DASH[n.dash]}"'
            sub[f'stroke="{stroke}"'] = f'stroke="{n.stroke}"{extra}'
            tip = "\n".join(clip_text(line, 600) for line in n.tooltip)
            sub[self.tip.format(i)] = html.escape(tip, quote=True).replace("\n", "&#10;")
            sub[self.cls.format(i)] = f"nbsteps-step nbsteps-{n.key}"
        for e, color in zip(edges, self.edge_tokens, strict=True):
            sub[f'fill="{color}"'] = f'fill="{e.color}"'
            width = f' stroke-width="{e.penwidth:g}"' if e.penwidth != 1 else ""
            sub[f'stroke="{color}"'] = f'stroke="{e.color}"{width}'
        parts = self.parts[:]
        for i in range(1, len(parts), 2):
            parts[i] = sub.get(parts[i], parts[i])
        return "".join(parts)


_templates: "OrderedDict[tuple, _Template]" = OrderedDict()
_templates_lock = threading.Lock()


def _laid_out(ctx) -> tuple:
    """``(nodes, edges, path, template, made)``: :func:`looks` now and the ``dot`` layout of
    that structure (*made*: laid out by this call, not found among the last ones)."""
    names, nodes, edges, path = looks(ctx, preview=False)
    key = (tuple(names), tuple((e.up, e.down, e.kind) for e in edges), tuple(n.layout for n in nodes))
    with _templates_lock:
        template = _templates.get(key)
        if template is not None:
            _templates.move_to_end(key)
    made = template is None
    if made:
        template = _Template(names, nodes, edges, choose_rankdir(ctx, names))
        with _templates_lock:
            _templates[key] = template
            while len(_templates) > 6:
                _templates.popitem(last=False)
    return nodes, edges, path, template, made


def lay_out(ctx) -> bool:
    """Make the ``dot`` layout of the plan's graph as it is now, if it is not one of the last
    ones (whether it made one): the next :func:`live_svg` of that structure only recolours it. A
    live view calls it on a thread of its own when its run starts (the steps, edges and shapes a
    run ends with are most often those it starts with), so that the static picture at the end
    does not wait for ``dot`` (~5 ms of the kernel's thread at 80 steps, more when loaded)."""
    return _laid_out(ctx)[4]


def live_svg(ctx) -> tuple[str, dict]:
    """The plan's graph as SVG text (no XML prolog, no legend: live views
    show an HTML legend), plus what it shows: ``{"statuses", "kinds",
    "critical", "layouts"}``. A new ``dot`` layout is made only when the
    steps, edges or a node's shape change; otherwise the last layout is
    recoloured (a few milliseconds at 200 steps)."""
    nodes, edges, path, template, made = _laid_out(ctx)
    info = {
        "statuses": [
            k
            for k in LEGEND
            if k in {n.key for n in nodes if not n.stale} or (k == "stale" and any(n.stale for n in nodes))
        ],
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
            fill, border = STALE_FILL, f"2px dashed {STALE_COLOR}"
        else:
            fill, border = STYLES[key][0], "1px solid #333"
            if key == CANCELLED:
                border = "1px dotted #333"
            elif key == "confirming":
                border = f"2px solid {CONFIRM_COLOR}"
        radius = "0" if key in (FAILED, BLOCKED, CANCELLED) else "4px"
        text = LEGEND_TEXT.get(key, key)
        items.append(
            '<span class="nbsteps-legend-item" '
            'style="display:inline-block;margin-right:10px;white-space:nowrap">'
            f'<span style="display:inline-block;vertical-align:middle;width:14px;height:11px;'
            f'background-color:{fill};border:{border};border-radius:{radius};margin-right:4px"></span>'
            f"{html.escape(text)}</span>"
        )
    lines = [(k, EDGE_STYLES.get(k, "solid"), EDGE_COLOR, 1) for k in kinds]
    if critical:
        lines.append(("critical path", "solid", CRITICAL_COLOR, 3))
    for text, style, color, width in lines:
        items.append(
            '<span class="nbsteps-legend-item" '
            'style="display:inline-block;margin-right:10px;white-space:nowrap">'
            '<span style="display:inline-block;vertical-align:middle;width:22px;'
            f"border-top:{width}px {style} {color};"
            f'margin-right:4px"></span>{html.escape(text)}</span>'
        )
    return (
        f'<div class="nbsteps-legend" style="font-size:11px;color:#444;margin:2px 0">{"".join(items)}</div>'
    )
