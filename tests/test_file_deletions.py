"""A step that removes or renames a file changes it (nbsteps.run.attempt.opened).

Removing and renaming raise their own audit events (``os.remove``, ``os.rename``), not ``open``:
they were not observed. A step removing a file through a path the analysis cannot read
(``shutil.rmtree(location)``, joblib's user guide: the page's last cell removes the cache folder
the cells above read) was ordered beside the readers in plan mode, and its removal was no change
it made: a reader whose fingerprint was taken after the removal, or checked in a plan that knew no
writer below it, was stale ("file ... changed") and executed again into FileNotFoundError.
"""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import run_ok

import nbsteps
from nbsteps.ipython import session
from nbsteps.run.attempt import opened

MAKE = "%%step make\nimport os\nos.makedirs('cache', exist_ok=True)\nn = open('cache/a.txt', 'w').write('x')"
READ = "%%step read\ngot = open('cache/a.txt').read()"
SHOUT = "%%step shout\nbig = got.upper()"
CLEANERS = {  # each names the file through a variable: no literal path for the analysis
    "os.remove": "%%step clean\nimport os\npath = os.path.join('ca' + 'che', 'a.txt')\nos.remove(path)",
    "shutil.rmtree": "%%step clean\nimport shutil\nfolder = 'ca' + 'che'\nshutil.rmtree(folder)",
    "Path.unlink": "%%step clean\nfrom pathlib import Path\nPath('ca' + 'che', 'a.txt').unlink()",
    "os.replace": "%%step clean\nimport os\nos.replace(os.path.join('ca' + 'che', 'a.txt'), 'old.txt')",
}


def executed() -> list:
    return sorted(nbsteps.current().last_summary.completed_order)


def fresh_plan(shell):
    """A new plan in the same shell: what a new kernel starts with."""
    session._plan = None
    session.set_mode("interactive")
    session.bind(shell)


@pytest.mark.parametrize("how", sorted(CLEANERS))
def test_a_step_removing_a_file_through_a_variable_comes_after_its_readers(
    shell, tmp_path, monkeypatch, tmp_key, how
):
    monkeypatch.chdir(tmp_path)
    clean = CLEANERS[how]
    store = tmp_path / "store"
    run_ok(shell, f"%steps store {store}")
    for cell in (MAKE, READ, SHOUT, clean):  # interactive: each cell in notebook order, as Run All
        run_ok(shell, cell)
    plan = nbsteps.current()
    path = str(tmp_path / "cache" / "a.txt")
    assert shell.user_ns["big"] == "X" and not os.path.exists(path)
    assert plan["clean"].wrote.get(path) == "missing"  # the removal is a change of the file
    # known from now on: the removal comes after the step reading the file (an order edge)
    assert "read" in plan.context.dependencies("clean")

    # plan mode, edited writer and remover, 4 workers: the reader reads the new file before it is removed
    run_ok(shell, "%steps mode plan")
    edited_clean = clean + "\n_edit = 1"
    for cell in (MAKE.replace("'x'", "'y'"), READ, SHOUT, edited_clean):
        run_ok(shell, cell)
    run_ok(shell, "%steps run --workers 4")
    assert executed() == ["clean", "make", "read", "shout"]
    assert shell.user_ns["big"] == "Y" and not os.path.exists(path)

    # a new kernel on the same store, plan mode: the remover's order is learned from its checkpoint
    fresh_plan(shell)
    run_ok(shell, f"%steps store {store}")
    run_ok(shell, "%steps mode plan")
    for cell in (MAKE.replace("'x'", "'y'"), READ, SHOUT, edited_clean):
        run_ok(shell, cell)
    assert "read" in nbsteps.current().context.dependencies("clean")


def test_a_new_kernel_does_not_run_a_reader_again_for_a_removal_below_it(
    shell, tmp_path, monkeypatch, tmp_key
):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    clean = CLEANERS["shutil.rmtree"]
    run_ok(shell, f"%steps store {store}")
    for cell in (MAKE, READ, SHOUT, clean):
        run_ok(shell, cell)
    fresh_plan(shell)
    run_ok(shell, f"%steps store {store}")
    run_ok(shell, "%steps mode plan")
    for cell in (MAKE, READ, SHOUT, clean):
        run_ok(shell, cell)
    plan = nbsteps.current()
    assert plan.plan().to_run == []
    run_ok(shell, "%steps run --workers 4")
    assert executed() == [] and run_ok(shell, "big") == "X"  # (restored lazily: read by a cell)


def test_removals_and_renames_recorded_by_the_audit_hook(tmp_path, monkeypatch):
    """What one attempt records: each file of a removed folder, both sides of a rename, no label
    for a temporary file it wrote itself, nothing for a store's folder nor a descriptor."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "one.txt").write_text("1")
    (tmp_path / "d" / "sub" / "two.txt").write_text("2")
    (tmp_path / "f.txt").write_text("f")
    store = tmp_path / "store"
    store.mkdir()
    (store / "entry").write_text("e")
    opened.ignore_under(store)
    with opened.recording() as rec:
        folder = "d"
        shutil.rmtree(folder)  # os.unlink(name, dir_fd=...) for each file
        os.rename("f.txt", "g.txt")
        with open("tmp.txt", "w") as fh:  # a temporary file of its own
            fh.write("t")
        os.remove("tmp.txt")
        fd = os.open(store, os.O_RDONLY)
        try:
            os.unlink("entry", dir_fd=fd)  # under an ignored folder (a store's)
        finally:
            os.close(fd)
    writes = rec.writes()
    for name in ("d/one.txt", "d/sub/two.txt", "f.txt", "g.txt", "tmp.txt"):
        assert str(tmp_path / name) in writes, name
    assert not any(p.startswith(str(store)) for p in writes)
    assert {"file:d/one.txt", "file:d/sub/two.txt", "file:f.txt"} <= rec.state
    assert "file:tmp.txt" not in rec.state and "file:g.txt" not in rec.state
    assert rec.inputs() == {}  # removed, renamed: not read


def test_a_remover_executed_again_still_explains_the_file_it_left_removed(shell, tmp_path, monkeypatch):
    """A step executed again that finds its file removed already removes nothing this time (joblib's
    ``result.clear()`` of an entry cleared before): what it wrote is still what it left, the file
    missing, and the reader above it stays up to date, as in Run All."""
    monkeypatch.chdir(tmp_path)
    clean = (
        "%%step clean\nimport os\npath = os.path.join('ca' + 'che', 'a.txt')\n"
        "if os.path.exists(path):\n    os.remove(path)\nprint(tag)"
    )
    # (the writer names the file through a variable too: no writer labelled with it, none replayed)
    make = MAKE.replace("open('cache/a.txt', 'w')", "open(os.path.join('ca' + 'che', 'a.txt'), 'w')")
    for cell in (make, READ, SHOUT, "%%step tag\ntag = 1", clean):
        run_ok(shell, cell)
    plan = nbsteps.current()
    path = str(tmp_path / "cache" / "a.txt")
    assert plan["clean"].wrote.get(path) == "missing"
    run_ok(shell, "%%step tag\ntag = 2")
    run_ok(shell, "%steps run")  # clean executed again: nothing left to remove
    assert executed() == ["clean"]
    assert plan["clean"].wrote.get(path) == "missing"  # still as it left it
    assert plan.plan().to_run == []  # read is not stale: the file is as the step below left it
    run_ok(shell, "%%step later\nz = 1")
    assert executed() == ["later"] and shell.user_ns["big"] == "X"


def test_a_first_plan_run_removes_files_it_cannot_name_after_every_step_above(shell, tmp_path, monkeypatch):
    """Before any run has observed what ``shutil.rmtree(folder)`` removes, the step comes after every
    step above it (the analysis labels it ``files?``): a reader above, slow or reading through code
    nbsteps cannot see (joblib's worker processes reading a memory-mapped array's file), reads the
    file before it is removed, as in Run All."""
    monkeypatch.chdir(tmp_path)
    slow_read = "%%step read\nimport time\ntime.sleep(0.3)\ngot = open('cache/a.txt').read()"
    run_ok(shell, "%steps mode plan")
    for cell in (MAKE, slow_read, SHOUT, CLEANERS["shutil.rmtree"]):
        run_ok(shell, cell)
    plan = nbsteps.current()
    assert {"make", "read", "shout"} <= set(plan.context.dependencies("clean"))
    run_ok(shell, "%steps run --workers 4")
    assert executed() == ["clean", "make", "read", "shout"]
    assert shell.user_ns["big"] == "X" and not (tmp_path / "cache").exists()


def test_a_step_that_wrote_files_is_not_executed_again_for_a_value_changed_below(
    shell, tmp_path, monkeypatch
):
    """A value a step below changes in place (``func2(1)`` on a joblib ``MemorizedFunc``: its own
    caches) is shared by the step that made it, when that step wrote files: executing it again to
    make its version anew would write them again after the steps below (a cache entry made twice,
    a log appended twice), which Run All never does."""
    monkeypatch.chdir(tmp_path)
    make = (
        "%%step make\nclass Counter:\n    n = 0\n    def __call__(self):\n        self.n += 1\n"
        "tick = Counter()\nwith open('lo' + 'g.txt', 'a') as fh:\n    fh.write('make ran\\n')"
    )
    run_ok(shell, make)
    run_ok(shell, "%%step use\ntick()")  # changes make's tick in place
    assert executed() == ["use"]
    assert (tmp_path / "log.txt").read_text() == "make ran\n"  # once, as in Run All
    assert shell.user_ns["tick"].n == 1
