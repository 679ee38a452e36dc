"""The live view's newer parts, in this process: the timeline (bars from the
recorded start and finish times, in the live view inline and in the static
picture as a data-URI image), a step's log (status, attempts, error,
traceback, what it printed), the confirmation waiting state (events from the
executor, the record's flag, how graph, table and progress draw it), and
run summaries that say where restored steps came from."""

from __future__ import annotations

import base64
import re
import shutil
import time

import pytest

import nbsteps
from nbsteps.run import events as ev
from nbsteps.views import timeline as T
from nbsteps.views.static import state_text, static_bundle
from nbsteps.views.step_log import step_log_html, step_log_text

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")
XSS = "<script>alert(1)</script>"


def fake_times(plan, **spans):
    """Give records made-up (start, finish) pairs, seconds after a fixed origin."""
    t0 = 1_800_000_000.0
    for name, (start, end) in spans.items():
        rec = plan.records[name]
        rec.started, rec.finished = t0 + start, (t0 + end if end is not None else None)
        rec.duration = (end - start) if end is not None else None
    return t0


def small_plan():
    plan = nbsteps.Plan()
    plan.add_cell("a", "print('hello from a')\nx = 1")
    plan.add_cell("b", "y = x + 1")
    plan.add_cell("bad", f"z = x\nraise ValueError({XSS!r})")
    return plan


# -- the timeline ---------------------------------------------------------------
def test_bars_follow_the_recorded_times_and_leave_out_what_did_not_execute():
    plan = small_plan()
    plan.add_cell("c", "w = y")
    plan.run()
    t0 = fake_times(plan, a=(0, 1), b=(1, 3.5), bad=(1, 1.2))
    plan.records["c"].cached = True  # restored: no bar
    bars = T.bars(plan.context, now=t0 + 10)
    assert [(b.name, b.key, b.end - b.start) for b in bars] == [
        ("a", "completed", 1),
        ("b", "completed", 2.5),
        ("bad", "failed", pytest.approx(0.2)),
    ]
    # a step that has not finished grows until now
    plan.records["b"].status = "pending"  # as a new run would, before it starts b again
    plan.records["b"].status, plan.records["b"].finished = "running", None
    running = {b.name: b for b in T.bars(plan.context, now=t0 + 4)}["b"]
    assert running.key == "running" and running.end == t0 + 4 and running.live
    # steps of an earlier run are not part of this run's timeline
    assert [b.name for b in T.bars(plan.context, since=t0 + 0.9, now=t0 + 4)] == ["b", "bad"]


def test_timeline_svg_scales_bars_to_an_axis_and_escapes_names():
    plan = small_plan()
    plan.run()
    fake_times(plan, a=(0, 2), b=(2, 8), bad=(2, 2.5))
    bars = T.bars(plan.context)
    svg = T.timeline_svg(bars)
    assert svg.startswith("<svg") and svg.count('class="nbsteps-tl-bar') == 3
    assert 'data-step="a"' in svg and 'class="nbsteps-tl-bar nbsteps-failed"' in svg
    assert "8 s</text>" in svg and "0 s</text>" in svg  # a round axis covering the 8 s of the run
    import xml.etree.ElementTree as ET

    ns = "{http://www.w3.org/2000/svg}"
    widths = {
        g.get("data-step"): float(next(r for r in g.iter(f"{ns}rect") if r.get("rx")).get("width"))
        for g in ET.fromstring(svg).iter(f"{ns}g")
    }
    assert widths["b"] == pytest.approx(3 * widths["a"], rel=0.01)  # 6 s against 2 s
    assert XSS not in svg and "&lt;script&gt;" in svg  # the error in the tooltip, as text
    assert T.timeline_svg([]) == ""


def test_timeline_svg_is_well_formed_xml_for_an_img():
    """The static picture loads it as an image: one stray ``<`` (``<1 ms``) and it shows nothing."""
    import xml.etree.ElementTree as ET

    plan = small_plan()
    plan.run()
    fake_times(plan, a=(0, 0.0002), b=(0.0002, 0.5), bad=(0.1, 0.2))
    svg = T.timeline_svg(T.bars(plan.context))
    assert "&lt;1 ms" in svg
    ET.fromstring(svg)


def test_timeline_ticks_are_round():
    assert T._tick_step(8) == 2 and T._tick_step(0.3) == 0.05 and T._tick_step(600) == 120
    assert T._tick_label(2, 2) == "2 s" and T._tick_label(0.05, 0.05) == "0.05 s"
    assert T._tick_label(240, 120) == "4 min"


def test_many_steps_draw_thin_rows_without_labels():
    plan = nbsteps.Plan()
    for i in range(80):
        plan.add_cell(f"s{i}", f"v{i} = {i}")
    plan.run()
    svg = T.timeline_svg(T.bars(plan.context))
    assert svg.count("nbsteps-tl-bar") == 80 and ">s0</text>" not in svg
    height = int(re.search(r'height="(\d+)"', svg).group(1))
    assert height < 80 * 8


@needs_dot
def test_static_picture_carries_the_timeline_as_an_image():
    plan = small_plan()
    plan.run()
    html = static_bundle(plan.context, summary=plan.last_summary)["text/html"]
    m = re.search(r'<img class="nbsteps-timeline-img"[^>]*src="data:image/svg\+xml;base64,([^"]+)"', html)
    assert m, html[:500]
    svg = base64.b64decode(m.group(1)).decode()
    assert all(f'data-step="{s}"' in svg for s in ("a", "b", "bad"))
    assert "<svg" not in html  # nothing inline: untrusted notebooks strip inline SVG
    assert "timeline: 3 steps executed" in html
    # a second run restores everything: no bar of the earlier run, and it says why
    plan2 = nbsteps.Plan()
    plan2.add_cell("a", "x = 1")
    plan2.run()
    plan2.run()
    html2 = static_bundle(plan2.context, summary=plan2.last_summary)["text/html"]
    assert "nbsteps-timeline-img" not in html2


def test_the_side_panels_timeline_is_html_rows_that_take_the_columns_width():
    """JupyterLab's side panel is ~250 px wide: the 760 px SVG scaled into it is a few px high.
    There the timeline is HTML rows (name and duration as text, bars in percent of the axis)."""
    plan = small_plan()
    plan.run()
    fake_times(plan, a=(0, 2), b=(2, 8), bad=(2, 2.5))
    rows = T.timeline_rows_html(plan.context)
    assert "<svg" not in rows and "<img" not in rows
    names = re.findall(r'<span class="nbsteps-tl-name"[^>]*>([^<]*)</span>', rows)
    took = re.findall(r'<span class="nbsteps-tl-took"[^>]*>([^<]*)</span>', rows)
    assert names == ["a", "b", "bad"] and took == ["2.00 s", "6.00 s", "500 ms"], rows
    spans = dict(zip(names, re.findall(r"margin-left:([\d.]+)%;width:([\d.]+)%", rows), strict=True))
    assert spans["a"] == ("0.00", "20.00") and spans["b"] == ("20.00", "60.00"), spans  # a 10 s axis
    ticks = re.findall(r'<div class="nbsteps-tl-tick"[^>]*>([^<]*)</div>', rows)
    assert ticks == ["0 s", "5 s"], ticks  # 3 ticks at most, with units; the axis ends at 10 s
    assert "timeline: 3 steps executed" in rows
    assert XSS not in rows and "&lt;script&gt;" in rows  # the error in the tooltip, as text
    # sub-second runs count in ms; the panel's picture carries the rows, the widget's the SVG
    fake_times(plan, a=(0, 0.002), b=(0.002, 0.007), bad=(0.002, 0.003))
    fast = T.timeline_rows_html(plan.context)
    assert re.findall(r'<div class="nbsteps-tl-tick"[^>]*>([^<]*)</div>', fast) == ["0 ms", "5 ms"]
    panel = static_bundle(plan.context, timeline="rows")["text/html"]
    assert "nbsteps-tl-row" in panel and "nbsteps-timeline-img" not in panel
    assert "nbsteps-timeline-img" in static_bundle(plan.context)["text/html"]


# -- a step's log -----------------------------------------------------------------
def test_log_of_a_completed_and_a_failed_step():
    plan = small_plan()
    plan.run()
    text = step_log_text(plan.context, "a")
    assert "log of step a" in text and "status: completed" in text and "attempts: 1" in text
    assert "hello from a" in text and "outputs: x" in text
    bad = step_log_text(plan.context, "bad")
    assert "status: failed" in bad and f"error: ValueError: {XSS}" in bad and "Traceback" in bad
    html = step_log_html(plan.context, "bad")
    assert XSS not in html and "&lt;script&gt;" in html and 'data-log="bad"' in html
    assert "printed and displayed nothing" in html
    assert "not in the plan" in step_log_text(plan.context, "nope")


def test_log_of_a_retried_step_says_its_attempts(tmp_path):
    marker = tmp_path / "tried"
    plan = nbsteps.Plan()
    plan.add_cell(
        "flaky",
        f"import os\nif not os.path.exists({str(marker)!r}):\n"
        f"    open({str(marker)!r}, 'w').close()\n    raise OSError('again')\nv = 1",
        retry=2,
        retry_delay=0,
    )
    assert plan.run().ok
    assert "attempts: 2 of 3" in step_log_text(plan.context, "flaky")


# -- waiting for a confirmation -------------------------------------------------------
def confirm_plan():
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    plan.add_cell("deploy", "y = x", confirm="ship it?")
    return plan


@needs_dot
def test_a_step_waits_for_its_confirmation_visibly():
    from nbsteps.views.graph_live import live_svg
    from nbsteps.views.table import html_table

    plan = confirm_plan()
    events, seen = [], {}

    def confirm(name, question):
        rec = plan.records[name]
        seen.update(
            name=name,
            question=question,
            confirming=rec.confirming,
            status=str(rec.status),
            kinds=[e.kind for e in events],
        )
        seen["svg"] = live_svg(plan.context)[0]
        seen["table"] = html_table(plan.context)
        seen["state"] = state_text(plan.context, plan.order(), running=True, elapsed=1.0)
        return True

    summary = plan.run(confirm=confirm, listeners=[events.append])
    assert summary.ok
    assert seen["name"] == "deploy" and seen["question"] == "ship it?"
    assert seen["confirming"] == "ship it?" and seen["status"] == "pending"
    assert seen["kinds"][-1] == ev.CONFIRMING  # the views heard of it before the question was asked
    waiting = next(e for e in events if e.kind == ev.CONFIRMING)
    assert waiting.step == "deploy" and waiting.message == "ship it?"
    kinds = [e.kind for e in events if e.step == "deploy"]
    assert kinds == [ev.CONFIRMING, ev.CONFIRMED, ev.STARTED, ev.COMPLETED]
    assert plan.records["deploy"].confirming == ""  # answered: no longer waiting
    # drawn apart from pending: its own class, colour and border in the graph, its row and the progress
    assert 'class="node nbsteps-step nbsteps-confirming"' in seen["svg"] and "#c2185b" in seen["svg"]
    assert "waiting for confirmation: ship it?" in seen["svg"]  # the tooltip
    assert '<tr class="nbsteps-confirming" data-step="deploy">' in seen["table"]
    assert "waiting for confirmation<br><small>ship it?</small>" in seen["table"]
    assert "1 waiting for confirmation: deploy" in seen["state"]


def test_a_declined_or_interrupted_confirmation_leaves_no_waiting_state():
    plan = confirm_plan()
    events = []
    summary = plan.run(confirm=lambda n, q: False, listeners=[events.append])
    assert not summary.ok and plan.records["deploy"].status == "cancelled"
    assert [e.kind for e in events if e.step == "deploy"] == [ev.CONFIRMING, ev.CANCELLED]
    assert plan.records["deploy"].confirming == ""

    def interrupted(name, question):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        plan.run(confirm=interrupted)
    assert plan.records["deploy"].confirming == "" and plan.records["deploy"].status == "cancelled"
    # without a way to ask (headless), nobody waits: cancelled at once, no waiting event
    events.clear()
    plan.run(listeners=[events.append])
    assert ev.CONFIRMING not in [e.kind for e in events]


def test_the_live_view_draws_the_waiting_state_and_the_log_of_every_step():
    pytest.importorskip("ipywidgets")
    from nbsteps.views.live import LiveView

    plan = confirm_plan()
    seen = {}

    def confirm(name, question):
        view.draw()
        seen["bar"], seen["table"] = view.bar.value, view.table.value
        seen["log"] = view.log.logs[name]
        return True

    view = LiveView(plan.context)
    plan.run(confirm=confirm, listeners=[view])
    assert "waiting for confirmation" in seen["bar"] and 'title="1 waiting for confirmation"' in seen["bar"]
    assert 'data-step="deploy"' in seen["table"]
    assert "waiting for confirmation (ship it?)" in seen["log"]
    assert not view.errors and view.closed
    # the log picker offers every step; clickables know the same steps (index 0: no step)
    assert [v for _, v in view.log.picker.options] == ["", "a", "deploy"]
    assert view.graph.steps == ["", "a", "deploy"] == view.table.steps == view.timeline.steps
    assert view.log.view.steps == ["", "a", "deploy"] and set(view.log.view.logs) == {"a", "deploy"}
    assert "timeline: 2 steps executed" in view.timeline.value


def test_live_logs_leave_figures_to_the_step_cell_and_keep_the_end_of_long_prints():
    from nbsteps.views.step_log import LIVE_TEXT

    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    plan.run()
    png = base64.b64encode(b"\x89PNG fake").decode()
    plan.records["a"].output = (
        ("stdout", "BEGIN-MARK " + "y" * (2 * LIVE_TEXT) + " END-MARK"),
        ("display", {"data": {"image/png": png, "text/plain": "<Figure>"}}),
    )
    live = step_log_html(plan.context, "a", live=True)
    assert png not in live and "shown in the step&#x27;s cell" in live
    assert "BEGIN-MARK" not in live and "END-MARK" in live
    full = step_log_html(plan.context, "a")
    assert png in full and "BEGIN-MARK" in full


# -- where restored steps came from ---------------------------------------------------
def test_summary_says_where_restored_steps_came_from(tmp_path):
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    plan.add_cell("b", "y = x")
    plan.run()
    again = plan.run()
    assert again.restored_from == {"a": ev.FROM_SESSION, "b": ev.FROM_SESSION}
    assert "2 of 2 steps completed (2 kept in this kernel)" in again.text

    store = tmp_path / "store"
    first = nbsteps.Plan(store=str(store))
    first.add_cell("a", "x = 1")
    first.run()
    made = first.records["a"].finished
    fresh = nbsteps.Plan(store=str(store))  # a new kernel: its values come from the directory
    fresh.add_cell("a", "x = 1")
    summary = fresh.run()
    assert summary.restored_from == {"a": ev.FROM_STORE}
    clock = time.strftime("%H:%M:%S", time.localtime(made))
    assert f"(1 restored from the checkpoint of {clock} in {store})" in summary.text
    assert f"1 restored from the checkpoint of {clock} in {store}" in state_text(
        fresh, ["a"], summary=summary
    )
