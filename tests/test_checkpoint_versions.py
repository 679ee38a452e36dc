"""Checkpoints kept per fingerprint (issue 14, issue 13 defect 11): switching a
parameter back restores, kernels running different versions of a notebook on
one store each find their own, and a size limit evicts the least recently used.
Real directories, real processes; no timings asserted."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import run_ok

import nbsteps
from nbsteps.errors import StoreError
from nbsteps.stores import Checkpoint, MemoryStore, open_store
from nbsteps.stores.disk import DiskStore

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "secret_key"
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(path))
    return path


def executed(summary) -> list[str]:
    return list(summary.completed_order)


def param_plan(store, p, calls):
    plan = nbsteps.Plan(store=store)
    plan.namespace["p"] = p

    plan.add_cell("load", "x = [p] * 3")
    plan.add_cell("square", "y = [v * v for v in x]")
    plan.add_cell("total", "t = sum(y)")
    plan.listeners.append(lambda e: calls.append(e.step) if e.kind == "started" else None)
    return plan


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_switching_a_parameter_back_restores(tmp_path, key_file, where):
    store = MemoryStore() if where == "memory" else DiskStore(tmp_path / "store")
    calls: list = []
    plan = param_plan(store, 1, calls)
    assert executed(plan.run()) == ["load", "square", "total"]
    plan.namespace["p"] = 2
    assert executed(plan.run()) == ["load", "square", "total"] and plan.namespace["t"] == 12
    plan.namespace["p"] = 1
    summary = plan.run()
    assert executed(summary) == [] and summary.cached == ["load", "square", "total"]
    assert plan.namespace["t"] == 3 and plan["total"].result is None
    assert store.fingerprints("load") and len(store.fingerprints("load")) == 2
    # the plan preview says so too, and "why stale" still compares with the latest
    plan.namespace["p"] = 2
    assert "load (cached)" in plan.plan().text
    plan.namespace["p"] = 3
    assert "parameter p changed" in plan.plan().text


def test_memory_store_keeps_a_few_versions_by_reference():
    store = MemoryStore(versions=2)
    big = np.zeros(10)
    for i in range(3):
        store.put(Checkpoint("s", f"fp{i}", {"a": big if i == 0 else i}))
    assert store.get("s", "fp0") is None  # only the last two
    assert (
        store.get("s", "fp1").outputs == {"a": 1} and store.peek("s").fingerprint == "fp1"
    )  # used: the latest
    store = MemoryStore(max_size=1000)
    arr = np.zeros(1000)  # 8000 bytes: older versions holding it are dropped, the latest never
    store.put(Checkpoint("s", "a", {"arr": arr}))
    assert store.get("s", "a").outputs["arr"] is arr  # the very object
    store.put(Checkpoint("s", "b", {"arr": np.zeros(1000)}))
    assert store.get("s", "a") is None and store.get("s", "b") is not None


TWO_KERNELS = textwrap.dedent(r"""
    import json, sys
    import nbsteps
    store, version = sys.argv[1], int(sys.argv[2])
    plan = nbsteps.Plan(store=store)
    plan.namespace["version"] = version
    # a notebook whose two versions differ in a parameter, sharing code
    plan.add_cell("a", "base = list(range(10))")
    plan.add_cell("b", "scaled = [v * version for v in base]")
    plan.add_cell("c", "total = sum(scaled)")
    plan.add_cell("d", "label = f'v{version}: {total}'")
    s = plan.run()
    print(json.dumps({"executed": list(s.completed_order), "label": plan.namespace["label"]}))
""")


def run_kernel(store, version, env):
    out = subprocess.run(
        [sys.executable, "-c", TWO_KERNELS, str(store), str(version)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_kernels_sharing_a_store_keep_their_histories_apart(tmp_path, key_file):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    store = tmp_path / "store"
    first = run_kernel(store, 1, env)  # kernel 1 runs version 1
    second = run_kernel(store, 2, env)  # kernel 2 runs version 2 of the notebook
    assert first["executed"] == ["a", "b", "c", "d"]
    assert second["executed"] == ["b", "c", "d"]  # a is the same step in both versions: restored
    # a third kernel running either version recomputes nothing
    assert run_kernel(store, 1, env) == {"executed": [], "label": "v1: 45"}
    assert run_kernel(store, 2, env) == {"executed": [], "label": "v2: 90"}
    assert run_kernel(store, 1, env)["executed"] == []


def test_size_limit_evicts_least_recently_used(tmp_path, key_file):
    store = DiskStore(tmp_path / "store", max_size=300_000)
    warnings: list = []
    store.warn = lambda step, message: warnings.append(message)
    for i in range(4):  # 80 KB each: the fourth passes the limit
        store.put(Checkpoint(f"s{i}", "fp", {"a": np.full(10_000, i)}))
    assert store.budget.evicted == 1 and store.get("s0", "fp") is None  # the oldest went
    assert store.get("s1", "fp") is not None  # used now: no longer the oldest
    store.put(Checkpoint("s4", "fp", {"a": np.full(10_000, 4)}))
    assert store.get("s2", "fp") is None and store.get("s1", "fp") is not None  # s2 was least recently used
    total = sum(
        f.stat().st_size for f in (tmp_path / "store").rglob("*") if f.is_file() and ".locks" not in str(f)
    )
    assert total <= 300_000
    # a checkpoint larger than the limit alone is kept (it is the one just written)
    store.put(Checkpoint("huge", "fp", {"a": np.zeros(50_000)}))
    assert store.get("huge", "fp") is not None
    assert not warnings
    assert not [
        p
        for p in (tmp_path / "store").iterdir()
        if p.is_dir() and p.name != ".locks" and not any(p.iterdir())
    ]


def test_eviction_counts_what_other_processes_wrote(tmp_path, key_file):
    other = DiskStore(tmp_path / "store", max_size=None)
    for i in range(3):
        other.put(Checkpoint(f"o{i}", "fp", {"a": np.full(10_000, i)}))  # 240 KB by "another kernel"
    mine = DiskStore(tmp_path / "store", max_size=200_000)
    mine.put(Checkpoint("m", "fp", {"a": np.ones(10_000)}))
    assert mine.get("m", "fp") is not None
    assert mine.budget.evicted >= 2 and mine.budget.usage <= 200_000


def test_max_size_option_and_errors(tmp_path, key_file, shell, capsys):
    plan = nbsteps.Plan(store=tmp_path / "a", max_size="2GB")
    assert plan.store.max_size == 2 * 10**9
    assert DiskStore(tmp_path / "b").max_size == 10 * 10**9  # the default
    assert open_store(tmp_path / "c", "none").max_size is None
    with pytest.raises(StoreError, match="invalid size"):
        open_store(tmp_path / "d", "lots")
    run_ok(shell, f"%steps store {tmp_path / 'e'} --max-size 500MB")
    assert "at most 500 MB" in capsys.readouterr().out
    assert nbsteps.current().store.max_size == 500 * 10**6
    r = shell.run_cell(f"%steps store {tmp_path / 'f'} --max-size 12 parsecs")
    assert not r.success


def test_size_limit_from_the_environment(tmp_path, key_file, monkeypatch):
    monkeypatch.setenv("NBSTEPS_STORE_MAX_SIZE", "1.5GiB")
    assert DiskStore(tmp_path / "s").max_size == int(1.5 * 2**30)
    monkeypatch.setenv("NBSTEPS_STORE_MAX_SIZE", "much")
    with pytest.raises(StoreError, match="NBSTEPS_STORE_MAX_SIZE"):
        open_store(tmp_path / "t")


def test_a_store_written_by_an_earlier_version_is_still_read(tmp_path, key_file):
    """Layout 1 kept one ``checkpoint.meta`` per step: it is read as one more checkpoint."""
    from nbsteps.stores.layout import META, meta_name

    store = DiskStore(tmp_path / "store")
    store.put(Checkpoint("s", "old", {"x": 1}))
    folder = tmp_path / "store" / "s"
    (folder / meta_name("old")).rename(folder / META)
    fresh = DiskStore(tmp_path / "store")
    assert fresh.get("s", "old").outputs == {"x": 1} and fresh.steps() == ["s"]
    fresh.put(Checkpoint("s", "old", {"x": 2}))  # rewritten: the old file goes
    assert not (folder / META).exists() and fresh.get("s", "old").outputs == {"x": 2}


def test_memory_store_counts_a_version_that_became_older_by_use():
    """Sizes are taken when a version becomes an older one (a put of a newer one),
    including the version that a get made the latest before it."""
    store = MemoryStore(versions=3, max_size=10_000)
    store.put(Checkpoint("s", "a", {"arr": np.zeros(1000)}))  # 8,000 bytes each
    store.put(Checkpoint("s", "b", {"arr": np.zeros(1000)}))  # a older: 8,000 <= 10,000, kept
    assert store.get("s", "a") is not None  # a is the latest now, b the older one
    store.put(Checkpoint("s", "c", {"arr": np.zeros(1000)}))  # b and a older: 16,000, b goes first
    assert store.fingerprints("s") == ["a", "c"]
