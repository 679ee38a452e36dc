"""nbsteps' own kernel CPU per ``%%step`` cell (issue 26, target 0), trivial steps.

    python bench/kernel_steps_cpu.py [--cells 80] [--repeat 2] [--modes plain,memory,plan]
                                     [--against DIR] [--before N] [--builtin]

A chain of *cells* trivial cells (``v{i} = {i} + v{i-1}``) in a real kernel through
nbclient: as plain cells (``plain``), as ``%%step`` cells run one at a time (``memory``:
interactive mode, the memory store) and registered in plan mode then run by one
``%steps run`` (``plan``). Each mode in a fresh kernel, after a warm-up step (and a warm-up
``%steps run`` of two steps: since 2026-12-06 23:20 it loads IPython's lazy magics too, as
the timed run does) so that per-kernel imports are not counted. Prints the kernel's main-thread
CPU per cell (``time.thread_time``, what a loaded machine moves least), every thread's CPU
(``os.times``: 10 ms ticks) and the wall time per cell as the client saw it, with the load.
``--against DIR``: each nbsteps mode also runs as ``MODE@base`` with the nbsteps package of
*DIR* (e.g. ``git archive HEAD nbsteps | tar -x -C DIR``), alternated in the same rounds.
``--before N``: the first *N* cells of the chain run untimed first (``plan``: registered and
run by a ``%steps run`` of their own), so the timed cells are those of a notebook of N steps
and more (what grows with the notebook: issue 26, target 6).
``--profile MODE``: one run of *MODE* under cProfile on the kernel's main thread (timer
``time.thread_time``), printing the functions by cumulative and by own time (``--top N``;
``--dump FILE``: the pstats file too). ``--gap S``: the client waits *S* seconds before
each cell (cells at a person's pace, or slow ones: what is sent at once, not batched with
the next cell's, and the timers that fire between cells). ``--parts MODE``: one run of
*MODE* with nbsteps' main parts wrapped in ``time.thread_time`` counters (no profiler: what
each costs the kernel's main thread per cell, inclusive, calls within calls counted in both);
``--part MODULE:[OWNER.]ATTR`` (repeatable) adds one more (a name a module imported from another is
wrapped where that module reads it: ``nbsteps.ipython.cells:publish``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "corpus"))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402
import harness  # noqa: E402

SETUP = {"plain": [], "memory": ["%load_ext nbsteps"], "plan": ["%load_ext nbsteps", "%steps mode plan"]}
#: per-kernel costs paid before the timed cells: the first step, the first ``%steps run`` (the live
#: view's imports) and, with two independent steps (a run on worker threads), IPython's lazy magics
WARM = {
    "plain": ["w = 0"],
    "memory": ["%%step w0\nw = 0"],
    "plan": ["%%step w0\nw = 0", "%%step w1\nwx = 1", "%steps run"],
}
START = "import time as _t, os as _o\n_c0, _a0 = _t.thread_time(), sum(_o.times()[:2])"
STOP = "print(f'@@ {(_t.thread_time() - _c0) * 1000:.3f} {(sum(_o.times()[:2]) - _a0) * 1000:.3f}')"


#: ``--builtin``: each cell reads a builtin too (``abs``), as most cells read a name from outside
#: the plan (a builtin a cell could rebind, a name an ordinary cell set); a7d77e6: the refresh after
#: each cell no longer fingerprints every such step again
BUILTIN = False


def cells(mode: str, n: int, start: int = 0) -> list[str]:
    first = "abs({i})" if BUILTIN else "{i}"
    body = [f"v{i} = {first.format(i=i)}" + (f" + v{i - 1}" if i else "") for i in range(start, start + n)]
    if mode == "plain":
        return body
    steps = [f"%%step s{i}\n{b}" for i, b in enumerate(body, start)]
    return steps + (["%steps run"] if mode == "plan" else [])


PROFILE_START = "import cProfile as _cp, time as _pt\n_prof = _cp.Profile(_pt.thread_time)\n_prof.enable()"


def profile_stop(top: int, dump: "str | None") -> str:
    return (
        "_prof.disable()\nimport pstats as _ps, io as _io\n_s = _io.StringIO()\n"
        + (f"_prof.dump_stats({dump!r})\n" if dump else "")
        + "_st = _ps.Stats(_prof, stream=_s).strip_dirs()\n"
        f"_st.sort_stats('cumulative').print_stats({top})\n_st.sort_stats('tottime').print_stats({top})\n"
        "print(_s.getvalue())"
    )


def profile(mode: str, n: int, cwd: Path, before: int, top: int, dump: "str | None" = None) -> str:
    """The cProfile report of *n* cells of *mode* (main thread, thread CPU time)."""
    with corpus._kernel(cwd, mode) as k:
        m = mode.removesuffix("@base")
        corpus._untimed(k, SETUP[m] + WARM[m] + (cells(m, before) if before else []))
        k.run(PROFILE_START)
        for source in cells(m, n, before):
            k.run(source)
        return "".join(o.get("text", "") for o in k.run(profile_stop(top, dump)).get("outputs", []))


#: ``--parts``: (module, owner in it or "", attribute) wrapped in thread_time counters
PARTS = [
    ("nbsteps.plan", "Plan", "run"),
    ("nbsteps.plan", "Plan", "add_cell"),
    ("nbsteps.ipython.cells", "StepCells", "open"),
    ("nbsteps.ipython.cells", "StepCells", "flush"),
    ("nbsteps.ipython.cells", "StepCells", "finish_own"),
    ("nbsteps.ipython.cells", "StepCells", "__call__"),
    ("nbsteps.ipython.cells", "", "publish"),
    ("nbsteps.ipython.session", "", "refresh_after_cell"),
    ("nbsteps.ipython.lab", "LabState", "__call__"),
    ("nbsteps.ipython.display", "", "run_listeners"),
    ("nbsteps.views.text", "TextReporter", "__call__"),
    ("nbsteps.views.live", "LiveView", "__call__"),
    ("nbsteps.views.live", "LiveView", "finish"),
]
PARTS_START = """
import time as _pt, functools as _pf, threading as _pth, importlib as _pi
_parts, _pmain = {}, _pth.main_thread()
def _part(owner, attr, label):
    f = getattr(owner, attr)
    @_pf.wraps(f)
    def w(*a, **k):
        if _pth.current_thread() is not _pmain:
            return f(*a, **k)
        c = _pt.thread_time()
        try:
            return f(*a, **k)
        finally:
            n, t = _parts.get(label, (0, 0.0))
            _parts[label] = (n + 1, t + _pt.thread_time() - c)
    setattr(owner, attr, w)
for _m, _o, _a in PARTS:
    _mod = _pi.import_module(_m)
    _part(getattr(_mod, _o) if _o else _mod, _a, f"{_o or _m.rsplit('.', 1)[-1]}.{_a}")
"""


def parts(mode: str, n: int, cwd: Path, before: int, extra: "list[tuple] | None" = None) -> str:
    """``--parts``: main-thread CPU per cell of each of :data:`PARTS` and *extra* (inclusive),
    and the cell's."""
    with corpus._kernel(cwd, mode) as k:
        m = mode.removesuffix("@base")
        corpus._untimed(k, SETUP[m] + WARM[m] + (cells(m, before) if before else []))
        corpus._untimed(k, [f"PARTS = {PARTS + (extra or [])!r}\n{PARTS_START}"])
        k.run(START)
        for source in cells(m, n, before):
            k.run(source)
        report = (
            f"print(f'  the cell: {{(_t.thread_time() - _c0) * 1000 / {n}:.3f}} ms/cell')\n"
            "for _k, (_n, _t) in sorted(_parts.items(), key=lambda x: -x[1][1]):\n"
            + f"    print(f'  {{_k:32s}} {{_n:6d}} calls {{_t * 1000 / {n}:7.3f}} ms/cell')"
        )
        return "".join(o.get("text", "") for o in k.run(report).get("outputs", []))


def run(mode: str, n: int, cwd: Path, before: int = 0, gap: float = 0.0) -> tuple[float, float, float]:
    """(main-thread CPU ms, all threads' CPU ms, wall ms) per cell, after *before* untimed cells;
    *gap*: seconds the client waits before each cell (wall time then counts the waits too)."""
    with corpus._kernel(cwd, mode) as k:
        m = mode.removesuffix("@base")
        corpus._untimed(k, SETUP[m] + WARM[m] + (cells(m, before) if before else []))
        k.run(START)
        t0 = time.perf_counter()
        for source in cells(m, n, before):
            if gap:
                time.sleep(gap)
            k.run(source)
        wall = time.perf_counter() - t0
        text = "".join(o.get("text", "") for o in k.run(STOP).get("outputs", []))
    line = next(x for x in text.splitlines() if x.startswith("@@ "))
    main, every = map(float, line.split()[1:])
    return main / n, every / n, wall * 1000 / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=80)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--modes", default="plain,memory,plan")
    ap.add_argument("--against", default=None, help="another checkout: its nbsteps runs as MODE@base")
    ap.add_argument("--before", type=int, default=0, help="untimed cells of the chain before the timed ones")
    ap.add_argument("--profile", default=None, help="MODE: cProfile one run on the kernel's main thread")
    ap.add_argument("--top", type=int, default=60, help="--profile: how many functions to print")
    ap.add_argument("--dump", default=None, help="--profile: also write the pstats to this file")
    ap.add_argument("--parts", default=None, help="MODE: main-thread CPU per cell of nbsteps' parts")
    ap.add_argument(
        "--part",
        action="append",
        default=[],
        help="--parts: one more part, MODULE:ATTR or MODULE:OWNER.ATTR (nbsteps.views.static:static_bundle)",
    )
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between two cells (a person's pace)")
    ap.add_argument("--builtin", action="store_true", help="each cell reads a builtin too (abs)")
    args = ap.parse_args()
    global BUILTIN
    BUILTIN = args.builtin
    if args.parts:
        tmp = Path(tempfile.mkdtemp(prefix="nbsteps-kcpu-"))
        harness.write_kernelspec(tmp)
        os.environ.update(harness.kernel_env(tmp))
        if args.against:
            corpus.AGAINST = Path(args.against).resolve()
        load = os.getloadavg()[0]
        print(f"{args.parts}, {args.cells} cells (load {load:.1f}), main-thread CPU, inclusive:")
        extra = []
        for spec in args.part:
            module, _, attr = spec.partition(":")
            owner, _, attr = attr.rpartition(".")
            extra.append((module, owner, attr))
        print(parts(args.parts, args.cells, tmp, args.before, extra))
        return
    if args.profile:
        tmp = Path(tempfile.mkdtemp(prefix="nbsteps-kcpu-"))
        harness.write_kernelspec(tmp)
        os.environ.update(harness.kernel_env(tmp))
        if args.against:
            corpus.AGAINST = Path(args.against).resolve()
        dump = str(Path(args.dump).resolve()) if args.dump else None
        print(profile(args.profile, args.cells, tmp, args.before, args.top, dump))
        return
    modes = args.modes.split(",")
    if args.against:
        corpus.AGAINST = Path(args.against).resolve()
        modes = [x for m in modes for x in ([m, f"{m}@base"] if m != "plain" else [m])]
    tmp = Path(tempfile.mkdtemp(prefix="nbsteps-kcpu-"))
    harness.write_kernelspec(tmp)
    os.environ.update(harness.kernel_env(tmp))
    results: dict[str, list] = {m: [] for m in modes}
    for r in range(args.repeat):
        for mode in modes:
            load = os.getloadavg()[0]
            figures = run(mode, args.cells, tmp, args.before, args.gap)
            results[mode].append(figures)
            print(
                f"round {r + 1} {mode:12s} main-thread CPU {figures[0]:.2f} ms/cell, all threads "
                f"{figures[1]:.2f}, wall {figures[2]:.2f} (load {load:.1f})",
                flush=True,
            )
    print(f"\nmedian over {args.repeat} rounds, {args.cells} cells after {args.before}:")
    for mode, rows in results.items():
        rows = sorted(rows)
        mid = rows[len(rows) // 2]
        spread = f"{rows[0][0]:.2f}-{rows[-1][0]:.2f}"
        print(f"  {mode:12s} main-thread CPU {mid[0]:.2f} ms/cell ({spread}), all threads {mid[1]:.2f}")


if __name__ == "__main__":
    main()
