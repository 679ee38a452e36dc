"""Child process of the notebook-scale workloads (``bench/notebook.py``).

    python -m bench.notebook_child WORKLOAD JSON_ARGS

Each workload runs in a fresh interpreter with a real ``InteractiveShell`` and
``%load_ext nbsteps``, and prints one JSON object. Which nbsteps is measured is
whatever ``import nbsteps`` finds (``bench/notebook.py --against DIR`` puts an
older checkout first on ``PYTHONPATH`` to compare two versions in one run).

Workloads:

* ``cells``: ``n`` ``%%step`` cells (a chain) registered in plan mode (the
  last ``k`` timed) and run, then ``k`` more chain cells run interactively, one
  at a time: seconds per cell, against the same bodies as plain IPython cells;
  then the middle cell run again unchanged, ``k`` times.
* ``disk_upstream``: ``%%step big`` makes an ``mb`` MB frame; then ``k`` small
  ``%%step`` cells each read it: seconds per cell, directory store vs memory.
* ``notebook``: six ``%%step`` cells, each making a ``mb`` MB frame from the
  previous one (see ``PIPELINE``), run interactively with a directory store:
  ``phase=compute`` in a fresh store, ``phase=rerun`` (a new process, same
  store, same cells: everything restores), ``phase=touch`` (re-run, then an
  ordinary cell reads the last frame).
* ``params``: a parameter cell and four ``%%step`` cells run with ``p=1``,
  ``p=2``, then ``p=1`` again (directory store): seconds of each run and how
  many steps executed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import sys
import time


def shell():
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "nbsteps")
    return ip


def run(ip, src: str):
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        r = ip.run_cell(src, store_history=False, silent=False)
    if not r.success:
        raise RuntimeError(
            f"cell failed: {r.error_before_exec or r.error_in_exec!r}\n{src}\n{sink.getvalue()[-2000:]}"
        )
    return sink.getvalue()


def timed(ip, src: str) -> float:
    t0 = time.perf_counter()
    run(ip, src)
    return time.perf_counter() - t0


def chain_body(i: int) -> str:
    if i == 0:
        return "v0 = 0\nw0 = [v0] * 3\ns0 = sum(w0)\n"
    return f"v{i} = v{i - 1} + 1\nw{i} = [v{i}] * 3\ns{i} = sum(w{i})\n"


def cells(n: int, k: int) -> dict:
    ip = shell()
    from nbsteps.ipython import session

    session.set_mode("plan")
    plan_s = []
    for i in range(n):
        if i < n - k:
            run(ip, f"%%step c{i}\n{chain_body(i)}")
        else:  # registration only, with n - k steps before it
            plan_s.append(timed(ip, f"%%step c{i}\n{chain_body(i)}"))
    run(ip, "%steps run")
    session.set_mode("interactive")
    # warm-up: a few interactive cells (first-use imports, caches)
    for i in range(n, n + 3):
        run(ip, f"%%step c{i}\n{chain_body(i)}")
    base = n + 3
    step_s = [timed(ip, f"%%step c{i}\n{chain_body(i)}") for i in range(base, base + k)]
    ns = {}
    plain_s = []
    for i in range(base + k, base + 2 * k):  # the same bodies as plain cells
        plain_s.append(timed(ip, chain_body(i)))
    del ns
    want = 3 * (base + 2 * k - 1)
    got = ip.user_ns.get(f"s{base + 2 * k - 1}")
    mid = n // 2  # run again unchanged: kept (up to date), its upstream and downstream as they are
    rerun_s = [timed(ip, f"%%step c{mid}\n{chain_body(mid)}") for _ in range(k)]
    # edited and run: the last cell of the chain, then the middle one (its constant changed: the
    # names it reads and writes stay); the cells below an edited middle cell are then stale, not run
    last = base + k - 1
    edit_s = [
        timed(ip, f"%%step c{last}\n{chain_body(last).replace('* 3', f'* {4 + j % 2}')}") for j in range(k)
    ]
    edit_mid_s = [
        timed(ip, f"%%step c{mid}\n{chain_body(mid).replace('* 3', f'* {4 + j % 2}')}") for j in range(k)
    ]
    return {
        "n": n,
        "k": k,
        "step_cell_s": statistics.median(step_s),
        "plain_cell_s": statistics.median(plain_s),
        "plan_cell_s": statistics.median(plan_s),
        "rerun_cell_s": statistics.median(rerun_s),
        "edit_cell_s": statistics.median(edit_s),
        "edit_mid_cell_s": statistics.median(edit_mid_s),
        "step_runs": step_s,
        "plain_runs": plain_s,
        "plan_runs": plan_s,
        "rerun_runs": rerun_s,
        "ok": got == want,
    }


BIG = """%%step big
import numpy as np, pandas as pd
big = pd.DataFrame(np.random.default_rng(0).random(({rows}, 10)), columns=list("abcdefghij"))
"""


def disk_upstream(mb: int, k: int, store: str) -> dict:
    ip = shell()
    from nbsteps.ipython import session

    out = {"mb": mb, "k": k}
    rows = mb * 1_000_000 // 80
    for label in ("memory", "disk"):
        session.new_plan()
        run(ip, f"%steps store {store if label == 'disk' else 'memory'}")
        run(ip, BIG.format(rows=rows))
        runs = [
            timed(ip, f"%%step use_{label}{i}\nr{i} = float(big['a'].iloc[{i}]) + {i}\n") for i in range(k)
        ]
        out[label] = {"cell_s": statistics.median(runs), "runs": runs}
    return out


#: six steps, each a ~mb MB frame computed from the previous one
PIPELINE = [
    "%%step raw\nimport numpy as np, pandas as pd\nrng = np.random.default_rng(0)\n"
    "raw = pd.DataFrame(rng.standard_normal(({rows}, 6)), columns=list('abcdef'))\n",
    "%%step smooth\nsmooth = raw.rolling(200, min_periods=1).median()\n",
    "%%step ranked\nranked = smooth.rank(pct=True)\n",
    "%%step scaled\nscaled = (ranked - ranked.mean()) / ranked.std()\n",
    "%%step ewm\newm = scaled.ewm(span=50).mean()\n",
    "%%step final\nfinal = ewm.cumsum() + raw.abs().cummax()\n",
]


def notebook(mb: int, store: str, phase: str) -> dict:
    rows = mb * 1_000_000 // 48
    ip = shell()
    run(ip, f"%steps store {store}")
    t0 = time.perf_counter()
    printed = "".join(run(ip, cell.format(rows=rows)) for cell in PIPELINE)
    wall = time.perf_counter() - t0
    out = {
        "phase": phase,
        "mb": mb,
        "wall_s": wall,
        "restored": printed.count("restored from its checkpoint"),
        "completed": printed.count("completed in"),
    }
    if phase == "touch":
        t1 = time.perf_counter()
        run(ip, "check = float(final['a'].iloc[-1])")
        out["touch_s"] = time.perf_counter() - t1
    return out


PARAM_CELLS = [
    "%%step load\nimport numpy as np\nx = np.random.default_rng(p).random(3_000_000)\n",
    "%%step sq\ny = np.sort(x ** 2)\n",
    "%%step cum\nz = np.cumsum(y)\n",
    "%%step total\nt = float(z[-1])\n",
]


def params(store: str) -> dict:
    ip = shell()
    run(ip, f"%steps store {store}")
    out = {}
    for label, p in (("p1", 1), ("p2", 2), ("p1_again", 1)):
        run(ip, f"p = {p}")
        t0 = time.perf_counter()
        printed = "".join(run(ip, cell) for cell in PARAM_CELLS)
        dt = time.perf_counter() - t0
        run(ip, "t_seen = t")  # a cell using `t` (a restored value is read when a cell uses it)
        out[label] = {"s": dt, "completed": printed.count("completed in"), "t": ip.user_ns["t_seen"]}
    return out


def main(argv: list[str]) -> int:
    workload, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    import nbsteps

    fn = {"cells": cells, "disk_upstream": disk_upstream, "notebook": notebook, "params": params}[workload]
    res = fn(**args)
    res["nbsteps"] = os.path.dirname(os.path.dirname(nbsteps.__file__))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
