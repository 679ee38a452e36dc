"""The live view's timeline, step logs and confirmation state in a real
browser: JupyterLab in Debian's chromium (Playwright) runs a small plan with a
`--confirm` step, a failing step and a slow one. While the confirmation
prompt is open (the kernel is blocked in ``input()``) the step's node and
table row show "waiting for confirmation"; clicking a graph node, a table row
or a timeline bar shows that step's log at once (switched in the browser: the
kernel is busy). Answering ``y`` lets the run finish; the static picture left
in the cell has the timeline as an image. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

try:
    from tests.browser import browser_marks, jupyterlab_server, stage_notebook
except ModuleNotFoundError:  # tests/ is not a package: pytest puts tests/ on sys.path
    from browser import browser_marks, jupyterlab_server, stage_notebook

ARTIFACTS = Path(__file__).parent / "artifacts"

pytestmark = browser_marks()

CELLS = [
    "%load_ext nbsteps",
    "%%step load --define\nimport time\ntime.sleep(1.0)\nprint('hello from load')\nx = 1",
    "%%step clean --define\nimport time\ntime.sleep(1.5)\ny = x + 1\nprint('cleaned', y)",
    "%%step bad --define\nimport time\ntime.sleep(0.5)\nz = x\nraise ValueError('no <b>luck</b>')",
    "%%step deploy --define --confirm 'ship it?'\nshipped = y",
    "%%step slow --define\nimport time\ntime.sleep(7)\ns = 1",
    "%steps run --allow-failures --workers 3",
]
RUN = 6
STEPS = ["load", "clean", "bad", "deploy", "slow"]

# The log shown now (the stack shows one child; hidden ones have no layout box).
SHOWN_LOG_JS = r"""(cell) => {
  const logs = Array.from(cell.querySelectorAll('.nbsteps-log-widget .nbsteps-log'))
    .filter(el => el.getClientRects().length > 0);
  return logs.map(el => ({step: el.getAttribute('data-log'), text: el.innerText}));
}"""

STATE_JS = r"""(cell) => {
  const node = (name) => Array.from(cell.querySelectorAll('.nbsteps-graph-widget g.node.nbsteps-step'))
    .find(g => g.querySelector('title').textContent === name);
  const row = (name) => cell.querySelector(`.nbsteps-table-widget tr[data-step="${name}"]`);
  const bars = Array.from(cell.querySelectorAll('.nbsteps-timeline-widget g.nbsteps-tl-bar'))
    .map(g => g.getAttribute('data-step'));
  const d = node('deploy'), r = row('deploy');
  return {deployNode: d ? d.getAttribute('class') : null, deployRow: r ? r.className : null,
          deployRowText: r ? r.innerText : '', bars,
          bar: (cell.querySelector('.nbsteps-progress-widget') || {}).innerText || ''};
}"""


def _shown_log(page, cell, step: str, timeout: float = 10_000) -> str:
    page.wait_for_function(
        "([cell, step]) => Array.from(cell.querySelectorAll('.nbsteps-log-widget .nbsteps-log'))"
        ".some(el => el.getClientRects().length > 0 && el.getAttribute('data-log') === step)",
        arg=[cell.element_handle(), step],
        timeout=timeout,
    )
    shown = cell.evaluate(SHOWN_LOG_JS)
    assert [s["step"] for s in shown] == [step], shown
    return shown[0]["text"]


def test_timeline_logs_on_click_and_the_confirmation_state(tmp_path):
    nb_path = stage_notebook(CELLS, tmp_path, name="live_log.ipynb")
    ARTIFACTS.mkdir(exist_ok=True)
    with jupyterlab_server(tmp_path) as lab:
        page = lab.open(nb_path.name, timeout=120)
        page.set_viewport_size({"width": 1280, "height": 1400})
        lab.run_all_cells()
        run_cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell").nth(RUN)

        # 1. deploy waits for its confirmation: a distinct state on its node and its row
        page.wait_for_function(
            "(cell) => !!cell.querySelector('.nbsteps-graph-widget g.node.nbsteps-confirming')",
            arg=run_cell.element_handle(),
            timeout=90_000,
        )
        stdin = page.locator(".jp-Stdin-input").first
        stdin.wait_for(state="visible", timeout=30_000)
        state = run_cell.evaluate(STATE_JS)
        assert "nbsteps-confirming" in state["deployNode"], state
        assert (
            "nbsteps-confirming" in state["deployRow"]
            and "waiting for confirmation" in state["deployRowText"]
        )
        assert "waiting for confirmation: deploy" in state["bar"], state["bar"]
        assert {"load", "clean", "bad"} <= set(state["bars"]), state  # the timeline has their bars
        # ... and deploy's own cell says so too
        deploy_cell = page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell").nth(4)
        status = deploy_cell.locator(".nbsteps-status").first.inner_text()
        assert "waiting for confirmation: ship it?" in status, status

        # 2. clicks show logs at once, while the kernel is blocked in input()
        run_cell.locator(".nbsteps-graph-widget g.node.nbsteps-step", has_text="deploy").first.click()
        text = _shown_log(page, run_cell, "deploy")
        assert "waiting for confirmation (ship it?)" in text
        run_cell.locator(".nbsteps-graph-widget g.node.nbsteps-step", has_text="load").first.click()
        text = _shown_log(page, run_cell, "load")
        assert "log of step load" in text and "hello from load" in text and "completed" in text
        run_cell.locator('.nbsteps-timeline-widget g.nbsteps-tl-bar[data-step="clean"]').click()
        text = _shown_log(page, run_cell, "clean")
        assert "cleaned 2" in text
        assert run_cell.locator(".nbsteps-log-picker select").input_value() == "clean"
        run_cell.locator('.nbsteps-table-widget tr[data-step="bad"]').click()
        text = _shown_log(page, run_cell, "bad")
        assert "ValueError: no <b>luck</b>" in text and "Traceback" in text  # escaped: shown as text
        assert run_cell.locator(".nbsteps-log b", has_text="luck").count() == 0
        run_cell.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        run_cell.screenshot(path=str(ARTIFACTS / "browser_live_confirm_and_log.png"))

        # 3. answer: the run goes on and ends with the static picture, timeline included
        stdin.fill("y")
        stdin.press("Enter")
        deadline = time.monotonic() + 90
        while True:
            s = lab.snapshot()
            if s["idle"] and all(re.fullmatch(r"\[\d+\]:?", p.strip()) for p in s["prompts"]):
                break
            assert time.monotonic() < deadline, s
            page.wait_for_timeout(250)
        try:
            page.wait_for_function(
                "(cell) => { const i = cell.querySelector('img.nbsteps-timeline-img');"
                " return i && i.complete && i.naturalWidth > 0; }",
                arg=run_cell.element_handle(),
                timeout=30_000,
            )
        except Exception:
            run_cell.screenshot(path=str(ARTIFACTS / "browser_static_timeline_failed.png"))
            out = run_cell.locator(".jp-OutputArea").first
            raise AssertionError(
                "no timeline image in the static picture:\n" + out.inner_html()[:4000]
            ) from None
        src = run_cell.locator("img.nbsteps-timeline-img").get_attribute("src")
        svg = base64.b64decode(src.split(",", 1)[1]).decode()
        for step in STEPS:
            assert f'data-step="{step}"' in svg, step
        assert 'class="nbsteps-tl-bar nbsteps-failed"' in svg and "<script" not in svg.lower()
        assert run_cell.locator(".jupyter-widgets").count() == 0  # the widget is gone
        run_cell.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        run_cell.screenshot(path=str(ARTIFACTS / "browser_static_timeline.png"))
