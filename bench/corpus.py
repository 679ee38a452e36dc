"""What nbsteps costs on real notebooks (issue 26): the corpus notebooks (the ones
``tests/corpus`` checks, nobody here wrote them) run plainly and with nbsteps, in
fresh real kernels (nbclient, matplotlib inline), alternating, several rounds.

    python bench/corpus.py --quick                  # 3 small notebooks, 1 round (~1-2 min)
    python bench/corpus.py                          # every notebook, 3 rounds (~1 h on 2 cores)
    python bench/corpus.py --only sk_dbscan,sm_ols --repeat 5 --modes plain,store,restore
    python bench/corpus.py --profile sm_ols         # cProfile of nbsteps inside the kernel, interactive
    python bench/corpus.py --profile sm_ols --profile-restore   # ... of the restore in a new kernel

Modes (each a fresh kernel; the timed part is the notebook's cells, each sent as
Run All sends it and waited for; starting the kernel and ``%load_ext`` are not timed):

- ``plain``: the cells as they are (the reference);
- ``store``: ``%steps store DIR``, every cell as ``%%step cellN``, executed at once
  (interactive mode): checkpoints written to a directory (target 1: ≤ 2.5 %);
- ``restore``: right after ``store``, a new kernel runs the same step cells against
  that store (everything restored, nothing executed: target 2, ≤ 5 %); then
  ``%steps load`` reads every value (reported on its own: ``+load``);
- ``memory``: interactive mode with the memory store (the step machinery without
  disk writes);
- ``unobserved``: ``memory`` with run-time observation switched off in the kernel
  (the audit hook that records the files a step opens, and the digests of inputs
  that detect undeclared writes: ``nbsteps.run.attempt.opened.recording`` and
  ``nbsteps.run.attempt.observe.watch`` replaced by no-ops; the benchmark only);
- ``plan``: ``%steps mode plan``, the step cells register, then ``%steps run``.

For each notebook and mode: the ratio to plain of the same round (rounds alternate
the order of the modes), its spread over rounds, and the cost per step cell in ms
((mode - plain) / cells). The summary gives medians over the notebooks whose plain
run takes at least ``--min-seconds`` (default 2 s) and the worst one. The load
average (``os.getloadavg()``) is printed beside every notebook. Results also go to
``bench/results/corpus.json`` (``--json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "corpus"))

import harness  # noqa: E402  (tests/corpus/harness.py: the corpus loaders and the Kernel class)

MODES = ("plain", "store", "restore", "memory", "unobserved", "plan")
QUICK = ("sk_dbscan", "sm_gls", "nx_shortest_path")

UNOBSERVED = """\
import contextlib as _c, nbsteps.run.attempt.observe as _o, nbsteps.run.attempt.opened as _op
_o.watch = lambda inputs, names: {}
_op.recording = _c.contextmanager(lambda _opened=_op.Opened: (yield _opened()))
del _c, _o, _op"""


def _timed_cells(k: "harness.Kernel", cells: list[str]) -> "tuple[float, str | None]":
    """Seconds the cells took (each sent and waited for), and the first error."""
    total = 0.0
    for source in cells:
        t0 = time.perf_counter()
        cell = k.run(source)
        total += time.perf_counter() - t0
        error = harness._cell_summary(cell)["error"]
        if error:
            return total, f"{source.splitlines()[0][:40]}: {error['ename']}: {error['evalue'][:120]}"
    return total, None


def _untimed(k: "harness.Kernel", cells: list[str]) -> None:
    for source in cells:
        error = harness._cell_summary(k.run(source))["error"]
        if error:
            raise RuntimeError(f"{source!r}: {error}")


def run_mode(mode: str, cells: list[str], files: dict, tmp: Path, store: Path) -> dict:
    """One mode on one notebook in a fresh kernel: {"seconds", "error", ...}."""
    steps = harness.step_cells(cells)
    cwd = tmp / f"{mode}-{time.monotonic_ns()}"
    cwd.mkdir(parents=True)
    harness.write_files(cwd, files)
    out: dict = {"load": os.getloadavg()[0]}
    with harness.Kernel(cwd) as k:
        if mode == "plain":
            out["seconds"], out["error"] = _timed_cells(k, cells)
        elif mode in ("store", "restore"):
            _untimed(k, ["%load_ext nbsteps", f"%steps store {store}"])
            out["seconds"], out["error"] = _timed_cells(k, steps)
            if mode == "restore" and not out["error"]:
                out["load_seconds"], _ = _timed_cells(k, ["%steps load"])
                out["executed"] = _executed(k)
        elif mode in ("memory", "unobserved"):
            _untimed(k, ["%load_ext nbsteps"] + ([UNOBSERVED] if mode == "unobserved" else []))
            out["seconds"], out["error"] = _timed_cells(k, steps)
        elif mode == "plan":
            _untimed(k, ["%load_ext nbsteps", "%steps mode plan"])
            out["seconds"], out["error"] = _timed_cells(k, steps + ["%steps run --workers 4"])
        else:
            raise ValueError(mode)
    shutil.rmtree(cwd, ignore_errors=True)
    return out


def _executed(k: "harness.Kernel") -> "int | None":
    """How many steps executed in the kernel's last runs (a restore: 0)."""
    code = (
        "import nbsteps.ipython.session as _s\n"
        "print('@@executed@@', sum(r.origin == 'executed' for r in _s.current().records.values()))"
    )
    cell = k.run(code)
    for o in cell.get("outputs", []):
        for line in o.get("text", "").splitlines():
            if line.startswith("@@executed@@"):
                return int(line.split()[1])
    return None


def _units(modes: "list[str]") -> "list[tuple[str, ...]]":
    """The modes in the order they run; restore always right after store."""
    units = []
    for m in modes:
        if m == "restore":
            continue
        units.append(("store", "restore") if m == "store" and "restore" in modes else (m,))
    return units


def measure(entries, cells, modes, repeat, tmp: Path, progress) -> dict:
    results: dict = {e["id"]: {m: [] for m in modes} for e in entries}
    units = _units(modes)
    for r in range(repeat):
        order = units if r % 2 == 0 else list(reversed(units))
        for e in entries:
            nb = e["id"]
            for unit in order:
                store = tmp / f"store-{nb}-{r}"
                for mode in unit:
                    res = run_mode(mode, cells[nb], e.get("files") or {}, tmp, store)
                    res["round"] = r
                    results[nb][mode].append(res)
                    progress(nb, mode, res)
                shutil.rmtree(store, ignore_errors=True)
    return results


def _ratio_rows(results: dict, modes, ncells: dict) -> dict:
    """Per notebook and mode: ratios to plain of the same round, per-cell ms."""
    rows: dict = {}
    for nb, by_mode in results.items():
        plain = {x["round"]: x for x in by_mode.get("plain", []) if not x.get("error")}
        row = {"plain_s": statistics.median(x["seconds"] for x in plain.values()) if plain else None}
        row["load"] = statistics.median(x["load"] for m in by_mode.values() for x in m) if by_mode else None
        for mode in modes:
            if mode == "plain":
                continue
            ratios, per_cell, errors = [], [], []
            for x in by_mode.get(mode, []):
                p = plain.get(x["round"])
                if x.get("error") or p is None:
                    errors.append(x.get("error") or "no plain run")
                    continue
                ratios.append(x["seconds"] / p["seconds"])
                per_cell.append((x["seconds"] - p["seconds"]) / ncells[nb] * 1000)
            row[mode] = {
                "ratio": statistics.median(ratios) if ratios else None,
                "min": min(ratios, default=None),
                "max": max(ratios, default=None),
                "ms_per_cell": statistics.median(per_cell) if per_cell else None,
                "errors": errors,
            }
            if mode == "restore":
                loads = [x["load_seconds"] for x in by_mode[mode] if "load_seconds" in x]
                row[mode]["load_s"] = statistics.median(loads) if loads else None
                back = [  # until every value is back: the lazy restore, then %steps load
                    (x["seconds"] + x["load_seconds"]) / plain[x["round"]]["seconds"]
                    for x in by_mode[mode]
                    if "load_seconds" in x and x["round"] in plain
                ]
                row[mode]["with_load"] = statistics.median(back) if back else None
                row[mode]["executed"] = [x.get("executed") for x in by_mode[mode]]
        rows[nb] = row
    return rows


def _fmt(cell: "dict | None") -> str:
    if not cell or cell.get("ratio") is None:
        return "error" if cell and cell.get("errors") else ""
    spread = f" ({cell['min']:.2f}-{cell['max']:.2f})" if cell["min"] != cell["max"] else ""
    return f"{cell['ratio']:.3f}{spread}, {cell['ms_per_cell']:+.1f} ms"


def report(rows: dict, modes, ncells: dict, min_seconds: float) -> str:
    shown = [m for m in modes if m != "plain"]
    lines = [
        "| notebook | cells | plain s | load | " + " | ".join(shown) + " |",
        "|---|---|---|---|" + "---|" * len(shown),
    ]
    for nb, row in rows.items():
        plain = f"{row['plain_s']:.2f}" if row["plain_s"] is not None else "error"
        cells = [_fmt(row.get(m)) for m in shown]
        if "restore" in shown and row.get("restore", {}).get("load_s") is not None:
            i = shown.index("restore")
            got = row["restore"]
            cells[i] += (
                f"; with `%steps load` {got['with_load']:.3f} (+{got['load_s']:.2f} s); "
                f"executed {got['executed']}"
            )
        lines.append(f"| {nb} | {ncells[nb]} | {plain} | {row['load']:.1f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Cells: ratio to plain Run All of the same round (median; spread over rounds), "
        f"then the cost per cell in ms. Summary over notebooks whose plain run takes ≥ {min_seconds:g} s:"
    )
    big = [nb for nb, r in rows.items() if r["plain_s"] is not None and r["plain_s"] >= min_seconds]
    for mode in shown:
        vals = [
            (rows[nb][mode]["ratio"], nb) for nb in big if rows[nb].get(mode, {}).get("ratio") is not None
        ]
        per = [
            rows[nb][mode]["ms_per_cell"] for nb in rows if rows[nb].get(mode, {}).get("ratio") is not None
        ]
        if not vals:
            lines.append(f"- {mode}: no notebook of ≥ {min_seconds:g} s measured")
            continue
        worst = max(vals)
        if mode == "restore":
            back = [rows[nb][mode].get("with_load") for nb in big]
            back = [b for b in back if b is not None]
            if back:
                lines.append(
                    f"- restore until every value is back (`%steps load` after it): median "
                    f"{statistics.median(back):.3f}× (worst {max(back):.3f}×)"
                )
        lines.append(
            f"- {mode}: median {statistics.median(v for v, _ in vals):.3f}× over {len(vals)} notebooks "
            f"(worst {worst[0]:.3f}×, {worst[1]}); per cell, all notebooks: median "
            f"{statistics.median(per):+.1f} ms"
        )
    return "\n".join(lines)


def profile(nb: str, cells: list[str], files: dict, tmp: Path, restore: bool = False) -> str:
    """cProfile inside the kernel while the notebook's step cells run interactively
    with a directory store (*restore*: in a second kernel, restored from that
    store): nbsteps' own functions by cumulative time."""
    cwd = tmp / "profile"
    cwd.mkdir(parents=True)
    harness.write_files(cwd, files)
    store = tmp / "profile-store"
    if restore:
        with harness.Kernel(cwd) as k:
            _untimed(k, ["%load_ext nbsteps", f"%steps store {store}"] + harness.step_cells(cells))
    with harness.Kernel(cwd) as k:
        _untimed(k, ["%load_ext nbsteps", f"%steps store {store}"])
        _untimed(k, ["import cProfile as _cp\n_prof = _cp.Profile()\n_prof.enable()"])
        for source in harness.step_cells(cells):
            k.run(source)
        cell = k.run(
            "_prof.disable()\nimport pstats as _ps, io as _io\n_s = _io.StringIO()\n"
            "_ps.Stats(_prof, stream=_s).sort_stats('cumulative').print_stats('nbsteps', 45)\n"
            "print(_s.getvalue())"
        )
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)}, 1 round, plain/store/restore")
    ap.add_argument("--only", default="", help="notebooks, comma-separated (corpus.json ids)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated of {', '.join(MODES)}")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="notebooks in the summary (default 2)")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "corpus.json"), help="'-': none")
    ap.add_argument("--profile", default="", help="profile one notebook instead (interactive, store)")
    ap.add_argument("--profile-restore", action="store_true", help="with --profile: profile the restore")
    args = ap.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    if args.quick:
        only, args.repeat = only or list(QUICK), 1
        if args.modes == ",".join(MODES):
            modes = ["plain", "store", "restore"]
    if "plain" not in modes:
        modes.insert(0, "plain")
    unknown = set(modes) - set(MODES)
    if unknown:
        ap.error(f"unknown modes: {', '.join(sorted(unknown))}")

    manifest = harness.load_manifest()
    roots = harness.ensure_sources(manifest)
    entries = [e for e in manifest["notebooks"] if not only or e["id"] in only]
    if args.profile:
        entries = [e for e in manifest["notebooks"] if e["id"] == args.profile]
    if not entries:
        ap.error("no such notebook")
    cells = {e["id"]: harness.notebook_cells(e, roots) for e in entries}
    ncells = {nb: len(c) for nb, c in cells.items()}

    tmp = Path(tempfile.mkdtemp(prefix="nbsteps-bench-corpus-"))
    harness.write_kernelspec(tmp)
    os.environ.update(harness.kernel_env(tmp))
    try:
        if args.profile:
            files = entries[0].get("files") or {}
            print(profile(args.profile, cells[args.profile], files, tmp, args.profile_restore))
            return 0
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        print(
            f"nbsteps corpus bench: {len(entries)} notebooks, modes {','.join(modes)}, {args.repeat} rounds; "
            f"{os.cpu_count()} CPUs, load {load0[0]:.2f}",
            flush=True,
        )

        def progress(nb, mode, res):
            what = f"error: {res['error']}" if res.get("error") else f"{res['seconds']:.2f} s"
            print(f"  {nb:<28} {mode:<10} {what} (load {res['load']:.1f})", file=sys.stderr, flush=True)

        results = measure(entries, cells, modes, args.repeat, tmp, progress)
        rows = _ratio_rows(results, modes, ncells)
        load1 = os.getloadavg()
        print(report(rows, modes, ncells, args.min_seconds))
        print(
            f"\nload average {load0[0]:.2f} → {load1[0]:.2f}; {time.perf_counter() - t0:.0f} s; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        )
        if args.json != "-":
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(
                json.dumps({"modes": modes, "rows": rows, "raw": results, "load": [load0, load1]}, indent=1)
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
