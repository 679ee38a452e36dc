"""Scale (issue 26, target 8): 10,000 no-op steps register, plan and run in under
10 s; the growth from 1,000 to 10,000 steps must be ~linear.

    python bench/scale.py                                # 1,000 2,000 5,000 10,000; 3 rounds
    python bench/scale.py --sizes 100,200 --repeat 1     # the smoke test's size
    python bench/scale.py --shapes cells --sizes 10000 --profile plan   # cProfile one phase

Each (shape, n) runs in a fresh interpreter (this file with ``--child``); the sizes
are alternated over the rounds (ascending, then descending, ...) so that every size
sees the same load on the shared cores. Three shapes:

* ``chain``: function steps ``step_i(step_{i-1})`` through the Plan API, as the peer
  harness builds them (``bench/nbsteps_side.py``, bodies from ``bench/workloads.py``);
* ``wide``: n independent function steps feeding one final step ``result(step_0, ...)``;
* ``cells``: n ``%%step`` cells (a chain of 3-line cells, ``bench/notebook_child.py``'s)
  in a real IPython ``InteractiveShell`` with ``%load_ext nbsteps`` and
  ``%steps mode plan``: the cells register, ``%steps plan`` prints the plan,
  ``%steps run`` runs it (stdout captured).

Phases, each timed apart in wall and CPU (``time.process_time``: every thread):
**register** (``Plan()`` + ``plan.step(...)`` for every function, or the n cells run
in plan mode), **plan** (what shows the user the plan before running:
``plan.plan().text``, what ``%steps plan`` prints; or ``%steps plan`` itself),
**run** (``plan.run()`` / ``%steps run``: memory store, default workers,
observation on). The table gives, per shape and n, the medians over the rounds,
µs per step, and the growth total(largest n) / total(smallest n) (linear: the
ratio of the sizes, 10.0 for 1,000 -> 10,000), with the load average before and
after each child. Timings are medians; the machine is shared: read the load.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PHASES = ("register", "plan", "run")
SHAPES = ("chain", "wide", "cells")
WARM = 20  # steps of the untimed warm-up in each child


# ============================================================ child


def _timed(fn):
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def _function_steps(shape: str, n: int, profile: str | None) -> dict:
    from bench import nbsteps_side as S
    from bench import workloads as W

    S.user_module(shape, n)  # the user's code, generated and compiled: not timed
    # one-time costs (imports, first calls) in a small plan of the same shape, apart
    _, warm, _ = _timed(lambda: S.build_and_run(shape, WARM))
    phases = {}
    prof = _profiler(profile)

    def phase(name, fn):
        if prof is not None and name == profile:
            prof.enable()
        out, w, c = _timed(fn)
        if prof is not None and name == profile:
            prof.disable()
        phases[name] = {"wall": w, "cpu": c}
        return out

    plan = phase("register", lambda: S.build_plan(shape, n))
    text = phase("plan", lambda: plan.plan().text)
    got = phase("run", lambda: S.run_plan(plan, shape, n))
    want = W.expected(shape, n)
    if got != want:
        raise SystemExit(f"{shape}_{n}: WRONG result {got!r} != {want!r}")
    _print_profile(prof)
    return {
        "phases": phases,
        "warmup": warm,
        "steps": len(plan.context.steps),
        "plan_lines": text.count("\n") + 1,
    }


def _cells(n: int, profile: str | None) -> dict:
    from IPython.core.interactiveshell import InteractiveShell

    from bench.notebook_child import chain_body

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbsteps")
    from nbsteps.ipython import session

    sources = [f"%%step c{i}\n{chain_body(i)}" for i in range(n)]
    prof = _profiler(profile)
    phases = {}
    sink = io.StringIO()

    def cells(srcs):
        with contextlib.redirect_stdout(sink):
            for src in srcs:
                r = ip.run_cell(src, store_history=False, silent=False)
                if not r.success:
                    raise SystemExit(f"cell failed: {r.error_before_exec or r.error_in_exec!r}\n{src}")

    # one-time costs (imports, first calls): a few cells registered, planned and run, apart
    warm = [f"%%step warm{i}\nwarm_{i} = {i}\n" for i in range(WARM)]
    _, warm_s, _ = _timed(lambda: cells(["%steps mode plan", *warm, "%steps plan", "%steps run"]))
    session.new_plan()
    for i in range(WARM):
        ip.user_ns.pop(f"warm_{i}", None)
    cells(["%steps mode plan"])  # (a new plan starts in interactive mode)

    def phase(name, srcs):
        if prof is not None and name == profile:
            prof.enable()
        _, w, c = _timed(lambda: cells(srcs))
        if prof is not None and name == profile:
            prof.disable()
        phases[name] = {"wall": w, "cpu": c}

    phase("register", sources)
    if f"s{n - 1}" in ip.user_ns or session.mode() != "plan":
        raise SystemExit(f"cells_{n}: the cells ran when they registered (mode {session.mode()})")
    mark = sink.tell()
    phase("plan", ["%steps plan"])
    plan_lines = sink.getvalue()[mark:].count("\n")
    phase("run", ["%steps run"])
    got = ip.user_ns.get(f"s{n - 1}")
    if got != 3 * (n - 1):
        raise SystemExit(f"cells_{n}: WRONG result s{n - 1} = {got!r} != {3 * (n - 1)}")
    _print_profile(prof)
    steps = len(session.current().context.steps)
    return {"phases": phases, "warmup": warm_s, "steps": steps, "plan_lines": plan_lines}


def _profiler(profile: str | None):
    if not profile:
        return None
    import cProfile

    return cProfile.Profile()


def _print_profile(prof) -> None:
    if prof is None:
        return
    import pstats

    s = io.StringIO()
    pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(25)
    pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(35)
    print(s.getvalue(), file=sys.stderr)


def child(shape: str, n: int, profile: str | None) -> None:
    sys.path.insert(0, ROOT)
    out = _cells(n, profile) if shape == "cells" else _function_steps(shape, n, profile)
    print(json.dumps(out))


# ============================================================ parent


def run_child(shape: str, n: int, profile: str | None = None) -> dict:
    env = dict(os.environ)
    env.pop("NBSTEPS_STORE", None)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", shape, str(n)]
    if profile:
        cmd += ["--profile", profile]
    load0 = os.getloadavg()[0]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600, cwd=ROOT)
    load1 = os.getloadavg()[0]
    if p.returncode != 0:
        raise SystemExit(f"{shape} {n}: {p.stderr.strip()[-3000:]}")
    if profile:
        print(p.stderr, file=sys.stderr)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["load"] = [round(load0, 2), round(load1, 2)]
    return out


def _median(runs: list, phase: str, kind: str) -> float:
    if phase == "total":
        return statistics.median(sum(r["phases"][p][kind] for p in PHASES) for r in runs)
    return statistics.median(r["phases"][phase][kind] for r in runs)


def table(results: dict, sizes: list, shapes: list, repeat: int) -> str:
    lines = []
    for shape in shapes:
        lines.append(f"\n{shape}: seconds, medians of {repeat} (wall / CPU)")
        lines.append("| n | register | plan | run | total | µs/step (wall / CPU) | load before -> after |")
        lines.append("|---|---|---|---|---|---|---|")
        for n in sizes:
            runs = results[shape][n]
            cells = [
                f"{_median(runs, p, 'wall'):.3f} / {_median(runs, p, 'cpu'):.3f}" for p in (*PHASES, "total")
            ]
            w, c = (_median(runs, "total", k) * 1e6 / n for k in ("wall", "cpu"))
            per = f"{w:.0f} / {c:.0f}"
            loads = ", ".join(f"{r['load'][0]:.1f}->{r['load'][1]:.1f}" for r in runs)
            lines.append(f"| {n:,} | " + " | ".join(cells) + f" | {per} | {loads} |")
        lo, hi = min(sizes), max(sizes)
        if lo != hi:
            parts = []
            for p in (*PHASES, "total"):
                w = _median(results[shape][hi], p, "wall") / max(_median(results[shape][lo], p, "wall"), 1e-9)
                c = _median(results[shape][hi], p, "cpu") / max(_median(results[shape][lo], p, "cpu"), 1e-9)
                parts.append(f"{p} {w:.1f} / {c:.1f}")
            lines.append(f"growth {hi:,} / {lo:,} (linear = {hi / lo:.1f}), wall / CPU: " + "; ".join(parts))
            total_hi = _median(results[shape][hi], "total", "wall")
            verdict = "under" if total_hi < 10 else "OVER"
            lines.append(f"total at {hi:,}: {total_hi:.2f} s wall ({verdict} 10 s)")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description="Issue 26 target 8: n no-op steps register, plan and run; growth with n.",
        epilog="Each (shape, n) in a fresh interpreter; sizes alternated over the rounds.",
    )
    ap.add_argument("--sizes", default="1000,2000,5000,10000", help="comma-separated step counts")
    ap.add_argument("--shapes", default=",".join(SHAPES), help="chain, wide, cells (comma-separated)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (each size once a round); default 3")
    ap.add_argument("--json", default="", help="also write every run to this file")
    ap.add_argument(
        "--profile",
        choices=PHASES,
        help="cProfile this phase in one child per shape and size (printed on stderr; one round)",
    )
    ap.add_argument("--child", nargs=2, metavar=("SHAPE", "N"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child(a.child[0], int(a.child[1]), a.profile)
        return
    sizes = [int(s.replace("_", "")) for s in a.sizes.split(",") if s]
    shapes = [s for s in a.shapes.split(",") if s]
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"unknown shape {s!r} (chain, wide, cells)")
    repeat = 1 if a.profile else max(1, a.repeat)
    t0 = time.time()
    start_load = os.getloadavg()
    print(
        f"nbsteps scale bench {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"load {start_load[0]:.2f} {start_load[1]:.2f} {start_load[2]:.2f}; "
        f"sizes {', '.join(f'{n:,}' for n in sizes)}; shapes {', '.join(shapes)}; {repeat} round(s)",
        flush=True,
    )
    results: dict = {s: {n: [] for n in sizes} for s in shapes}
    for r in range(repeat):
        order = sizes if r % 2 == 0 else sizes[::-1]
        for shape in shapes:
            for n in order:
                out = run_child(shape, n, a.profile)
                results[shape][n].append(out)
                ph = out["phases"]
                print(
                    f"  round {r + 1} {shape} {n:,}: "
                    + " ".join(f"{p} {ph[p]['wall']:.3f}s" for p in PHASES)
                    + f" (load {out['load'][0]:.1f} -> {out['load'][1]:.1f})",
                    file=sys.stderr,
                    flush=True,
                )
    print(table(results, sizes, shapes, repeat))
    end_load = os.getloadavg()
    print(f"\nload average {start_load[0]:.2f} -> {end_load[0]:.2f}; {time.time() - t0:.0f} s in all")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"sizes": sizes, "shapes": shapes, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
