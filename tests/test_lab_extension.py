"""The JupyterLab extension (labextension/, issue 24) in a real JupyterLab in
Debian's chromium (Playwright): every ``%%step`` cell gets a badge drawn from
the kernel's state (comm ``nbsteps``, keyed by cell id), so a second tab, a
reloaded page and a reopened notebook show the same, current state; the side
panel shows the plan's views; with the kernel gone, the badges show the state
saved in the cells' metadata, marked as such; with the extension disabled the
saved outputs are what they are without it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

try:
    from tests.browser import browser_marks, jupyterlab_server, saved_notebook, stage_notebook
except ModuleNotFoundError:  # tests/ is not a package: pytest puts tests/ on sys.path
    from browser import browser_marks, jupyterlab_server, saved_notebook, stage_notebook

ARTIFACTS = Path(__file__).parent / "artifacts"
pytestmark = browser_marks()

CELLS = [
    "%load_ext nbsteps",
    "%%step raw\nraw = list(range(10))",
    "%%step clean\nclean = [x for x in raw if x % 3]",
    "%%step slow\nimport time\ntime.sleep(5)\ntotal = sum(clean)",
    "%%step report\nreport = f'total {total}'\nreport",
]
STEPS = ["raw", "clean", "slow", "report"]
RAW = 1
#: jupyter_server's events of its kernels (JupyterLab's extension learns of a restart by them)
KERNEL_ACTIONS = "https://events.jupyter.org/jupyter_server/kernel_actions/v1"

BADGES_JS = r"""() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  const out = {};
  for (const b of panel.querySelectorAll('.jp-Cell > .nbsteps-badge')) {
    out[b.dataset.step] = {text: b.innerText, aria: b.getAttribute('aria-label'), title: b.title,
                           status: b.dataset.status, stale: b.dataset.stale, source: b.dataset.source};
  }
  return out;
}"""


def open_tab(lab, name: str, workspace: str, timeout: float = 120):
    """Open notebook *name* in a new browser tab with its own JupyterLab workspace
    (two tabs on one workspace make JupyterLab redirect the second)."""
    from playwright.sync_api import Error

    page = lab.new_page()
    page.goto(f"{lab.base_url}lab/workspaces/{workspace}/tree/{name}?token={lab.token}")
    deadline = time.monotonic() + timeout
    ncells = len(nbformat.read(lab.root_dir / name, 4).cells)
    while True:
        try:
            s = lab.snapshot()
            if s["cells"] == ncells and s["idle"]:
                return page
        except Error:  # navigating
            pass
        assert time.monotonic() < deadline, f"{name} not open in tab {workspace}"
        page.wait_for_timeout(250)


def badges(page) -> dict:
    return page.evaluate(BADGES_JS)


TRACE_JS = "() => window.nbsteps ? Array.from(window.nbsteps.all.values()).map(s => s.trace.slice(-80)) : []"


def link_trace(page) -> str:
    """What happened to each notebook's link to its kernel (restart signals, asks, state
    messages: NotebookSteps.trace in labextension/src/index.ts), for a failure's message."""
    try:
        return "\n".join("\n".join(t) for t in page.evaluate(TRACE_JS))
    except Exception as exc:  # pragma: no cover - a page gone
        return f"(no trace: {exc!r})"


def wait_badges(page, check, timeout: float = 60, what: str = "") -> dict:
    """Poll the page's badges until *check(badges)* holds."""
    deadline = time.monotonic() + timeout
    while True:
        got = badges(page)
        try:
            if check(got):
                return got
        except (KeyError, TypeError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(
                f"badges never became {what or check}: {json.dumps(got, indent=1)}\n{link_trace(page)}"
            )
        page.wait_for_timeout(250)


def all_completed(got) -> bool:
    return all(got[s]["status"] == "completed" and got[s]["stale"] == "false" for s in STEPS)


def open_side_panel(page) -> None:
    page.locator('.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="nbsteps-plan"]').click()
    page.wait_for_function(
        "() => { const i = document.querySelector('#nbsteps-plan img.nbsteps-graph-img');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=30_000,
    )


def test_two_tabs_show_the_kernels_state_and_the_side_panel(tmp_path):
    nb_path = stage_notebook(CELLS, tmp_path, name="tabs.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        other = open_tab(lab, nb_path.name, "watching")  # the tab that only watches
        runner = open_tab(lab, nb_path.name, "running")
        lab.run_all_cells()
        # while `slow` runs: the watching tab shows it running, its upstream completed
        got = wait_badges(
            other,
            lambda b: b["slow"]["status"] == "running" and b["clean"]["status"] == "completed",
            what="slow running",
        )
        assert got["slow"]["text"].startswith("running for"), got["slow"]
        assert "running" in got["slow"]["aria"] and "step slow" in got["slow"]["aria"]
        # Run All runs cell by cell: report's cell has not registered its step yet
        assert got["report"]["status"] == "unregistered", got["report"]
        assert "not registered in this kernel yet" in got["report"]["aria"]
        assert "executed in this run" in got["clean"]["aria"], got["clean"]
        other.bring_to_front()
        lab.page = other
        ARTIFACTS.mkdir(exist_ok=True)
        lab.screenshot(ARTIFACTS / "lab_badges_running.png")

        got = wait_badges(other, all_completed, what="all completed")
        for s in STEPS:
            text, aria = got[s]["text"], got[s]["aria"]
            assert text.startswith("completed · executed · "), got[s]
            assert aria.startswith(f"nbsteps step {s}: completed, executed in this run, took "), aria
        # the same in the tab that ran it
        wait_badges(runner, all_completed, what="all completed in the running tab")

        # the side panel of the watching tab: graph, timeline, table, step logs
        open_side_panel(other)
        side = other.evaluate(
            """() => { const p = document.querySelector('#nbsteps-plan');
              return {text: p.innerText,
                      rows: Array.from(p.querySelectorAll('table.nbsteps-results tbody tr'))
                        .map(tr => tr.children[0].textContent),
                      logs: Array.from(p.querySelectorAll('details > summary'))
                        .map(d => d.textContent),
                      scripts: p.querySelectorAll('script').length}; }"""
        )
        assert side["rows"] == STEPS and side["logs"] == STEPS, side
        assert "4/4 completed" in side["text"] and side["scripts"] == 0
        # the timeline is drawn for the sidebar's width: a row per step, name and duration readable
        # (the last run: Run All runs one cell, one step, at a time)
        timeline = panel_timeline(other)
        assert [r["name"] for r in timeline["rows"]] == ["report"], timeline
        assert "3 executed in an earlier run" in timeline["caption"], timeline
        for r in timeline["rows"]:
            assert r["nameH"] >= 10 and r["tookH"] >= 10 and r["font"] >= 11, r  # px on screen
            assert r["nameRight"] <= timeline["right"] + 0.5 and r["tookRight"] <= timeline["right"] + 0.5, r
        ticks = timeline["ticks"]  # with units, none cut
        assert len(ticks) >= 2 and all(re.fullmatch(r"[\d.]+ (ms|s|min)", t["text"]) for t in ticks), ticks
        assert not any(t["clipped"] for t in ticks), ticks
        other.locator("#nbsteps-plan details > summary", has_text="slow").click()
        assert "log of step slow" in other.locator("#nbsteps-plan").inner_text()
        lab.screenshot(ARTIFACTS / "lab_badges_panel.png")


PANEL_TIMELINE_JS = r"""() => {
  const panel = document.querySelector('#nbsteps-plan');
  const box = (el) => el.getBoundingClientRect();
  const rows = Array.from(panel.querySelectorAll('.nbsteps-tl-row')).map(row => {
    const name = row.querySelector('.nbsteps-tl-name'), took = row.querySelector('.nbsteps-tl-took');
    return {name: name.textContent, took: took.textContent, nameH: box(name).height,
            tookH: box(took).height, nameRight: box(name).right, tookRight: box(took).right,
            font: parseFloat(getComputedStyle(name).fontSize)};
  });
  return {rows, right: box(panel).right,
          caption: (panel.querySelector('.nbsteps-timeline-note') || {}).textContent,
          ticks: Array.from(panel.querySelectorAll('.nbsteps-tl-tick'))
            .map(el => ({text: el.textContent, clipped: el.scrollWidth > el.clientWidth}))};
}"""


def panel_timeline(page) -> dict:
    """The side panel's timeline as laid out on screen (the labels' boxes in CSS px)."""
    page.locator("#nbsteps-plan .nbsteps-tl-row").first.wait_for(state="visible", timeout=30_000)
    return page.evaluate(PANEL_TIMELINE_JS)


def _edit_cell(page, index: int, source: str) -> None:
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(source)
    page.keyboard.press("Shift+Enter")


def test_reload_mid_plan_and_after_an_upstream_edit(tmp_path):
    slower = [c.replace("time.sleep(5)", "time.sleep(12)") for c in CELLS]  # time to reload
    nb_path = stage_notebook(slower, tmp_path, name="reload.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        page = open_tab(lab, nb_path.name, "reload")
        lab.run_all_cells()
        wait_badges(page, lambda b: b["slow"]["status"] == "running", what="slow running")
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector(".jp-Cell > .nbsteps-badge", timeout=60_000)
        # the reloaded page knows from the kernel that slow is still running
        got = wait_badges(page, lambda b: b["slow"]["status"] == "running", what="slow running after reload")
        assert got["raw"]["status"] == "completed" and got["report"]["status"] == "unregistered", got
        wait_badges(page, all_completed, timeout=60, what="all completed after reload")
        # (the reloaded page has no outputs: the cells ran in the page before the reload)
        page.wait_for_function(
            "() => /\\|\\s*Idle\\b/.test(document.querySelector('#jp-main-statusbar').innerText)"
        )

        # raw edited and run: the steps below it are stale, with the reason on hover
        _edit_cell(page, RAW, "%%step raw\nraw = list(range(12))")
        got = wait_badges(page, lambda b: b["clean"]["stale"] == "true", what="clean stale")
        assert got["raw"]["stale"] == "false" and got["raw"]["status"] == "completed"
        assert "stale: upstream raw changed" in got["clean"]["title"], got["clean"]
        assert "stale: upstream raw changed" in got["clean"]["aria"]
        assert got["clean"]["text"].endswith("· stale")
        assert "stale: upstream clean is stale" in got["slow"]["aria"], got["slow"]
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector(".jp-Cell > .nbsteps-badge", timeout=60_000)
        got = wait_badges(page, lambda b: b["clean"]["stale"] == "true", what="clean stale after reload")
        assert "upstream raw changed" in got["clean"]["aria"], got["clean"]
        assert all(got[s]["stale"] == "true" for s in ("clean", "slow", "report")), got
        open_side_panel(page)
        assert "stale" in page.locator("#nbsteps-plan").inner_text()
        lab.screenshot(ARTIFACTS / "lab_badges_stale.png")


def save_with_state(page, nb_path: Path) -> None:
    """Save the notebook (Ctrl+S) and wait until every step cell carries metadata.nbsteps."""
    page.keyboard.press("Control+s")
    saved_notebook(
        nb_path,
        lambda nb: all("nbsteps" in c.metadata for c in nb.cells[1:]),
        what="writing metadata.nbsteps",
    )


def test_saved_state_is_shown_as_saved_when_the_kernel_is_gone(tmp_path):
    nb_path = stage_notebook(CELLS, tmp_path, name="reopen.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        page = open_tab(lab, nb_path.name, "first")
        lab.run_all_cells()
        lab.wait_all_run(page)
        wait_badges(page, all_completed, what="all completed")
        save_with_state(page, nb_path)
        saved = nbformat.read(nb_path, 4)
        for cell, name in zip(saved.cells[1:], STEPS, strict=True):
            meta = cell.metadata["nbsteps"]
            assert meta["step"] == name and meta["status"] == "completed" and meta["saved_at"], meta
        assert "nbsteps" not in saved.cells[0].metadata
        page.close()
        for s in lab.api("GET", "api/sessions"):
            lab.api("DELETE", f"api/sessions/{s['id']}")
        for k in lab.api("GET", "api/kernels"):
            lab.api("DELETE", f"api/kernels/{k['id']}")

        page = open_tab(lab, nb_path.name, "reopened")  # a new kernel, without nbsteps loaded
        got = wait_badges(
            page, lambda b: all(b[s]["source"] == "saved" for s in STEPS), what="saved state shown"
        )
        for s in STEPS:
            assert got[s]["text"].startswith("as saved at "), got[s]
            assert "completed · executed" in got[s]["text"]
            assert "as saved at" in got[s]["aria"] and "not the kernel's current state" in got[s]["aria"]
        lab.screenshot(ARTIFACTS / "lab_badges_saved.png")

        # Settings -> nbsteps -> Step badges off (the harness's isolated user settings)
        settings = lab.run_dir / "settings" / "nbsteps" / "plugin.jupyterlab-settings"
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps({"badges": False}))
        page.reload(wait_until="domcontentloaded")
        page.wait_for_selector('.lm-TabBar-tab[data-id="nbsteps-plan"]', timeout=60_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        page.wait_for_timeout(3000)
        assert badges(page) == {}


def _outputs(path: Path) -> str:
    """The cells' saved outputs as JSON text, times, durations and counts blanked."""
    nb = nbformat.read(path, 4)
    text = json.dumps([c.outputs for c in nb.cells], sort_keys=True)
    text = re.sub(r"(<|&lt;)?\d+(\.\d+)? ?(ms|s|min)\b", "T", text)  # "<1 ms" as well as "12 ms"
    text = re.sub(r"\d\d:\d\d(:\d\d)?", "HH:MM", text)
    return re.sub(r'"execution_count": \d+', '"execution_count": N', text)


def _run_and_save(lab, name: str) -> Path:
    page = open_tab(lab, name, name.replace(".", "-"))
    lab.run_all_cells()
    lab.wait_all_run(page)
    path = lab.root_dir / name
    before = path.stat().st_mtime_ns
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before:
        assert time.monotonic() < deadline, "not saved"
        time.sleep(0.25)
    time.sleep(0.5)
    page.close()
    return path


def test_with_the_extension_disabled_the_saved_outputs_are_as_without_it(tmp_path):
    fast = [c.replace("time.sleep(5)", "time.sleep(0)") for c in CELLS]
    on = stage_notebook(fast, tmp_path, name="on.ipynb")
    off = stage_notebook(fast, tmp_path, name="off.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        _run_and_save(lab, on.name)
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(lab.run_dir / "config"))
        subprocess.run(
            # --level=user: the harness's isolated JUPYTER_CONFIG_DIR (the default level is the venv's)
            [sys.executable, "-m", "jupyter", "labextension", "disable", "--level=user", "nbsteps"],
            env=env,
            check=True,
            capture_output=True,
        )
        listed = subprocess.run(
            [sys.executable, "-m", "jupyter", "labextension", "list"], env=env, capture_output=True, text=True
        )
        assert re.search(r"nbsteps v[\d.]+ .*disabled", listed.stdout + listed.stderr), listed
        for s in lab.api("GET", "api/sessions"):  # a fresh kernel for the second notebook
            lab.api("DELETE", f"api/sessions/{s['id']}")
        page = open_tab(lab, off.name, "look")
        assert page.evaluate("() => document.querySelectorAll('.nbsteps-badge, #nbsteps-plan').length") == 0
        page.close()
        _run_and_save(lab, off.name)
    saved_on, saved_off = nbformat.read(on, 4), nbformat.read(off, 4)
    assert all("nbsteps" not in c.metadata for c in saved_off.cells)
    assert _outputs(on) == _outputs(off)
    # the outputs are nbsteps' own: the status lines and the report's result
    text = json.dumps([c.outputs for c in saved_off.cells])
    assert "total 27" in text and "raw" in text
    assert saved_on.cells[1].metadata["nbsteps"]["status"] == "completed"


@pytest.fixture(autouse=True)
def _artifacts():
    ARTIFACTS.mkdir(exist_ok=True)


def test_after_a_kernel_restart_the_badges_follow_the_new_kernel(tmp_path):
    fast = [c.replace("time.sleep(5)", "time.sleep(0)") for c in CELLS]
    nb_path = stage_notebook(fast, tmp_path, name="restart.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        page = open_tab(lab, nb_path.name, "restart")
        lab.run_all_cells()
        lab.wait_all_run(page)
        wait_badges(page, all_completed, what="all completed")
        save_with_state(page, nb_path)
        (kernel,) = lab.api("GET", "api/kernels")
        lab.api("POST", f"api/kernels/{kernel['id']}/restart", timeout=60)
        # the new kernel knows no steps: the badges say what was saved, marked so
        wait_badges(page, lambda b: all(b[s]["source"] == "saved" for s in STEPS), what="saved after restart")
        # %load_ext nbsteps and the cells again: the badges are the new kernel's
        lab.run_all_cells()
        got = wait_badges(
            page,
            lambda b: all(b[s]["source"] == "kernel" for s in STEPS) and all_completed(b),
            what="the new kernel's state",
        )
        assert all(got[s]["text"].startswith("completed · executed") for s in STEPS), got
        lab.screenshot(ARTIFACTS / "lab_badges_restarted.png")


def kernel_done(got) -> bool:
    return all(got[s]["source"] == "kernel" for s in STEPS) and all_completed(got)


def test_a_late_restart_event_keeps_the_new_kernels_state(tmp_path):
    """The server's restart event reaches a tab on its own websocket, in no set order with the
    kernel's messages: here it comes (again) after the new kernel sent its state, while a cell
    runs (the kernel answers a tab's comm only after it). The badges stay the kernel's."""
    cells = [c.replace("time.sleep(5)", "time.sleep(0)") for c in CELLS] + ["import time\ntime.sleep(12)"]
    nb_path = stage_notebook(cells, tmp_path, name="late.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        page = open_tab(lab, nb_path.name, "late")
        (kernel,) = lab.api("GET", "api/kernels")
        lab.api("POST", f"api/kernels/{kernel['id']}/restart", timeout=60)
        page.wait_for_function(
            "() => /\\|\\s*Idle\\b/.test(document.querySelector('#jp-main-statusbar').innerText)"
        )
        lab.run_all_cells()
        wait_badges(page, kernel_done, what="the new kernel's state")
        assert lab.snapshot()["prompts"][-1].startswith("[*]"), "the last cell should still run"
        # the restart's event, as the server sends it, late
        event = {"action": "restart", "kernel_id": kernel["id"], "status": "success", "msg": "late"}
        lab.api(
            "POST",
            "api/events",
            {"schema_id": KERNEL_ACTIONS, "version": "1", "data": event},
        )
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            got = badges(page)
            assert all(s in got for s in STEPS) and kernel_done(got), (
                f"a late restart event dropped the new kernel's state: {json.dumps(got, indent=1)}\n"
                + link_trace(page)
            )
            page.wait_for_timeout(100)
        assert "restart event" in link_trace(page)  # the event did reach the tab
        assert lab.snapshot()["prompts"][-1].startswith("[*]"), "the last cell should still run"
        lab.screenshot(ARTIFACTS / "lab_badges_late_restart_event.png")


CONFIRM_CELLS = [
    "%load_ext nbsteps",
    # fails at its first attempt (a file counts the attempts), succeeds at the second
    "%%step flaky --retry 1 --retry-delay 4\nimport pathlib\ncount = pathlib.Path('tries.txt')\n"
    "n = int(count.read_text()) if count.exists() else 0\ncount.write_text(str(n + 1))\n"
    "if n == 0:\n    raise RuntimeError('first attempt fails')\nvalue = n",
    "%%step deploy --confirm 'ship it?'\nshipped = value + 1",
]


def test_badges_name_a_retry_and_a_wait_for_confirmation_in_words(tmp_path):
    nb_path = stage_notebook(CONFIRM_CELLS, tmp_path, name="confirm.ipynb")
    with jupyterlab_server(tmp_path) as lab:
        page = open_tab(lab, nb_path.name, "confirm")
        lab.run_all_cells()
        # between the two attempts: which attempt failed, with its error
        got = wait_badges(page, lambda b: b["flaky"]["status"] == "retrying", what="flaky retrying")
        flaky = got["flaky"]
        assert flaky["text"].startswith("attempt 1 failed, retrying"), flaky
        assert flaky["aria"].startswith("nbsteps step flaky: attempt 1 failed, retrying"), flaky
        assert "first attempt fails" in flaky["aria"] and "first attempt fails" in flaky["title"], flaky
        # the second attempt succeeded: the badge says it took two
        got = wait_badges(page, lambda b: b["flaky"]["status"] == "completed", what="flaky completed")
        flaky = got["flaky"]
        assert flaky["text"].startswith("completed · executed · 2 attempts · "), flaky
        assert "completed, executed in this run, after 2 attempts, took " in flaky["aria"], flaky
        # deploy asks (stdin): its badge waits for the answer, in words
        got = wait_badges(page, lambda b: b["deploy"]["status"] == "waiting", what="deploy waiting")
        deploy = got["deploy"]
        assert deploy["text"] == "waiting for confirmation", deploy
        assert deploy["aria"] == "nbsteps step deploy: waiting for confirmation: ship it?", deploy
        stdin = page.locator(".jp-Stdin-input").first
        stdin.wait_for(state="visible", timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        lab.screenshot(ARTIFACTS / "lab_badges_confirm.png")
        stdin.fill("y")
        stdin.press("Enter")
        got = wait_badges(page, lambda b: b["deploy"]["status"] == "completed", what="deploy completed")
        assert got["deploy"]["text"].startswith("completed · executed · "), got["deploy"]
        assert "attempts" not in got["deploy"]["text"], got["deploy"]  # one attempt: not said
        assert (tmp_path / "tries.txt").read_text() == "2"
