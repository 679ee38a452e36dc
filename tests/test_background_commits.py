"""Checkpoints committed off the critical path (issue 26 target 1): a directory
store with ``background`` set writes a checkpoint's values on the caller's
thread and makes them durable on its committer thread (stores.committer).
Real DiskStores, real files and processes; the commit is held back by an
``os.fsync`` that waits on the committer thread only."""

from __future__ import annotations

import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

import nbsteps
from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores.disk import DiskStore
from nbsteps.stores.layout import referenced


def committer_thread() -> bool:
    return threading.current_thread().name == "nbsteps-commit"


@pytest.fixture
def held_commits(monkeypatch):
    """fsync on the committer thread waits until the returned event is set."""
    release = threading.Event()
    real = os.fsync

    def fsync(fd):
        if committer_thread():
            assert release.wait(30), "the test never released the commit"
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    yield release
    release.set()


def metas(directory, step):
    return sorted(p.name for p in (directory / step).glob("*.meta"))


READ_IN_ANOTHER_PROCESS = """
import json, sys
from nbsteps.stores.disk import DiskStore
cp = DiskStore(sys.argv[1]).get("a", "fp")
print(json.dumps(None if cp is None else cp.outputs["x"]))
"""


def read_in_another_process(directory):
    proc = subprocess.run(
        [sys.executable, "-c", READ_IN_ANOTHER_PROCESS, str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_put_returns_before_the_commit_and_reads_here_wait_for_it(tmp_path, tmp_key, held_commits):
    store = DiskStore(tmp_path / "s")
    store.background = True
    store.put(Checkpoint("a", "fp", {"x": [1, 2, 3]}, None, False))
    # the values are written, the commit (fsyncs, then the metadata) is pending
    assert metas(tmp_path / "s", "a") == []
    assert store.committer.busy("a")
    # another process sees committed checkpoints only
    assert read_in_another_process(tmp_path / "s") is None
    threading.Timer(0.2, held_commits.set).start()
    cp = store.get("a", "fp")  # waits for the commit of a
    assert cp is not None and cp.outputs["x"] == [1, 2, 3]
    assert len(metas(tmp_path / "s", "a")) == 1 and not store.committer.busy()
    assert read_in_another_process(tmp_path / "s") == [1, 2, 3]


def test_a_put_without_background_is_durable_when_it_returns(tmp_path, tmp_key):
    store = DiskStore(tmp_path / "s")
    store.put(Checkpoint("a", "fp", {"x": [1]}, None, False))
    assert len(metas(tmp_path / "s", "a")) == 1
    assert read_in_another_process(tmp_path / "s") == [1]


def test_an_unpicklable_value_is_still_reported_by_the_put_itself(tmp_path, tmp_key, held_commits):
    store = DiskStore(tmp_path / "s")
    store.background = True
    said = []
    store.warn = lambda step, message: said.append((step, message))
    store.put(Checkpoint("a", "fp", {"lk": threading.Lock()}, None, False))
    assert said and said[0][0] == "a" and "cannot be pickled" in said[0][1]  # before any commit ran
    assert not store.committer.busy()
    assert store.get("a", "fp").outputs["lk"] is not None  # kept in memory


def _plan(directory, listeners=()):
    plan = nbsteps.Plan(store=directory, listeners=listeners)
    plan.background_commits = True
    plan.add_cell("a", "x = list(range(5))")
    plan.add_cell("b", "import signal\nsignal.raise_signal(signal.SIGINT)\ny = x", after=["a"])
    return plan


def test_an_interrupt_waits_for_the_pending_commits(tmp_path, tmp_key, held_commits):
    plan = _plan(tmp_path / "s")
    assert plan.store.background
    threading.Timer(0.5, held_commits.set).start()
    with pytest.raises(KeyboardInterrupt):
        plan.run()
    assert plan["a"].status == "completed" and plan["b"].status == "cancelled"
    # the run waited for a's commit before it reported: durable now, for any process
    assert len(metas(tmp_path / "s", "a")) == 1
    fresh = DiskStore(tmp_path / "s")
    assert fresh.get("a", plan["a"].fingerprint).outputs["x"] == list(range(5))


def test_a_commit_that_fails_is_reported_as_not_stored(tmp_path, tmp_key, monkeypatch):
    real = os.fsync
    failed = []

    def full(fd):  # the first fsync of the commit (a value file's) fails; the note's works
        if committer_thread() and not failed and stat.S_ISREG(os.fstat(fd).st_mode):
            failed.append(fd)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)

    monkeypatch.setattr(os, "fsync", full)
    warnings = []
    plan = _plan(tmp_path / "s", listeners=[lambda e: e.kind == "warning" and warnings.append(e)])
    with pytest.raises(KeyboardInterrupt):
        plan.run()
    monkeypatch.setattr(os, "fsync", real)
    # the interrupted run's report says it: kept in memory only, never "stored"
    assert [e.step for e in warnings] == ["a"]
    assert "could not write its checkpoint" in warnings[0].message
    assert "kept in memory only" in warnings[0].message
    assert metas(tmp_path / "s", "a") == [] and plan.store.get("a", plan["a"].fingerprint) is not None
    # a new kernel finds the note, not a checkpoint
    again = nbsteps.Plan(store=tmp_path / "s")
    again.add_cell("a", "x = list(range(5))")
    assert again.store.get("a", plan["a"].fingerprint) is None
    assert "No space left" in again.store.unstored("a", plan["a"].fingerprint)
    again.run()
    assert again["a"].reason.startswith("its values were not stored when it last ran: "), again["a"].reason


KILLED_MID_COMMIT = """
import os, sys, threading
from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores.disk import DiskStore

store = DiskStore(sys.argv[1])
store.background = True
store.put(Checkpoint("a", "fp", {"x": [1, 2, 3]}, None, False))
store.flush()  # the first version: committed
real = os.fsync
def stuck(fd):
    if threading.current_thread().name == "nbsteps-commit":
        print("pending", flush=True)
        threading.Event().wait()  # never returns: the process is killed here
    return real(fd)
os.fsync = stuck
store.put(Checkpoint("a", "fp", {"x": [4, 5, 6]}, None, False))
threading.Event().wait()
"""


def test_a_process_killed_mid_commit_leaves_a_readable_store(tmp_path, tmp_key):
    directory = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_COMMIT, str(directory)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "pending"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    files = sorted(p.name for p in (directory / "a").iterdir())
    assert len(files) > 2  # the first checkpoint, and the second one's value files (not committed)
    store = DiskStore(directory)
    assert store.get("a", "fp").outputs["x"] == [1, 2, 3]  # the committed version, whole
    store.put(Checkpoint("a", "fp", {"x": [8]}, None, False))  # the next put removes the orphans
    fd = os.open(directory / "a", os.O_RDONLY)
    try:
        named = referenced(fd)
    finally:
        os.close(fd)
    left = sorted(p.name for p in (directory / "a").iterdir())
    assert len(named) == 1 and left == sorted([*metas(directory, "a"), *named])
    assert DiskStore(directory).get("a", "fp").outputs["x"] == [8]


def test_a_run_ends_before_its_commits_and_a_new_store_ends_them(tmp_path, tmp_key, held_commits):
    plan = nbsteps.Plan(store=tmp_path / "s")
    plan.background_commits = True
    plan.add_cell("a", "x = [1, 2]")
    plan.run()
    assert plan["a"].status == "completed" and plan.namespace["x"] == [1, 2]
    assert metas(tmp_path / "s", "a") == []  # the run did not wait for the commit
    threading.Timer(0.2, held_commits.set).start()
    plan.set_store("memory")  # the old store's commits end first
    assert len(metas(tmp_path / "s", "a")) == 1
    assert DiskStore(tmp_path / "s").get("a", plan["a"].fingerprint).outputs["x"] == [1, 2]


def test_a_plan_does_not_wait_for_the_commit_of_the_step_above(tmp_path, tmp_key, held_commits):
    """The preview of a run (which steps are up to date, replays of process state) takes the
    version of a step whose commit is still pending as the step's latest: the cell below runs
    while the fsyncs of the cell above go on (a kernel's next cell waited for them)."""
    plan = nbsteps.Plan(store=tmp_path / "s")
    plan.background_commits = True
    plan.add_cell("a", "import random\nrandom.seed(1)\nx = [1, 2]")
    plan.run()
    assert metas(tmp_path / "s", "a") == []  # its commit is held
    plan.add_cell("b", "y = x + [random.random() > 2]")
    release = threading.Timer(5.0, held_commits.set)
    release.start()
    try:
        started = time.monotonic()
        plan.run()
        took = time.monotonic() - started
    finally:
        release.cancel()
        held_commits.set()
    assert plan["b"].status == "completed" and plan.namespace["y"] == [1, 2, False]
    assert plan["a"].origin == "kept"  # up to date in this process: not executed again, not restored
    assert took < 4.0, f"the run waited {took:.1f} s for the commit above"
    plan.set_store("memory")  # the commits end
    assert len(metas(tmp_path / "s", "a")) == 1 and len(metas(tmp_path / "s", "b")) == 1
