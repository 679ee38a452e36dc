"""The dependency graph with the real Graphviz `dot`: statuses, edges, the
critical path, escaping of user text, size, %steps graph files, and a clear
error (and nothing else broken) when `dot` is missing."""

import os
import shutil
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET

import pytest
from conftest import run_err, run_ok

import nbsteps
import nbsteps.views.graph as G
import nbsteps.views.graph_live as GL
from bench.graph_bench import random_plan
from nbsteps.errors import NbstepsError

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
XSS = "<script>alert(1)</script>"


def svg_root(svg: str | bytes):
    if isinstance(svg, bytes):
        svg = svg.decode()
    return ET.fromstring(svg[svg.find("<svg") :])


def groups(root, cls: str) -> dict:
    """{title: <g>} of the SVG's nodes or edges (class attribute contains cls)."""
    out = {}
    for g in root.iter(f"{SVG}g"):
        if cls in (g.get("class") or "").split():
            out[g.find(f"{SVG}title").text] = g
    return out


def shape(g):
    """The first drawn shape of a node or edge group."""
    for el in g.iter():
        if el.tag in (f"{SVG}path", f"{SVG}polygon", f"{SVG}ellipse"):
            return el
    raise AssertionError("no shape")


def tooltip(g) -> str:
    a = next(g.iter(f"{SVG}a"))
    return a.get(f"{XLINK}title")


def small_plan():
    """a ok; bad fails with an XSS message; blocked needs bad; d explicitly after a."""
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1\n")
    plan.add_cell("bad", "y = x + 1\nraise ValueError('<script>alert(1)</script>')\n")
    plan.add_cell("blocked", "z = y * 2\n")
    plan.add_cell("d", "w = 5\n", after=["a"])
    summary = plan.run()
    assert not summary.ok and plan["bad"].status == "failed" and plan["blocked"].status == "blocked"
    return plan


def test_svg_has_every_step_with_status_colours_and_shapes():
    plan = small_plan()
    root = svg_root(G.render(plan.graph(), "svg"))
    nodes = groups(root, "nbsteps-step")
    assert set(nodes) == {"a", "bad", "blocked", "d"}
    fills = {name: shape(g).get("fill") for name, g in nodes.items()}
    assert fills["a"] == fills["d"] == G.STYLES["completed"][0]
    assert fills["bad"] == G.STYLES["failed"][0]
    assert fills["blocked"] == G.STYLES["blocked"][0]
    assert len({fills["a"], fills["bad"], fills["blocked"]}) == 3
    # shapes differ too: failed is an octagon (polygon), completed a rounded box (path)
    assert shape(nodes["bad"]).tag == f"{SVG}polygon" and shape(nodes["a"]).tag == f"{SVG}path"
    assert "nbsteps-failed" in nodes["bad"].get("class")
    # a legend lists what is used
    legend = groups(root, "cluster")
    assert "cluster_legend" in legend
    legend_nodes = groups(root, "nbsteps-legend")
    assert {"legend.completed", "legend.failed", "legend.blocked"} <= set(legend_nodes)
    # tooltips: status, duration, attempts, error
    tip = tooltip(nodes["bad"])
    assert "bad: failed" in tip and "attempts: 1" in tip and "duration:" in tip
    assert "error: ValueError: " + XSS in tip  # as text: the parser unescaped it


def test_inferred_edges_solid_explicit_dashed():
    plan = small_plan()
    assert ("a", "d", "explicit") in plan.edges() and ("a", "bad", "inferred") in plan.edges()
    root = svg_root(G.render(plan.graph(), "svg"))
    edges = groups(root, "edge")
    explicit, inferred = edges["a->d"], edges["a->bad"]
    assert shape(explicit).get("stroke-dasharray")
    assert not shape(inferred).get("stroke-dasharray")
    assert "nbsteps-explicit" in explicit.get("class") and "nbsteps-inferred" in inferred.get("class")
    assert "reads x" in tooltip(inferred)


def test_critical_path_follows_durations():
    plan = nbsteps.Plan()

    @plan.step("start")
    def start():
        return 1

    @plan.step("slow")
    def slow(start):
        time.sleep(0.2)
        return start

    @plan.step("fast")
    def fast(start):
        return start

    @plan.step("end")
    def end(slow, fast):
        return slow + fast

    assert G.critical_path(plan.context) == []  # nothing known yet: no guess
    assert plan.run().ok
    assert G.critical_path(plan.context) == ["start", "slow", "end"]
    root = svg_root(G.render(plan.graph(), "svg"))
    edges = groups(root, "edge")
    for title in ("start->slow", "slow->end"):
        assert "nbsteps-critical" in edges[title].get("class")
        assert shape(edges[title]).get("stroke") == G.CRITICAL_COLOR
        assert float(shape(edges[title]).get("stroke-width")) > 2
    for title in ("start->fast", "fast->end"):
        assert "nbsteps-critical" not in edges[title].get("class")
        assert shape(edges[title]).get("stroke") != G.CRITICAL_COLOR
    nodes = groups(root, "nbsteps-step")
    assert shape(nodes["slow"]).get("stroke") == G.CRITICAL_COLOR
    assert "on the critical path" in tooltip(nodes["slow"])


def test_cached_and_stale_flags_are_drawn():
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1\n")
    plan.add_cell("b", "y = x + 1\n")
    assert plan.run().ok
    assert plan.run().ok  # second run keeps both as this kernel holds them (issue 24: not "restored")
    assert plan["a"].cached and plan["a"].origin == "kept"
    plan.add_cell("b", "y = x + 2\n")  # edited: its checkpoint is stale
    assert plan["b"].stale
    root = svg_root(G.render(plan.graph(), "svg"))
    nodes = groups(root, "nbsteps-step")
    assert shape(nodes["a"]).get("fill") == G.STYLES["kept"][0] != G.STYLES["cached"][0]
    assert shape(nodes["b"]).get("stroke") in (G.STALE_COLOR, G.CRITICAL_COLOR)
    assert shape(nodes["b"]).get("stroke-dasharray")
    assert "stale" in tooltip(nodes["b"]) and "kept (already in this kernel)" in tooltip(nodes["a"])
    assert {"legend.kept", "legend.stale"} <= set(groups(root, "nbsteps-legend"))


@pytest.mark.parametrize(
    "message",
    [
        XSS,
        '"><script>alert(1)</script>',
        '<b>bold</b> & &lt;not an entity&gt; \\N \\l \\" back\\slash',
        "line one\nline two\ttab \x1b[31mred\x1b[0m \x00nul",
        "<<html label>>",
    ],
)
def test_user_text_is_escaped_for_dot_and_svg(message):
    plan = nbsteps.Plan()

    @plan.step("boom")
    def boom():
        raise RuntimeError(message)

    plan.run()
    for svg in (G.render(plan.graph(), "svg").decode(), GL.live_svg(plan.context)[0]):
        assert "<script" not in svg.lower()
        root = svg_root(svg)  # well-formed XML
        tip = tooltip(groups(root, "nbsteps-step")["boom"])
        expected = message.replace("\x1b[31m", "").replace("\x1b[0m", "").replace("\x00", "")
        assert "error: RuntimeError: " + expected.split("\n")[0] in tip
    if message == XSS:
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in G.render(plan.graph(), "svg").decode()


def test_dot_source_never_takes_user_text_as_html_label():
    plan = nbsteps.Plan()

    @plan.step("boom")
    def boom():
        raise RuntimeError("<<b>x</b>>")

    plan.run()
    source = plan.graph().source
    assert "tooltip=<" not in source and "label=<" not in source


def test_200_steps_render_in_reasonable_time():
    plan = random_plan(200, fail=100)
    plan.run()
    t0 = time.perf_counter()
    graph = plan.graph()
    svg = G.render(graph, "svg")
    elapsed = time.perf_counter() - t0
    root = svg_root(svg)
    nodes = groups(root, "nbsteps-step")
    assert len(nodes) == 200
    assert graph.graph_attr["rankdir"] in ("TB", "LR")
    assert elapsed < 30, f"200-step graph took {elapsed:.1f}s"  # ~0.2 s on a laptop; generous for CI
    # the live view's recolouring of an existing layout is much cheaper
    GL.live_svg(plan.context)
    t0 = time.perf_counter()
    svg, info = GL.live_svg(plan.context)
    assert not info["new_layout"] and time.perf_counter() - t0 < 10
    assert len(groups(svg_root(svg), "nbsteps-step")) == 200


def test_small_plans_read_left_to_right():
    plan = small_plan()
    assert plan.graph().graph_attr["rankdir"] == "LR"
    chain = random_plan(60)
    assert chain.graph().graph_attr["rankdir"] in ("TB", "LR")


def test_live_svg_recolours_without_new_layout():
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1\n")
    plan.add_cell("b", "y = x + 1\n")
    svg1, info1 = GL.live_svg(plan.context)
    assert info1["statuses"] == ["pending"]
    assert plan.run().ok
    svg2, info2 = GL.live_svg(plan.context)
    assert not info2["new_layout"]  # same steps and shapes: recoloured
    nodes = groups(svg_root(svg2), "nbsteps-step")
    assert {shape(g).get("fill") for g in nodes.values()} == {G.STYLES["completed"][0]}
    assert "nbsteps-completed" in nodes["a"].get("class")
    assert "a: completed" in tooltip(nodes["a"])
    plan.add_cell("b", "y = x + 1\nraise ValueError('no')\n")
    plan.run()
    svg3, info3 = GL.live_svg(plan.context)
    assert info3["new_layout"]  # failed is an octagon: a new layout
    assert shape(groups(svg_root(svg3), "nbsteps-step")["b"]).get("fill") == G.STYLES["failed"][0]


def test_nbsteps_graph_stays_callable_after_the_module_is_imported(shell):
    run_ok(shell, "%%step a\nx = 1")
    import nbsteps.views.graph  # noqa: F401

    g = nbsteps.graph()
    assert isinstance(g, G.graphviz.Digraph) and "a" in g.source


def test_steps_graph_magic_writes_files(shell, tmp_path, capsys):
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%%step b\ny = x + 1")
    for name in ("g.svg", "g.png", "g.dot", "sub/dir/g2.svg"):
        run_ok(shell, f"%steps graph --output {tmp_path / name}")
        assert f"wrote {tmp_path / name}" in capsys.readouterr().out
    svg = (tmp_path / "g.svg").read_text()
    assert set(groups(svg_root(svg), "nbsteps-step")) == {"a", "b"}
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    dot = (tmp_path / "g.dot").read_text()
    assert "digraph nbsteps" in dot and "a -> b" in dot
    assert (tmp_path / "sub/dir/g2.svg").exists()
    # --format wins over the suffix; no suffix means svg
    run_ok(shell, f"%steps graph --format png --output {tmp_path / 'x.img'}")
    assert (tmp_path / "x.img").read_bytes().startswith(b"\x89PNG")
    run_ok(shell, f"%steps graph --output {tmp_path / 'plain'}")
    assert (tmp_path / "plain").read_text().lstrip().startswith("<?xml")
    err = run_err(shell, f"%steps graph --output {tmp_path / 'g.jpeg'}")
    assert isinstance(err, NbstepsError) and ".svg, .png or .dot" in str(err)


def test_steps_graph_magic_returns_displayable_objects(shell):
    run_ok(shell, "%%step a\nx = 1")
    g = run_ok(shell, "%steps graph")
    assert isinstance(g, G.graphviz.Digraph)
    bundle = g._repr_mimebundle_()
    assert "image/svg+xml" in bundle and "<title>a</title>" in bundle["image/svg+xml"]
    src = run_ok(shell, "%steps graph --format dot")
    assert str(src).startswith("// nbsteps plan")
    png = run_ok(shell, "%steps graph --format png")
    assert png.data.startswith(b"\x89PNG")


MISSING_DOT = textwrap.dedent(r"""
    import shutil, sys
    assert shutil.which("dot") is None, shutil.which("dot")
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbsteps")
    ok = lambda cell: ip.run_cell(cell).success or sys.exit("cell failed: " + cell)
    ok("%%step a\nx = 1")
    ok("%%step b\ny = x + 1")
    # the graph command says how to install dot ...
    r = ip.run_cell("%steps graph --output out.svg")
    err = r.error_in_exec
    print("ERROR:", type(err).__name__, err)
    # ... and everything else still works: DOT source, runs, results, exports
    ok("%steps graph --output out.dot")
    ok("%steps run --force-all")
    ok("%steps export results.html")
    import nbsteps
    src = nbsteps.graph().source
    assert "a -> b" in src
    bundle = nbsteps.graph()._repr_mimebundle_()
    print("REPR:", bundle.get("text/plain", "")[:60])
    print("Y =", ip.user_ns["y"])
    # the live view shows the hint where the graph would be, and the rest
    from nbsteps.views.live import LiveView
    view = LiveView(nbsteps.current())
    view.draw()
    print("VIEW:", "apt-get install graphviz" in view.graph.value, "nbsteps-results" in view.table.value,
          "2/2 completed" in view.bar.value)
    # the static picture says the same where the graph would be
    from nbsteps.views.static import static_bundle
    bundle = static_bundle(nbsteps.current())
    page = bundle["text/html"]
    print("STATIC:", "apt-get install graphviz" in page, "nbsteps-results" in page)
""")


def test_missing_dot_gives_install_hint_and_nothing_else_breaks(tmp_path):
    bindir = tmp_path / "bin"  # a PATH without Graphviz (real condition: no `dot` on PATH)
    bindir.mkdir()
    env = dict(os.environ, PATH=str(bindir), PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", MISSING_DOT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "ERROR: NbstepsError" in out
    assert "apt-get install graphviz" in out and "conda install graphviz" in out
    assert "REPR: Graphviz's `dot` program is not installed" in out
    assert "Y = 2" in out
    assert "VIEW: True True True" in out
    assert "STATIC: True True" in out
    assert (tmp_path / "out.dot").exists() and not (tmp_path / "out.svg").exists()
    assert (tmp_path / "results.html").exists()
    # the one-line message, not a traceback through nbsteps
    assert "graph.py" not in out
