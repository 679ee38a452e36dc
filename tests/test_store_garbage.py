"""Dead checkpoints (issue 21): a checkpoint computed from an upstream version
that no checkpoint of that step in the store holds any more (and this process
does not hold) can never be used again, and is collected: right after a put
that replaced a version, and by ``%steps store`` / ``store.collect_garbage()``.
Real IPython shells, real processes and real files."""

from __future__ import annotations

import textwrap
import time

import numpy as np
import pytest
from conftest import holding_process, run_ok

import nbsteps
from nbsteps.ipython import session
from nbsteps.stores.disk import DiskStore
from nbsteps.stores.garbage import Garbage

pytestmark = pytest.mark.usefixtures("nothing_outside_the_store_changes")

CHAIN = [
    "%%step a\nimport numpy as np\nx = np.arange(20_000.0)",
    "%%step b\ny = x + 1",
    "%%step c\nz = y * 2",
    "%%step d\ntotal = float(z.sum())",
]


def metas(store):
    return sorted(store.glob("*/*.meta"))


def files(store):
    return [
        p for p in store.rglob("*") if p.is_file() and p.parts[len(store.parts)] not in (".locks", ".pins")
    ]


def durable():
    """Wait for the kernel's pending commits: a cell's checkpoints are made durable
    after it (stores.committer), and what a commit replaced is collected then."""
    session.current().store.flush()


def new_kernel(shell):
    """What a restarted kernel has: a fresh plan and namespace (the same store)."""
    session._plan = None
    shell.reset(new_session=False)
    session.bind(shell)


def test_forcing_an_upstream_step_leaves_no_dead_checkpoints(shell, tmp_path, tmp_key, capsys):
    store = tmp_path / "s"
    run_ok(shell, f"%steps store {store}")
    for cell in CHAIN:
        run_ok(shell, cell)
    durable()
    assert len(metas(store)) == 4
    first = len(files(store))
    for n in range(8):
        run_ok(shell, "%steps run --force a")
        assert session.current().last_summary.completed_order == ["a", "b", "c", "d"]
        durable()
        # one checkpoint per step, not 4 + 3 * n: the old ones were computed from a version that is gone
        assert len(metas(store)) == 4, (n, metas(store))
    assert len(files(store)) == first  # and their value files
    held = {k: shell.user_ns[k].copy() for k in "xyz"} | {"total": shell.user_ns["total"]}
    capsys.readouterr()
    run_ok(shell, "%steps store")
    assert (
        "collected 24 dead checkpoints (" in capsys.readouterr().out
    )  # b, c, d of each of the 8 forced runs
    run_ok(shell, "%steps store")
    assert "no dead checkpoints" in capsys.readouterr().out
    # a new kernel restores everything this one holds, computing nothing
    new_kernel(shell)
    run_ok(shell, f"%steps store {store}")
    run_ok(shell, "%steps mode plan")
    for cell in CHAIN:
        run_ok(shell, cell)
    run_ok(shell, "%steps run")
    summary = session.current().last_summary
    assert summary.completed_order == [] and sorted(summary.cached) == ["a", "b", "c", "d"]
    run_ok(shell, "%steps load")
    for k, v in held.items():
        assert np.array_equal(shell.user_ns[k], v)


def test_steps_store_collects_and_says_how_much(shell, tmp_path, tmp_key, capsys):
    store = tmp_path / "s"
    run_ok(shell, f"%steps store {store}")
    for cell in CHAIN:
        run_ok(shell, cell)
    durable()
    sizes = sum(p.stat().st_size for p in files(store) if p.parent.name in "bcd")
    for p in (store / "a").iterdir():  # the upstream version is gone (removed by hand)
        p.unlink()
    new_kernel(shell)  # this kernel held it
    capsys.readouterr()
    run_ok(shell, f"%steps store {store}")
    out = capsys.readouterr().out
    assert "collected 3 dead checkpoints (" in out and "upstream versions no longer in the store" in out
    assert metas(store) == [] and [p for p in files(store)] == []
    from nbsteps.formatting import fmt_bytes

    assert f"({fmt_bytes(sizes)})" in out


def test_a_version_held_in_memory_only_keeps_its_downstream(tmp_path, tmp_key):
    """A step whose checkpoint could not be written (kept in memory) is live
    here: the checkpoints computed from it stay, for this process."""
    store = tmp_path / "s"
    plan = nbsteps.Plan(store=store)
    plan.add_cell("lock", "import threading\nlk = threading.Lock()\nn = 3")
    plan.add_cell("use", "m = n * 2")
    with_warnings = plan.run()
    assert with_warnings.ok and [p.parent.name for p in metas(store)] == ["use"]
    assert plan.store.collect_garbage() == (0, 0) and len(metas(store)) == 1
    # another process does not hold it: for it, "use" can never be restored
    other = DiskStore(store)
    assert other.collect_garbage().checkpoints == 1 and metas(store) == []


def test_legacy_and_explicit_after_edges(tmp_path, tmp_key):
    store = tmp_path / "s"

    def plan_of():
        plan = nbsteps.Plan(store=store)
        plan.add_cell("a", "x = 1")
        plan.add_cell("b", "y = x + 1")
        plan.add_cell("c", "w = 5", after=["a"])  # an --after edge: a's version counts
        return plan

    plan = plan_of()
    plan.run()
    # a checkpoint written by an earlier nbsteps (checkpoint.meta) holds its version too
    (meta,) = (store / "a").glob("*.meta")
    meta.rename(store / "a" / "checkpoint.meta")
    assert DiskStore(store).collect_garbage() == (0, 0)
    assert nbsteps_restores_all(plan_of())
    plan = plan_of()
    plan.run(force=["a"])
    assert sorted(p.parent.name for p in metas(store)) == ["a", "b", "c"]
    # a legacy downstream checkpoint whose upstream version is gone is collected like any other
    (meta,) = (store / "b").glob("*.meta")
    meta.rename(store / "b" / "checkpoint.meta")
    plan.run(force=["a"])
    assert sorted(p.parent.name for p in metas(store)) == ["a", "b", "c"]
    assert not (store / "b" / "checkpoint.meta").exists()


def nbsteps_restores_all(plan) -> bool:
    summary = plan.run()
    return summary.ok and summary.completed_order == [] and len(summary.cached) == len(plan.steps)


HOLDER = textwrap.dedent("""
    import sys
    import nbsteps
    plan = nbsteps.Plan(store=sys.argv[1])
    plan.add_cell("a", "import numpy as np\\nx = np.arange(150_000.0)")
    plan.add_cell("b", "y = x + 1")
    plan.add_cell("c", "z = float(y.sum())")
    plan.lazy_publish = True  # as in a notebook: values wait until something reads them
    assert plan.run().cached == ["a", "b", "c"]
    print("restored", flush=True)
    sys.stdin.readline()
    # what it reads (its a, replaced by the writer's forced run, is not read: reading it would
    # execute a again, as a lost checkpoint does, and write a version of its own)
    plan.load(["y", "z"])
    print("read", float(plan.namespace["y"].sum()), plan.namespace["z"], flush=True)
    sys.stdin.readline()
""")


def test_a_checkpoint_pinned_by_another_kernel_is_kept(tmp_path, tmp_key):
    store = tmp_path / "s"

    def plan_of():
        plan = nbsteps.Plan(store=store)
        plan.add_cell("a", "import numpy as np\nx = np.arange(150_000.0)")
        plan.add_cell("b", "y = x + 1")
        plan.add_cell("c", "z = float(y.sum())")
        return plan

    plan_of().run()
    holder = holding_process(HOLDER, store)
    try:
        writer = plan_of()
        assert writer.run(force=["a"]).completed_order == ["a", "b", "c"]
        # the old b is dead (its a is gone) but the holder has not read it: kept, and so is c made from it
        assert sorted(p.parent.name for p in metas(store)) == ["a", "b", "b", "c", "c"]
        assert writer.store.collect_garbage() == (0, 0)
        holder.stdin.write("\n")
        holder.stdin.flush()
        y = np.arange(150_000.0) + 1
        assert holder.stdout.readline().split() == ["read", str(float(y.sum())), str(float(y.sum()))]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert writer.store.collect_garbage().checkpoints == 2  # the holder ended: its pins count no more
    assert sorted(p.parent.name for p in metas(store)) == ["a", "b", "c"]
    assert nbsteps_restores_all(plan_of())


def test_an_upstream_written_by_another_kernel_during_the_scan_is_seen(tmp_path, tmp_key, monkeypatch):
    """Kernel 2 writes a new version of a, then b made from it, after the
    collector read a's folder and before it read b's: b is not dead (checked
    again under b's lock)."""
    store = tmp_path / "s"

    def plan_of():
        plan = nbsteps.Plan(store=store)
        plan.add_cell("a", "x = 1")
        plan.add_cell("b", "y = x + 1")
        return plan

    plan_of().run()
    collector = DiskStore(store)
    scan = Garbage._scan_folder
    raced = []

    def scan_then_race(self, dirname, folder, seen=None):
        found = scan(self, dirname, folder, seen)
        if self is collector.garbage and dirname == "a" and not raced:
            raced.append(plan_of().run(force=["a"]))  # another kernel (own store object)
        return found

    with monkeypatch.context() as m:
        m.setattr(Garbage, "_scan_folder", scan_then_race)
        assert collector.collect_garbage() == (0, 0) and raced[0].completed_order == ["a", "b"]
    assert sorted(p.parent.name for p in metas(store)) == ["a", "b"]
    assert nbsteps_restores_all(plan_of())


def test_issue_scale_fifty_steps_twenty_forced_runs(tmp_path, tmp_key):
    store = tmp_path / "s"
    plan = nbsteps.Plan(store=store)
    plan.add_cell("s0", "import numpy as np\nv0 = np.arange(1000.0)")
    for i in range(1, 50):
        plan.add_cell(f"s{i}", f"v{i} = v{i - 1} + 1")
    plan.run()
    first = len(files(store))
    t0 = time.perf_counter()
    for _ in range(20):
        assert len(plan.run(force=["s0"]).completed_order) == 50
    elapsed = time.perf_counter() - t0
    assert len(files(store)) == first == 101 and len(metas(store)) == 50  # was 2,061 files
    assert elapsed < 120
    again = nbsteps.Plan(store=store)
    for name, step in plan.steps.items():
        again.add_cell(name, step.source)
    assert nbsteps_restores_all(again) and float(again.namespace["v49"][0]) == 49.0
