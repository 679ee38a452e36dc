"""CPU-bound steps on the threads backend vs the dask backend.

    python bench/dask_cpu.py [--steps 4] [--step-seconds 0.5] [--tiny 200] [--repeat 3]

* **Speedup**: ``--steps`` independent cell steps, each a pure-Python loop that
  holds the GIL for about ``--step-seconds`` (calibrated on this machine), run
  with ``plan.run(backend="threads")`` and ``plan.run(backend="dask")``. With
  threads the GIL serialises them; the dask backend's LocalCluster (worker
  processes, one single-threaded worker per core: 2 here) runs them in parallel.
  Prints both walls and ``speedup = threads wall / dask wall``.
* **Overhead**: ``--tiny`` no-op cell steps, per step in ms, on both backends:
  independent (throughput, 2 workers) and a chain (latency: one round trip to
  a worker per step, nothing overlaps).
* **Against raw dask** (issue 14): ``--raw`` (100) independent no-op cell steps
  with the default settings (``plan.run(backend="dask")``) against
  ``client.submit(noop, i, pure=False)`` for each and one ``client.gather`` on
  the same cluster, alternated; ms per step and the ratio of medians.
* **Shared input**: 8 steps reading one ~200 MB DataFrame from the namespace
  on dask (the frame travels once per run, scattered, instead of inside each
  task).

The cluster is the one the dask backend starts on first use
(``nbsteps.dask_backend.get_client()``); its start-up is reported separately
and not charged to any run. Every timed call builds a fresh plan (nothing is
restored from a checkpoint). Median and best of ``--repeat`` runs after one warm-up
(best-of is less sensitive to other processes on a shared machine).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from timing import measure  # noqa: E402

import nbsteps  # noqa: E402

CPU_CELL = """\
acc = 0
for i in range(N):
    acc = (acc + i * i) % 1_000_003
result_{k} = acc
result_{k}
"""


def calibrate(seconds: float) -> int:
    """Loop count for about *seconds* of CPU time of the CPU cell (CPU time,
    not wall: other processes on the machine must not shrink the steps)."""
    n = 200_000
    while True:
        ns = {"N": n}
        t0 = time.process_time()
        exec(CPU_CELL.format(k=0), ns)
        dt = time.process_time() - t0
        if dt > 0.1:
            return max(1, int(n * seconds / dt))
        n *= 4


def cpu_plan(steps: int, n: int) -> nbsteps.Plan:
    plan = nbsteps.Plan(namespace={"N": n})
    for k in range(steps):
        plan.add_cell(f"cpu_{k}", CPU_CELL.format(k=k))
    return plan


def tiny_plan(count: int, chain: bool) -> nbsteps.Plan:
    plan = nbsteps.Plan(namespace={})
    for k in range(count):
        src = f"v{k} = v{k - 1} + 1" if chain and k else f"v{k} = {k}"
        plan.add_cell(f"t{k}", src)
    return plan


def run(make, backend: str, workers: int, repeat: int) -> dict:
    def once():
        plan = make()
        summary = plan.run(backend=backend, workers=workers)
        assert summary.ok, summary.text
        return plan

    return measure(once, repeat=repeat, warmup=1)


def _noop(i):
    return i


def vs_raw(client, n: int, repeat: int) -> None:
    """Default dask runs of n independent no-op steps against raw client.submit, alternated."""

    def raw():
        return client.gather([client.submit(_noop, i, pure=False) for i in range(n)])

    def steps():
        summary = tiny_plan(n, False).run(backend="dask")
        assert summary.ok, summary.text

    runs: dict = {"raw client.submit + gather": [], "nbsteps (default settings)": []}
    raw(), steps()
    for _ in range(max(3, repeat)):
        for label, fn in zip(runs, (raw, steps), strict=True):
            t0 = time.perf_counter()
            fn()
            runs[label].append((time.perf_counter() - t0) / n * 1000)
    print(f"{n} independent no-op steps, against raw dask on the same cluster (alternated):")
    for label, ms in runs.items():
        print(f"  {label:<28}: {statistics.median(ms):.2f} ms per step median, {min(ms):.2f} best")
    a, b = (statistics.median(v) for v in runs.values())
    print(f"  -> nbsteps / raw dask: {b / a:.2f}x (medians)")


def shared_input(repeat: int) -> None:
    import numpy as np
    import pandas as pd

    big = pd.DataFrame(np.random.default_rng(0).random((2_500_000, 10)), columns=[f"c{i}" for i in range(10)])

    def once():
        plan = nbsteps.Plan(namespace={"big": big})
        for k in range(8):
            plan.add_cell(f"use{k}", f"r{k} = float(big['c{k % 10}'].iloc[{k}])")
        summary = plan.run(backend="dask")
        assert summary.ok, summary.text

    m = measure(once, repeat=repeat, warmup=1)
    print(
        f"8 steps reading one {big.memory_usage().sum() / 1e6:.0f} MB DataFrame on dask: "
        f"{m['median_s']:.2f} s median, {m['min_s']:.2f} s best"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--step-seconds", type=float, default=0.5)
    ap.add_argument("--tiny", type=int, default=200)
    ap.add_argument("--raw", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)

    from nbsteps.backends import distributed as dask_backend

    cores = os.cpu_count() or 1
    os.environ.setdefault("NBSTEPS_DASK_WORKERS", str(cores))
    t0 = time.perf_counter()
    client = dask_backend.get_client()
    startup = time.perf_counter() - t0
    nworkers = len(client.scheduler_info()["workers"])
    n = calibrate(a.step_seconds)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {cores} cores, load average {load:.2f} before the run (other processes skew the numbers); "
        f"dask LocalCluster: {nworkers} worker processes x 1 thread (started in {startup:.2f} s, not counted)"
    )
    print(f"CPU step: pure-Python loop of {n:,} iterations (~{a.step_seconds:g} s holding the GIL)")

    cpu = {}
    for backend in ("threads", "dask"):
        m = run(lambda: cpu_plan(a.steps, n), backend, a.steps, a.repeat)
        cpu[backend] = m
        plan = m["result"]
        per = statistics.median(plan[s].duration for s in plan.order())
        print(
            f"  {a.steps} CPU steps on {backend:<7}: wall {m['median_s']:.2f} s median, "
            f"{m['min_s']:.2f} s best of {len(m['runs'])} (median step {per:.2f} s)"
        )
    ideal = min(a.steps, nworkers)
    speedup = cpu["threads"]["median_s"] / cpu["dask"]["median_s"]
    best = cpu["threads"]["min_s"] / cpu["dask"]["min_s"]
    print(
        f"speedup of dask over threads: {speedup:.2f}x on medians, {best:.2f}x on best runs "
        f"(ideal on {nworkers} processes: {ideal:.2f}x)"
    )

    print(f"per-step overhead, {a.tiny} no-op steps:")
    overhead = {}
    for shape, chain, workers in (("independent", False, 2), ("chain", True, 1)):
        for backend in ("threads", "dask"):
            m = run(lambda chain=chain: tiny_plan(a.tiny, chain), backend, workers, a.repeat)
            ms = m["median_s"] / a.tiny * 1000
            overhead[(shape, backend)] = ms
            print(f"  {shape:<11} on {backend:<7}: {ms:6.2f} ms per step (wall {m['median_s']:.2f} s)")
        extra = overhead[(shape, "dask")] - overhead[(shape, "threads")]
        print(f"  -> dask adds {extra:.2f} ms per step ({shape})")
    vs_raw(client, a.raw, a.repeat)
    shared_input(a.repeat)
    if hasattr(os, "getloadavg"):
        print(f"load average after the run: {os.getloadavg()[0]:.2f}")
    dask_backend.shutdown()
    return 0


if __name__ == "__main__":  # the guard matters: dask's worker processes are spawned
    sys.exit(main())
