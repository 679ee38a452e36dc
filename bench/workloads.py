"""Step bodies and expected results shared by every benchmark peer.

Every peer (plain Python, dask, Hamilton, Prefect, ... and nbsteps itself)
wires *these* functions into its own DAG, so that the only thing that differs
between peers is the orchestration overhead.

Workloads (each is a callable ``run(n)`` on the peer side):

* ``chain``          n steps, step 0 returns 1, step i returns step(i-1) + 1  -> n
* ``wide``           n independent steps (step i returns i) + one sum step   -> sum(range(n))
* ``sleep_fanout``   n independent ``time.sleep(SLEEP_S)`` steps + a join     -> n
* ``diamond_pandas`` make an n-row DataFrame; groupby-mean and filter+sort
                     in parallel branches; a join step                         -> see expected()
"""

from __future__ import annotations

import time

SLEEP_S = 0.25
SEED = 0
N_KEYS = 1000

# ---------------------------------------------------------------- chain / wide


def first() -> int:
    return 1


def inc(x: int) -> int:
    return x + 1


def ident(i: int) -> int:
    return i


def total(*xs: int) -> int:
    return sum(xs)


# ---------------------------------------------------------------- sleep fanout


def sleeper(i: int) -> int:
    time.sleep(SLEEP_S)
    return 1


def count(*xs: int) -> int:
    return sum(xs)


# ---------------------------------------------------------------- pandas diamond


def make_df(n_rows: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)
    return pd.DataFrame(
        {
            "key": rng.integers(0, N_KEYS, n_rows),
            "a": rng.standard_normal(n_rows),
            "b": rng.standard_normal(n_rows),
        }
    )


def grouped(df):
    return df.groupby("key").mean()


def filtered(df):
    return df[df["a"] > 0].sort_values("b")


def joined(g, f) -> tuple:
    # rows of each branch + a float checksum that depends on both branches
    return (len(g), len(f), round(float(g["a"].sum()) + float(f["b"].iloc[-1]), 6))


# ---------------------------------------------------------------- expectations

_diamond_cache: dict = {}


def expected(workload: str, n: int):
    if workload == "chain":
        return n
    if workload == "wide":
        return sum(range(n))
    if workload == "sleep_fanout":
        return n
    if workload == "diamond_pandas":
        if n not in _diamond_cache:
            df = make_df(n)
            _diamond_cache[n] = joined(grouped(df), filtered(df))
        return _diamond_cache[n]
    raise KeyError(workload)
