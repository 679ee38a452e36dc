"""Run every peer x workload once, in this one process, and print a table.

    python bench/run_peers.py [--peers plain,dask-threads] [--repeat 5]
                              [--json out.json] [--recursionlimit N]

A peer whose package is missing is reported "not installed"; a cell whose
run raises gets the error in its cell (RecursionError is reported as such)
instead of stopping the run.  The recursion limit is left at Python's default
unless --recursionlimit is given (and the table then says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import peers as P  # noqa: E402
from bench import workloads as W  # noqa: E402
from bench.timing import measure  # noqa: E402

# (column label, workload, n)
CELLS = [
    ("chain_100", "chain", 100),
    ("chain_1000", "chain", 1000),
    ("wide_100", "wide", 100),
    ("wide_1000", "wide", 1000),
    ("sleep_fanout_8", "sleep_fanout", 8),
    ("diamond_pandas", "diamond_pandas", 1_000_000),
]


def _err(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "RecursionError"
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {msg[:60]}"


def run_peer(peer: str, repeat: int, budget_s: float, cells=CELLS) -> dict:
    out: dict = {"peer": peer, "cells": {}}
    ok, ver = P.available(peer)
    out["version"] = ver
    if not ok:
        out["status"] = ver
        return out
    info = P.PEER_INFO[peer]
    try:
        if "setup" in info:
            out["setup"] = info["setup"]()
    except Exception as e:  # noqa: BLE001
        out["status"] = f"setup failed: {_err(e)}"
        traceback.print_exc()
        return out
    try:
        for label, wl, n in cells:
            if n > info.get("max_n", {}).get(wl, n):
                out["cells"][label] = {"skipped": "n/a"}
                continue
            fn = P.PEERS[peer][wl]
            t0 = time.perf_counter()
            try:
                m = measure(lambda fn=fn, n=n: fn(n), repeat=repeat, warmup=1, budget_s=budget_s)
            except Exception as e:  # noqa: BLE001  (RecursionError included)
                out["cells"][label] = {"error": _err(e)}
                print(f"  {peer:17s} {label:15s} {_err(e)}", file=sys.stderr)
                continue
            want = W.expected(wl, n)
            cell = {k: m[k] for k in ("median_s", "min_s", "runs")}
            cell["wall_s"] = time.perf_counter() - t0
            if m["result"] != want:
                cell["error"] = f"WRONG result {m['result']!r} != {want!r}"
            out["cells"][label] = cell
            print(
                f"  {peer:17s} {label:15s} median {m['median_s']:.4f}s "
                f"({len(m['runs'])} runs, {cell['wall_s']:.1f}s)",
                file=sys.stderr,
            )
    finally:
        if "teardown" in info:
            try:
                info["teardown"]()
            except Exception:  # noqa: BLE001
                traceback.print_exc()
    out["status"] = "ok"
    return out


def fmt_cell(label: str, cell: dict) -> str:
    if "skipped" in cell:
        return cell["skipped"]
    if "error" in cell:
        return cell["error"]
    s = cell["median_s"]
    if label.startswith(("chain_", "wide_")):
        n = int(label.split("_")[1])
        us = s / n * 1e6
        return f"{s:.4f} s ({us:.1f} µs/step)" if us < 10 else f"{s:.4f} s ({us:.0f} µs/step)"
    if label.startswith("sleep_fanout_"):
        return f"{s:.3f} s ({s / W.SLEEP_S:.2f}x)"
    return f"{s:.3f} s"


def table(results: list[dict]) -> str:
    head = ["peer"] + [c[0] for c in CELLS] + ["setup"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if r.get("status") != "ok":
            row = [r["peer"], r.get("status", "?")] + ["—"] * (len(CELLS) - 1) + [""]
        else:
            setup = r.get("setup", {}).get("startup_s")
            row = (
                [r["peer"]]
                + [fmt_cell(c[0], r["cells"].get(c[0], {"skipped": "-"})) for c in CELLS]
                + [f"{setup:.2f} s" if setup else ""]
            )
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peers", default=",".join(P.PEERS))
    ap.add_argument("--cells", default=",".join(c[0] for c in CELLS))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--budget", type=float, default=10.0, help="max timed seconds per cell (>=1 timed run always)"
    )
    ap.add_argument("--recursionlimit", type=int, default=None)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if a.recursionlimit:
        sys.setrecursionlimit(a.recursionlimit)
    cells = [c for c in CELLS if c[0] in a.cells.split(",")]
    t0 = time.perf_counter()
    results = [run_peer(p, a.repeat, a.budget, cells) for p in a.peers.split(",")]
    total = time.perf_counter() - t0
    print(
        f"python {platform.python_version()}, {os.cpu_count()} cpus, "
        f"WORKERS={P.WORKERS}, recursionlimit={sys.getrecursionlimit()}"
        f"{' (raised)' if a.recursionlimit else ''}, total {total:.0f}s"
    )
    for r in results:
        print(f"- {r['peer']}: {r['version']}")
    print(table(results))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {
                    "results": results,
                    "total_s": total,
                    "recursionlimit": sys.getrecursionlimit(),
                    "workers": P.WORKERS,
                },
                f,
                indent=1,
                default=str,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
