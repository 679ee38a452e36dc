"""nbsteps' own kernel CPU per ``%%step`` cell (issue 26, target 0), trivial steps.

    python bench/kernel_steps_cpu.py [--cells 80] [--repeat 2] [--modes plain,memory,plan]
                                     [--against DIR] [--before N]

A chain of *cells* trivial cells (``v{i} = {i} + v{i-1}``) in a real kernel through
nbclient: as plain cells (``plain``), as ``%%step`` cells run one at a time (``memory``:
interactive mode, the memory store) and registered in plan mode then run by one
``%steps run`` (``plan``). Each mode in a fresh kernel, after a warm-up step (and a warm-up
``%steps run``) so that per-kernel imports are not counted. Prints the kernel's main-thread
CPU per cell (``time.thread_time``, what a loaded machine moves least), every thread's CPU
(``os.times``: 10 ms ticks) and the wall time per cell as the client saw it, with the load.
``--against DIR``: each nbsteps mode also runs as ``MODE@base`` with the nbsteps package of
*DIR* (e.g. ``git archive HEAD nbsteps | tar -x -C DIR``), alternated in the same rounds.
``--before N``: the first *N* cells of the chain run untimed first (``plan``: registered and
run by a ``%steps run`` of their own), so the timed cells are those of a notebook of N steps
and more (what grows with the notebook: issue 26, target 6).
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
WARM = {"plain": ["w = 0"], "memory": ["%%step w0\nw = 0"], "plan": ["%%step w0\nw = 0", "%steps run"]}
START = "import time as _t, os as _o\n_c0, _a0 = _t.thread_time(), sum(_o.times()[:2])"
STOP = "print(f'@@ {(_t.thread_time() - _c0) * 1000:.3f} {(sum(_o.times()[:2]) - _a0) * 1000:.3f}')"


def cells(mode: str, n: int, start: int = 0) -> list[str]:
    body = [f"v{i} = {i}" + (f" + v{i - 1}" if i else "") for i in range(start, start + n)]
    if mode == "plain":
        return body
    steps = [f"%%step s{i}\n{b}" for i, b in enumerate(body, start)]
    return steps + (["%steps run"] if mode == "plan" else [])


def run(mode: str, n: int, cwd: Path, before: int = 0) -> tuple[float, float, float]:
    """(main-thread CPU ms, all threads' CPU ms, wall ms) per cell, after *before* untimed cells."""
    with corpus._kernel(cwd, mode) as k:
        m = mode.removesuffix("@base")
        corpus._untimed(k, SETUP[m] + WARM[m] + (cells(m, before) if before else []))
        k.run(START)
        t0 = time.perf_counter()
        for source in cells(m, n, before):
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
    args = ap.parse_args()
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
            figures = run(mode, args.cells, tmp, args.before)
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
