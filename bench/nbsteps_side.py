"""The nbsteps side of the benchmark: the same workloads as ``bench/peers.py``
through ``nbsteps.Plan``, plus the workloads only nbsteps has (notebook cells,
re-runs, checkpoints, import time, graph rendering).

Step bodies are the shared functions of ``bench/workloads.py``. nbsteps wires
function steps by parameter name (like Hamilton), so a chain or a fan of N
steps needs N distinct functions: their module is generated as source text
and exec'd once per (workload, N) -- it stands for the user's code. What is
timed is what a user pays: registering the steps (``plan.step``) and running
them (``plan.run()``, default workers), or the run alone ("run only").
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from typing import Any, Callable

from . import workloads as W

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ============================================================ generated user code


def _source(workload: str, n: int) -> str:
    L: list[str] = []
    if workload == "chain":
        L.append("def step_0():\n    return _W.first()\n")
        L += [f"def step_{i}(step_{i - 1}):\n    return _W.inc(step_{i - 1})\n" for i in range(1, n)]
        L.append(f"STEPS = [{', '.join(f'step_{i}' for i in range(n))}]\nRESULT = 'step_{n - 1}'\n")
    elif workload in ("wide", "sleep_fanout"):
        body, join = ("ident", "total") if workload == "wide" else ("sleeper", "count")
        L += [f"def step_{i}():\n    return _W.{body}({i})\n" for i in range(n)]
        args = ", ".join(f"step_{i}" for i in range(n))
        L.append(f"def result({args}):\n    return _W.{join}({args})\n")
        L.append(f"STEPS = [{args}, result]\nRESULT = 'result'\n")
    elif workload == "diamond_pandas":
        L.append(f"def df(n_rows={n}):\n    return _W.make_df(n_rows)\n")
        L.append("def grouped(df):\n    return _W.grouped(df)\n")
        L.append("def filtered(df):\n    return _W.filtered(df)\n")
        L.append("def result(grouped, filtered):\n    return _W.joined(grouped, filtered)\n")
        L.append("STEPS = [df, grouped, filtered, result]\nRESULT = 'result'\n")
    else:
        raise KeyError(workload)
    return "\n".join(L)


@functools.lru_cache(maxsize=None)
def user_module(workload: str, n: int) -> types.ModuleType:
    name = f"nbsteps_bench_user_{workload}_{n}"
    mod = types.ModuleType(name)
    mod.__dict__["_W"] = W
    sys.modules[name] = mod
    exec(compile(_source(workload, n), f"<{name}>", "exec"), mod.__dict__)
    return mod


def build_plan(workload: str, n: int, **plan_kw):
    import nbsteps

    mod = user_module(workload, n)
    plan = nbsteps.Plan(**plan_kw)
    for fn in mod.STEPS:
        plan.step(fn.__name__)(fn)
    return plan


def run_plan(plan, workload: str, n: int, **run_kw):
    summary = plan.run(**run_kw)
    if not summary.ok:
        raise RuntimeError(summary.text)
    return plan[user_module(workload, n).RESULT].result


def build_and_run(workload: str, n: int):
    return run_plan(build_plan(workload, n), workload, n)


# ============================================================ timing helpers


def measure_setup(
    setup: Callable[[], Any],
    fn: Callable[[Any], Any],
    repeat: int = 5,
    warmup: int = 1,
    budget_s: float | None = None,
) -> dict:
    """Like ``timing.measure`` but ``setup()`` (untimed) makes the argument of
    every timed ``fn(arg)`` call."""
    result = None
    for _ in range(warmup):
        arg = setup()
        gc.collect()
        result = fn(arg)
    runs: list[float] = []
    for _ in range(max(1, repeat)):
        arg = setup()
        gc.collect()
        t0 = time.perf_counter()
        result = fn(arg)
        runs.append(time.perf_counter() - t0)
        if budget_s is not None and sum(runs) >= budget_s:
            break
    return {"median_s": statistics.median(runs), "min_s": min(runs), "runs": runs, "result": result}


def _cell(m: dict, **extra) -> dict:
    out = {k: m[k] for k in ("median_s", "min_s", "runs") if k in m}
    out.update(extra)
    return out


# ============================================================ DAG workloads


def dag_cell(workload: str, n: int, repeat: int, budget_s: float | None, run_only: bool = False) -> dict:
    """One (workload, n) through nbsteps: build + run (default) or run only."""
    from .timing import measure

    t0 = time.perf_counter()
    if run_only:
        m = measure_setup(
            lambda: build_plan(workload, n),
            lambda p: run_plan(p, workload, n),
            repeat=repeat,
            warmup=1,
            budget_s=budget_s,
        )
    else:
        m = measure(lambda: build_and_run(workload, n), repeat=repeat, warmup=1, budget_s=budget_s)
    cell = _cell(m, wall_s=time.perf_counter() - t0)
    want = W.expected(workload, n)
    if m["result"] != want:
        cell["error"] = f"WRONG result {m['result']!r} != {want!r}"
    return cell


def diamond(n: int, repeat: int) -> dict:
    """diamond_pandas through nbsteps (build + run), with the plain sequential
    floor timed in alternation with it (same load for both): the ratio."""
    from .peers import PEERS

    plain_fn = PEERS["plain"]["diamond_pandas"]
    want = W.expected("diamond_pandas", n)
    build_and_run("diamond_pandas", n)
    plain_fn(n)
    nb_runs, plain_runs = [], []
    t0 = time.perf_counter()
    for _ in range(max(1, repeat)):
        for fn, runs in (
            (lambda: build_and_run("diamond_pandas", n), nb_runs),
            (lambda: plain_fn(n), plain_runs),
        ):
            gc.collect()
            t = time.perf_counter()
            got = fn()
            runs.append(time.perf_counter() - t)
            if got != want:
                return {"error": f"WRONG result {got!r} != {want!r}"}
    return {
        "median_s": statistics.median(nb_runs),
        "min_s": min(nb_runs),
        "runs": nb_runs,
        "plain_median_s": statistics.median(plain_runs),
        "plain_runs": plain_runs,
        "ratio": statistics.median(nb_runs) / statistics.median(plain_runs),
        "wall_s": time.perf_counter() - t0,
    }


def chain_long(n: int, repeat: int) -> dict:
    """chain_10000: must run at the default recursion limit."""
    limit = sys.getrecursionlimit()
    try:
        cell = dag_cell("chain", n, repeat, None, run_only=True)
    except RecursionError:
        return {"error": "RecursionError"}
    cell["recursionlimit"] = limit
    return cell


# ============================================================ cells_200 (IPython)


def _shell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    if "nbsteps" not in shell.extension_manager.loaded:
        shell.run_line_magic("load_ext", "nbsteps")
    return shell


def cell_bodies(n: int) -> list[str]:
    """A chain of small cells: each reads the previous cell's variable."""
    out = ["v0 = 0\nw0 = [v0] * 3\ns0 = sum(w0)\n"]
    for i in range(1, n):
        out.append(f"v{i} = v{i - 1} + 1\nw{i} = [v{i}] * 3\ns{i} = sum(w{i})\n")
    return out


def cells(n: int, repeat: int) -> dict:
    """``n`` ``%%step`` cells in a real InteractiveShell (plan mode: each cell
    registers), then ``%steps run``; against the same bodies run as plain
    cells and as bare ``exec(compile(...))``. Also the interactive mode, where
    every ``%%step`` cell runs at once (with its upstream checks)."""
    from nbsteps.ipython import session

    shell = _shell()
    bodies = cell_bodies(n)
    step_cells = [f"%%step c{i}\n{b}" for i, b in enumerate(bodies)]
    last = f"s{n - 1}"
    want = 3 * (n - 1)

    def run_cells(srcs):
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink):
            for src in srcs:
                r = shell.run_cell(src, store_history=False, silent=False)
                if not r.success:
                    raise RuntimeError(f"cell failed: {r.error_before_exec or r.error_in_exec!r}\n{src}")
        return sink

    def clear():
        for i in range(n):
            for v in ("v", "w", "s"):
                shell.user_ns.pop(f"{v}{i}", None)
        session.new_plan()

    def nb_planned(_):
        session.set_mode("plan")
        try:
            run_cells(step_cells + ["%steps run"])
        finally:
            session.set_mode("interactive")
        return shell.user_ns.get(last)

    def nb_interactive(_):
        run_cells(step_cells)
        return shell.user_ns.get(last)

    def plain_cells(_):
        run_cells(bodies)
        return shell.user_ns.get(last)

    def bare(_):
        ns: dict = {}
        for i, b in enumerate(bodies):
            exec(compile(b, f"<cell {i}>", "exec"), ns)
        return ns[last]

    out: dict[str, Any] = {"n": n}
    for key, fn in (
        ("planned", nb_planned),
        ("interactive", nb_interactive),
        ("plain_cells", plain_cells),
        ("bare_exec", bare),
    ):
        m = measure_setup(clear, fn, repeat=repeat, warmup=1)
        out[key] = _cell(m)
        if m["result"] != want:
            out[key]["error"] = f"WRONG result {m['result']!r} != {want!r}"
    clear()
    for key in ("planned", "interactive"):
        t = out[key]["median_s"]
        out[key]["us_per_step_beyond_exec"] = (t - out["bare_exec"]["median_s"]) / n * 1e6
        out[key]["us_per_step_beyond_plain_cells"] = (t - out["plain_cells"]["median_s"]) / n * 1e6
    return out


# ============================================================ rerun_nochange


def rerun_nochange(n: int, repeat: int) -> dict:
    """Second ``run()`` of a completed n-step chain: restores, executes nothing."""
    plan = build_plan("chain", n)
    run_plan(plan, "chain", n)
    executed: list[int] = []

    def again():
        s = plan.run()
        executed.append(len(s.completed_order))
        return plan[user_module("chain", n).RESULT].result

    from .timing import measure

    m = measure(again, repeat=repeat, warmup=1)
    cell = _cell(m, n=n, executed=max(executed))
    if m["result"] != n:
        cell["error"] = f"WRONG result {m['result']!r}"
    elif max(executed):
        cell["error"] = f"re-run executed {max(executed)} steps"
    return cell


# ============================================================ subprocess helpers


def _child_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env.update(extra)
    return env


def _run_child(args: list[str], env: dict | None = None, timeout: float = 600) -> str:
    p = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        env=env or _child_env(),
        timeout=timeout,
        cwd=ROOT,
    )
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)[:80]} failed ({p.returncode}): {p.stderr.strip()[-500:]}")
    return p.stdout


def _wall(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, *args],
        check=True,
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - t0


# ============================================================ import


HEAVY = (
    "pandas",
    "numpy",
    "pyarrow",
    "ipywidgets",
    "graphviz",
    "dask",
    "distributed",
    "IPython",
    "cloudpickle",
)

_LOAD_EXT = r"""
import sys, time, json
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
before = set(sys.modules)
t0 = time.perf_counter()
ip.run_line_magic("load_ext", "nbsteps")
dt = time.perf_counter() - t0
heavy = [m for m in %r if m in sys.modules and m not in before]
print(json.dumps({"s": dt, "heavy": heavy}))
""" % (HEAVY,)


def import_times(repeat: int) -> dict:
    """``python -c "import nbsteps"`` minus ``python -c pass`` (subprocess
    walls, alternated, medians), and ``%load_ext nbsteps`` in a fresh
    InteractiveShell (timed inside the child). Bytecode caches are warm, as
    after an installation: PYTHONDONTWRITEBYTECODE is dropped from the
    children's environment and one untimed import writes the .pyc files."""
    env = _child_env()
    dont_write = env.pop("PYTHONDONTWRITEBYTECODE", None)
    _wall(["-c", "import nbsteps, nbsteps.ipython.magics, IPython"], env)  # writes/refreshes __pycache__
    bare, imp = [], []
    for _ in range(repeat):
        bare.append(_wall(["-c", "pass"], env))
        imp.append(_wall(["-c", "import nbsteps"], env))
    heavy = json.loads(
        _run_child(
            [
                "-c",
                f"import sys, json, nbsteps; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))",
            ],
            env,
        )
    )
    loads = [json.loads(_run_child(["-c", _LOAD_EXT], env)) for _ in range(repeat)]
    return {
        "import_s": statistics.median(imp) - statistics.median(bare),
        "python_s": statistics.median(bare),
        "import_runs": imp,
        "python_runs": bare,
        "import_heavy_modules": heavy,
        "load_ext_s": statistics.median(x["s"] for x in loads),
        "load_ext_runs": [x["s"] for x in loads],
        "load_ext_heavy_modules": loads[0]["heavy"],
        "env_had_PYTHONDONTWRITEBYTECODE": dont_write is not None,
    }


# ============================================================ graph_200


def graph_plan(n: int, seed: int = 7):
    """A deterministic random DAG of n cell steps (1-3 upstream among the
    previous 15), run once so every node has a status and a duration."""
    import random

    import nbsteps

    rng = random.Random(seed)
    plan = nbsteps.Plan()
    for i in range(n):
        ups = rng.sample(range(max(0, i - 15), i), k=min(i, rng.choice([0, 1, 1, 2, 2, 3]))) if i else []
        plan.add_cell(f"s{i:03d}", f"x{i} = " + (" + ".join(f"x{u}" for u in ups) if ups else "1") + "\n")
    plan.run()
    return plan


def graph(n: int, repeat: int) -> dict:
    """Build the plan's graph (``plan.graph()``: graphviz Digraph) and render
    it to SVG with ``dot``."""
    plan = graph_plan(n)
    from .timing import measure

    build = measure(plan.graph, repeat=repeat, warmup=1)
    out: dict[str, Any] = {"n": n, "build": _cell(build)}
    if shutil.which("dot") is None:
        out["render"] = {"skipped": "dot not installed"}
        return out
    g = build["result"]
    render = measure(lambda: g.pipe(format="svg"), repeat=repeat, warmup=1)
    out["render"] = _cell(render, svg_bytes=len(render["result"]))
    out["median_s"] = build["median_s"] + render["median_s"]
    return out


# ============================================================ checkpoint (subprocess)


def checkpoint(nbytes: int, repeat: int) -> dict:
    """A step returning a ~``nbytes`` DataFrame (float64, one 2-D block).
    Every measurement runs in its own fresh interpreter so peak RSS is clean:

    - ``plain``: call the function (peak RSS growth = the output itself);
    - ``memory``: run it as a step of ``Plan()`` (MemoryStore);
    - ``disk``: ``numpy.save`` (+fsync) and ``numpy.load`` of the same bytes,
      ``DiskStore.put`` / ``get`` of the checkpoint, and restore through
      ``Plan(store=dir).run()`` in a new plan vs recomputing.
    """
    tmp = tempfile.mkdtemp(prefix="nbsteps-bench-ckpt-")
    try:
        env = _child_env(NBSTEPS_KEY_FILE=os.path.join(tmp, "key"), NBSTEPS_STORE="")
        env.pop("NBSTEPS_STORE")
        res: dict[str, Any] = {"nbytes": nbytes}
        for mode in ("plain", "memory"):
            runs = [
                json.loads(_run_child(["-m", "bench.checkpoint_child", mode, str(nbytes), tmp], env))
                for _ in range(max(1, repeat))
            ]
            res[mode] = {
                "rss_growth": statistics.median(r["rss_growth"] for r in runs),
                "median_s": statistics.median(r["s"] for r in runs),
                "runs": runs,
            }
        extra = res["memory"]["rss_growth"] - res["plain"]["rss_growth"]
        res["memory"]["extra_rss"] = extra
        res["memory"]["extra_rss_pct"] = 100.0 * extra / nbytes
        res["disk"] = json.loads(
            _run_child(["-m", "bench.checkpoint_child", "disk", str(nbytes), tmp, str(repeat)], env)
        )
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
