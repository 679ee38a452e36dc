"""The live view in a real browser: JupyterLab in Debian's chromium (Playwright)
runs a small plan with a failing step and a slow one. While the run is live its
cell shows the widget (graph SVG nodes, the failed node in the failure colour,
the table, the segmented progress); when the run ends the widget is gone,
replaced by the static picture (the graph as an image, the same table). The
failing step's `<script>` error is only ever text."""

from __future__ import annotations

import base64
from pathlib import Path

try:
    from tests.browser import browser_marks, jupyterlab_server, stage_notebook
except ModuleNotFoundError:  # tests/ is not a package: pytest puts tests/ on sys.path
    from browser import browser_marks, jupyterlab_server, stage_notebook

ARTIFACTS = Path(__file__).parent / "artifacts"
FAILED_FILL = "#ff6b6b"
FAILED_RGB = "rgb(255, 107, 107)"
STEPS = ["a", "b", "bad", "c", "slow"]
XSS = "<script>alert(1)</script>"

pytestmark = browser_marks()

CELLS = [
    "%load_ext nbsteps",
    "%%step a --define\nx = 1",
    "%%step b --define\ny = x + 1",
    # built at run time: a raw occurrence on the page could only come from nbsteps
    "%%step bad --define\nz = x\nraise ValueError('<scr' + 'ipt>alert(1)</scr' + 'ipt>')",
    "%%step c --define\nw = z + y",
    # keeps the run live long enough to look at the widget
    "%%step slow --define\nimport time\ntime.sleep(6)\ns = 1",
    "%steps run --allow-failures",
    "%steps show",
]
RUN, SHOW = 6, 7

# Read the rendered widget of one cell's view (the widget classes below only
# exist on rendered ipywidgets).
VIEW_JS = r"""(cell) => {
  const graph = cell.querySelector('.jupyter-widgets.nbsteps-graph-widget');
  const table = cell.querySelector('.jupyter-widgets.nbsteps-table-widget');
  const bar = cell.querySelector('.jupyter-widgets.nbsteps-progress-widget');
  if (!graph || !table || !bar) return null;
  const nodes = {};
  for (const g of graph.querySelectorAll('svg g.node.nbsteps-step')) {
    const shape = g.querySelector('path, polygon, ellipse');
    nodes[g.querySelector('title').textContent] = {
      cls: g.getAttribute('class'),
      fill: shape.getAttribute('fill'),
      computed: getComputedStyle(shape).fill,
      tip: (g.querySelector('a') || g).getAttribute('xlink:title') || '',
    };
  }
  const rows = Array.from(table.querySelectorAll('table.nbsteps-results tbody tr')).map(
    tr => ({cls: tr.className, cells: Array.from(tr.children).map(td => td.textContent)}));
  return {nodes, rows, scripts: cell.querySelectorAll('.jp-OutputArea script').length, bar: bar.innerText};
}"""

# Read the static picture of one cell.
STATIC_JS = r"""(cell) => {
  const img = cell.querySelector('.jp-OutputArea img.nbsteps-graph-img');
  const rows = Array.from(cell.querySelectorAll('table.nbsteps-results tbody tr')).map(
    tr => ({cls: tr.className, cells: Array.from(tr.children).map(td => td.textContent)}));
  return {
    widgets: cell.querySelectorAll('.jupyter-widgets').length,
    img: img ? {src: img.getAttribute('src'), w: img.naturalWidth, h: img.naturalHeight,
                done: img.complete} : null,
    rows,
    text: cell.querySelector('.jp-OutputArea') ? cell.querySelector('.jp-OutputArea').innerText : '',
    scripts: cell.querySelectorAll('.jp-OutputArea script').length,
  };
}"""


def svg_of(src: str) -> str:
    assert src.startswith("data:image/svg+xml;base64,"), src[:60]
    return base64.b64decode(src.split(",", 1)[1]).decode("utf-8")


def test_live_widget_during_the_run_then_a_static_picture(tmp_path):
    nb_path = stage_notebook(CELLS, tmp_path, name="live_view.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        # any alert() in any page of this browser would be recorded here
        lab.context.add_init_script(
            "window.__alerts = []; window.alert = (m) => { window.__alerts.push(String(m)); };"
        )
        page = lab.open(nb_path.name, timeout=120)
        lab.run_all_cells()
        cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell")
        run_cell = cells.nth(RUN)

        # 1. while `slow` runs: the live widget, with the failure already drawn
        page.wait_for_function(
            "(cell) => !!cell.querySelector('.nbsteps-graph-widget g.node.nbsteps-failed')",
            arg=run_cell.element_handle(),
            timeout=60_000,
        )
        view = run_cell.evaluate(VIEW_JS)
        assert view is not None, "live view widgets not rendered"
        assert sorted(view["nodes"]) == sorted(STEPS), view["nodes"].keys()
        bad = view["nodes"]["bad"]
        assert "nbsteps-failed" in bad["cls"]
        assert bad["fill"] == FAILED_FILL and bad["computed"] == FAILED_RGB, bad
        for ok in ("a", "b"):
            assert view["nodes"][ok]["fill"] != FAILED_FILL
        assert XSS in bad["tip"]  # the tooltip shows the error as text
        assert [r["cells"][0] for r in view["rows"]] == STEPS
        assert view["scripts"] == 0
        assert "completed" in view["bar"] and "running" in view["bar"]
        ARTIFACTS.mkdir(exist_ok=True)
        run_cell.scroll_into_view_if_needed()
        lab.screenshot(ARTIFACTS / "browser_live_widget.png")

        # 2. the run is over: the widget is gone, the static picture is there
        lab.wait_all_run(page)
        for index in (RUN, SHOW):
            cell = cells.nth(index)
            page.wait_for_function(
                "(cell) => { const i = cell.querySelector('img.nbsteps-graph-img');"
                " return i && i.complete && i.naturalWidth > 0; }",
                arg=cell.element_handle(),
                timeout=30_000,
            )
            static = cell.evaluate(STATIC_JS)
            assert static["widgets"] == 0, f"cell {index}: a widget is still displayed"
            svg = svg_of(static["img"]["src"])
            assert all(f"<title>{s}</title>" in svg for s in STEPS)
            assert f'fill="{FAILED_FILL}"' in svg and "<script" not in svg.lower()
            assert [r["cells"][0] for r in static["rows"]] == STEPS
            failed_row = static["rows"][2]
            assert "nbsteps-failed" in failed_row["cls"] and XSS in " ".join(failed_row["cells"])
            assert static["scripts"] == 0
            assert "3/5 completed" in static["text"] and "1 failed: bad" in static["text"]
        assert page.evaluate("window.__alerts") == []
        cells.nth(RUN).scroll_into_view_if_needed()
        shot = lab.screenshot(ARTIFACTS / "browser_widget.png")
        assert shot.stat().st_size > 1000
