"""The dask backend against raw dask, on chains and on independent steps,
optionally for two nbsteps versions in the same invocation (issue 14: fused
chains).

    python bench/dask_chain.py [--steps 100] [--repeat 5] [--rounds 3] [--against DIR] [--only chain]

Each round starts one child interpreter per nbsteps version (``--against DIR``:
the nbsteps package in DIR, the base, then this checkout; alternated, the order
flipped every round). A child starts its own LocalCluster (2 worker processes x
1 thread; start-up not counted), warms up, then times, alternated on that
cluster, ``--repeat`` times each:

* **chain**: ``--steps`` no-op cell steps ``v{k} = v{k-1} + 1`` run with
  ``plan.run(backend="dask")`` (a fresh plan each time: nothing restored),
  against the same chain in raw dask: ``client.submit(inc, previous_future)``
  for each step and one ``client.gather`` of every future. The same chain on
  the threads backend (one worker, no dask) is timed too: the executor's and
  the steps' own cost, the floor of a fused chain;
* **independent**: ``--steps`` no-op steps ``v{k} = k`` against
  ``client.submit(noop, k)`` for each and one ``gather`` (as in ``dask_cpu.py``),
  and ``client.map(noop, range(n))`` + ``gather`` (one graph update: shown, not
  the ratio's denominator).

``--only chain`` or ``--only independent`` times one shape alone (issue 26
target 7: ``--steps 1000 --only chain``).

Prints ms per step (medians), the ratio nbsteps / raw per child and, over the
rounds, the median ratio per version.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _noop(i):
    return i


def _inc(v):
    return v + 1


def run_child(n: int, repeat: int, only: "str | None" = None) -> dict:
    import nbsteps
    from nbsteps.backends import distributed as dask_backend

    os.environ["NBSTEPS_DASK_WORKERS"] = "2"
    client = dask_backend.get_client()

    def plan_of(chain: bool):
        plan = nbsteps.Plan(namespace={})
        for k in range(n):
            plan.add_cell(f"t{k}", f"v{k} = v{k - 1} + 1" if chain and k else f"v{k} = {k}")
        return plan

    def steps(chain, backend="dask"):
        plan = plan_of(chain)
        t0 = time.perf_counter()
        summary = plan.run(backend=backend, workers=1 if backend == "threads" else None)
        dt = time.perf_counter() - t0
        assert summary.ok and plan.namespace[f"v{n - 1}"] == (n - 1), summary.text
        return dt

    def raw(chain):
        t0 = time.perf_counter()
        if chain:
            futures = [client.submit(_noop, 0, pure=False)]
            for _ in range(1, n):
                futures.append(client.submit(_inc, futures[-1], pure=False))
        else:
            futures = [client.submit(_noop, k, pure=False) for k in range(n)]
        values = client.gather(futures)
        dt = time.perf_counter() - t0
        assert values[-1] == n - 1
        return dt

    def raw_map():
        t0 = time.perf_counter()
        values = client.gather(client.map(_noop, range(n), pure=False))
        dt = time.perf_counter() - t0
        assert values[-1] == n - 1
        return dt

    cases = {
        ("chain", "raw"): lambda: raw(True),
        ("chain", "nbsteps"): lambda: steps(True),
        ("chain", "threads"): lambda: steps(True, "threads"),  # the same chain, no dask: the floor
        ("independent", "raw"): lambda: raw(False),
        ("independent", "nbsteps"): lambda: steps(False),
        ("independent", "map"): raw_map,
    }
    if only:
        cases = {k: v for k, v in cases.items() if k[0] == only}
    for fn in cases.values():  # warm-up
        fn()
    ms: dict = {k: [] for k in cases}
    for _ in range(repeat):
        for key, fn in cases.items():
            ms[key].append(fn() / n * 1000)
    dask_backend.shutdown()
    med = {f"{s}/{w}": statistics.median(v) for (s, w), v in ms.items()}
    return {
        "nbsteps": os.path.dirname(os.path.abspath(nbsteps.__file__)),
        "ms": med,
        "ratio": {
            s: med[f"{s}/nbsteps"] / med[f"{s}/raw"] for s in ("chain", "independent") if f"{s}/raw" in med
        },
    }


def child(impl_root: str, n: int, repeat: int, only: "str | None" = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = impl_root
    p = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", "--steps", str(n), "--repeat", str(repeat)]
        + (["--only", only] if only else []),
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=1800,
    )
    if p.returncode != 0:
        raise SystemExit(f"child for {impl_root} failed:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if os.path.realpath(out["nbsteps"]) != os.path.realpath(os.path.join(impl_root, "nbsteps")):
        raise SystemExit(f"measured the nbsteps in {out['nbsteps']}, not the one in {impl_root}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--against", default=None, help="a folder holding another nbsteps package (the base)")
    ap.add_argument("--only", choices=("chain", "independent"), default=None, help="time one shape alone")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(run_child(a.steps, a.repeat, a.only)))
        return 0
    impls = {"this": ROOT}
    if a.against:
        impls = {"base": os.path.abspath(a.against), "this": ROOT}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{a.steps} no-op steps, {a.repeat} timed runs of each case per child, {a.rounds} rounds; "
        f"load average {load:.2f} before; " + ", ".join(f"{k} = {v}" for k, v in impls.items())
    )
    results: dict = {k: [] for k in impls}
    shapes = [a.only] if a.only else ["chain", "independent"]
    for r in range(a.rounds):
        order = list(impls) if r % 2 == 0 else list(impls)[::-1]
        for label in order:
            out = child(impls[label], a.steps, a.repeat, a.only)
            results[label].append(out)
            ms = out["ms"]
            parts = [
                f"{shape} {ms[shape + '/nbsteps']:.2f} vs raw {ms[shape + '/raw']:.2f} ms/step "
                f"({out['ratio'][shape]:.2f}x)"
                + (f", threads backend {ms[shape + '/threads']:.2f}" if shape + "/threads" in ms else "")
                + (f", raw client.map {ms[shape + '/map']:.2f}" if shape + "/map" in ms else "")
                for shape in shapes
            ]
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            print(f"  round {r + 1} {label:<4}: " + "; ".join(parts) + f"; load {load:.2f}", flush=True)
    print("median over rounds (nbsteps / raw dask on the same cluster; spread min-max):")
    for label, outs in results.items():
        parts = []
        for shape in shapes:
            ratios = [o["ratio"][shape] for o in outs]
            per = [o["ms"][shape + "/nbsteps"] for o in outs]
            parts.append(
                f"{shape} {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}; "
                f"{statistics.median(per):.2f} ms/step, {min(per):.2f}-{max(per):.2f})"
            )
        print(f"  {label:<4}: " + ", ".join(parts))
    if hasattr(os, "getloadavg"):
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":  # the guard matters: dask's worker processes are spawned
    sys.exit(main())
