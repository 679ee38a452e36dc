"""nbsteps against its peers, in one process: ``python -m bench``.

Runs every workload through nbsteps and through every installed peer (see
``bench/peers.py``), prints three tables -- absolute medians, ratios
nbsteps / peer, and the nbsteps-only workloads against the targets of issue 7
-- and writes everything to ``bench/results/latest.json``.

    python -m bench                       # everything (~5-10 min on 2 cores)
    python -m bench --quick               # tiny sizes, one timed run each (~1 min without peers)
    python -m bench --only chain,wide     # a subset of workloads (prefix match)
    python -m bench --peers none          # nbsteps (and the plain-Python floor) only
    python -m bench --peers dask-threads,hamilton --repeat 7

A missing peer is reported "not installed"; a peer cell that raises shows the
error (Hamilton's RecursionError on chain_1000 at the default limit) instead
of stopping the run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import traceback

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "bench"

from bench import nbsteps_side as NB  # noqa: E402
from bench import peers as P  # noqa: E402
from bench import workloads as W  # noqa: E402
from bench.run_peers import run_peer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")

FULL = dict(
    chain=(100, 1000),
    wide=(100, 1000),
    chain_long=10_000,
    fanout=8,
    diamond=1_000_000,
    cells=200,
    rerun=1000,
    checkpoint=1 << 30,
    graph=200,
    import_repeat=7,
    ckpt_repeat=3,
)
QUICK = dict(
    chain=(10, 50),
    wide=(10, 50),
    chain_long=500,
    fanout=8,
    diamond=10_000,
    cells=20,
    rerun=50,
    checkpoint=8 << 20,
    graph=20,
    import_repeat=2,
    ckpt_repeat=1,
)

#: workload groups in run order (``--only`` takes these names or prefixes)
GROUPS = (
    "chain",
    "wide",
    "sleep_fanout",
    "diamond_pandas",
    "cells",
    "rerun_nochange",
    "checkpoint",
    "import",
    "graph",
)

TARGETS = {
    "chain_us": 40.0,
    "wide_us": 40.0,
    "cells_us": 200.0,
    "fanout": 1.03,
    "diamond": 1.10,
    "rerun_ms": 50.0,
    "ckpt_rss_pct": 5.0,
    "disk_write_frac": 0.50,
    "import_s": 0.15,
    "load_ext_s": 0.30,
}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _err(e: BaseException) -> str:
    if isinstance(e, RecursionError):
        return "RecursionError"
    msg = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {msg[:80]}"


def dag_cells(sizes: dict, groups: list[str]) -> list[tuple[str, str, int]]:
    """(label, workload, n) of the DAG workloads shared with the peers."""
    cells = []
    if "chain" in groups:
        cells += [(f"chain_{n}", "chain", n) for n in sizes["chain"]]
    if "wide" in groups:
        cells += [(f"wide_{n}", "wide", n) for n in sizes["wide"]]
    if "sleep_fanout" in groups:
        cells.append((f"sleep_fanout_{sizes['fanout']}", "sleep_fanout", sizes["fanout"]))
    if "diamond_pandas" in groups:
        cells.append(("diamond_pandas", "diamond_pandas", sizes["diamond"]))
    return cells


# ====================================================================== nbsteps side


def run_nbsteps(sizes: dict, groups: list[str], cells, repeat: int, budget: float) -> dict:
    out: dict = {"cells": {}, "run_only": {}, "extra": {}}

    def guarded(key: str, fn, *args):
        t0 = time.perf_counter()
        try:
            out["extra"][key] = fn(*args)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            out["extra"][key] = {"error": _err(e)}
        _log(f"  nbsteps           {key:20s} {time.perf_counter() - t0:.1f}s")

    for label, wl, n in cells:
        for kind, run_only in (("cells", False), ("run_only", True)):
            if run_only and wl not in ("chain", "wide"):
                continue
            try:
                if wl == "diamond_pandas":
                    cell = NB.diamond(n, repeat)
                else:
                    cell = NB.dag_cell(wl, n, repeat, budget, run_only=run_only)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                cell = {"error": _err(e)}
            out[kind][label] = cell
            if "median_s" in cell:
                _log(
                    f"  nbsteps{' run-only' if run_only else '         '} {label:20s} "
                    f"median {cell['median_s']:.4f}s ({len(cell['runs'])} runs)"
                )
    if "chain" in groups:
        guarded(f"chain_{sizes['chain_long']}", NB.chain_long, sizes["chain_long"], max(1, min(repeat, 3)))
    if "cells" in groups:
        guarded(f"cells_{sizes['cells']}", NB.cells, sizes["cells"], repeat)
    if "rerun_nochange" in groups:
        guarded(f"rerun_nochange_{sizes['rerun']}", NB.rerun_nochange, sizes["rerun"], repeat)
    if "checkpoint" in groups:
        guarded("checkpoint", NB.checkpoint, sizes["checkpoint"], sizes["ckpt_repeat"])
    if "import" in groups:
        guarded("import", NB.import_times, sizes["import_repeat"])
    if "graph" in groups:
        guarded(f"graph_{sizes['graph']}", NB.graph, sizes["graph"], repeat)
    return out


# ====================================================================== formatting


def _per_step(label: str) -> int | None:
    if label.startswith(("chain_", "wide_")):
        return int(label.split("_")[1])
    return None


def fmt_abs(label: str, cell: dict | None) -> str:
    if cell is None:
        return "-"
    if "skipped" in cell:
        return cell["skipped"]
    if "error" in cell:
        return cell["error"]
    s = cell["median_s"]
    n = _per_step(label)
    if n:
        us = s / n * 1e6
        return f"{s * 1e3:.1f} ms ({us:.1f} µs/step)" if us < 100 else f"{s * 1e3:.0f} ms ({us:.0f} µs/step)"
    if label.startswith("sleep_fanout_"):
        return f"{s:.3f} s ({s / W.SLEEP_S:.3f}x)"
    return f"{s:.3f} s"


def _ratio(a: dict | None, b: dict | None) -> str:
    if not a or not b or "median_s" not in a or "median_s" not in b:
        if b and "error" in b:
            return f"peer: {b['error']}"
        if b and "skipped" in b:
            return b["skipped"]
        return "-"
    r = a["median_s"] / b["median_s"]
    return f"{r:.3f}×" if r < 0.1 else f"{r:.2f}×"


def tables(res: dict) -> str:
    cells = [tuple(c) for c in res["cells"]]
    labels = [c[0] for c in cells]
    nb = res["nbsteps"]
    lines = []
    # -- absolute medians ------------------------------------------------------
    if labels:
        head = ["runner"] + labels
        lines += [
            "### Absolute medians (build + run of the DAG, per call)",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        lines.append(
            "| **nbsteps** | " + " | ".join(fmt_abs(lb, nb["cells"].get(lb)) for lb in labels) + " |"
        )
        lines.append(
            "| nbsteps (run only) | "
            + " | ".join(fmt_abs(lb, nb["run_only"].get(lb)) if lb in nb["run_only"] else "" for lb in labels)
            + " |"
        )
        for r in res["peers"]:
            if r.get("status") != "ok":
                lines.append(
                    f"| {r['peer']} | " + " | ".join([r.get("status", "?")] + [""] * (len(labels) - 1)) + " |"
                )
                continue
            lines.append(
                f"| {r['peer']} | " + " | ".join(fmt_abs(lb, r["cells"].get(lb)) for lb in labels) + " |"
            )
        lines.append("")
        # -- ratios ----------------------------------------------------------------
        lines += [
            "### Ratios nbsteps / peer (< 1: nbsteps is faster; in brackets: nbsteps run only)",
            "",
            "| peer | " + " | ".join(labels) + " |",
            "|" + "---|" * (len(labels) + 1),
        ]
        for r in res["peers"]:
            if r.get("status") != "ok":
                lines.append(
                    f"| {r['peer']} | " + " | ".join([r.get("status", "?")] + [""] * (len(labels) - 1)) + " |"
                )
                continue
            row = []
            for lb in labels:
                txt = _ratio(nb["cells"].get(lb), r["cells"].get(lb))
                if lb in nb["run_only"] and txt.endswith("×"):
                    txt += f" ({_ratio(nb['run_only'].get(lb), r['cells'].get(lb))})"
                row.append(txt)
            lines.append(f"| {r['peer']} | " + " | ".join(row) + " |")
        lines.append("")
    # -- targets --------------------------------------------------------------------
    lines += [
        "### nbsteps workloads against the targets (issue 7)",
        "",
        "| workload | measured | target | |",
        "|---|---|---|---|",
    ]
    for row in res["targets"]:
        mark = {True: "met", False: "**missed**", None: ""}[row["met"]]
        lines.append(f"| {row['workload']} | {row['value']} | {row['target']} | {mark} |")
    return "\n".join(lines)


def evaluate(res: dict) -> list[dict]:
    """The target rows (also the text of the nbsteps-only workloads)."""
    nb = res["nbsteps"]
    rows: list[dict] = []

    def add(workload, value, target="", met=None):
        rows.append({"workload": workload, "value": value, "target": target, "met": met})

    _overhead_rows(nb, add)
    for key, cell in nb["extra"].items():
        _extra_rows(key, cell, add)
    _wall_rows(res, add)
    return rows


def _overhead_rows(nb: dict, add) -> None:
    """The per-step overhead of each workload, run only (targets from 1000 steps on)."""
    T = TARGETS
    for lb, cell in nb["run_only"].items():
        n = _per_step(lb)
        full = nb["cells"].get(lb, {})
        if "median_s" not in cell:
            add(f"{lb} (run only)", cell.get("error", "?"))
            continue
        us = cell["median_s"] / n * 1e6
        extra = f"; build + run {full['median_s'] / n * 1e6:.0f} µs/step" if "median_s" in full else ""
        key = "chain_us" if lb.startswith("chain") else "wide_us"
        big = n >= 1000
        add(
            f"{lb}: per-step overhead, run only",
            f"{us:.1f} µs/step{extra}",
            f"≤ {T[key]:.0f} µs" if big else "",
            (us <= T[key]) if big else None,
        )


def _extra_rows(key: str, cell: dict, add) -> None:
    """The rows of one extra measurement, by its kind (an error is a row too:
    a failure for the chains and reruns)."""
    if "error" in cell:
        add(key, cell["error"], "", False if key.startswith(("chain", "rerun")) else None)
    elif key.startswith("chain_"):
        _chain_rows(key, cell, add)
    elif key.startswith("cells_"):
        _cells_rows(key, cell, add)
    elif key.startswith("rerun_"):
        _rerun_rows(key, cell, add)
    elif key == "checkpoint":
        _checkpoint_rows(cell, add)
    elif key == "import":
        _import_rows(cell, add)
    elif key.startswith("graph_"):
        _graph_rows(key, cell, add)


def _chain_rows(key: str, cell: dict, add) -> None:
    """A long chain runs without a RecursionError."""
    add(
        f"{key} (run only, recursion limit {cell['recursionlimit']})",
        f"{cell['median_s']:.3f} s ({cell['median_s'] / int(key.split('_')[1]) * 1e6:.1f} µs/step)",
        "runs (no RecursionError)",
        True,
    )


def _cells_rows(key: str, cell: dict, add) -> None:
    """``%%step`` cells: the cost per step beyond bare exec (target) and beyond plain cells, both modes."""
    T = TARGETS
    p, i = cell["planned"], cell["interactive"]
    add(
        f"{key}: `%%step` cells (plan mode) + `%steps run`, beyond bare exec",
        f"{p['us_per_step_beyond_exec']:.0f} µs/step (total {p['median_s'] * 1e3:.0f} ms, bare exec "
        f"{cell['bare_exec']['median_s'] * 1e3:.1f} ms)",
        f"≤ {T['cells_us']:.0f} µs",
        p["us_per_step_beyond_exec"] <= T["cells_us"],
    )
    add(
        f"{key}: same, beyond the bodies run as plain IPython cells",
        f"{p['us_per_step_beyond_plain_cells']:.0f} µs/step (plain cells "
        f"{cell['plain_cells']['median_s'] * 1e3:.0f} ms)",
    )
    add(
        f"{key}: interactive mode (every `%%step` cell runs at once), beyond bare exec",
        f"{i['us_per_step_beyond_exec']:.0f} µs/step (total {i['median_s'] * 1e3:.0f} ms)",
    )


def _rerun_rows(key: str, cell: dict, add) -> None:
    """A second run executes nothing, fast."""
    T = TARGETS
    ms = cell["median_s"] * 1e3
    add(
        f"{key}: second run, executes {cell['executed']}",
        f"{ms:.1f} ms",
        f"≤ {T['rerun_ms']:.0f} ms, executes 0",
        ms <= T["rerun_ms"] and cell["executed"] == 0,
    )


def _checkpoint_rows(cell: dict, add) -> None:
    """A large checkpoint: the extra memory of keeping it in memory (target),
    the disk store's write and read speeds against numpy (target for writing),
    a function step's write / restore / recompute."""
    T = TARGETS
    gb = cell["nbytes"] / 2**30
    m = cell["memory"]
    add(
        f"checkpoint {gb:.2f} GiB: in-memory, extra peak RSS vs calling the function",
        f"{m['extra_rss'] / 1e6:+.0f} MB ({m['extra_rss_pct']:+.1f}% of the output; "
        f"same object: {m['runs'][0].get('same_object')})",
        f"< {T['ckpt_rss_pct']:.0f}%",
        m["extra_rss_pct"] < T["ckpt_rss_pct"],
    )
    d = cell.get("disk", {})
    if "skipped" in d:
        add("checkpoint: disk store", d["skipped"])
    elif d:
        frac = d.get("write_vs_numpy_fsync_pair_median", d["write_vs_numpy_fsync"])
        add(
            "checkpoint: DiskStore.put (write + fsync + HMAC) vs numpy.save + fsync",
            f"{d['store_write_MBps']:.0f} vs {d['numpy_save_fsync_MBps']:.0f} MB/s (medians); "
            f"each put vs the save just before it: {frac * 100:.0f}% (median of the pairs; numpy.save "
            f"without fsync {d['numpy_save_MBps']:.0f} MB/s)",
            f"≥ {T['disk_write_frac'] * 100:.0f}%",
            frac >= T["disk_write_frac"],
        )
        add(
            "checkpoint: DiskStore.get (read + verify + decode) vs numpy.load",
            f"{d['store_read_MBps']:.0f} vs {d['numpy_load_MBps']:.0f} MB/s",
        )
        add(
            "checkpoint: function step through `Plan(store=dir)`: write / restore in a new plan / recompute",
            f"{d['plan_write_s']:.2f} s ({d['plan_write_MBps']:.0f} MB/s) / "
            f"{d['plan_restore_s']:.2f} s / {d['recompute_s']:.2f} s "
            f"(restore = {d['restore_vs_recompute']:.2f}× recompute)",
        )


def _import_rows(cell: dict, add) -> None:
    """The time to import nbsteps and to load the extension (targets)."""
    T = TARGETS
    add(
        '`python -c "import nbsteps"` minus `python -c pass`',
        f"{cell['import_s']:.3f} s (heavy modules imported: "
        f"{', '.join(cell['import_heavy_modules']) or 'none'})",
        f"≤ {T['import_s']} s",
        cell["import_s"] <= T["import_s"],
    )
    add(
        "`%load_ext nbsteps` in a fresh InteractiveShell",
        f"{cell['load_ext_s']:.3f} s (newly imported heavy modules: "
        f"{', '.join(cell['load_ext_heavy_modules']) or 'none'})",
        f"≤ {T['load_ext_s']} s",
        cell["load_ext_s"] <= T["load_ext_s"],
    )


def _graph_rows(key: str, cell: dict, add) -> None:
    """The time to build the graph and to render it."""
    b, r = cell["build"], cell["render"]
    rtxt = r["skipped"] if "skipped" in r else f"render to SVG {r['median_s'] * 1e3:.0f} ms"
    add(f"{key}: `plan.graph()` build / dot render", f"build {b['median_s'] * 1e3:.1f} ms, {rtxt}")


def _wall_rows(res: dict, add) -> None:
    """Wall-time ratios: sleeping fan-outs against one sleep, the pandas diamond against plain code."""
    T = TARGETS
    for lb, cell in res["nbsteps"]["cells"].items():
        if "median_s" not in cell:
            continue
        if lb.startswith("sleep_fanout_"):
            x = cell["median_s"] / W.SLEEP_S
            add(f"{lb}: wall / {W.SLEEP_S} s", f"{x:.3f}×", f"≤ {T['fanout']}×", x <= T["fanout"])
        elif lb == "diamond_pandas" and "ratio" in cell:
            x = cell["ratio"]
            add(
                f"{lb} ({res['sizes']['diamond']:,} rows): nbsteps / plain sequential, runs alternated",
                f"{x:.2f}× ({cell['median_s']:.3f} s vs {cell['plain_median_s']:.3f} s)",
                f"≤ {T['diamond']}×",
                x <= T["diamond"],
            )


# ====================================================================== main


def machine() -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "loadavg_start": os.getloadavg(),
    }


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for d in ("nbsteps", "pandas", "numpy", "pyarrow", "ipython"):
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help=f"workload groups (prefixes): {','.join(GROUPS)}")
    ap.add_argument("--skip", default="", help="workload groups to leave out")
    ap.add_argument(
        "--peers", default="all", help=f"'all', 'none' (nbsteps only) or a comma list of {','.join(P.PEERS)}"
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 1 timed run (smoke test)")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per cell (default 5; --quick 1)")
    ap.add_argument("--budget", type=float, default=10.0, help="max timed seconds per peer cell")
    ap.add_argument(
        "--recursionlimit",
        type=int,
        default=None,
        help="raise Python's recursion limit (Hamilton needs ~3000 for chain_1000)",
    )
    ap.add_argument(
        "--json",
        default=None,
        help="output file (default bench/results/latest.json; --quick: bench/results/quick.json)",
    )
    a = ap.parse_args(argv)

    def pick(spec):
        return [
            g
            for g in GROUPS
            if any(g.startswith(p.strip()) or p.strip().startswith(g) for p in spec.split(",") if p.strip())
        ]

    groups = pick(a.only) if a.only else list(GROUPS)
    groups = [g for g in groups if g not in pick(a.skip)] if a.skip else groups
    sizes = QUICK if a.quick else FULL
    repeat = a.repeat or (1 if a.quick else 5)
    if a.recursionlimit:
        sys.setrecursionlimit(a.recursionlimit)
    if a.peers == "all":
        peers = list(P.PEERS)
    elif a.peers == "none":
        peers = []
    else:
        peers = [p.strip() for p in a.peers.split(",") if p.strip()]
        unknown = [p for p in peers if p not in P.PEERS]
        if unknown:
            ap.error(f"unknown peer(s) {', '.join(unknown)}; choose from {', '.join(P.PEERS)}")
    cells = dag_cells(sizes, groups)
    started = datetime.datetime.now().astimezone()
    t0 = time.perf_counter()
    info = machine()
    _log(
        f"nbsteps bench: {', '.join(groups)}; peers {', '.join(peers)}; repeat {repeat}"
        f"{' (quick)' if a.quick else ''}; load {info['loadavg_start'][0]:.2f} on {info['nproc']} cpus"
    )
    res: dict = {
        "date": started.isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else list(argv),
        "quick": a.quick,
        "repeat": repeat,
        "sizes": sizes,
        "groups": groups,
        "machine": info,
        "versions": _versions(),
        "recursionlimit": sys.getrecursionlimit(),
        "recursionlimit_raised": bool(a.recursionlimit),
        "workers": P.WORKERS,
        "cells": cells,
    }
    res["nbsteps"] = run_nbsteps(sizes, groups, cells, repeat, a.budget)
    res["peers"] = []
    for peer in peers:
        if cells:
            ok, _ = P.available(peer)
            _log(f"peer {peer}: {'running' if ok else 'not installed'}")
            res["peers"].append(run_peer(peer, repeat, a.budget, cells))
        else:
            ok, ver = P.available(peer)
            res["peers"].append({"peer": peer, "version": ver, "status": "ok" if ok else ver, "cells": {}})
    res["total_s"] = time.perf_counter() - t0
    info["loadavg_end"] = os.getloadavg()
    res["targets"] = evaluate(res)
    text = tables(res)
    print(
        f"nbsteps bench {res['date']} — python {info['python']}, {info['nproc']} × {info['cpu']}; "
        f"load avg {info['loadavg_start'][0]:.2f} → {info['loadavg_end'][0]:.2f}; "
        f"recursion limit {res['recursionlimit']}{' (raised)' if a.recursionlimit else ''}; "
        f"threaded peers {P.WORKERS} workers; {'QUICK sizes; ' if a.quick else ''}"
        f"medians of {repeat}; total {res['total_s']:.0f} s"
    )
    for r in res["peers"]:
        extra = ""
        setup = r.get("setup") or {}
        if "startup_s" in setup:
            extra = f" (setup {setup['startup_s']:.1f} s, not in the cells)"
        caps = P.PEER_INFO.get(r["peer"], {}).get("max_n")
        if caps:
            extra += "; sizes capped: " + ", ".join(f"{k} ≤ {v}" for k, v in caps.items())
        print(f"- {r['peer']}: {r['version']}{extra}")
    print()
    print(text)
    path = a.json or os.path.join(RESULTS, "quick.json" if a.quick else "latest.json")
    if path != "-":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        res["table"] = text
        with open(path, "w") as f:
            json.dump(res, f, indent=1, default=str)
        _log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
