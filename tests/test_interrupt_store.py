"""Interrupts (real SIGINTs to this process) while checkpoints are written:
the record, the namespace and the store agree afterwards, and an interrupted
disk write leaves no open file, no temp file and no hashing thread."""

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest

import nbsteps
from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores.disk import DiskStore
from nbsteps.stores.memory import MemoryStore


def open_deleted_files() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.endswith("(deleted)"):
            found.append(target)
    return found


def hmac_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nbsteps-hmac"]


def test_deferred_interrupts_delivers_the_signal_after_the_block():
    from nbsteps.interrupts import deferred_interrupts

    steps = []
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupts():
            signal.raise_signal(signal.SIGINT)  # a real SIGINT, now
            steps.append("still running")
        steps.append("not reached")
    assert steps == ["still running"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with deferred_interrupts():  # nothing pending: nothing raised
        steps.append("quiet")
    assert steps[-1] == "quiet"


class InterruptingStore(MemoryStore):
    """A memory store that receives a SIGINT just before or just after it commits."""

    def __init__(self, when: str) -> None:
        super().__init__()
        self.when = when

    def put(self, checkpoint) -> None:
        if self.when == "before":
            signal.raise_signal(signal.SIGINT)
        super().put(checkpoint)
        if self.when == "after":
            signal.raise_signal(signal.SIGINT)


def _plan(store):
    plan = nbsteps.Plan(store=store)
    plan.add_cell("make", "value = [1, 2, 3]")
    return plan


def test_interrupt_before_the_checkpoint_is_stored_completes_nothing():
    plan = _plan(InterruptingStore("before"))
    with pytest.raises(KeyboardInterrupt):
        plan.run()
    assert plan["make"].status == "cancelled"
    assert "value" not in plan.namespace and plan.store.get("make") is None
    assert plan.last_summary.interrupted and "make cancelled (interrupted)" in plan.last_summary.text


def test_interrupt_after_the_checkpoint_is_stored_completes_the_step():
    """Defect 3: the step is completed once stored and published, both or neither."""
    plan = _plan(InterruptingStore("after"))
    with pytest.raises(KeyboardInterrupt):
        plan.run()
    rec = plan["make"]
    assert rec.status == "completed"
    assert plan.namespace["value"] is rec.outputs["value"]
    assert plan.store.get("make", rec.fingerprint).outputs["value"] is rec.outputs["value"]


def test_interrupt_after_a_disk_commit_keeps_the_checkpoint_whole(tmp_path, tmp_key, monkeypatch):
    """An interrupt right after checkpoint.meta was replaced used to remove the
    value files it names: a committed checkpoint pointing at missing files."""
    import nbsteps.stores.writing as writing

    real = writing.fsync_dir

    def interrupted_fsync(fd):  # called right after the commit (os.replace of checkpoint.meta)
        real(fd)
        signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(writing, "fsync_dir", interrupted_fsync)
    plan = nbsteps.Plan(store=tmp_path / "store")
    plan.add_cell("make", "value = list(range(10))")
    with pytest.raises(KeyboardInterrupt):
        plan.run()
    monkeypatch.setattr(writing, "fsync_dir", real)
    rec = plan["make"]
    assert rec.status == "completed" and plan.namespace["value"] == list(range(10))
    fresh = DiskStore(tmp_path / "store")  # what a new kernel would read
    assert fresh.get("make", rec.fingerprint).outputs["value"] == list(range(10))


def _interrupt_when_written(folder, nbytes: int) -> threading.Thread:
    """SIGINT this process once a temp file in *folder* holds *nbytes*."""

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                sizes = [e.stat().st_size for e in os.scandir(folder) if e.name.startswith(".tmp-")]
            except OSError:
                sizes = []
            if any(s >= nbytes for s in sizes):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.0005)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("kind", ["parquet", "pickle"])
def test_interrupted_large_write_leaks_no_file_and_no_thread(tmp_path, tmp_key, kind):
    """Defect 9: an interrupted write of >= 8 MB kept the deleted temp file open
    (its disk space never freed) and left the HMAC thread blocked."""
    if kind == "parquet":
        value = pd.DataFrame({"a": np.arange(12_000_000, dtype="float64")})  # 96 MB as Parquet
    else:
        value = [bytes([i]) * (1 << 20) for i in range(96)]  # 96 MB, pickled in 1 MB writes
    store = DiskStore(tmp_path / "store")
    (tmp_path / "store" / "big").mkdir(mode=0o700)
    before = open_deleted_files()
    watcher = _interrupt_when_written(tmp_path / "store" / "big", 9 << 20)
    with pytest.raises(KeyboardInterrupt):
        store.put(Checkpoint("big", "fp", {"value": value}, None, False))
        time.sleep(30)  # the write finished before the interrupt (not expected): wait for it here
    watcher.join()
    assert open_deleted_files() == before
    assert hmac_threads() == []
    assert [p.name for p in (tmp_path / "store" / "big").iterdir()] == []
    assert store.get("big") is None
    store.put(Checkpoint("big", "fp", {"value": [1]}, None, False))  # the store still works
    assert store.get("big", "fp").outputs["value"] == [1]


SWALLOW = """
import signal
try:
    signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives while the step runs...
except:  # ...and the step's bare except swallows it
    pass
swallowed = True
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_an_interrupt_a_step_swallows_still_interrupts_the_run(workers):
    """A lone step runs on the caller's thread, where its own ``except:`` used to
    swallow the run's interrupt: the plan went on as if nothing happened. On a
    worker thread the executor gets it. Both now interrupt the run."""
    plan = nbsteps.Plan()
    plan.namespace["meet"] = threading.Barrier(workers, timeout=30).wait
    plan.add_cell("stubborn", "meet()\n" + SWALLOW)
    if workers == 2:  # a second step running alongside: stubborn runs on a worker thread
        plan.add_cell("other", "import time\nmeet()\ntime.sleep(30)\nother = 1")
    plan.add_cell("later", "after = swallowed", after=["stubborn"])
    with pytest.raises(KeyboardInterrupt):
        plan.run(workers=workers)
    assert plan["stubborn"].status == "cancelled" and plan["later"].status == "cancelled"
    assert "swallowed" not in plan.namespace and "after" not in plan.namespace
    assert plan.last_summary.interrupted


def test_an_interrupt_a_listener_swallows_still_interrupts_the_run():
    def careless(event):  # a display listener with a bare except
        if event.kind == "completed" and event.step == "first":
            try:
                signal.raise_signal(signal.SIGINT)
            except:  # noqa: E722
                pass

    plan = nbsteps.Plan()
    plan.add_cell("first", "a = 1")
    plan.add_cell("second", "b = a + 1")
    with pytest.raises(KeyboardInterrupt):
        plan.run(listeners=[careless])
    assert plan["first"].status == "completed" and plan["second"].status == "cancelled"
    assert plan.namespace["a"] == 1 and "b" not in plan.namespace
