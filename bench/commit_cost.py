"""What a directory store's checkpoints add to an interactive ``%%step`` cell
(issue 26, target 1: checkpoints off the critical path), in one process.

    python bench/commit_cost.py                          # 20 cells, 5 rounds, a directory under /tmp
    python bench/commit_cost.py --cells 30 --repeat 7 --work-ms 50
    python bench/commit_cost.py --cell ols --nbsteps /tmp/base    # statsmodels cells, another tree's nbsteps

A real IPython InteractiveShell with nbsteps runs the same sequence of step
cells (each makes a ~0.4 MB array and a small dict from the one before, then
sleeps ``--work-ms``, standing for the user's own computation; ``--cell ols``:
each fits a statsmodels OLS on 200 rows made from the one before and keeps the
model, its results, a DataFrame of the estimates and a dict, the values a put
pickles in sm_ols; ``--cell fig``: a matplotlib figure of 2x2 axes, a line, a
title and a legend each, and a dict, what the corpus's plotting cells keep) three
ways, alternated within each round (the order rotates):

- ``memory``: the memory store (no checkpoint written: the floor);
- ``wait``: a directory store whose put waits for each commit (fsyncs and
  metadata on the cell's time: what every directory store did before);
- ``background``: a directory store with background commits (the default in
  a notebook now: the commit runs while the next cells do).

Printed: per-cell wall time (median over cells and rounds) of each way and its
cost beyond ``memory``, the CPU time of the cell's thread per cell and of the
store's committer thread per cell (least of the rounds: the steadiest at load),
and the time the last commits still took after the last cell (``flush``, waited
for before the next round). The load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

_tree = sys.argv[sys.argv.index("--nbsteps") + 1] if "--nbsteps" in sys.argv[:-1] else None
sys.path.insert(0, _tree or str(Path(__file__).resolve().parents[1]))  # --nbsteps: another checkout's

MODES = ("memory", "wait", "background")


def cells(n: int, work_ms: float, kind: str = "array") -> list[str]:
    out = []
    for i in range(n):
        src = f"v{i - 1}" if i else "None"
        if kind == "fig":
            out.append(
                f"%%step c{i}\nimport numpy as np, matplotlib, time\nmatplotlib.use('Agg')\n"
                f"import matplotlib.pyplot as plt\n"
                f"fig{i}, axs{i} = plt.subplots(2, 2)\n"
                f"for ax in axs{i}.flat:\n"
                f"    ax.plot(np.random.default_rng({i}).random(100))\n"
                f"    ax.set_title('c{i}'); ax.legend(['a'])\n"
                f"plt.close(fig{i})\n"
                f"v{i} = {{'i': {i}}}\n"
                f"time.sleep({work_ms / 1000!r})"
            )
            continue
        if kind == "ols":
            prev = f"v{i - 1}['r2']" if i else "0"
            out.append(
                f"%%step c{i}\nimport numpy as np, pandas as pd, statsmodels.api as sm, time\n"
                f"x{i} = sm.add_constant(np.random.default_rng({i}).random((200, 3)))\n"
                f"y{i} = x{i} @ [1.0, 2.0, 3.0, {i}.0] + np.random.default_rng({i + 1000}).random(200)"
                f" + {prev}\n"
                f"model{i} = sm.OLS(y{i}, x{i})\nres{i} = model{i}.fit()\n"
                f"est{i} = pd.DataFrame({{'coef': res{i}.params, 'se': res{i}.bse}})\n"
                f"v{i} = {{'i': {i}, 'r2': float(res{i}.rsquared)}}\n"
                f"time.sleep({work_ms / 1000!r})"
            )
            continue
        out.append(
            f"%%step c{i}\nimport numpy as np, time\n"
            f"a{i} = np.random.default_rng({i}).random(50_000) + (0 if {src} is None else 1)\n"
            f"v{i} = {{'i': {i}, 'mean': float(a{i}.mean())}}\n"
            f"time.sleep({work_ms / 1000!r})"
        )
    return out


def _commit_threads_cpu() -> dict:
    """CPU seconds of each committer thread (``nbsteps-commit``) alive, by ident."""
    return {
        t.ident: time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        for t in threading.enumerate()
        if t.name == "nbsteps-commit" and t.ident is not None
    }


#: per way, the cell's thread CPU seconds per cell and the committer threads' CPU seconds per cell
CPU: dict = {}


def one_way(ip, session, mode: str, sources: list[str], root: Path) -> "tuple[list[float], float]":
    """Per-cell wall times of *sources* in a fresh plan and namespace; the flush time.
    The CPU of the cell's thread and of the committer (per cell) go to :data:`CPU`."""
    ip.reset(new_session=False)
    session._plan = None
    session.bind(ip)
    plan = session.current()
    if mode != "memory":
        d = root / f"{mode}-{time.monotonic_ns()}"
        plan.set_store(str(d))
        plan.background_commits = mode == "background"
    times = []
    committers = _commit_threads_cpu()
    cpu = 0.0
    for i, src in enumerate(sources):
        with contextlib.redirect_stdout(io.StringIO()):  # the step's one-line report
            c0 = time.thread_time()
            t0 = time.perf_counter()
            r = ip.run_cell(src)
            times.append(time.perf_counter() - t0)
            if i:  # as the wall times: the first cell imports
                cpu += time.thread_time() - c0
        if not r.success:
            raise SystemExit(f"cell failed in {mode}: {r.error_in_exec or r.error_before_exec!r}")
    t0 = time.perf_counter()
    plan.store.flush()
    flushed = time.perf_counter() - t0
    after = _commit_threads_cpu()
    commit = sum(v - committers.get(k, 0.0) for k, v in after.items())
    n = max(1, len(sources) - 1)
    CPU.setdefault(mode, []).append((cpu / n, commit / len(sources)))
    return times, flushed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--work-ms", type=float, default=30.0, help="the cell's own time (sleep), ms")
    ap.add_argument("--dir", default=None, help="where the stores go (default: a temp dir under /tmp)")
    ap.add_argument(
        "--cell",
        choices=("array", "ols", "fig"),
        default="array",
        help="what each cell makes (fig: a 2x2 figure)",
    )
    ap.add_argument("--nbsteps", default=None, help="the checkout whose nbsteps runs (default: this one)")
    a = ap.parse_args()
    os.environ.setdefault("NBSTEPS_KEY_FILE", str(Path(tempfile.mkdtemp()) / "key" / "secret"))
    from IPython.core.interactiveshell import InteractiveShell

    from nbsteps.ipython import session

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbsteps")
    ip.display_pub.publish = lambda *args, **kw: None  # no frontend: displays go nowhere
    root = Path(tempfile.mkdtemp(prefix="nbsteps-commit-", dir=a.dir))
    load0 = os.getloadavg()[0]
    print(
        f"commit cost: {a.cells} {a.cell} cells, {a.work_ms:g} ms of work each, {a.repeat} rounds; "
        f"load {load0:.2f}; nbsteps from {Path(session.__file__).parents[2]}"
    )
    sources = cells(a.cells, a.work_ms, a.cell)
    one_way(ip, session, "wait", sources[:3], root)  # imports, first-use costs
    per: dict[str, list[float]] = {m: [] for m in MODES}
    flush: dict[str, list[float]] = {m: [] for m in MODES}
    try:
        for r in range(a.repeat):
            order = MODES[r % 3 :] + MODES[: r % 3]
            for mode in order:
                times, fl = one_way(ip, session, mode, sources, root)
                per[mode].extend(times[1:])  # the first cell imports numpy in a fresh namespace
                flush[mode].append(fl)
            print(
                f"  round {r + 1}: "
                + ", ".join(f"{m} {statistics.median(per[m][-(a.cells - 1) :]) * 1e3:.1f} ms" for m in MODES)
                + f" (load {os.getloadavg()[0]:.1f})"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = statistics.median(per["memory"])
    cpu_base = min(c for c, _ in CPU["memory"])
    print(
        "| way | ms per cell (median) | beyond memory | flush after the last cell "
        "| cell's thread CPU ms per cell (least round) | beyond memory | committer CPU ms per cell |"
    )
    print("|---|---|---|---|---|---|---|")
    for m in MODES:
        med = statistics.median(per[m])
        c = min(c for c, _ in CPU[m])
        k = min(k for _, k in CPU[m])
        print(
            f"| {m} | {med * 1e3:.1f} | {(med - base) * 1e3:+.1f} ms ({(med / base - 1) * 100:+.1f} %) "
            f"| {statistics.median(flush[m]) * 1e3:.1f} ms | {c * 1e3:.2f} | {(c - cpu_base) * 1e3:+.2f} "
            f"| {k * 1e3:.2f} |"
        )
    print(f"load average {load0:.2f} → {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
