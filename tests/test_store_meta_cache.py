"""A directory store keeps the metadata files it verified (nbsteps.stores.meta_cache) only
while they do not change: another process's write is read, a file tampered with in place
is verified again and refused, even with its modification time set back; real files,
real DiskStore objects, a real second process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import warned_store as make_store  # its warnings kept in store.warnings

from nbsteps.stores import Checkpoint
from nbsteps.stores.disk import DiskStore
from nbsteps.stores.layout import meta_name

REPO = Path(__file__).resolve().parents[1]

WRITER = """
import sys
from nbsteps.stores import Checkpoint
from nbsteps.stores.disk import DiskStore
store = DiskStore(sys.argv[1])
store.put(Checkpoint("s", "fp", {"x": 2}, None, False, parts={"token": "t2"}, duration=2.0))
store.flush()
print("ok")
"""


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "secret_key"
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(path))
    return path


def written(directory) -> Path:
    """A checkpoint of step s (fingerprint fp) written by this process, older than the
    window in which the cache compares bytes (it then trusts the file's identity)."""
    store = make_store(directory)
    store.put(Checkpoint("s", "fp", {"x": 1}, None, False, parts={"token": "t1"}, duration=1.0))
    store.flush()
    time.sleep(0.3)
    return directory / "s" / meta_name("fp")


def read_and_kept(store: DiskStore) -> None:
    """Read s twice: the second read is the cache's (no signature checked again)."""
    assert store.peek("s", "fp").duration == 1.0
    cache = store.reader.metas
    reads, hits = cache.reads, cache.hits
    assert store.peek("s", "fp").duration == 1.0 and store.peek("s").duration == 1.0
    assert (cache.reads, cache.hits) == (reads, hits + 2)


def test_a_checkpoint_another_process_writes_is_read_not_the_kept_one(tmp_path, key_file):
    directory = tmp_path / "store"
    written(directory)
    reader = make_store(directory)
    read_and_kept(reader)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.run(
        [sys.executable, "-c", WRITER, str(directory)], env=env, capture_output=True, text=True
    )
    assert child.returncode == 0 and child.stdout.strip() == "ok", child.stderr
    got = reader.peek("s", "fp")
    assert got.duration == 2.0 and got.parts["token"] == "t2"
    assert reader.get("s", "fp").outputs["x"] == 2 and reader.peek("s").duration == 2.0
    assert reader.warnings == []


@pytest.mark.parametrize("times", ["as the edit left them", "set back"])
def test_metadata_tampered_with_in_place_is_verified_again_and_refused(tmp_path, key_file, times):
    meta = written(tmp_path / "store")
    reader = make_store(tmp_path / "store")
    read_and_kept(reader)
    before = os.stat(meta)
    raw = meta.read_bytes()
    forged = raw.replace(b'"duration": 1.0', b'"duration": 9.0')
    assert forged != raw and len(forged) == len(raw)
    fd = os.open(meta, os.O_WRONLY)  # in place: the same inode and size
    try:
        os.write(fd, forged)
    finally:
        os.close(fd)
    if times == "set back":  # the modification time is the one the cache saw; the change time is not
        os.utime(meta, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(meta)
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)
    assert reader.peek("s", "fp") is None
    ((step, message),) = reader.warnings
    assert step == "s" and "does not match its signature" in message
    assert reader.get("s", "fp") is None  # the untrusted checkpoint was removed, never kept


def test_metadata_tampered_with_as_soon_as_it_was_read_is_refused(tmp_path, key_file):
    """Written, read and edited within one tick of the file system's clock: the times
    may not tell, the bytes do."""
    store = make_store(tmp_path / "store")
    store.put(Checkpoint("s", "fp", {"x": 1}, None, False, parts={"token": "t1"}, duration=1.0))
    meta = tmp_path / "store" / "s" / meta_name("fp")
    assert store.peek("s", "fp").duration == 1.0
    raw = meta.read_bytes()
    fd = os.open(meta, os.O_WRONLY)
    try:
        os.write(fd, raw.replace(b'"duration": 1.0', b'"duration": 9.0'))
    finally:
        os.close(fd)
    assert store.peek("s", "fp") is None
    assert "does not match its signature" in store.warnings[0][1]


def test_this_process_s_put_and_drop_are_seen(tmp_path, key_file):
    directory = tmp_path / "store"
    written(directory)
    store = make_store(directory)
    read_and_kept(store)
    store.put(Checkpoint("s", "fp", {"x": 3}, None, False, parts={"token": "t3"}, duration=3.0))
    assert store.peek("s", "fp").duration == 3.0
    store.drop("s")
    assert store.peek("s", "fp") is None and store.peek("s") is None
    assert store.warnings == []
