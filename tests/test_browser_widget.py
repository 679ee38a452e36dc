"""The live view in a real browser: JupyterLab in Debian's chromium (Playwright)
runs a small plan with a failing step, then %steps show. The graph's SVG nodes
and the table rows are on the page, the failed node is drawn in the failure
colour, and the failing step's `<script>` error is only text."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

try:
    from tests.browser import chromium_available, jupyterlab_server, stage_notebook
except ModuleNotFoundError:  # tests/ is not a package: pytest puts tests/ on sys.path
    from browser import chromium_available, jupyterlab_server, stage_notebook

ARTIFACTS = Path(__file__).parent / "artifacts"
FAILED_FILL = "#ff6b6b"
FAILED_RGB = "rgb(255, 107, 107)"
STEPS = ["a", "b", "bad", "c"]
XSS = "<script>alert(1)</script>"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="/usr/bin/chromium not installed (apt-get install chromium)"),
    pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed"),
]

CELLS = [
    "%load_ext nbsteps",
    "%%step a --define\nx = 1",
    "%%step b --define\ny = x + 1",
    # built at run time: a raw occurrence on the page could only come from nbsteps
    "%%step bad --define\nz = x\nraise ValueError('<scr' + 'ipt>alert(1)</scr' + 'ipt>')",
    "%%step c --define\nw = z + y",
    "%steps run --allow-failures",
    "%steps show",
]

# Read the rendered widget of one cell's view (not its static fallback: the
# widget classes below only exist on the rendered ipywidgets).
VIEW_JS = r"""(cell) => {
  const graph = cell.querySelector('.jupyter-widgets.nbsteps-graph-widget');
  const table = cell.querySelector('.jupyter-widgets.nbsteps-table-widget');
  const view = cell.querySelector('.jupyter-widgets.nbsteps-view');
  if (!graph || !table || !view) return null;
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
  const progress = view.querySelector('.nbsteps-progress');
  return {
    nodes, rows,
    scripts: view.querySelectorAll('script').length,
    progress: progress ? progress.innerText : '',
    text: view.innerText,
  };
}"""


def _notebook():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    return nb


def test_live_view_in_jupyterlab(tmp_path):
    nb_path = stage_notebook(_notebook(), tmp_path, name="live_view.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        # any alert() in any page of this browser would be recorded here
        lab.context.add_init_script(
            "window.__alerts = []; window.alert = (m) => { window.__alerts.push(String(m)); };")
        page = lab.open_and_run_all(nb_path.name, timeout=180)
        cells = page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell")
        assert cells.count() == len(CELLS)
        for index in (5, 6):  # the run's own view and %steps show
            cell = cells.nth(index)
            cell.locator(".jupyter-widgets.nbsteps-graph-widget svg g.node").first.wait_for(
                state="attached", timeout=30_000)
            # the last state arrives with the final drawing: wait for the failure colour
            page.wait_for_function(
                "(cell) => !!cell.querySelector('.nbsteps-graph-widget g.node.nbsteps-failed')",
                arg=cell.element_handle(), timeout=30_000)
            view = cell.evaluate(VIEW_JS)
            assert view is not None, f"cell {index}: live view widgets not rendered"
            assert sorted(view["nodes"]) == sorted(STEPS), view["nodes"].keys()
            bad = view["nodes"]["bad"]
            assert "nbsteps-failed" in bad["cls"]
            assert bad["fill"] == FAILED_FILL and bad["computed"] == FAILED_RGB, bad
            for ok in ("a", "b"):
                assert view["nodes"][ok]["fill"] != FAILED_FILL
            assert "nbsteps-blocked" in view["nodes"]["c"]["cls"]
            assert XSS in bad["tip"]  # the tooltip shows the error as text
            assert [r["cells"][0] for r in view["rows"]] == STEPS
            failed_row = view["rows"][2]
            assert failed_row["cls"] == "nbsteps-failed" and XSS in " ".join(failed_row["cells"])
            assert view["scripts"] == 0
            assert "4/4" in view["progress"]
            assert "1 failed: bad" in view["text"]
        assert page.evaluate("window.__alerts") == []
        ARTIFACTS.mkdir(exist_ok=True)
        cells.nth(6).scroll_into_view_if_needed()
        shot = lab.screenshot(ARTIFACTS / "browser_widget.png")
        assert shot.stat().st_size > 1000
