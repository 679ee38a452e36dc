"""Per-step overhead of the nbsteps executor through the Python API.

    python bench/overhead.py

chain_1000: 1000 no-op steps each depending on the previous; wide_1000: 1000
independent no-op steps and a sum; sleep_fanout_8: 8 independent 0.25 s sleeps
on 8 workers (wall time over the 0.25 s ideal); chain_10000: must simply run
(no recursion). Median of several runs; registration is not timed.
"""

from __future__ import annotations

import statistics
import sys
import time

import nbsteps


def chain_plan(n: int) -> nbsteps.Plan:
    plan = nbsteps.Plan()

    @plan.step("s0")
    def s0():
        return 0

    for i in range(1, n):
        ns: dict = {}
        exec(f"def f(s{i - 1}):\n    return s{i - 1} + 1", ns)
        plan.step(f"s{i}")(ns["f"])
    return plan


def wide_plan(n: int) -> nbsteps.Plan:
    plan = nbsteps.Plan()
    for i in range(n):
        ns: dict = {}
        exec(f"def f():\n    return {i}", ns)
        plan.step(f"w{i}")(ns["f"])
    ns = {}
    exec(
        "def total("
        + ", ".join(f"w{i}" for i in range(n))
        + "):\n    return "
        + " + ".join(f"w{i}" for i in range(n)),
        ns,
    )
    plan.step("total")(ns["total"])
    return plan


def fanout_plan(width: int = 8, seconds: float = 0.25) -> nbsteps.Plan:
    plan = nbsteps.Plan()
    for i in range(width):

        def sleeper(seconds=seconds):
            time.sleep(seconds)
            return 1

        plan.step(f"sleep{i}")(sleeper)
    ns: dict = {}
    exec("def join(" + ", ".join(f"sleep{i}" for i in range(width)) + "):\n    return 0", ns)
    plan.step("join")(ns["join"])
    return plan


def time_run(make, repeat: int = 5, **run_kw) -> list[float]:
    times = []
    for _ in range(repeat):
        plan = make()
        t = time.perf_counter()
        summary = plan.run(**run_kw)
        times.append(time.perf_counter() - t)
        assert summary.ok, summary.text
    return times


def main(scale: float = 1.0) -> dict:
    n = max(10, int(1000 * scale))
    chain = statistics.median(time_run(lambda: chain_plan(n)))
    wide = statistics.median(time_run(lambda: wide_plan(n), workers=8))
    fan = statistics.median(time_run(lambda: fanout_plan(8, 0.25 * scale), workers=8))
    long_n = max(100, int(10_000 * scale))
    t = time.perf_counter()
    chain_plan(long_n).run()
    long = time.perf_counter() - t
    out = {
        f"chain_{n}_us_per_step": chain / n * 1e6,
        f"wide_{n}_us_per_step": wide / (n + 1) * 1e6,
        "sleep_fanout_8_over_ideal": fan / (0.25 * scale),
        f"chain_{long_n}_s": long,
    }
    return out


if __name__ == "__main__":
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    for k, v in main(scale).items():
        print(f"{k:32s} {v:10.3f}")
