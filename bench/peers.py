"""Peer orchestrators for the nbsteps benchmark.

``PEERS[peer][workload]`` is a callable ``run(n)`` that *builds and runs* the
workload's DAG with that peer and returns the final value (compare it with
``workloads.expected(workload, n)``).  Workloads: ``chain``, ``wide``,
``sleep_fanout``, ``diamond_pandas`` (see ``bench/workloads.py``; all peers use
the same step functions).

``PEER_INFO[peer]`` holds the optional pieces around it: which distributions
must be installed (``requires``), ``setup``/``teardown`` hooks for peers with a
long-lived runtime (dask.distributed cluster, Prefect's ephemeral server), and
``max_n`` caps (Prefect runs chain/wide at 100 only).

Every peer library is imported lazily, inside the callables, so this module
imports with only the standard library; use ``available(peer)`` to learn
whether a peer is installed (and its version) before calling it.

Threaded peers all get ``WORKERS`` threads (env ``NBSTEPS_BENCH_WORKERS``,
default 8) so that ``sleep_fanout_8`` can reach ~1x; library defaults differ
(dask threads: cpu_count, Hamilton FutureAdapter: ThreadPoolExecutor default,
Prefect: unbounded).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
import time
import types
from importlib import metadata
from typing import Any, Callable

try:  # works both as ``bench.peers`` and with bench/ on sys.path
    from . import workloads as W
except ImportError:  # pragma: no cover
    import workloads as W  # type: ignore[no-redef]

WORKERS = int(os.environ.get("NBSTEPS_BENCH_WORKERS", "8"))

# ====================================================================== plain


def _plain_chain(n: int) -> int:
    x = W.first()
    for _ in range(n - 1):
        x = W.inc(x)
    return x


def _plain_wide(n: int) -> int:
    return W.total(*[W.ident(i) for i in range(n)])


def _plain_sleep(n: int) -> int:
    return W.count(*[W.sleeper(i) for i in range(n)])


def _plain_diamond(n: int):
    df = W.make_df(n)
    return W.joined(W.grouped(df), W.filtered(df))


# ====================================================================== dask


def _dask_chain_graph(n: int):
    from dask import delayed

    x = delayed(W.first)()
    for _ in range(n - 1):
        x = delayed(W.inc)(x)
    return x


def _dask_wide_graph(n: int):
    from dask import delayed

    return delayed(W.total)(*[delayed(W.ident)(i) for i in range(n)])


def _dask_sleep_graph(n: int):
    from dask import delayed

    return delayed(W.count)(*[delayed(W.sleeper)(i) for i in range(n)])


def _dask_diamond_graph(n: int):
    from dask import delayed

    df = delayed(W.make_df)(n)
    return delayed(W.joined)(delayed(W.grouped)(df), delayed(W.filtered)(df))


_DASK_GRAPHS = {
    "chain": _dask_chain_graph,
    "wide": _dask_wide_graph,
    "sleep_fanout": _dask_sleep_graph,
    "diamond_pandas": _dask_diamond_graph,
}


def _dask_threads(workload: str) -> Callable[[int], Any]:
    def run(n: int):
        import dask

        obj = _DASK_GRAPHS[workload](n)
        return dask.compute(obj, scheduler="threads", num_workers=WORKERS)[0]

    run.__name__ = f"dask_threads_{workload}"
    return run


_dist_state: dict[str, Any] = {}


def _dist_setup() -> dict:
    from dask.distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(
        processes=False,
        n_workers=1,
        threads_per_worker=WORKERS,
        dashboard_address=None,
    )
    client = Client(cluster)
    _dist_state.update(cluster=cluster, client=client)
    return {"startup_s": time.perf_counter() - t0}


def _dist_teardown() -> None:
    client = _dist_state.pop("client", None)
    cluster = _dist_state.pop("cluster", None)
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


def _dask_distributed(workload: str) -> Callable[[int], Any]:
    def run(n: int):
        if "client" not in _dist_state:
            _dist_setup()
        obj = _DASK_GRAPHS[workload](n)
        return _dist_state["client"].compute(obj).result()

    run.__name__ = f"dask_distributed_{workload}"
    return run


# ====================================================================== hamilton
# Hamilton wires nodes by function *parameter names*, so chain/wide of size n
# need n distinct functions: generate the module source and exec it.  The
# generated module is cached per (workload, n) -- it stands for the user's
# code, not for orchestration -- while Driver building (graph construction
# from the module) is timed, like building the delayed graph for dask.


def _hamilton_source(workload: str, n: int) -> str:
    L = ["from typing import Any as _Any", ""]
    if workload == "chain":
        L.append("def step_0() -> int:\n    return _W.first()\n")
        for i in range(1, n):
            L.append(f"def step_{i}(step_{i - 1}: int) -> int:\n    return _W.inc(step_{i - 1})\n")
        L.append(f"def result(step_{n - 1}: int) -> int:\n    return step_{n - 1}\n")
    elif workload in ("wide", "sleep_fanout"):
        body, join = ("ident", "total") if workload == "wide" else ("sleeper", "count")
        for i in range(n):
            L.append(f"def step_{i}() -> int:\n    return _W.{body}({i})\n")
        params = ", ".join(f"step_{i}: int" for i in range(n))
        args = ", ".join(f"step_{i}" for i in range(n))
        L.append(f"def result({params}) -> int:\n    return _W.{join}({args})\n")
    elif workload == "diamond_pandas":
        L.append("def df(n_rows: int) -> _Any:\n    return _W.make_df(n_rows)\n")
        L.append("def grouped(df: _Any) -> _Any:\n    return _W.grouped(df)\n")
        L.append("def filtered(df: _Any) -> _Any:\n    return _W.filtered(df)\n")
        L.append(
            "def result(grouped: _Any, filtered: _Any) -> tuple:\n    return _W.joined(grouped, filtered)\n"
        )
    else:
        raise KeyError(workload)
    return "\n".join(L)


@functools.lru_cache(maxsize=None)
def _hamilton_module(workload: str, n: int) -> types.ModuleType:
    name = f"nbsteps_bench_hamilton_{workload}_{n}"
    mod = types.ModuleType(name)
    # Hamilton keeps a function only if inspect.getmodule(fn) is the module,
    # which looks the function's __module__ up in sys.modules.
    sys.modules[name] = mod
    mod.__dict__["_W"] = W
    exec(compile(_hamilton_source(workload, n), f"<{name}>", "exec"), mod.__dict__)
    return mod


def _hamilton(workload: str, threaded: bool, dynamic: bool = False) -> Callable[[int], Any]:
    def run(n: int):
        from hamilton import driver

        mod = _hamilton_module(workload, 0 if workload == "diamond_pandas" else n)
        inputs = {"n_rows": n} if workload == "diamond_pandas" else {}
        builder = driver.Builder().with_modules(mod)
        adapter = None
        if dynamic:
            # task-based ("V2") executor: each node outside Parallelizable/Collect
            # blocks is its own task, run by the *local* executor
            from hamilton.execution import executors

            builder = builder.enable_dynamic_execution(allow_experimental_mode=True)
            builder = builder.with_local_executor(executors.MultiThreadingExecutor(max_tasks=WORKERS))
        elif threaded:
            from hamilton.plugins.h_threadpool import FutureAdapter

            adapter = FutureAdapter(max_workers=WORKERS)
            builder = builder.with_adapters(adapter)
        try:
            dr = builder.build()
            return dr.execute(["result"], inputs=inputs)["result"]
        finally:
            if adapter is not None:
                adapter.executor.shutdown(wait=True)

    run.__name__ = f"hamilton_{'dynamic' if dynamic else 'threads' if threaded else 'sync'}_{workload}"
    return run


# ====================================================================== prefect

_prefect_state: dict[str, Any] = {}


def _prefect_env() -> None:
    """Must run before ``import prefect`` (settings are read at import)."""
    if "home" in _prefect_state:
        return
    home = tempfile.mkdtemp(prefix="nbsteps-bench-prefect-")
    _prefect_state["home"] = home
    # registered before Prefect registers its server shutdown, so (atexit is
    # LIFO) the directory is removed after the server subprocess has stopped
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ["PREFECT_HOME"] = home
    for var in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILES_PATH"):
        os.environ.pop(var, None)
    os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "true"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    # keep the console quiet (INFO logs one line per task run); API logging untouched
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _prefect_flows() -> dict:
    if "flows" in _prefect_state:
        return _prefect_state["flows"]
    _prefect_env()
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE
    from prefect.task_runners import ThreadPoolTaskRunner

    topts = dict(cache_policy=NO_CACHE, persist_result=False)
    t_first = task(W.first, **topts)
    t_inc = task(W.inc, **topts)
    t_ident = task(W.ident, **topts)
    t_sleeper = task(W.sleeper, **topts)
    t_make_df = task(W.make_df, **topts)
    t_grouped = task(W.grouped, **topts)
    t_filtered = task(W.filtered, **topts)
    t_joined = task(W.joined, **topts)

    @task(**topts)
    def t_total(xs: list) -> int:
        return W.total(*xs)

    fopts = dict(
        task_runner=ThreadPoolTaskRunner(max_workers=WORKERS),
        persist_result=False,
        validate_parameters=False,
    )

    @flow(name="bench-chain", **fopts)
    def chain(n: int):
        x = t_first.submit()
        for _ in range(n - 1):
            x = t_inc.submit(x)
        return x.result()

    @flow(name="bench-wide", **fopts)
    def wide(n: int):
        return t_total.submit([t_ident.submit(i) for i in range(n)]).result()

    @flow(name="bench-sleep-fanout", **fopts)
    def sleep_fanout(n: int):
        return t_total.submit([t_sleeper.submit(i) for i in range(n)]).result()

    @flow(name="bench-diamond-pandas", **fopts)
    def diamond_pandas(n: int):
        df = t_make_df.submit(n)
        return t_joined.submit(t_grouped.submit(df), t_filtered.submit(df)).result()

    @flow(name="bench-noop")
    def noop():
        return 0

    flows = dict(chain=chain, wide=wide, sleep_fanout=sleep_fanout, diamond_pandas=diamond_pandas, noop=noop)
    _prefect_state["flows"] = flows
    return flows


def _prefect_setup() -> dict:
    """Import Prefect and run a no-op flow: starts the ephemeral API server
    (a uvicorn subprocess over sqlite in $PREFECT_HOME)."""
    t0 = time.perf_counter()
    flows = _prefect_flows()
    t1 = time.perf_counter()
    flows["noop"]()
    t2 = time.perf_counter()
    return {"import_s": t1 - t0, "startup_s": t2 - t1, "prefect_home": _prefect_state["home"]}


def _prefect(workload: str) -> Callable[[int], Any]:
    def run(n: int):
        return _prefect_flows()[workload](n)

    run.__name__ = f"prefect_{workload}"
    return run


# ====================================================================== registry

WORKLOADS = ("chain", "wide", "sleep_fanout", "diamond_pandas")

PEERS: dict[str, dict[str, Callable[[int], Any]]] = {
    "plain": {
        "chain": _plain_chain,
        "wide": _plain_wide,
        "sleep_fanout": _plain_sleep,
        "diamond_pandas": _plain_diamond,
    },
    "dask-threads": {w: _dask_threads(w) for w in WORKLOADS},
    "dask-distributed": {w: _dask_distributed(w) for w in WORKLOADS},
    "hamilton": {w: _hamilton(w, threaded=False) for w in WORKLOADS},
    "hamilton-threads": {w: _hamilton(w, threaded=True) for w in WORKLOADS},
    "hamilton-dynamic": {w: _hamilton(w, threaded=True, dynamic=True) for w in WORKLOADS},
    "prefect": {w: _prefect(w) for w in WORKLOADS},
}

PEER_INFO: dict[str, dict[str, Any]] = {
    "plain": {
        "requires": [],
        "desc": "sequential Python calls (the floor)",
    },
    "dask-threads": {
        "requires": ["dask"],
        "desc": f"dask.delayed graph, dask.compute(scheduler='threads', num_workers={WORKERS})",
    },
    "dask-distributed": {
        "requires": ["dask", "distributed"],
        "desc": f"dask.delayed graph on LocalCluster(processes=False, n_workers=1, "
        f"threads_per_worker={WORKERS}) + Client; cluster started once in setup",
        "setup": _dist_setup,
        "teardown": _dist_teardown,
    },
    "hamilton": {
        "requires": ["apache-hamilton"],
        "desc": "generated module -> hamilton.driver.Builder().with_modules(m).build().execute()",
    },
    "hamilton-threads": {
        "requires": ["apache-hamilton"],
        "desc": f"as hamilton + .with_adapters(h_threadpool.FutureAdapter(max_workers={WORKERS}))",
    },
    "hamilton-dynamic": {
        "requires": ["apache-hamilton"],
        "desc": "as hamilton + .enable_dynamic_execution(allow_experimental_mode=True)"
        f".with_local_executor(executors.MultiThreadingExecutor(max_tasks={WORKERS}))",
    },
    "prefect": {
        "requires": ["prefect"],
        "desc": f"@flow(task_runner=ThreadPoolTaskRunner(max_workers={WORKERS})) + @task.submit, "
        "NO_CACHE, persist_result=False, ephemeral local server (sqlite)",
        "setup": _prefect_setup,
        "max_n": {"chain": 100, "wide": 100},
    },
}


def available(peer: str) -> tuple[bool, str]:
    """(installed?, "dist==version ..." or "not installed: dist")."""
    versions = []
    for dist in PEER_INFO[peer]["requires"]:
        try:
            versions.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            return False, f"not installed: {dist}"
    return True, " ".join(versions) or "stdlib"
