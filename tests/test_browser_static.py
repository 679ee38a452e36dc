"""What lasts, in a real browser (JupyterLab in Debian's chromium, Playwright):

- a committed teaching notebook opened *untrusted* and not run (what Binder
  shows first) shows the graph picture and the results table under its runs,
  its ``%steps show`` and ``%steps graph``, and no widget error;
- a plan-mode notebook run in JupyterLab shows each step's figure and print
  under the step's own cell (not under ``%steps run``); saved, its kernel shut
  down and reopened, it still shows them all, with no "model not found".
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

try:
    from tests.browser import browser_marks, jupyterlab_server, saved_notebook, stage_notebook
except ModuleNotFoundError:  # tests/ is not a package: pytest puts tests/ on sys.path
    from browser import browser_marks, jupyterlab_server, saved_notebook, stage_notebook

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = browser_marks()

# per code cell: its first line, the graph pictures (decoded), the results tables' rows,
# step figures, widget errors and text
CELLS_JS = r"""() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  return Array.from(panel.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(cell => {
    const out = cell.querySelector('.jp-OutputArea');
    const imgs = (sel) => Array.from(cell.querySelectorAll(sel)).map(
      i => ({w: i.naturalWidth, h: i.naturalHeight, done: i.complete,
             data: (i.getAttribute('src') || '').startsWith('data:')}));
    return {
      source: (cell.querySelector('.jp-InputArea .cm-content') || {innerText: ''}).innerText.split('\n')[0],
      graphs: imgs('.jp-OutputArea img.nbsteps-graph-img'),
      figures: imgs('.jp-OutputArea .jp-RenderedImage img, .jp-OutputArea img.nbsteps-figure'),
      outputs: Array.from(cell.querySelectorAll('.jp-OutputArea-child')).map(
        o => ({h: o.getBoundingClientRect().height, text: o.innerText.trim()})),
      rows: cell.querySelectorAll('.jp-OutputArea table.nbsteps-results tbody tr').length,
      stepOutput: cell.querySelectorAll('.jp-OutputArea .nbsteps-step-output').length,
      widgets: cell.querySelectorAll('.jp-OutputArea .jupyter-widgets').length,
      inlineSvg: cell.querySelectorAll('.jp-OutputArea .jp-RenderedHTMLCommon svg').length,
      text: out ? out.innerText : '',
    };
  });
}"""

TRUST_JS = r"""() => {
  const el = document.querySelector('#jp-main-statusbar [title*="trusted"]')
          || document.querySelector('#jp-main-statusbar [aria-label*="trusted"]');
  return el ? (el.getAttribute('title') || el.getAttribute('aria-label')) : null;
}"""


def _cells(page) -> list[dict]:
    return page.evaluate(CELLS_JS)


def _wait_images(page, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('img.nbsteps-graph-img, "
        "img.nbsteps-figure, .jp-RenderedImage img'))"
        ".every(i => i.complete && i.naturalWidth > 0)",
        timeout=timeout_ms,
    )


def _assert_no_widget_errors(cells: list[dict]) -> None:
    for c in cells:
        assert "Error displaying widget" not in c["text"] and "model not found" not in c["text"], c["source"]
        # an inline SVG stripped by the sanitizer leaves its labels as loose text
        assert not re.search(r"\w+->\w+", c["text"]), (c["source"], c["text"][:300])


@pytest.mark.parametrize("name", ["01-getting-started.ipynb", "04-data-pipeline.ipynb"])
def test_committed_notebook_untrusted_shows_the_pictures(tmp_path, name):
    shutil.copy(ROOT / "notebooks" / name, tmp_path / name)  # with its saved outputs, never signed here
    with jupyterlab_server(tmp_path) as lab:
        page = lab.open(name, timeout=120)
        _wait_images(page)
        trust = page.evaluate(TRUST_JS)
        assert trust is None or "not trusted" in trust.lower(), trust
        cells = _cells(page)
        _assert_no_widget_errors(cells)
        runs = [c for c in cells if c["source"].startswith(("%steps run", "%steps show"))]
        assert runs
        n_steps = len({c["source"].split()[1] for c in cells if c["source"].startswith("%%step")})
        for c in runs:
            assert len(c["graphs"]) == 1 and c["graphs"][0]["w"] > 50 and c["graphs"][0]["data"], c
            assert c["rows"] == n_steps, c
            assert c["widgets"] == 0 and c["inlineSvg"] == 0
        graphs = [c for c in cells if c["source"].startswith("%steps graph")]
        assert all(len(c["graphs"]) == 1 and c["graphs"][0]["w"] > 50 for c in graphs)
        steps = [c for c in cells if c["source"].startswith("%%step")]
        assert steps and all(c["stepOutput"] == 1 for c in steps)
        if name.startswith("04"):
            # the two charts of the parallel analyses, each under the cell that drew it
            figs = {c["source"]: len(c["figures"]) for c in cells if c["figures"]}
            assert figs == {"%%step by_hour": 1, "%%step by_station": 1}, figs
        ARTIFACTS.mkdir(exist_ok=True)
        run_cell = page.locator(".jp-NotebookPanel .jp-CodeCell").filter(has_text="%steps run").first
        run_cell.scroll_into_view_if_needed()
        lab.screenshot(ARTIFACTS / f"untrusted_{name[:2]}.png")


CELLS = [
    "%load_ext nbsteps\n%steps mode plan",
    "%%step left\nimport matplotlib.pyplot as plt\nprint('left draws a line')\n"
    "plt.figure(figsize=(3, 2))\nplt.plot([1, 3, 2], color='tab:blue')\nplt.title('left')\nx = 1",
    "%%step right\nimport matplotlib.pyplot as plt\nprint('right draws bars')\n"
    "plt.figure(figsize=(3, 2))\nplt.bar(['p', 'q'], [3, 1], color='tab:orange')\nplt.title('right')\ny = 2",
    "%%step both\nz = x + y\nz",
    "%steps run",
    "%steps show",
]


def _check_plan_mode_outputs(page) -> None:
    cells = _cells(page)
    _assert_no_widget_errors(cells)
    left, right, both, run, show = cells[1:]
    for cell, said in ((left, "left draws a line"), (right, "right draws bars")):
        assert len(cell["figures"]) == 1 and cell["figures"][0]["w"] > 50, cell
        assert said in cell["text"] and "completed in" in cell["text"], cell["text"]
        # the slots the cell reserved and the step did not fill take no room
        empty = [o for o in cell["outputs"] if not o["text"] and o["h"] < 60]  # a figure is taller
        assert len(empty) >= 1 and all(o["h"] <= 6 for o in empty), cell["outputs"]
    assert "3" in both["text"] and both["figures"] == []
    for cell in (run, show):
        assert cell["figures"] == [] and "draws" not in cell["text"], "a step's output under the run cell"
        assert len(cell["graphs"]) == 1 and cell["rows"] == 3 and cell["widgets"] == 0


def test_plan_figures_under_their_cells_and_after_save_and_reopen(tmp_path):
    nb_path = stage_notebook(CELLS, tmp_path, name="figures.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        page = lab.open_and_run_all(nb_path.name, timeout=180)
        _wait_images(page)
        _check_plan_mode_outputs(page)
        ARTIFACTS.mkdir(exist_ok=True)
        lab.screenshot(ARTIFACTS / "plan_figures_live.png")

        # save, shut the kernel down, open the notebook again
        page.keyboard.press("Control+s")
        saved = saved_notebook(nb_path, lambda nb: all(c.outputs for c in nb.cells[1:]), what="the save")
        mimes = {m for c in saved.cells for o in c.outputs for m in o.get("data", {})}
        assert "application/vnd.jupyter.widget-view+json" not in mimes
        for kernel in lab.api("GET", "api/kernels"):
            lab.api("DELETE", f"api/kernels/{kernel['id']}")
        page.close()
        page = lab.open(nb_path.name, timeout=120)  # a new kernel, which has no widget models
        _wait_images(page)
        _check_plan_mode_outputs(page)
        lab.screenshot(ARTIFACTS / "plan_figures_reopened.png")
