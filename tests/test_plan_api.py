"""The Python API (SPEC 3) in plain Python, without IPython."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

import nbsteps
from nbsteps.errors import CycleError, NbstepsError, StepDefinitionError, UnknownStepError


def test_function_steps_chain_and_results():
    plan = nbsteps.Plan()

    @plan.step("fetch")
    def fetch():
        return [3, 1, None, 2]

    @plan.step("clean")
    def clean(fetch):
        return sorted(v for v in fetch if v is not None)

    @plan.step("notify", after=["clean"], optional=True)
    def notify():
        return "sent"

    summary = plan.run(workers=4)
    assert summary.ok
    assert plan["clean"].result == [1, 2, 3]
    assert plan["clean"].outputs == {"clean": [1, 2, 3]}
    assert plan.dependencies("clean") == {"fetch": "explicit"}
    assert plan["notify"].ok and plan["notify"].status == "completed"
    df = plan.results()
    assert list(df["step"]) == ["fetch", "clean", "notify"]
    for col in [
        "step",
        "status",
        "cached",
        "attempts",
        "started",
        "finished",
        "duration_s",
        "outputs",
        "result",
        "error",
    ]:
        assert col in df.columns
    assert plan["fetch"].duration is not None and plan["fetch"].duration >= 0


def test_rerun_executes_nothing_and_force_reruns():
    calls = []
    plan = nbsteps.Plan()

    @plan.step("a")
    def a():
        calls.append("a")
        return 1

    @plan.step("b")
    def b(a):
        calls.append("b")
        return a + 1

    plan.run()
    assert calls == ["a", "b"]
    s = plan.run()
    assert calls == ["a", "b"] and s.cached == ["a", "b"]
    assert plan["b"].cached
    plan.run(force=["a"])  # a re-executes, so b (downstream) is stale too
    assert calls == ["a", "b", "a", "b"]
    plan.run(force_all=True)
    assert calls[-2:] == ["a", "b"] and len(calls) == 6
    plan.reset("b")
    plan.run()
    assert calls[-1] == "b" and len(calls) == 7


def test_failure_blocks_only_downstream_and_summary():
    plan = nbsteps.Plan()

    @plan.step("fetch", retry=2, retry_delay=0.01)
    def fetch():
        raise ConnectionError("host unreachable")

    @plan.step("report")
    def report(fetch):
        return fetch

    @plan.step("other")
    def other():
        return 42

    s = plan.run()
    assert not s.ok
    assert plan["fetch"].status == "failed" and plan["fetch"].attempts == 3
    assert plan["report"].status == "blocked"
    assert plan["other"].ok and plan["other"].result == 42
    assert s.text.startswith(
        "1 of 3 steps completed; fetch failed: ConnectionError: host unreachable (3 attempts); "
        "report blocked."
    )
    assert "Fix fetch and run plan.run() to resume." in s.text


def test_fail_fast_cancels_the_rest():
    plan = nbsteps.Plan()

    @plan.step("bad")
    def bad():
        raise ValueError("x")

    @plan.step("slow")
    def slow():
        time.sleep(0.3)
        return 1

    @plan.step("later")
    def later(slow):
        return slow

    s = plan.run(fail_fast=True, workers=2)
    assert plan["bad"].status == "failed"
    assert plan["slow"].status == "completed"  # running steps finish
    assert plan["later"].status == "cancelled"
    assert "fail-fast" in plan["later"].message
    assert not s.ok


def test_optional_failure_blocks_nothing():
    plan = nbsteps.Plan()
    plan.add_cell("extra", "bonus = 1 / 0", optional=True)
    plan.add_cell("main", "result = bonus if 'bonus' in dir() else 'fallback'")
    s = plan.run()
    assert plan["extra"].status == "failed"
    assert plan["main"].ok and plan["main"].outputs["result"] == "fallback"
    assert s.ok  # an optional failure does not make the run fail
    assert "extra failed [optional]" in s.text


def test_retry_on_narrows_and_structural_errors_are_not_retried():
    plan = nbsteps.Plan()

    @plan.step("narrow", retry=3, retry_delay=0.001, retry_on="ConnectionError")
    def narrow():
        raise ValueError("not retried")

    @plan.step("name", retry=3, retry_delay=0.001)
    def name():
        return undefined_thing  # noqa: F821

    @plan.step("imp", retry=3, retry_delay=0.001)
    def imp():
        import no_such_module_anywhere  # noqa: F401

    plan.run()
    assert plan["narrow"].attempts == 1
    assert plan["name"].attempts == 1 and isinstance(plan["name"].error, NameError)
    assert plan["imp"].attempts == 1


def test_retry_backoff_doubles():
    plan = nbsteps.Plan()
    times = []

    @plan.step("flaky", retry=2, retry_delay=0.1)
    def flaky():
        times.append(time.monotonic())
        raise OSError("again")

    plan.run()
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert len(gaps) == 2
    assert 0.1 <= gaps[0] < 0.5
    assert gaps[1] >= 0.2 and gaps[1] > gaps[0] * 1.5


def test_timeout_fails_and_discards_late_outputs():
    plan = nbsteps.Plan()
    plan.add_cell("slow", "import time\ntime.sleep(0.8)\nlate = 1", timeout=0.2)
    plan.add_cell("after", "y = late + 1")
    t = time.perf_counter()
    s = plan.run()
    assert time.perf_counter() - t < 0.7
    assert plan["slow"].status == "failed"
    assert "timed out" in plan["slow"].error_text
    assert plan["after"].status == "blocked"
    time.sleep(0.9)  # let the abandoned thread finish
    assert "late" not in plan.namespace
    assert not s.ok


def test_parallel_fanout_approaches_critical_path():
    plan = nbsteps.Plan()
    for i in range(6):
        plan.add_cell(f"s{i}", f"import time\ntime.sleep(0.3)\nv{i} = {i}")
    plan.add_cell("join", "total = " + " + ".join(f"v{i}" for i in range(6)))
    t = time.perf_counter()
    s = plan.run()
    wall = time.perf_counter() - t
    assert s.ok and plan.namespace["total"] == 15
    assert wall < 1.0  # sequential would be 1.8 s; generous margin


def test_long_chain_has_no_recursion_limit():
    plan = nbsteps.Plan()

    @plan.step("s0")
    def s0():
        return 0

    for i in range(1, 10_000):
        ns = {}
        exec(f"def f(s{i - 1}):\n    return s{i - 1} + 1", ns)
        plan.step(f"s{i}")(ns["f"])
    s = plan.run()
    assert s.ok and plan["s9999"].result == 9999


def test_unknown_step_and_cycle_errors():
    plan = nbsteps.Plan()
    with pytest.raises(UnknownStepError) as e:
        plan.add_cell("b", "y = 1", after=["nope"])
    assert "nope" in str(e.value) and "b" in str(e.value)
    plan.add_cell("a", "x = 1")
    plan.add_cell("b", "y = x + 1")
    with pytest.raises(CycleError) as e:
        plan.add_cell("a", "x = 1", after=["b"])
    assert "a -> b -> a" in str(e.value)
    # the previous valid definition stays registered
    assert plan.steps["a"].after == ()
    assert plan.run().ok
    with pytest.raises(UnknownStepError):
        plan["zzz"]
    with pytest.raises(UnknownStepError):
        plan.run(["zzz"])


def test_bad_names_and_options():
    plan = nbsteps.Plan()
    with pytest.raises(StepDefinitionError):
        plan.add_cell("1bad", "x = 1")
    with pytest.raises(StepDefinitionError):
        plan.add_cell("ok", "x = 1", retry=-1)
    with pytest.raises(StepDefinitionError):
        plan.add_cell("ok", "x = 1", timeout=0)

    with pytest.raises(StepDefinitionError) as e:

        @plan.step("needs")
        def needs(missing_step):
            return 1

    assert "missing_step" in str(e.value)


def test_targets_run_only_what_they_need():
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    plan.add_cell("b", "y = x + 1")
    plan.add_cell("c", "z = 5")
    s = plan.run("b")
    assert s.steps == ["a", "b"]
    assert plan["c"].status == "pending"


def test_remove_and_reset():
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    plan.add_cell("b", "y = x + 1", after=["a"])
    plan.run()
    with pytest.raises(NbstepsError):
        plan.remove("a")  # b names it explicitly
    assert plan.reset("a") == ["a", "b"]
    assert plan["a"].status == "pending" and plan["b"].status == "pending"
    plan.remove("b")
    assert "b" not in plan
    plan.remove("a")
    assert len(plan) == 0


def test_export_formats_and_html_escaping(tmp_path):
    plan = nbsteps.Plan()

    @plan.step("evil")
    def evil():
        raise RuntimeError("<script>alert(1)</script>")

    plan.run()
    for suffix in ["csv", "json", "html", "parquet"]:
        path = plan.export(tmp_path / f"r.{suffix}")
        assert os.path.getsize(path) > 0
    html = (tmp_path / "r.html").read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    import pandas as pd

    assert list(pd.read_csv(tmp_path / "r.csv")["step"]) == ["evil"]
    assert pd.read_parquet(tmp_path / "r.parquet")["status"].tolist() == ["failed"]
    with pytest.raises(NbstepsError):
        plan.export(tmp_path / "r.xlsx")


def test_confirmation_declined_cancels_and_blocks_downstream():
    plan = nbsteps.Plan()
    plan.add_cell("deploy", "done = True", confirm="Deploy to production?")
    plan.add_cell("announce", "msg = done")
    s = plan.run()  # no confirm callback: headless
    assert plan["deploy"].status == "cancelled"
    assert "yes" in plan["deploy"].message
    assert plan["announce"].status == "blocked"
    asked = []
    s = plan.run(confirm=lambda step, text: asked.append((step, text)) or False)
    assert asked == [("deploy", "Deploy to production?")]
    assert plan["deploy"].status == "cancelled"
    s = plan.run(confirm=lambda step, text: True)
    assert s.ok
    plan.reset()
    assert plan.run(yes=True).ok


def test_rollback_undoes_in_reverse_completion_order():
    plan = nbsteps.Plan()
    log = []
    plan.namespace["record"] = log.append  # an external side effect
    plan.add_cell("one", "record('do1')\na = 1")
    plan.add_cell("two", "record('do2')\nb = a + 1")
    plan.add_cell("three", "c = b / 0")

    plan.set_undo("one", "record('undo1')")
    plan.set_undo("two", "record('undo2')")
    s = plan.run(rollback=True)
    assert log == ["do1", "do2", "undo2", "undo1"]
    assert s.rolled_back == ["two", "one"]
    assert plan["one"].status == "pending"
    assert "rolled back: two, one" in s.text


def test_plan_preview_reasons_levels_and_critical_path():
    plan = nbsteps.Plan()
    plan.namespace["threshold"] = 3
    plan.add_cell("load", "import time\ntime.sleep(0.05)\ndata = list(range(10))")
    plan.add_cell("left", "lo = [v for v in data if v < threshold]")
    plan.add_cell("right", "import time\ntime.sleep(0.1)\nhi = [v for v in data if v >= threshold]")
    plan.add_cell("join", "both = lo + hi")
    p = plan.plan()
    assert p.to_run == ["load", "left", "right", "join"]
    assert {r["reason"] for r in p.rows} == {"never run"}
    assert [r["level"] for r in p.rows] == [0, 1, 1, 2]
    plan.run()
    p = plan.plan()
    assert p.to_run == [] and p.critical_path == []  # only what will execute (issue 24)
    plan.namespace["threshold"] = 5
    p = plan.plan()
    assert p.reason("left") == "parameter threshold changed"
    assert p.reason("join").startswith("upstream")
    assert p.reason("load") == "up to date"
    assert p.estimate_s >= 0.1  # from earlier durations
    plan.add_cell("right", "hi = [v for v in data if v > threshold]")
    assert plan.plan().reason("right") == "code changed"
    assert plan.plan(force=["load"]).reason("load") == "forced"
    assert "Critical path" in plan.plan().text


def test_interrupt_in_a_script_keeps_completed_and_resumes(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(
        textwrap.dedent("""
        import os, signal, threading, time, nbsteps
        plan = nbsteps.Plan()
        plan.add_cell("a", "x = 1")
        plan.add_cell("b", "import time\\ntime.sleep(3)\\ny = x")
        plan.add_cell("c", "z = y + 1")
        threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        t = time.perf_counter()
        try:
            plan.run()
        except KeyboardInterrupt:
            print("interrupted after", round(time.perf_counter() - t, 1))
        print({n: plan[n].status for n in "abc"})
        print("y" in plan.namespace)
        print(plan.last_summary.text)
    """)
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    waited = [float(line.split()[-1]) for line in lines if line.startswith("interrupted after")]
    assert waited and waited[0] < 2.0, out.stdout  # promptly, not after the 3 s step
    assert "{'a': 'completed', 'b': 'cancelled', 'c': 'cancelled'}" in lines
    assert "False" in lines  # nothing half-published
    assert "Interrupted" in out.stdout and "to resume" in out.stdout


def test_outputs_are_held_by_reference():
    plan = nbsteps.Plan()
    big = bytearray(10)

    @plan.step("hold")
    def hold():
        return big

    plan.run()
    assert plan["hold"].result is big
    assert plan.store.get("hold").outputs["hold"] is big


def test_rollback_keeps_the_failure_in_the_summary():
    plan = nbsteps.Plan()
    plan.add_cell("apply", "applied = 1")
    plan.add_cell("verify", "assert applied == 2, 'verification failed'")

    plan.set_undo("apply", "pass")
    s = plan.run(rollback=True)
    assert plan["verify"].status == "failed"
    assert "verify failed: AssertionError: verification failed" in s.text
    assert "rolled back: apply" in s.text


def test_rollback_stops_at_a_failing_undo_and_says_so():
    plan = nbsteps.Plan()
    plan.add_cell("one", "a = 1")
    plan.add_cell("two", "b = a + 1")
    plan.add_cell("three", "c = b / 0")

    plan.set_undo("one", "pass")
    plan.set_undo("two", "raise RuntimeError('cannot undo two')")
    s = plan.run(rollback=True)
    assert s.rolled_back == [] and "two" in s.rollback_errors
    assert "undo of two failed: RuntimeError: cannot undo two" in s.text
    assert plan["one"].status == "completed"  # not undone: the rollback stopped


def test_critical_path_before_any_run_is_the_longest_chain():
    plan = nbsteps.Plan()
    plan.add_cell("orders", "o = 1")
    plan.add_cell("fx", "f = 1")
    plan.add_cell("revenue", "r = o * f")
    plan.add_cell("net", "n = r - 1")
    plan.add_cell("report", "out = (n, f)")
    assert plan.plan().critical_path == ["orders", "revenue", "net", "report"]


def test_summary_keeps_what_its_run_did():
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    s = plan.run()
    plan.reset()
    assert plan["a"].status == "pending"
    assert s.text == "1 of 1 steps completed." and plan.last_summary.ok


def test_backend_that_cannot_start_changes_nothing():
    plan = nbsteps.Plan()
    plan.add_cell("a", "x = 1")
    plan.run()
    with pytest.raises(NbstepsError) as e:
        plan.run(backend="nowhere")
    assert "unknown backend" in str(e.value)
    assert plan["a"].status == "completed"


def test_one_worker_runs_steps_in_order_on_the_calling_thread():
    import threading as th

    plan = nbsteps.Plan()
    seen = []
    for i in range(5):

        def f(i=i):
            seen.append((i, th.current_thread() is th.main_thread()))
            return i

        plan.step(f"s{i}")(f)
    assert plan.run(workers=1).ok
    assert seen == [(i, True) for i in range(5)]
