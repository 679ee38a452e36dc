"""Smoke test of the real-browser harness (JupyterLab + Playwright + Chromium)."""

from __future__ import annotations

from pathlib import Path

try:
    from tests.browser import browser_marks, jupyterlab_server, stage_notebook
except ModuleNotFoundError:  # tests/ is not a package: pytest puts tests/ on sys.path
    from browser import browser_marks, jupyterlab_server, stage_notebook

ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = browser_marks(dot=False)

PRINTED = "hello from the nbsteps browser harness"

CELLS = [
    f"print({PRINTED!r})",
    "import ipywidgets as w\n"
    "from IPython.display import display\n"
    "display(w.IntProgress(value=7, min=0, max=10, description='Progress'))\n"
    "display(w.HTML('<b class=\"harness-html\">widget html here</b>'))",
    "from IPython.display import SVG\n"
    'SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60">'
    '<rect width="120" height="60" fill="teal"/>'
    '<circle cx="60" cy="30" r="20" fill="orange"/></svg>\')',
]


def _make_notebook():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    # Fake stale outputs: the harness must strip them so they cannot pass for results.
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=PRINTED + "\n")]
    nb.cells[0].execution_count = 99
    return nb


def test_notebook_runs_in_jupyterlab(tmp_path):
    nb_path = stage_notebook(_make_notebook(), tmp_path, name="harness.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        page = lab.open_and_run_all(nb_path.name, timeout=90)
        outputs = page.locator(".jp-NotebookPanel .jp-OutputArea")

        # 1. printed text (fresh output: the stale one was stripped, prompt is [1])
        text_out = outputs.locator(".jp-OutputArea-output", has_text=PRINTED)
        text_out.first.wait_for(timeout=10_000)
        prompts = lab.snapshot()["prompts"]
        assert prompts == ["[1]:", "[2]:", "[3]:"], prompts

        # 2. widgets rendered by the ipywidgets manager (not the text fallback)
        # IntProgress renders as .widget-hprogress (vertical: .widget-vprogress)
        progress = outputs.locator(".jupyter-widgets.widget-hprogress")
        progress.first.wait_for(state="visible", timeout=15_000)
        bar = progress.locator(".progress-bar")
        assert bar.count() == 1
        assert "70%" in (bar.get_attribute("style") or "")  # value=7 of max=10
        html = outputs.locator(".jupyter-widgets.widget-html", has_text="widget html here")
        html.first.wait_for(state="visible", timeout=15_000)
        assert html.locator("b.harness-html").count() == 1

        # 3. the SVG output: JupyterLab renders image/svg+xml as
        #    <div class="jp-RenderedSVG"><img src="data:image/svg+xml,..."></div>
        svg = outputs.locator('.jp-RenderedSVG[data-mime-type="image/svg+xml"] img').first
        svg.wait_for(state="visible", timeout=10_000)
        assert svg.get_attribute("src").startswith("data:image/svg+xml")
        page.wait_for_function(
            "(img) => img.complete && img.naturalWidth === 120", arg=svg.element_handle(), timeout=10_000
        )

        ARTIFACTS.mkdir(exist_ok=True)
        shot = lab.screenshot(ARTIFACTS / "browser_harness.png")
        assert shot.stat().st_size > 1000
