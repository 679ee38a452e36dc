"""A directory store recovers from what happens to a checkpoint after it was
written (issue 21): size eviction never removes a checkpoint a live kernel
restored and has not read yet (this kernel or another); a damaged value file
is found when its step is restored, and the step recomputed in the same run;
a value that fails later (damaged after the restore, or no longer decodes: a
class renamed) has its step recomputed in the run that needs it, with one
warning naming the step and the file. Real IPython shells, real processes and
real files; nothing mocked."""

from __future__ import annotations

import pickle
import sys
import textwrap

import numpy as np
import pytest
from conftest import holding_process, run_ok

import nbsteps
from nbsteps.ipython import session

pytestmark = pytest.mark.usefixtures("nothing_outside_the_store_changes")


def new_kernel(shell):
    """What a restarted kernel has: a fresh plan and namespace (the same store)."""
    session._plan = None
    shell.reset(new_session=False)
    session.bind(shell)


def value_files(folder):
    return sorted(p for p in folder.iterdir() if p.suffix in (".pkl", ".arrow", ".parquet"))


# -- eviction (defect 2) ----------------------------------------------------------

RANDOM = "%%step a\nimport numpy as np\nx = np.random.default_rng().random(150_000)"  # 1.2 MB
USES = "%%step b\ny = float(x.sum())"


def test_eviction_keeps_what_this_kernel_restored_and_has_not_read(shell, tmp_path, tmp_key, capsys):
    cells = [f"%steps store {tmp_path / 's'} --max-size 3MB", RANDOM, USES]
    for c in cells:
        run_ok(shell, c)
    first = shell.user_ns["x"].copy()
    new_kernel(shell)
    capsys.readouterr()
    for c in cells:
        run_ok(shell, c)
    plan = session.current()
    assert "x" in plan.deferred and plan.last_summary.completed_order == []
    run_ok(shell, "%%step c\nimport numpy\nbig = numpy.ones(300_000)")  # 2.4 MB: the store is over 3 MB
    run_ok(shell, "seen = x.copy()")  # a cell naming it reads it now: the same random values
    assert np.array_equal(shell.user_ns["seen"], first)
    out = capsys.readouterr().out
    assert "could not be read" not in out and "a completed" not in out
    # once read, nothing pins it any more: the next write evicts it (least recently used)
    run_ok(shell, "%steps load")
    run_ok(shell, "%%step d\nimport numpy\nmore = numpy.zeros(200_000)")
    plan.store.flush()  # d's commit ends after the cell (stores.committer); the eviction follows it
    assert plan.store.budget.evicted >= 1 and not list((tmp_path / "s").glob("a/*.meta"))
    assert np.array_equal(shell.user_ns["x"], first)  # the kernel still holds it


def test_eviction_in_a_run_never_removes_an_upstream_still_to_be_read(tmp_path, tmp_key):
    def plan_of(size):
        plan = nbsteps.Plan(store=tmp_path / "s", max_size="3MB")
        plan.add_cell("a", RANDOM.split("\n", 1)[1])
        plan.add_cell("c", f"import numpy as np\nbig = np.ones({size})")
        plan.add_cell("d", "total = float(x.sum())")
        return plan

    plan = plan_of(1000)
    plan.run()
    first = plan.namespace["x"].copy()
    plan = plan_of(300_000)  # a new process: a is restored lazily, c (changed) writes 2.4 MB before d reads x
    summary = plan.run()
    assert summary.ok and summary.completed_order == ["c"]  # d restored: same fingerprint
    plan.add_cell("e", "again = float(x[:10].sum())")
    summary = plan.run()
    assert summary.ok and "a" not in summary.completed_order
    assert np.array_equal(plan.namespace["x"], first) and plan.namespace["again"] == float(first[:10].sum())


HOLDER = textwrap.dedent("""
    import sys
    import nbsteps
    plan = nbsteps.Plan(store=sys.argv[1], max_size=None)
    plan.add_cell("a", "import numpy as np\\nx = np.arange(150_000.0)")
    plan.lazy_publish = True  # as in a notebook: x waits until something reads it
    assert plan.run().cached == ["a"]
    print("restored", flush=True)
    sys.stdin.readline()
    print("read", float(plan.load(["x"]) and plan.namespace["x"].sum()), flush=True)
    sys.stdin.readline()
""")


def test_eviction_keeps_what_another_live_kernel_has_not_read(tmp_path, tmp_key):
    store = tmp_path / "s"
    setup = nbsteps.Plan(store=store)
    setup.add_cell("a", "import numpy as np\nx = np.arange(150_000.0)")
    setup.run()
    holder = holding_process(HOLDER, store)
    try:
        writer = nbsteps.Plan(store=store, max_size="2MB")
        writer.add_cell("big", "import numpy as np\nbig = np.ones(200_000)")
        writer.run()  # over the limit: a (least recently used) would go, but the holder has not read it
        assert writer.store.budget.evicted == 0 and list(store.glob("a/*.meta"))
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().split() == ["read", str(float(np.arange(150_000.0).sum()))]
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    # the holder read it, then ended: its checkpoint is evicted by the next write over the limit
    writer.add_cell("more", "import numpy as np\nmore = np.ones(100_000)")
    writer.run()
    assert not list(store.glob("a/*.meta")) and not list((store / ".pins").glob("*/*"))


def test_pins_of_a_kernel_that_died_do_not_count(tmp_path, tmp_key):
    store = tmp_path / "s"
    setup = nbsteps.Plan(store=store)
    setup.add_cell("a", "import numpy as np\nx = np.arange(150_000.0)")
    setup.run()
    holder = holding_process(HOLDER, store)
    holder.kill()  # no clean-up of its own
    holder.wait(timeout=60)
    assert list((store / ".pins").glob("*/a.*"))
    writer = nbsteps.Plan(store=store, max_size="2MB")
    writer.add_cell("big", "import numpy as np\nbig = np.ones(200_000)")
    writer.run()
    assert writer.store.budget.evicted == 1 and not list(store.glob("a/*.meta"))
    assert not list((store / ".pins").glob("*/a.*"))


# -- damaged value files (defect 3) ------------------------------------------------


def flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-7])


def foreign_pickle(path):
    path.write_bytes(pickle.dumps(np.zeros(len(path.read_bytes()) // 8)))


@pytest.mark.parametrize("damage", [flip_a_byte, truncate, foreign_pickle])
def test_damaged_value_file_is_recomputed_in_the_same_run(shell, tmp_path, tmp_key, capsys, damage):
    cells = [f"%steps store {tmp_path / 's'}", RANDOM, USES]
    for c in cells[:2]:
        run_ok(shell, c)
    (victim,) = [p for p in value_files(tmp_path / "s" / "a") if p.stat().st_size > 1_000_000]
    damage(victim)
    new_kernel(shell)
    capsys.readouterr()
    for c in cells:
        run_ok(shell, c)  # no failure: a is recomputed in this run, then b runs on it
    out = capsys.readouterr().out
    assert f"checkpoint of step 'a' is not trusted: {victim}" in out and "recomputed" in out
    assert "a completed" in out and "b completed" in out and "another kernel" not in out
    assert shell.user_ns["y"] == float(shell.user_ns["x"].sum())


def test_value_damaged_after_the_restore_recomputes_its_step_in_the_run_needing_it(
    shell, tmp_path, tmp_key, capsys
):
    cells = [f"%steps store {tmp_path / 's'}", RANDOM, USES]
    for c in cells:
        run_ok(shell, c)
    new_kernel(shell)
    for c in cells:
        run_ok(shell, c)  # restored: verified, values not read
    (victim,) = [p for p in value_files(tmp_path / "s" / "a") if p.stat().st_size > 1_000_000]
    flip_a_byte(victim)
    capsys.readouterr()
    run_ok(shell, "%%step c\nhead = float(x[:5].sum())")
    out = capsys.readouterr().out
    assert f"output 'x' of step 'a' could not be read from its checkpoint: {victim}" in out
    assert "does not match its signature" in out and "another kernel" not in out
    summary = session.current().last_summary
    assert summary.ok and summary.completed_order == ["a", "c"]
    assert shell.user_ns["head"] == float(shell.user_ns["x"][:5].sum())


def test_value_damaged_after_the_restore_read_by_a_plain_cell(shell, tmp_path, tmp_key, capsys):
    cells = [f"%steps store {tmp_path / 's'}", RANDOM, USES]
    for c in cells:
        run_ok(shell, c)
    new_kernel(shell)
    for c in cells:
        run_ok(shell, c)
    (victim,) = [p for p in value_files(tmp_path / "s" / "a") if p.stat().st_size > 1_000_000]
    truncate(victim)
    with pytest.warns(RuntimeWarning) as caught:
        total = run_ok(shell, "x.sum()")  # a executes again before the cell runs: x is Run All's
    (message,) = [str(w.message) for w in caught]
    assert f"step 'a' could not be read from its checkpoint: {victim} is truncated" in message
    assert "step 'a' will be recomputed" in message
    assert total == shell.user_ns["x"].sum() and session.current().last_summary.completed_order == ["a"]
    reason = session.current().records["a"].reason  # "... is truncated (N of M bytes)"
    assert reason.startswith(f"its checkpoint could not be read: {victim.name} is truncated")
    capsys.readouterr()
    run_ok(shell, "%%step c\nhead = float(x[:5].sum())")
    assert session.current().last_summary.completed_order == ["c"]


# -- checkpoints that no longer decode (defect 4) -------------------------------------

LIBRARY = (
    "class Thing:\n    def __init__(self, v):\n        self.v = v\n\ndef make(v):\n    return Thing(v)\n"
)
RENAMED = "class Item:\n    def __init__(self, v):\n        self.v = v\n\ndef make(v):\n    return Item(v)\n"


@pytest.fixture
def library(tmp_path, monkeypatch):
    """A module of the user's, on sys.path; returns a function renaming its class."""
    name = f"lib_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(LIBRARY)
    monkeypatch.syspath_prepend(str(tmp_path))

    def rename():
        import importlib

        (tmp_path / f"{name}.py").write_text(RENAMED)
        sys.modules.pop(name, None)
        importlib.invalidate_caches()

    yield name, rename
    sys.modules.pop(name, None)


def test_checkpoint_that_no_longer_unpickles_is_dropped_and_recomputed(
    shell, tmp_path, tmp_key, capsys, library
):
    lib, rename = library
    cells = [
        f"%steps store {tmp_path / 's'}",
        f"%%step a\nimport {lib}\nt = {lib}.make(3)",
        "%%step b\nw = t.v * 2",
    ]
    for c in cells:
        run_ok(shell, c)
    rename()  # the library renamed its class: the pickle of t names one that is gone
    new_kernel(shell)
    for c in cells:
        run_ok(shell, c)  # restored, nothing read
    capsys.readouterr()
    run_ok(shell, "%%step c\nmore = t.v + 1")  # needs t: a is recomputed in this run
    out = capsys.readouterr().out
    assert out.count("no longer decodes") == 1 and "output 't' of step 'a'" in out
    assert "Can't get attribute 'Thing'" in out and "step 'a' will be recomputed" in out
    assert session.current().last_summary.completed_order == ["a", "c"]
    assert shell.user_ns["more"] == 4 and type(shell.user_ns["t"]).__name__ == "Item"
    # the next kernel finds the new checkpoint: a is not recomputed, nothing is said
    new_kernel(shell)
    for c in [*cells, "%%step c\nmore = t.v + 1"]:
        run_ok(shell, c)
    run_ok(shell, "seen = t.v")
    out = capsys.readouterr().out
    assert (
        "a restored" in out
        and "a completed" not in out
        and "decode" not in out
        and shell.user_ns["seen"] == 3
    )


def test_undecodable_checkpoint_read_at_once_is_dropped_with_one_warning(tmp_path, tmp_key, library):
    lib, rename = library

    def plan_of():
        plan = nbsteps.Plan(store=tmp_path / "s")
        plan.add_cell("a", f"import {lib}\nt = {lib}.make(3)")
        return plan

    plan_of().run()
    rename()
    plan = plan_of()
    warnings: list = []
    plan.store.warn = lambda step, message: warnings.append((step, message))
    fp = plan.store.fingerprints("a")[0]
    assert plan.store.get("a", fp) is None and plan.store.get("a", fp) is None
    ((step, message),) = warnings  # one warning: the checkpoint is gone after the first
    assert step == "a" and "checkpoint of step 'a' is not used" in message and "no longer decodes" in message
    assert str(tmp_path / "s" / "a") in message and plan.store.fingerprints("a") == []
    assert plan.run().completed_order == ["a"]
