"""Hostile errors from steps: an exception whose ``__str__`` raises, a
``GeneratorExit`` or bare ``BaseException`` on the caller's thread, and error
messages with lone surrogates. The run goes on and every view still works."""

import io
import json
import threading

import pandas as pd
import pytest
from conftest import run_err, run_ok

import nbsteps
from nbsteps.errors import StepsFailed

UNPRINTABLE = """
class Unprintable(ValueError):
    def __str__(self):
        raise RuntimeError("__str__ is broken too")
"""


def _every_view(plan, tmp_path) -> dict:
    """Status text, results, every export, the graph: all must work."""
    from nbsteps.ipython.session import status_text
    from nbsteps.views.graph import plan_graph

    out = {"status": status_text(plan), "results": plan.results(), "summary": plan.last_summary.text}
    for suffix in (".csv", ".json", ".parquet", ".html"):
        out[suffix] = plan.export(tmp_path / f"results{suffix}")
    out["dot"] = plan_graph(plan.context).source
    try:
        out["svg"] = plan_graph(plan.context).pipe(format="svg").decode("utf-8")
    except Exception as exc:  # graphviz missing here: the DOT source is what matters
        if "ExecutableNotFound" not in type(exc).__name__ and "dot" not in str(exc):
            raise
    return out


def test_unprintable_exception_fails_its_step_and_the_run_goes_on(tmp_path):
    """Defect 2: a parallel step stayed running, its sibling's output never published."""
    plan = nbsteps.Plan()
    ns = plan.namespace
    exec(UNPRINTABLE, ns)
    # both steps run at once, on worker threads (a plain function: no dependency between them)
    ns["meet"] = threading.Barrier(2, timeout=30).wait
    plan.add_cell("bad", "meet()\nraise Unprintable('x')", retry=1, retry_delay=0)
    plan.add_cell("good", "meet()\nmeet()\nok = 1")  # waits for bad's retry too
    plan.add_cell("after", "total = ok + 1")
    stream = io.StringIO()
    from nbsteps.views.text import TextReporter

    summary = plan.run(workers=2, listeners=[TextReporter(stream)])
    assert plan["bad"].status == "failed" and plan["bad"].attempts == 2
    assert plan["good"].status == "completed" and plan["after"].status == "completed"
    assert ns["total"] == 2
    assert plan["bad"].error_text == "<unprintable Unprintable>"
    assert "bad failed after 2 attempts: <unprintable Unprintable>" in stream.getvalue()
    assert "bad failed: <unprintable Unprintable> (2 attempts)" in summary.text
    views = _every_view(plan, tmp_path)
    assert "<unprintable Unprintable>" in views["status"]
    assert "<unprintable Unprintable>" in views["dot"]
    assert list(views["results"].status) == ["failed", "completed", "completed"]
    assert "bad" in plan.plan().text  # planning still works
    ns["meet"] = threading.Barrier(1).wait  # the next run works too (bad alone runs again)
    assert plan.run().ok is False and plan["bad"].status == "failed"


def test_unprintable_exception_in_magics(shell, tmp_path, capsys):
    run_ok(shell, UNPRINTABLE)
    err = run_err(shell, "%%step bad\nraise Unprintable()")
    assert isinstance(err, StepsFailed) and "bad failed: <unprintable Unprintable>" in str(err)
    run_ok(shell, "%%step fine\nv = 1")
    for line in (
        "%steps status",
        "%steps results",
        f"%steps export {tmp_path / 'r.csv'}",
        f"%steps export {tmp_path / 'r.html'}",
        "%steps graph --format dot",
        "%steps plan",
    ):
        run_ok(shell, line)
    assert "<unprintable Unprintable>" in capsys.readouterr().out


@pytest.mark.parametrize("raised", ["GeneratorExit()", "BaseException('bare')"])
def test_base_exception_from_a_lone_step_fails_it(raised):
    """Defect 6: on the caller's thread (a lone step runs inline) it escaped the
    run and left the step running; on worker threads it failed the step."""
    plan = nbsteps.Plan()
    plan.add_cell("odd", f"raise {raised}")
    plan.add_cell("next", "after = 1", after=["odd"])
    plan.add_cell("other", "other = 2")
    summary = plan.run(workers=1)  # one worker: every step runs on this thread
    assert plan["odd"].status == "failed" and plan["next"].status == "blocked"
    assert plan["other"].status == "completed"
    assert f"odd failed: {raised.split('(')[0]}" in summary.text
    assert not any(r.status in ("running", "retrying") for r in plan.records.values())


def test_keyboard_interrupt_from_a_lone_step_still_interrupts():
    plan = nbsteps.Plan()
    plan.add_cell("stop", "raise KeyboardInterrupt")
    with pytest.raises(KeyboardInterrupt):
        plan.run()
    assert plan["stop"].status == "cancelled" and plan.last_summary.interrupted


SURROGATE = "bad name \udcff.csv"


def _surrogate_plan(message):
    plan = nbsteps.Plan()
    plan.namespace["message"] = message
    plan.add_cell("read", "raise FileNotFoundError(message)")
    plan.add_cell("fine", "v = 1")
    return plan


@pytest.mark.parametrize("message", [SURROGATE, "lone high \ud800 surrogate"])
def test_surrogates_in_error_messages_export_to_every_format(tmp_path, message):
    """Defect 8: a lone surrogate (a file name that is not UTF-8) made every export fail."""
    plan = _surrogate_plan(message)
    plan.run()
    for suffix in (".csv", ".json", ".parquet", ".html"):
        plan.export(tmp_path / f"results{suffix}")
    frame = pd.read_csv(tmp_path / "results.csv").set_index("step")
    assert frame.loc["read", "status"] == "failed" and "FileNotFoundError" in frame.loc["read", "error"]
    assert json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))[0]["status"] == "failed"
    assert pd.read_parquet(tmp_path / "results.parquet").set_index("step").loc["read", "status"] == "failed"
    assert "FileNotFoundError" in (tmp_path / "results.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("message", [SURROGATE, "lone high \ud800 surrogate"])
def test_surrogates_in_error_messages_print_and_draw(tmp_path, message):
    from nbsteps.views.text import TextReporter

    plan = _surrogate_plan(message)
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")  # like a UTF-8 terminal or log
    plan.run(listeners=[TextReporter(stream)])
    stream.flush()
    printed = raw.getvalue().decode("utf-8")
    assert "read failed: FileNotFoundError: " in printed and "1 of 2 steps completed" in printed
    views = _every_view(plan, tmp_path)
    assert "FileNotFoundError" in views["dot"] and "FileNotFoundError" in views["status"]
    views["dot"].encode("utf-8")
    plan.last_summary.text.encode("utf-8")


@pytest.mark.kernel
def test_hostile_errors_reach_a_real_kernel_client(tmp_path, kernel_name):
    """What the kernel sends for such errors (a StepsFailed with the step's own
    traceback) reaches jupyter_client intact, as text every format can hold."""
    from live_kernel import LiveKernel

    with LiveKernel(kernel_name, tmp_path) as k:
        k.run("%load_ext nbsteps\n" + UNPRINTABLE)
        cells = {
            "unprintable": ("%%step bad\nraise Unprintable()", "bad failed: <unprintable Unprintable>"),
            "surrogate": (
                "%%step read\nraise FileNotFoundError('bad name \\udcff.csv')",
                "read failed: FileNotFoundError: bad name \\udcff.csv",
            ),
            "high surrogate": (
                "%%step read2\nraise OSError('x \\ud800 y')",
                "read2 failed: OSError: x \\ud800 y",
            ),
        }
        for what, (cell, summary) in cells.items():
            out = k.collect(k.submit(cell))
            assert out["ename"] == "StepsFailed" and summary in out["evalue"], (what, out)
            text = "\n".join(out["traceback"]) + out["stdout"]
            assert summary in text, (what, text)
            text.encode("utf-8")
        k.run("%%step fine\nv = 1")
        k.run(f"%steps status\n%steps export {tmp_path / 'r.parquet'}\n%steps graph --format dot")
        assert pd.read_parquet(tmp_path / "r.parquet").status.tolist() == [
            "failed",
            "failed",
            "failed",
            "completed",
        ]
