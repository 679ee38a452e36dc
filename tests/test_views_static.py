"""The pictures that last and the cells' output areas, in this process:
the static picture (graph as a data-URI image, honest segmented progress,
table), stale steps drawn apart from completed ones, a step's output area
(status line, printed text, figures, escaping), and result summaries."""

from __future__ import annotations

import base64
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import nbsteps
from nbsteps.views import graph as G
from nbsteps.views.static import static_bundle
from nbsteps.views.step_view import clean_text, step_bundle
from nbsteps.views.values import summarize

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed")
XSS = "<script>alert(1)</script>"


def svg_in(html_text: str) -> str:
    m = re.search(r'src="data:image/svg\+xml;base64,([^"]+)"', html_text)
    assert m, html_text[:300]
    return base64.b64decode(m.group(1)).decode()


def half_failed_plan() -> nbsteps.Plan:
    """8 steps: 4 complete, one fails, 2 are blocked behind it, one is cancelled."""
    plan = nbsteps.Plan()
    for i in range(4):
        plan.add_cell(f"ok{i}", f"v{i} = {i}")
    plan.add_cell("bad", f"raise ValueError({XSS!r})\nb = 1")
    plan.add_cell("after1", "c1 = b")
    plan.add_cell("after2", "c2 = c1")
    plan.add_cell("ask", "d = 1", confirm="really?")
    plan.run()
    return plan


@needs_dot
def test_static_picture_counts_apart_and_escapes():
    plan = half_failed_plan()
    bundle = static_bundle(plan.context, summary=plan.last_summary)
    html = bundle["text/html"]
    assert "4/8 completed" in html  # not a full red 8/8 bar
    for count, label in ((4, "executed"), (1, "failed"), (2, "blocked"), (1, "cancelled")):
        assert f'title="{count} {label}"' in html
    assert "width:50.000%" in html  # the completed segment is half the bar
    assert "<svg" not in html and "<script" not in html.lower()
    svg = svg_in(html)
    assert svg.count('class="node nbsteps-step') == 8 and "<script" not in svg.lower()
    assert "&lt;script&gt;" in html  # the error, as text, in the table
    assert (
        bundle["text/plain"].startswith("nbsteps: finished in") and "4 of 8 completed" in bundle["text/plain"]
    )
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG")


@needs_dot
def test_stale_is_drawn_apart_from_completed_once_flags_are_refreshed():
    plan = nbsteps.Plan()
    plan.namespace["N"] = 1
    plan.add_cell("a", "x = N")
    plan.add_cell("b", "y = x")
    plan.run()
    plan.namespace["N"] = 2  # a changes, so b is stale too; nothing has recomputed the flags yet
    svg = svg_in(plan.static_picture()["text/html"])
    stale_fills = re.findall(rf'fill="{G.STALE_FILL}"', svg)
    assert len(stale_fills) == 2 and f'stroke="{G.STALE_COLOR}"' in svg
    assert f'fill="{G.STYLES["completed"][0]}"' not in svg
    html = static_bundle(plan.context)["text/html"]
    assert html.count("nbsteps-stale") == 2 and "completed (stale)" in html


def test_step_output_area_shows_status_output_and_escapes():
    plan = nbsteps.Plan()
    plan.add_cell("s", "print('<b>not bold</b>')\nimport sys\nprint('warn', file=sys.stderr)\nv = 1")
    plan.run()
    bundle = step_bundle(plan.context, "s", result={"text/plain": "42", "text/html": "<i>42</i>"})
    html = bundle["text/html"]
    assert "&lt;b&gt;not bold&lt;/b&gt;" in html and "<b>not bold" not in html
    assert 'class="nbsteps-stderr"' in html and "<i>42</i>" in html  # the result's own HTML
    assert bundle["text/plain"].splitlines()[0].startswith("✓ s completed in")
    assert "warn" in bundle["text/plain"] and "42" in bundle["text/plain"]
    png = base64.b64encode(b"\x89PNG fake").decode()
    shown = step_bundle(
        plan.context, "s", output=(("display", {"data": {"image/png": png, "text/plain": "<Figure>"}}),)
    )
    assert f'src="data:image/png;base64,{png}"' in shown["text/html"]


def test_failed_step_area_has_traceback_unless_the_cell_shows_it():
    plan = nbsteps.Plan()
    plan.add_cell("bad", f"raise ValueError({XSS!r})")
    plan.run()
    with_tb = step_bundle(plan.context, "bad")["text/html"]
    assert "nbsteps-traceback" in with_tb and "&lt;script&gt;" in with_tb and "<script" not in with_tb
    assert "nbsteps-traceback" not in step_bundle(plan.context, "bad", traceback=False)["text/html"]


def test_printed_text_as_a_terminal_leaves_it():
    assert clean_text("10%\r50%\r100%\n\x1b[31mred\x1b[0m\n") == "100%\nred\n"
    long = "".join(f"line {i}\n" for i in range(10_000))
    shown = clean_text(long, limit=1000)
    assert shown.startswith("[… ") and shown.endswith("line 9999\n") and len(shown) < 1200


@pytest.mark.parametrize(
    "value, text",
    [
        (np.float64(16880.9), "16880.9"),
        (np.int64(3), "3"),
        (pd.DataFrame(np.zeros((1000, 5)), columns=list("abcde")), "DataFrame 1000×5 (a, b, c, d, …)"),
        (pd.Series({"weekday": 17, "weekend": 7}), "Series (2): weekday=17, weekend=7"),
        (np.arange(12.0).reshape(3, 4), "array 3×4 float64: [0.0, 1.0, 2.0, 3.0, …]"),
        (list(range(100)), "list of 100: [0, 1, 2, 3, …]"),
        ((np.float64(1.5), "x"), "(1.5, 'x')"),
        (None, "None"),
    ],
)
def test_result_summaries(value, text):
    assert summarize(value) == text


def test_long_summaries_end_at_a_word():
    text = summarize("kept 479 of 504 readings (25 had no temperature) and a long tail of words after it")
    assert text.endswith("…'") and len(text) <= 80 and " a…" not in text[:-3] + "x"


def test_a_result_of_none_shows_nothing_in_the_table_as_in_a_notebook():
    import nbsteps
    from nbsteps.views.table import rows

    plan = nbsteps.Plan()
    plan.add_cell("talks", "print('hi')")  # its last expression's value is None: no Out
    plan.add_cell("zero", "0")
    assert plan.run().ok
    got = {r["step"]: r["result"] for r in rows(plan.context)}
    assert got == {"talks": "", "zero": "0"}
