"""Notebook-scale workloads of issue 14, each in fresh interpreters (real
IPython shells), optionally against another nbsteps checkout in the same run.

    python -m bench.notebook                       # this checkout
    python -m bench.notebook --against /tmp/base   # also the nbsteps package in /tmp/base/nbsteps,
                                                   # alternating runs, with ratios this / base
    python -m bench.notebook --only cells,notebook --repeat 3 --quick

Workloads (see ``bench/notebook_child.py``): ``cells`` (interactive ``%%step``
cells with 200 and 2,000 steps registered), ``disk_upstream`` (small cells
reading an 80 MB upstream from a directory store), ``notebook`` (six 48 MB
frames: compute, unchanged re-run in a new process, re-run + touching a value),
``params`` (a parameter switched back). Prints a table and writes
``bench/results/notebook.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def child(impl_root: str, workload: str, args: dict, key: str) -> dict:
    env = dict(os.environ)
    # the measured nbsteps first, then this checkout (for ``bench``)
    paths = [impl_root] if impl_root != ROOT else []
    env["PYTHONPATH"] = os.pathsep.join(paths + [ROOT])
    env["NBSTEPS_KEY_FILE"] = key
    env.pop("NBSTEPS_STORE", None)
    env["NBSTEPS_WIDGETS"] = "0"
    # not cwd=ROOT: ``python -m`` puts the working directory first on sys.path
    p = subprocess.run(
        [sys.executable, "-m", "bench.notebook_child", workload, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=os.path.dirname(key),
        timeout=1800,
    )
    if p.returncode != 0:
        return {"error": p.stderr.strip()[-1500:]}
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if os.path.realpath(out.get("nbsteps", "")) != os.path.realpath(impl_root):
        return {"error": f"measured the nbsteps in {out.get('nbsteps')}, not the one in {impl_root}"}
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def bench_cells(impl, key, tmp, q):
    out = {}
    for n in (20, 200) if q else (200, 2000):
        r = child(impl, "cells", {"n": n, "k": 10 if q else 30}, key)
        out[n] = r
    return out


def bench_disk_upstream(impl, key, tmp, q):
    store = tempfile.mkdtemp(dir=tmp)
    try:
        return child(impl, "disk_upstream", {"mb": 8 if q else 80, "k": 5 if q else 10, "store": store}, key)
    finally:
        shutil.rmtree(store, ignore_errors=True)


def bench_notebook(impl, key, tmp, q):
    store = tempfile.mkdtemp(dir=tmp)
    mb = 4 if q else 48
    try:
        out = {"compute": child(impl, "notebook", {"mb": mb, "store": store, "phase": "compute"}, key)}
        out["rerun"] = child(impl, "notebook", {"mb": mb, "store": store, "phase": "rerun"}, key)
        out["touch"] = child(impl, "notebook", {"mb": mb, "store": store, "phase": "touch"}, key)
        return out
    finally:
        shutil.rmtree(store, ignore_errors=True)


def bench_params(impl, key, tmp, q):
    store = tempfile.mkdtemp(dir=tmp)
    try:
        return child(impl, "params", {"store": store}, key)
    finally:
        shutil.rmtree(store, ignore_errors=True)


WORKLOADS = {
    "cells": bench_cells,
    "disk_upstream": bench_disk_upstream,
    "notebook": bench_notebook,
    "params": bench_params,
}


def summarize(name: str, runs: list[dict]) -> dict:
    """Medians over repeated runs of one implementation."""
    if any("error" in r for r in runs if isinstance(r, dict)):
        errs = [r["error"] for r in runs if "error" in r]
        if errs:
            return {"error": errs[0]}
    if name == "cells":
        out = {}
        for n in runs[0]:
            rs = [r[n] for r in runs]
            if any("error" in x for x in rs):
                return {"error": next(x["error"] for x in rs if "error" in x)}
            out[n] = {
                "step_ms": 1e3 * med([x["step_cell_s"] for x in rs]),
                "plain_ms": 1e3 * med([x["plain_cell_s"] for x in rs]),
                "ok": all(x["ok"] for x in rs),
            }
            out[n]["beyond_plain_ms"] = out[n]["step_ms"] - out[n]["plain_ms"]
            if all("plan_cell_s" in x for x in rs):
                out[n]["plan_ms"] = 1e3 * med([x["plan_cell_s"] for x in rs])
                out[n]["plan_beyond_plain_ms"] = out[n]["plan_ms"] - out[n]["plain_ms"]
                out[n]["rerun_ms"] = 1e3 * med([x["rerun_cell_s"] for x in rs])
            if all("edit_cell_s" in x for x in rs):
                out[n]["edit_ms"] = 1e3 * med([x["edit_cell_s"] for x in rs])
                out[n]["edit_mid_ms"] = 1e3 * med([x["edit_mid_cell_s"] for x in rs])
        ns = sorted(out)
        out["scaling"] = out[ns[-1]]["step_ms"] / out[ns[0]]["step_ms"]
        if "rerun_ms" in out[ns[0]]:
            out["rerun_scaling"] = out[ns[-1]]["rerun_ms"] / out[ns[0]]["rerun_ms"]
            out["plan_scaling"] = out[ns[-1]]["plan_ms"] / out[ns[0]]["plan_ms"]
        return out
    if name == "disk_upstream":
        return {
            "memory_ms": 1e3 * med([r["memory"]["cell_s"] for r in runs]),
            "disk_ms": 1e3 * med([r["disk"]["cell_s"] for r in runs]),
        }
    if name == "notebook":
        for r in runs:
            for ph in r.values():
                if "error" in ph:
                    return {"error": ph["error"]}
        comp = med([r["compute"]["wall_s"] for r in runs])
        rerun = med([r["rerun"]["wall_s"] for r in runs])
        return {
            "compute_s": comp,
            "rerun_s": rerun,
            "rerun_vs_compute": rerun / comp,
            "touch_s": med([r["touch"].get("touch_s") for r in runs]),
            "rerun_restored": runs[0]["rerun"]["restored"],
            "rerun_completed": runs[0]["rerun"]["completed"],
        }
    if name == "params":
        return {
            k: {"s": med([r[k]["s"] for r in runs]), "executed": runs[0][k]["completed"]}
            for k in ("p1", "p2", "p1_again")
        }
    return {}


def table(results: dict, impls: list[str]) -> str:
    lines = [
        "| workload | " + " | ".join(impls) + (" | this / base |" if len(impls) > 1 else " |"),
        "|---|" + "---|" * (len(impls) + (1 if len(impls) > 1 else 0)),
    ]

    def row(label, getter, fmt="{:.2f}"):
        vals = []
        for impl in impls:
            try:
                v = getter(results[impl])
            except (KeyError, TypeError):
                v = None
            vals.append(v)
        cells = [fmt.format(v) if isinstance(v, (int, float)) else str(v) for v in vals]
        if len(impls) > 1:
            a, b = vals[0], vals[1]
            cells.append(
                f"{a / b:.2f}×" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else ""
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    r0 = results[impls[0]]
    if "cells" in r0 and "error" not in r0["cells"]:
        for n in [k for k in r0["cells"] if not str(k).endswith("scaling")]:
            row(
                f"interactive `%%step` cell, {n} steps registered (ms)",
                lambda r, n=n: r["cells"][n]["step_ms"],
            )
            row("  same body as a plain IPython cell (ms)", lambda r, n=n: r["cells"][n]["plain_ms"])
            row("  beyond the plain cell (ms)", lambda r, n=n: r["cells"][n]["beyond_plain_ms"])
            row("  plan-mode `%%step` cell (registration) (ms)", lambda r, n=n: r["cells"][n]["plan_ms"])
            row(
                "  plan-mode cell beyond the plain cell (ms)",
                lambda r, n=n: r["cells"][n]["plan_beyond_plain_ms"],
            )
            row("  the middle cell run again unchanged (ms)", lambda r, n=n: r["cells"][n]["rerun_ms"])
            row("  the last cell edited and run (ms)", lambda r, n=n: r["cells"][n].get("edit_ms"))
            row("  the middle cell edited and run (ms)", lambda r, n=n: r["cells"][n].get("edit_mid_ms"))
        row("  cell cost, most / fewest steps registered", lambda r: r["cells"]["scaling"])
        row("  plan-mode cell, most / fewest", lambda r: r["cells"]["plan_scaling"])
        row("  middle cell run again, most / fewest", lambda r: r["cells"]["rerun_scaling"])
    if "disk_upstream" in r0:
        row("cell reading an 80 MB upstream, memory store (ms)", lambda r: r["disk_upstream"]["memory_ms"])
        row("  same, directory store (ms)", lambda r: r["disk_upstream"]["disk_ms"])
    if "notebook" in r0:
        row("6 × 48 MB frames: compute (s)", lambda r: r["notebook"]["compute_s"])
        row("  unchanged re-run, new process (s)", lambda r: r["notebook"]["rerun_s"])
        row("  re-run / compute", lambda r: r["notebook"]["rerun_vs_compute"], "{:.3f}")
        row("  then a cell reading `final` (s)", lambda r: r["notebook"]["touch_s"], "{:.3f}")
    if "params" in r0:
        for k in ("p1", "p2", "p1_again"):
            row(f"params {k}: run (s)", lambda r, k=k: r["params"][k]["s"])
            row("  steps executed", lambda r, k=k: r["params"][k]["executed"], "{}")
    for impl in impls:
        for k, v in results[impl].items():
            if isinstance(v, dict) and "error" in v:
                lines.append(f"\n{impl} {k}: ERROR {v['error'][-600:]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default=None, help="a folder holding another nbsteps package (the base)")
    ap.add_argument("--only", default=",".join(WORKLOADS))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "notebook.json"))
    a = ap.parse_args(argv)
    impls = {"this": ROOT}
    if a.against:
        impls["base"] = os.path.abspath(a.against)
    tmp = tempfile.mkdtemp(prefix="nbsteps-bench-nb-")
    key = os.path.join(tmp, "key")
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    load0 = os.getloadavg()
    raw: dict = {impl: {} for impl in impls}
    try:
        for name in a.only.split(","):
            fn = WORKLOADS[name]
            for i in range(a.repeat):
                for impl, root in impls.items():  # alternated: both see the same load
                    print(f"[{name} {i + 1}/{a.repeat}] {impl}", file=sys.stderr, flush=True)
                    raw[impl].setdefault(name, []).append(fn(root, key, tmp, a.quick))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = {impl: {name: summarize(name, runs) for name, runs in per.items()} for impl, per in raw.items()}
    head = (
        f"nbsteps notebook bench {started}; python {sys.version.split()[0]}; {os.cpu_count()} CPUs; "
        f"load avg {load0[0]:.2f} -> {os.getloadavg()[0]:.2f}; medians of {a.repeat}"
        + (f"; base = {impls['base']}" if a.against else "")
    )
    print(head)
    print(table(results, list(impls)))
    if a.json != "-":
        os.makedirs(os.path.dirname(a.json), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump({"head": head, "results": results, "raw": raw}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
