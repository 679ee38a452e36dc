"""Every SVG nbsteps emits is well-formed XML, for every status a step can have
(issue 21, defect 8): a cancelled step's node repeated ``stroke-dasharray``, so
the saved picture's graph was invalid XML and the browser drew nothing but the
alt text. Here the statuses come from real runs in a real IPython shell (a real
SIGINT cancels), each SVG is parsed with an XML parser, and the saved picture is
loaded in Debian's chromium, whose ``<img>`` must decode it.
"""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import pytest
from conftest import run_err, run_ok

from nbsteps.ipython import session
from nbsteps.views.graph import dot_available

pytestmark = [
    pytest.mark.skipif(not dot_available(), reason="needs Graphviz's dot"),
    pytest.mark.usefixtures("nothing_outside_the_store_changes"),
]

CANCEL = """import os, signal, time
os.kill(os.getpid(), signal.SIGINT)
time.sleep(5)"""


@pytest.fixture
def every_status(shell):
    """A plan holding completed, failed, blocked, cancelled, stale, pending and optional steps."""
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step ok\nx = 1")
    run_ok(shell, "%%step later\ny = x + 1")
    run_ok(shell, "%%step broken\nraise ValueError('no')")
    run_ok(shell, "%%step blocked_one --after broken\nq = y")
    run_ok(shell, "%%step optional_one --optional\nw = 1")
    run_err(shell, "%steps run")
    run_ok(shell, "%%step stopper --after ok\n" + CANCEL)
    run_ok(shell, "%%step never --after stopper\nv = 1")
    run_err(shell, "%steps run stopper never")
    run_ok(shell, "%%step ok\nx = 2")  # edited: its downstream `later` is now stale
    plan = session.current()
    return plan


def _statuses(plan) -> set:
    from nbsteps.views.graph import node_status

    return {node_status(r) for r in plan.records.values()} | {
        "stale" for r in plan.records.values() if r.stale
    }


def _parse(svg: str, what: str) -> ET.Element:
    try:
        return ET.fromstring(svg.encode("utf-8") if isinstance(svg, str) else svg)
    except ET.ParseError as exc:
        line = exc.position[0]
        text = svg.decode() if isinstance(svg, bytes) else svg
        raise AssertionError(
            f"{what} is not well-formed XML ({exc}): {text.splitlines()[line - 1][:300]}"
        ) from None


def _img_svgs(html_text: str) -> list[str]:
    return [
        base64.b64decode(m).decode("utf-8")
        for m in re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html_text)
    ]


def test_every_svg_is_well_formed_for_every_status(every_status):
    from nbsteps.model.status import BLOCKED, CANCELLED, COMPLETED, FAILED
    from nbsteps.views.graph import plan_graph, render
    from nbsteps.views.graph_live import live_svg
    from nbsteps.views.static import static_bundle

    plan = every_status
    seen = _statuses(plan)
    assert {COMPLETED, FAILED, BLOCKED, CANCELLED, "stale"} <= seen, seen
    live, _info = live_svg(plan.context)
    _parse(live, "the live graph")
    _parse(render(plan_graph(plan.context), "svg"), "the graph of %steps graph")
    bundle = static_bundle(plan.context)
    pictures = _img_svgs(bundle["text/html"])
    assert len(pictures) >= 1
    for i, svg in enumerate(pictures):
        _parse(svg, f"picture {i} of the saved bundle")


def test_transient_statuses_draw_well_formed_svg_too(every_status):
    """running, retrying and waiting for confirmation exist only while a run is on:
    the views are drawn from the records, so the records are put in those states."""
    from nbsteps.model.status import RETRYING, RUNNING
    from nbsteps.views.graph import plan_graph, render
    from nbsteps.views.graph_live import live_svg

    plan = every_status
    from nbsteps.model.status import PENDING

    for name, path in (("never", [PENDING, RUNNING]), ("stopper", [PENDING, RUNNING, RETRYING])):
        for status in path:  # as a run moves them (the transitions of nbsteps.model.status)
            plan.records[name].status = status
    _parse(live_svg(plan.context)[0], "the live graph while running")
    _parse(render(plan_graph(plan.context), "svg"), "the graph while running")


@pytest.mark.browser
def test_chromium_draws_the_saved_picture_of_a_cancelled_run(every_status, tmp_path):
    import os

    from nbsteps.views.static import static_bundle

    chromium = os.environ.get("NBSTEPS_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        pytest.skip("Debian's chromium is not installed")
    playwright = pytest.importorskip("playwright.sync_api")
    page_file = tmp_path / "picture.html"
    page_file.write_text("<!doctype html><meta charset='utf-8'>" + static_bundle(every_status)["text/html"])
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.wait_for_load_state("load")
            sizes = page.evaluate(
                """() => Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"""
            )
            page.screenshot(path=str(tmp_path / "picture.png"))
        finally:
            browser.close()
    assert sizes, "no picture in the saved bundle"
    for alt, complete, width in sizes:
        assert complete and width > 0, f"chromium could not draw {alt!r}: {sizes}"


def test_a_step_named_like_a_placeholder_is_drawn_with_its_name(shell):
    """issue 21, defect 13: a step named ``nbstip0x`` was labelled with a tooltip's text."""
    from nbsteps.views.graph_live import live_svg

    run_ok(shell, "%%step nbstip0x\na = 1")
    run_ok(shell, "%%step nbstcls1x\nb = a + 1")
    run_ok(shell, "%%step nbstip1x\nc = b + 1")
    root = _parse(live_svg(session.current())[0], "the live graph")
    ns = {"svg": "http://www.w3.org/2000/svg"}
    labels = [t.text for t in root.iterfind(".//svg:text", ns)]
    assert {"nbstip0x", "nbstcls1x", "nbstip1x"} <= set(labels), labels
    classes = [g.get("class") for g in root.iterfind(".//svg:g", ns) if "nbsteps-step" in g.get("class", "")]
    assert len(classes) == 3, classes
