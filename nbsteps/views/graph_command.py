"""``%steps graph`` and ``nbsteps run --graph``: the graph as a file or a display."""

from __future__ import annotations

import os

from nbsteps.errors import NbstepsError
from nbsteps.files import write_bytes
from nbsteps.views.graph import dot_available, missing_dot, plan_graph, render

FORMATS = ("svg", "png", "dot")


def graph_command(ctx, fmt: str | None = None, output: str | None = None):
    """``%steps graph [--format svg|png|dot] [--output FILE]``.

    Without *output*: returns something the notebook displays (the Digraph,
    which renders as SVG; or the DOT source text for ``--format dot``; PNG as
    an IPython Image). With *output*: writes the file (format from *fmt*, else
    from the suffix, else SVG) and returns None.
    """
    if fmt is not None and fmt not in FORMATS:
        raise NbstepsError(f"unknown graph format {fmt!r}; use one of: {', '.join(FORMATS)}.")
    graph = plan_graph(ctx)
    if output is None:
        if fmt == "dot":
            return _DotSource(graph.source)
        if not dot_available():
            raise missing_dot()
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
                    f"or --format svg|png|dot."
                )
            fmt = "svg"
    data = graph.source.encode("utf-8") if fmt == "dot" else render(graph, fmt)
    write_bytes(path, data)  # atomic: the previous file stays whole on any failure
    print(f"nbsteps: wrote {path} ({fmt}, {len(ctx.steps)} steps)")
    return None


class _DotSource(str):
    """DOT source text that displays as plain text in a notebook."""

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))
