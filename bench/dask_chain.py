"""The dask backend against raw dask, on chains and on independent steps,
optionally for two nbsteps versions in the same invocation (issue 14: fused
chains).

    python bench/dask_chain.py [--steps 100] [--repeat 5] [--rounds 3] [--against DIR]

Each round starts one child interpreter per nbsteps version (``--against DIR``:
the nbsteps package in DIR, the base, then this checkout; alternated, the order
flipped every round). A child starts its own LocalCluster (2 worker processes x
1 thread; start-up not counted), warms up, then times, alternated on that
cluster, ``--repeat`` times each:

* **chain**: ``--steps`` no-op cell steps ``v{k} = v{k-1} + 1`` run with
  ``plan.run(backend="dask")`` (a fresh plan each time: nothing restored),
  against the same chain in raw dask: ``client.submit(inc, previous_future)``
  for each step and one ``client.gather`` of every future;
* **independent**: ``--steps`` no-op steps ``v{k} = k`` against
  ``client.submit(noop, k)`` for each and one ``gather`` (as in ``dask_cpu.py``).

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


def run_child(n: int, repeat: int) -> dict:
    import nbsteps
    from nbsteps.backends import distributed as dask_backend

    os.environ["NBSTEPS_DASK_WORKERS"] = "2"
    client = dask_backend.get_client()

    def plan_of(chain: bool):
        plan = nbsteps.Plan(namespace={})
        for k in range(n):
            plan.add_cell(f"t{k}", f"v{k} = v{k - 1} + 1" if chain and k else f"v{k} = {k}")
        return plan

    def steps(chain):
        plan = plan_of(chain)
        t0 = time.perf_counter()
        summary = plan.run(backend="dask")
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

    cases = {
        ("chain", "raw"): lambda: raw(True),
        ("chain", "nbsteps"): lambda: steps(True),
        ("independent", "raw"): lambda: raw(False),
        ("independent", "nbsteps"): lambda: steps(False),
    }
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
        "ratio": {s: med[f"{s}/nbsteps"] / med[f"{s}/raw"] for s in ("chain", "independent")},
    }


def child(impl_root: str, n: int, repeat: int) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = impl_root
    p = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--child", "--steps", str(n), "--repeat", str(repeat)],
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
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(run_child(a.steps, a.repeat)))
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
    for r in range(a.rounds):
        order = list(impls) if r % 2 == 0 else list(impls)[::-1]
        for label in order:
            out = child(impls[label], a.steps, a.repeat)
            results[label].append(out)
            ms = out["ms"]
            print(
                f"  round {r + 1} {label:<4}: chain {ms['chain/nbsteps']:.2f} "
                f"vs raw {ms['chain/raw']:.2f} ms/step "
                f"({out['ratio']['chain']:.2f}x); independent {ms['independent/nbsteps']:.2f} vs raw "
                f"{ms['independent/raw']:.2f} ms/step ({out['ratio']['independent']:.2f}x)",
                flush=True,
            )
    print("median over rounds (nbsteps / raw dask on the same cluster):")
    for label, outs in results.items():
        chain = statistics.median(o["ratio"]["chain"] for o in outs)
        indep = statistics.median(o["ratio"]["independent"] for o in outs)
        cms = statistics.median(o["ms"]["chain/nbsteps"] for o in outs)
        ims = statistics.median(o["ms"]["independent/nbsteps"] for o in outs)
        print(
            f"  {label:<4}: chain {chain:.2f}x ({cms:.2f} ms/step), "
            f"independent {indep:.2f}x ({ims:.2f} ms/step)"
        )
    if hasattr(os, "getloadavg"):
        print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":  # the guard matters: dask's worker processes are spawned
    sys.exit(main())
