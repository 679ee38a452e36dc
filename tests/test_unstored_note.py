"""A step whose values could not be stored (a generator, an open file) runs
again in a new kernel, and says so: not "never run" (it ran, in the kernel
before), but why its values are not in the store. Two real processes on one
directory store."""

from conftest import shell_on_store

REPORT = """
out.update(records={s: [plan[s].origin, plan[s].reason] for s in sorted(plan.steps)},
           plan=shown.getvalue(), total=ip.user_ns.get("total"))
"""

CELLS = [
    "%%step numbers\nnumbers = [1, 2, 3]",
    "%%step squares\nsquares = (n * n for n in numbers)",  # a generator: cannot be pickled
    "%%step total\ntotal = sum(squares)",
    "%%step report\nreport = f'total {total}'",  # two below: its upstream is kept when it runs
]


def kernel(store, cells, cwd) -> dict:
    return shell_on_store(store, cells, cwd, REPORT)


def test_a_new_kernel_says_why_a_step_whose_values_were_not_stored_runs_again(tmp_path, tmp_key):
    store = tmp_path / "store"
    first = kernel(store, CELLS, tmp_path)
    assert first["total"] == 14
    assert all(origin == "executed" for origin, _ in first["records"].values()), first
    second = kernel(store, CELLS, tmp_path)
    origin, reason = second["records"]["squares"]
    assert origin == "executed"
    assert reason.startswith("its values were not stored when it last ran: "), reason
    assert "squares" in reason and "cannot be pickled" in reason, reason
    assert second["records"]["numbers"][0] == "restored"
    assert second["records"]["total"][0] == "executed", second  # its input was made again
    assert (
        second["records"]["total"][1]
        == "upstream squares ran again: its values were not stored when it last ran"
    )
    assert second["records"]["report"] == [
        "executed",
        "upstream total ran again: its values were not stored when it last ran",
    ]
    assert second["total"] == 14  # as Run All
    # a kernel in plan mode, before anything runs: the preview gives the same reason
    third = kernel(store, ["%steps mode plan", *CELLS, "%steps plan"], tmp_path)
    assert "its values were not stored when it last ran" in third["plan"], third["plan"]
    assert "squares (run: its values were not stored when it last ran" in third["plan"], third["plan"]


def test_dropping_a_step_removes_its_note(tmp_path, tmp_key):
    from nbsteps.model.checkpoint import Checkpoint
    from nbsteps.stores.disk import DiskStore

    store = DiskStore(tmp_path / "store")
    gen = (i for i in range(2))
    store.put(Checkpoint(step="g", fingerprint="fp1", outputs={"gen": gen}, parts={}))
    assert "cannot be pickled" in DiskStore(tmp_path / "store").unstored("g", "fp1")
    assert DiskStore(tmp_path / "store").unstored("g", "other") == ""
    store.drop("g")
    assert DiskStore(tmp_path / "store").unstored("g", "fp1") == ""
    assert not (tmp_path / "store" / "g").exists()
