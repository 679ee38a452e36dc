"""The disk store never destroys or reads through links, and keeps its files private.

Real symlinks, real files: each test builds the hostile layout the safety issue
reported and checks that nothing outside the store changed.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import warned_store as make_store  # its warnings kept in store.warnings

import nbsteps
from nbsteps.errors import StoreError
from nbsteps.stores import Checkpoint, open_store, signing
from nbsteps.stores.layout import META, meta_name


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "secret_key"
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(path))
    return path


def snapshot(root: Path) -> dict:
    """Every path under *root* with its bytes (files) or None (folders)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.join(dirpath, d)] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[p] = Path(p).read_bytes() if not os.path.islink(p) else os.readlink(p)
    return out


def make_victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "README.md").write_text("precious")
    (victim / "sub" / "data.csv").write_text("a,b\n1,2\n")
    (victim / META).write_text("not a checkpoint")
    (victim / meta_name("fp")).write_text("named like a checkpoint of ours, is not")
    (victim / "0123456789abcdef-0.pkl").write_bytes(b"looks like ours, is not")
    return victim


def meta_file(folder: Path) -> Path:
    """The metadata file of the step's only checkpoint."""
    (path,) = folder.glob("*.meta")
    return path


def test_symlinked_step_folder_is_never_written_or_emptied(tmp_path, key_file):
    victim = make_victim(tmp_path)
    before = snapshot(victim)
    (tmp_path / "store").mkdir()
    os.symlink(victim, tmp_path / "store" / "load")
    store = make_store(tmp_path / "store")
    store.put(Checkpoint("load", "fp", {"x": 1}))
    assert snapshot(victim) == before
    assert store.warnings and "symbolic link" in store.warnings[0][1] and "'load'" in store.warnings[0][1]
    assert store.get("load", "fp").outputs == {"x": 1}  # kept in memory for this kernel
    store.drop("load")
    assert store.get("load") is None
    assert snapshot(victim) == before
    assert os.path.islink(tmp_path / "store" / "load")  # not even the link is removed


def test_parent_link_in_a_shipped_store_loses_nothing(tmp_path, key_file):
    """The reported case: a repository ships `.nbsteps/load -> ..`."""
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (repo / "README.md").write_text("readme")
    (repo / "nb.ipynb").write_text("{}")
    (repo / ".nbsteps").mkdir()
    os.symlink("..", repo / ".nbsteps" / "load")
    outside = lambda: {k: v for k, v in snapshot(repo).items() if "/.nbsteps/" not in k}  # noqa: E731
    before = outside()
    plan = nbsteps.Plan(store=repo / ".nbsteps")
    warnings = []
    plan.store.warn = lambda step, message: warnings.append(message)

    @plan.step("load")
    def load():
        return 42

    summary = plan.run()
    assert plan["load"].result == 42 and "1 of 1" in str(summary)
    assert outside() == before
    assert any("symbolic link" in w for w in warnings)
    plan.reset()
    assert outside() == before


def test_reading_through_a_linked_folder_is_refused(tmp_path, key_file):
    real = make_store(tmp_path / "elsewhere")
    real.put(Checkpoint("load", "fp", {"x": 1}))
    (tmp_path / "store").mkdir()
    os.symlink(tmp_path / "elsewhere" / "load", tmp_path / "store" / "load")
    store = make_store(tmp_path / "store")
    before = snapshot(tmp_path / "elsewhere")
    assert store.get("load", "fp") is None
    assert "symbolic link" in store.warnings[0][1]
    assert store.steps() == []
    assert snapshot(tmp_path / "elsewhere") == before


def test_linked_locks_folder_creates_nothing_outside(tmp_path, key_file):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "store").mkdir()
    os.symlink(outside, tmp_path / "store" / ".locks")
    store = make_store(tmp_path / "store")
    store.put(Checkpoint("s", "fp", {"x": 1}))
    assert list(outside.iterdir()) == []
    assert "symbolic link" in store.warnings[0][1]
    assert store.get("s", "fp").outputs == {"x": 1}


def test_meta_linked_to_dev_zero_is_refused_not_read(tmp_path, key_file):
    store = make_store(tmp_path / "store")
    store.put(Checkpoint("s", "fp", {"x": 1}))
    meta = meta_file(tmp_path / "store" / "s")
    meta.unlink()
    os.symlink("/dev/zero", meta)
    fresh = make_store(tmp_path / "store")
    assert fresh.get("s", "fp") is None  # no MemoryError, no hang
    assert "not trusted" in fresh.warnings[0][1]
    fresh.put(Checkpoint("s", "fp2", {"x": 2}))  # replaces the link, never writes to /dev/zero
    assert not os.path.islink(meta)
    assert make_store(tmp_path / "store").get("s", "fp2").outputs == {"x": 2}


def test_meta_linked_to_a_file_elsewhere_survives_drop(tmp_path, key_file):
    store = make_store(tmp_path / "store")
    store.put(Checkpoint("s", "fp", {"x": 1}))
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    meta = meta_file(tmp_path / "store" / "s")
    meta.unlink()
    os.symlink(target, meta)
    store.drop("s")
    assert target.read_text() == "keep me"


def test_only_files_the_store_names_are_removed(tmp_path, key_file):
    store = make_store(tmp_path / "store")
    store.put(Checkpoint("s", "fp", {"x": 1}))
    folder = tmp_path / "store" / "s"
    (folder / "notes.txt").write_text("user file")
    (folder / "subdir").mkdir()
    (folder / "subdir" / "f").write_text("x")
    store.put(Checkpoint("s", "fp2", {"x": 2}))
    store.drop("s")
    assert (folder / "notes.txt").read_text() == "user file"
    assert (folder / "subdir" / "f").read_text() == "x"
    assert store.get("s") is None


def test_files_and_folders_are_private(tmp_path, key_file):
    old = os.umask(0o022)
    try:
        store = make_store(tmp_path / "store")
        store.put(Checkpoint("s", "fp", {"x": 1, "big": list(range(1000))}, result=3, has_result=True))
    finally:
        os.umask(old)
    root = tmp_path / "store"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode) == 0o700, d
        for f in filenames:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode) == 0o600, f


def test_key_file_others_can_write_is_refused(key_file):
    signing.load_key()
    os.chmod(key_file, 0o666)
    with pytest.raises(signing.KeyFileError) as info:
        signing.load_key()
    assert "chmod 600" in str(info.value) and str(key_file) in str(info.value)
    os.chmod(key_file, 0o600)
    assert signing.load_key()


def test_open_store_reports_unsafe_key_as_one_line(tmp_path, key_file):
    signing.load_key()
    os.chmod(key_file, 0o622)
    with pytest.raises(StoreError, match="chmod 600"):
        open_store(tmp_path / "store")
    assert not (tmp_path / "store" / "s").exists()


def test_key_file_refusal_in_ipython_is_one_line(tmp_path, key_file):
    """A real IPython shell: the error names the file and the fix, no nbsteps frames."""
    signing.load_key()
    os.chmod(key_file, 0o666)
    code = f"""
from IPython.testing.globalipapp import start_ipython
ip = start_ipython()
ip.run_line_magic('load_ext', 'nbsteps')
r = ip.run_cell('%steps store {tmp_path / "store"}')
"""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "NBSTEPS_KEY_FILE": str(key_file)},
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert "StoreError" in out and "chmod 600" in out
    assert "diskstore.py" not in out and "signing.py" not in out
