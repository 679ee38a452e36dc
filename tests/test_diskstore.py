"""The durable checkpoint store: real files, real processes, real failures."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import warned_store as make_store  # its warnings kept in store.warnings

from nbsteps.stores import Checkpoint, signing
from nbsteps.stores.disk import DiskStore
from nbsteps.stores.layout import meta_name

REPO = Path(__file__).resolve().parents[1]


class Point:
    """A user class: pickled (by reference) with cloudpickle."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    path = tmp_path / "keys" / "secret_key"
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(path))
    return path


@pytest.fixture
def store(tmp_path, key_file):
    return make_store(tmp_path / "store")


def folder(store: DiskStore, step: str) -> Path:
    return store.directory / step


def value_file(store: DiskStore, step: str, suffix: str) -> Path:
    (path,) = folder(store, step).glob(f"*{suffix}")
    return path


def meta_file(store: DiskStore, step: str) -> Path:
    """The metadata file of the step's only checkpoint."""
    (path,) = folder(store, step).glob("*.meta")
    return path


def no_debris(path: Path) -> None:
    """Every file of a step folder is a metadata file or a value file one names; no temporary files."""
    from nbsteps.stores.layout import parse_meta

    names = {p.name for p in path.iterdir()}
    named = set()
    for meta in path.glob("*.meta"):
        named.update(e["file"] for e in parse_meta(meta.read_bytes(), None)["values"])
    assert names == named | {p.name for p in path.glob("*.meta")}, sorted(names - named)


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


# -- the key ---------------------------------------------------------------------


def test_key_file_created_private_and_reused(key_file):
    assert not key_file.exists()
    key = signing.load_key()
    assert len(key) == signing.KEY_BYTES
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert signing.load_key() == key  # the same key next time
    assert not [p for p in key_file.parent.iterdir() if p != key_file]  # no temporary files left


def test_key_default_location_is_outside_the_notebook(tmp_path, monkeypatch):
    monkeypatch.delenv("NBSTEPS_KEY_FILE", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert signing.key_path() == tmp_path / "home" / ".local" / "share" / "nbsteps" / "secret_key"
    signing.load_key()
    assert signing.key_path().stat().st_mode & 0o777 == 0o600


def test_key_created_once_under_concurrent_first_use(key_file):
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: signing.load_key(), range(32)))
    assert len(keys) == 1


def test_sign_and_verify():
    key, other = b"k" * 32, b"o" * 32
    sig = signing.sign(key, b"data")
    assert signing.verify(key, b"data", sig)
    assert not signing.verify(key, b"Data", sig)
    assert not signing.verify(other, b"data", sig)
    assert not signing.verify(key, b"data", None)
    assert not signing.verify(key, b"data", "é" * 64)


# -- round trips -------------------------------------------------------------------


def test_dataframe_round_trip_uses_parquet(store):
    import pyarrow.parquet as pq

    df = pd.DataFrame(
        {
            "i": np.arange(5),
            "f": np.linspace(0, 1, 5),
            "s": list("abcde"),
            "c": pd.Categorical(list("xyxyx")),
            "n": pd.array([1, None, 3, None, 5], dtype="Int64"),
            "t": pd.date_range("2024-01-01", periods=5, freq="h", tz="Europe/Paris"),
        },
        index=pd.date_range("2020-01-01", periods=5, freq="D", name="day"),
    )
    series = pd.Series([1.5, 2.5], index=["a", "b"], name="price")
    store.put(Checkpoint("load", "fp", {"df": df, "price": series}, parts={"code": "x = 1"}))

    parquet_files = sorted(folder(store, "load").glob("*.parquet"))
    assert len(parquet_files) == 2 and not list(folder(store, "load").glob("*.pkl"))
    assert parquet_files[0].read_bytes()[:4] == b"PAR1"
    assert pq.read_table(parquet_files[0]).num_rows == 5  # readable by other tools

    cp = make_store(store.directory).get("load", "fp")
    pd.testing.assert_frame_equal(cp.outputs["df"], df, check_freq=True)
    assert cp.outputs["df"].index.freqstr == "D"
    pd.testing.assert_series_equal(cp.outputs["price"], series)
    assert cp.parts == {"code": "x = 1"} and cp.has_result is False
    loaded = cp.outputs["df"]
    loaded.iloc[0, 0] = 99  # restored frames are ordinary, writable frames
    assert loaded.iloc[0, 0] == 99


def test_numeric_frames_use_arrow_ipc_without_copying(store):
    import pyarrow.feather as feather

    arr = np.random.default_rng(0).random((1000, 3))
    arr[3, 1] = np.nan
    df = pd.DataFrame(arr, columns=["a", "b", "c"])
    df["i"] = np.arange(1000, dtype="int32")
    df["flag"] = df["a"] > 0.5
    indexed = pd.DataFrame({"v": np.arange(4.0)}, index=pd.Index([10, 20, 30, 40], name="k"))
    series = pd.Series(np.arange(3.0), name="s")
    store.put(Checkpoint("num", "fp", {"df": df, "indexed": indexed, "series": series}))
    files = sorted(folder(store, "num").glob("*.arrow"))
    assert len(files) == 3 and not list(folder(store, "num").glob("*.p*"))
    assert files[0].read_bytes()[:6] == b"ARROW1"
    assert feather.read_table(files[0]).num_rows == 1000  # a Feather v2 file: readable by other tools
    cp = make_store(store.directory).get("num", "fp")
    pd.testing.assert_frame_equal(cp.outputs["df"], df, check_exact=True)
    assert np.isnan(cp.outputs["df"]["b"].iloc[3])
    pd.testing.assert_frame_equal(cp.outputs["indexed"], indexed, check_exact=True)
    pd.testing.assert_series_equal(cp.outputs["series"], series, check_exact=True)
    loaded = cp.outputs["df"]
    loaded.iloc[0, 0] = 99.0  # restored frames are ordinary, writable frames
    loaded["a"] += 1
    assert loaded.iloc[0, 0] == 100.0


def test_dataframes_parquet_cannot_hold_are_pickled(store):
    frames = {
        "int_columns": pd.DataFrame({1: [1, 2], 2: [3, 4]}),
        "mixed_object": pd.DataFrame({"m": [1, "a"]}),
        "lists": pd.DataFrame({"l": [[1, 2], [3]]}),
        "duplicate_columns": pd.DataFrame([[1, 2]], columns=["a", "a"]),
        "complex": pd.DataFrame({"z": [1 + 2j]}),
    }
    store.put(Checkpoint("odd", "fp", frames))
    assert len(list(folder(store, "odd").glob("*.pkl"))) == len(frames)
    assert not list(folder(store, "odd").glob("*.parquet"))
    cp = make_store(store.directory).get("odd", "fp")
    for name, df in frames.items():
        pd.testing.assert_frame_equal(cp.outputs[name], df)


def test_other_values_round_trip_with_cloudpickle(store):
    outputs = {
        "d": {"a": [1, 2, (3, 4)], "b": None},
        "l": [1, "two", 3.0],
        "p": Point(1, 2),
        "f": lambda v: v * 2,
        "arr": np.arange(10.0).reshape(2, 5, order="F"),
    }
    store.put(Checkpoint("misc", "fp", outputs, result=None, has_result=True, duration=1.5, finished=123.0))
    assert len(list(folder(store, "misc").glob("*.pkl"))) == 6  # five outputs and the None result

    cp = make_store(store.directory).get("misc", "fp")
    assert cp.outputs["d"] == outputs["d"] and cp.outputs["l"] == outputs["l"]
    assert cp.outputs["p"] == Point(1, 2)
    assert cp.outputs["f"](21) == 42
    np.testing.assert_array_equal(cp.outputs["arr"], outputs["arr"])
    assert cp.has_result is True and cp.result is None
    assert (cp.duration, cp.finished) == (1.5, 123.0)


class Fitted:
    """Like statsmodels' results: ``__getstate__`` edits the live object ("remove
    unpicklable methods") and hands back its own ``__dict__``."""

    def __init__(self):
        self.settings = {"callback": self.check, "maxiter": 35}

    def check(self, x):
        return x + 1

    def __getstate__(self):
        self.settings["callback"] = None
        return self.__dict__


class Guarded:
    """A class whose ``__getstate__`` drops something really unpicklable, also in place."""

    def __init__(self):
        self.lock = threading.Lock()
        self.shared = {"lock": self.lock, "n": 3}

    def __getstate__(self):
        self.shared["lock"] = None
        state = dict(self.__dict__)
        del state["lock"]
        return state


def test_checkpointing_leaves_live_objects_unchanged_and_loses_nothing(store):
    fitted, guarded = Fitted(), Guarded()
    store.put(Checkpoint("fit", "fp", {"res": fitted, "g": guarded}))
    # the user's objects are as they were (a plain Run All never pickles them)
    assert fitted.settings["callback"] == fitted.check
    assert guarded.shared["lock"] is guarded.lock
    cp = make_store(store.directory).get("fit", "fp")
    res = cp.outputs["res"]  # what __getstate__ dropped in place came back
    assert res.settings == {"callback": res.check, "maxiter": 35} and res.settings["callback"](1) == 2
    g = cp.outputs["g"]  # really unpicklable: the class's own pickling, nothing else lost
    assert g.shared == {"lock": None, "n": 3} and not hasattr(g, "lock")


DYNAMIC_PACKAGE = """
import sys, types

def __getattr__(name):  # like marray: `from dynpkg import dyn` makes the submodule
    if name != "dyn":
        raise AttributeError(name)
    mod = types.ModuleType(__name__ + ".dyn")
    exec("def make():\\n    class Box:\\n        def __init__(self, v):\\n"
         "            self.v = v\\n    return Box\\n"
         "Box = make()\\n", mod.__dict__)  # a class made in a function, as marray's MArray
    sys.modules[mod.__name__] = mod
    return mod
"""


def test_values_of_a_submodule_made_on_attribute_access_load_in_a_new_process(tmp_path, key_file):
    (tmp_path / "dynpkg").mkdir()
    (tmp_path / "dynpkg" / "__init__.py").write_text(DYNAMIC_PACKAGE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    write = (
        "from dynpkg import dyn\nfrom nbsteps.stores.disk import DiskStore\n"
        "from nbsteps.stores import Checkpoint\n"
        f"DiskStore({str(tmp_path / 'store')!r}).put(Checkpoint('s', "
        f"'fp', {{'box': dyn.Box(3), 'mod': dyn}}))"
    )
    read = (
        "from nbsteps.stores.disk import DiskStore\n"
        f"cp = DiskStore({str(tmp_path / 'store')!r}).get('s', 'fp')\n"
        "print(cp.outputs['box'].v, cp.outputs['mod'].__name__, "
        "type(cp.outputs['box']) is cp.outputs['mod'].Box)"
    )
    for code in (write, read):
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["3", "dynpkg.dyn", "True"]  # the module's class, not a copy of it


def test_result_and_no_outputs(store):
    store.put(Checkpoint("answer", "fp", {}, result={"x": 42}, has_result=True))
    cp = make_store(store.directory).get("answer")
    assert cp.outputs == {} and cp.result == {"x": 42} and cp.has_result


def test_peek_reads_metadata_only(store):
    parts = {"code": "abc", "upstream": {"load": "f1"}, "params": {}, "helpers": {}}
    store.put(Checkpoint("model", "fp", {"x": 1}, parts=parts, duration=2.0, finished=99.0))
    value_file(store, "model", ".pkl").write_bytes(b"garbage")  # values are not even read
    cp = make_store(store.directory).peek("model")
    assert cp.fingerprint == "fp" and cp.parts == parts and cp.outputs == {}
    assert (cp.duration, cp.finished) == (2.0, 99.0)


def test_parts_that_json_cannot_hold_survive(store):
    parts = {"code": "x", "key": ("a", 1), 3: {1.5}}
    store.put(Checkpoint("p", "fp", {"x": 1}, parts=parts))
    assert make_store(store.directory).peek("p").parts == parts


def test_fingerprint_mismatch_returns_none_without_loading(store):
    store.put(Checkpoint("s", "old", {"x": 1}))
    value_file(store, "s", ".pkl").write_bytes(b"not read when stale")
    assert store.get("s", "new") is None
    assert store.warnings == []  # the value file was not opened
    assert store.get("s", "old") is None  # now it is read, and found bad
    assert len(store.warnings) == 1


def test_each_fingerprint_keeps_its_checkpoint(store):
    for i in range(3):
        store.put(Checkpoint("s", f"fp{i}", {"df": pd.DataFrame({"a": [i]}), "x": i}))
    names = sorted(p.name for p in folder(store, "s").iterdir())
    assert len(names) == 9 and {meta_name(f"fp{i}") for i in range(3)} <= set(
        names
    )  # 3 x (metadata + 2 values)
    fresh = make_store(store.directory)
    assert fresh.get("s", "fp1").outputs["x"] == 1  # switching back restores
    assert fresh.get("s", "fp2").outputs["x"] == 2
    assert fresh.peek("s").fingerprint == "fp2"  # the latest: last written or used
    assert fresh.fingerprints("s") == ["fp0", "fp1", "fp2"]
    assert fresh.get("s", "fp0").outputs["x"] == 0
    assert make_store(store.directory).peek("s").fingerprint == "fp0"  # a restore makes it the latest
    # a new put of a fingerprint replaces that checkpoint only
    store.put(Checkpoint("s", "fp1", {"x": 11}))
    assert len(list(folder(store, "s").iterdir())) == 8
    assert make_store(store.directory).get("s", "fp1").outputs == {"x": 11}
    no_debris(folder(store, "s"))


def test_step_names_with_upper_case_and_hyphens(store):
    store.put(Checkpoint("Load-Data", "a", {"x": 1}))
    store.put(Checkpoint("load-data", "b", {"x": 2}))
    other = make_store(store.directory)
    assert other.get("Load-Data").outputs == {"x": 1}
    assert other.get("load-data").outputs == {"x": 2}
    assert other.steps() == ["Load-Data", "load-data"]


def test_drop_steps_describe(store):
    store.put(Checkpoint("a", "fp", {"x": 1}))
    store.put(Checkpoint("b", "fp", {"x": 2}))
    assert store.steps() == ["a", "b"]
    assert store.describe() == str(store.directory)
    store.drop("a")
    assert not folder(store, "a").exists()
    assert store.get("a") is None and store.steps() == ["b"]
    store.drop("never-existed")  # no error


def test_import_is_lazy():
    code = (
        "import sys, nbsteps.stores.disk; "
        "print(sorted({'pandas', 'pyarrow', 'cloudpickle'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


# -- untrusted checkpoints -----------------------------------------------------------


def assert_rejected(store: DiskStore, step: str, *words: str) -> None:
    """get returns None, a warning names the step (and *words*), the checkpoint is gone."""
    fresh = make_store(store.directory)
    assert fresh.get(step, "fp") is None
    assert len(fresh.warnings) == 1, fresh.warnings
    warned_step, message = fresh.warnings[0]
    assert warned_step == step and repr(step) in message
    assert "recomputed" in message
    for word in words:
        assert word in message
    assert not list(folder(store, step).glob("*.meta"))
    assert fresh.get(step, "fp") is None and len(fresh.warnings) == 1  # reported once


def test_truncated_value_file(store):
    store.put(Checkpoint("s", "fp", {"df": pd.DataFrame({"a": range(1000)})}))
    path = value_file(store, "s", ".arrow")
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
    assert_rejected(store, "s", path.name, "truncated")


def test_bit_flipped_value_file(store):
    store.put(Checkpoint("s", "fp", {"x": list(range(1000))}))
    path = value_file(store, "s", ".pkl")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    assert_rejected(store, "s", path.name, "signature")


def test_missing_value_file(store):
    store.put(Checkpoint("s", "fp", {"x": 1}))
    path = value_file(store, "s", ".pkl")
    path.unlink()
    assert_rejected(store, "s", path.name, "missing")


def test_tampered_metadata(store):
    store.put(Checkpoint("s", "fp", {"x": 1}))
    meta = meta_file(store, "s")
    meta.write_bytes(meta.read_bytes().replace(b'"duration": 0.0', b'"duration": 1.0'))
    assert_rejected(store, "s", meta.name, "signature")


def test_unsigned_metadata(store):
    store.put(Checkpoint("s", "fp", {"x": 1}))
    meta = meta_file(store, "s")
    meta.write_bytes(meta.read_bytes().split(b"\n", 1)[1])  # the body alone
    assert_rejected(store, "s", meta.name, "not signed")


def test_checkpoint_of_another_step_is_not_taken(store):
    store.put(Checkpoint("a", "fp", {"x": 1}))
    shutil.copytree(folder(store, "a"), folder(store, "b"))
    assert_rejected(store, "b", "belongs to step 'a'")


def test_signed_with_another_key(store, tmp_path):
    store.put(Checkpoint("s", "fp", {"x": 1}))
    stranger = make_store(store.directory, key=b"another user's key, 32 bytes...")
    assert stranger.get("s", "fp") is None
    ((step, message),) = stranger.warnings
    assert step == "s" and "another key" in message and "recomputed" in message


class _Evil:
    """What an attacker would put in a checkpoint: unpickling creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_foreign_pickle_is_never_unpickled(store, tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Evil(str(marker)), protocol=5)
    pickle.loads(payload)  # the payload works ...
    assert marker.exists()
    marker.unlink()

    store.put(Checkpoint("s", "fp", {"x": "x" * 1000}))
    path = value_file(store, "s", ".pkl")
    # same size as the real file, so only the signature can tell (pickle ignores trailing bytes)
    path.write_bytes(payload + b"\0" * (path.stat().st_size - len(payload)))
    assert_rejected(store, "s", path.name, "signature")
    assert not marker.exists()  # ... but was never unpickled

    # A whole checkpoint from elsewhere, validly signed with another key: the
    # metadata signature fails, so nothing in it is read.
    attacker = make_store(tmp_path / "attacker", key=b"the attacker's own key")
    attacker.put(Checkpoint("s", "fp", {"x": _Evil(str(marker))}))
    shutil.rmtree(folder(store, "s"), ignore_errors=True)
    shutil.copytree(folder(attacker, "s"), folder(store, "s"))
    assert_rejected(store, "s", meta_name("fp"), "another key")
    assert not marker.exists()
    attacker.get("s", "fp")  # with the attacker's own key it is trusted, and runs
    assert marker.exists()


# -- values that cannot be written ------------------------------------------------------


def test_unpicklable_values_stay_in_memory(store):
    lock = threading.Lock()
    gen = (i for i in range(3))
    store.put(Checkpoint("s", "fp", {"lock": lock, "ok": [1, 2], "gen": gen}))
    ((step, message),) = store.warnings
    assert step == "s" and "'lock'" in message and "'gen'" in message and "'ok'" not in message
    assert "memory" in message
    cp = store.get("s", "fp")
    assert cp.outputs["lock"] is lock and cp.outputs["gen"] is gen  # the very objects
    assert store.peek("s").fingerprint == "fp" and store.steps() == ["s"]
    # nothing half-written on disk: only the note that says why (nbsteps.stores.notes)
    assert sorted(p.name for p in folder(store, "s").iterdir()) == ["unstored"]
    assert make_store(store.directory).get("s") is None  # and nothing for another process

    store.put(Checkpoint("s", "fp2", {"ok": [1, 2]}))  # picklable again: back on disk
    assert make_store(store.directory).get("s", "fp2").outputs == {"ok": [1, 2]}


def test_unpicklable_result_named(store):
    store.put(Checkpoint("s", "fp", {"x": 1}, result=threading.Lock(), has_result=True))
    ((_, message),) = store.warnings
    assert "the result" in message
    assert store.get("s", "fp").outputs == {"x": 1}


def test_unpicklable_checkpoint_leaves_the_other_fingerprints_on_disk(store):
    store.put(Checkpoint("s", "fp1", {"x": 1}))
    store.put(Checkpoint("s", "fp2", {"x": [2]}))
    store.put(Checkpoint("s", "fp2", {"x": threading.Lock()}))
    assert store.get("s").fingerprint == "fp2"  # the latest: the one in memory
    assert isinstance(store.get("s", "fp2").outputs["x"], type(threading.Lock()))
    other = make_store(store.directory)
    assert other.get("s", "fp1").outputs == {"x": 1}  # another fingerprint: still on disk
    assert other.get("s", "fp2") is None  # superseded by the one in memory: removed from disk
    assert store.get("s", "fp1").outputs == {"x": 1}


def test_store_directory_gone_keeps_memory(store):
    store.put(Checkpoint("a", "fp", {"x": 1}))
    shutil.rmtree(store.directory)
    store.directory.write_text("a file where the store was")
    cp = Checkpoint("b", "fp", {"x": 2})
    store.put(cp)  # never raises
    ((step, message),) = store.warnings
    assert step == "b" and str(store.directory) in message and "Error" in message
    assert store.get("b", "fp") is cp


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits (see the tmpfs tests)")
def test_directory_without_write_permission(store):
    store.directory.chmod(0o500)
    try:
        store.put(Checkpoint("s", "fp", {"x": 1}))
    finally:
        store.directory.chmod(0o700)
    ((step, message),) = store.warnings
    assert step == "s" and "Permission" in message
    assert store.get("s", "fp").outputs == {"x": 1}


@contextmanager
def tmpfs(path: Path, options: str):
    """A small real file system; skips the test where mounting is not allowed."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_read_only_file_system(tmp_path, key_file):
    with tmpfs(tmp_path / "mnt", "size=4m") as mnt:
        store = make_store(mnt / "store")
        store.put(Checkpoint("a", "fp", {"x": 1}))
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        store.put(Checkpoint("b", "fp", {"x": 2}))
        ((step, message),) = store.warnings
        assert step == "b" and str(store.directory) in message and "Read-only file system" in message
        assert store.get("b", "fp").outputs == {"x": 2}  # from memory
        assert make_store(mnt / "store").get("a", "fp").outputs == {"x": 1}  # still readable


def test_disk_full(tmp_path, key_file):
    with tmpfs(tmp_path / "mnt", "size=2m") as mnt:
        store = make_store(mnt / "store")
        store.put(Checkpoint("s", "small", {"x": 1}))
        big = Checkpoint("s", "big", {"a": np.ones(1_000_000), "df": pd.DataFrame({"b": np.ones(500_000)})})
        store.put(big)
        ((step, message),) = store.warnings
        assert step == "s" and str(store.directory) in message and "No space left" in message
        assert store.get("s", "big") is big
        # the half-written files are gone; the previous checkpoint is intact
        assert len(list(folder(store, "s").iterdir())) == 2
        assert make_store(mnt / "store").get("s", "small").outputs == {"x": 1}


def test_put_never_raises_on_encoder_errors(store):
    class Weird:
        def __reduce__(self):
            raise ValueError("no way")

    store.put(Checkpoint("s", "fp", {"w": Weird()}))
    ((_, message),) = store.warnings
    assert "'w'" in message and "no way" in message


# -- concurrency and crashes ----------------------------------------------------------------


def test_threads_putting_different_steps(store):
    def put(i):
        df = pd.DataFrame({"a": np.full(50_000, i)})
        store.put(Checkpoint(f"s{i}", f"fp{i}", {"df": df, "i": i, "arr": np.full(100_000, i)}))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(16)))
    fresh = make_store(store.directory)
    for i in range(16):
        cp = fresh.get(f"s{i}", f"fp{i}")
        assert cp.outputs["i"] == i and (cp.outputs["df"]["a"] == i).all() and (cp.outputs["arr"] == i).all()
    assert store.warnings == [] and fresh.warnings == []


KILL_CHILD = r"""
import sys
import numpy as np, pandas as pd
from nbsteps.stores.disk import DiskStore
from nbsteps.stores import Checkpoint

store = DiskStore(sys.argv[1])
n = 6_250_000  # a 100 MB DataFrame (Parquet) and a 100 MB array (pickle)
i = 0
while True:
    i += 1
    df = pd.DataFrame({"a": np.full(n, float(i)), "b": np.arange(n, dtype="float64")})
    arr = np.full(2 * n, i, dtype="int64")
    print(i, flush=True)
    store.put(Checkpoint("big", f"fp{i}", {"df": df, "arr": arr}, result=i, has_result=True))
"""


def check_big(store: DiskStore):
    """The checkpoint of 'big' is either absent or complete and consistent."""
    cp = store.get("big")
    if cp is None:
        return None
    i = cp.result
    assert cp.fingerprint == f"fp{i}"
    assert (cp.outputs["df"]["a"] == i).all() and len(cp.outputs["df"]) == 6_250_000
    assert (cp.outputs["arr"] == i).all() and len(cp.outputs["arr"]) == 12_500_000
    return i


def test_sigkill_while_writing_leaves_nothing_untrusted(tmp_path, key_file):
    directory = tmp_path / "store"
    seen = []
    # kill at various points of the first put, then once after a put completed
    for puts_started, delay in ((1, 0.05), (1, 0.4), (1, 0.9), (2, 0.3)):
        child = subprocess.Popen(
            [sys.executable, "-c", KILL_CHILD, str(directory)],
            env=child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            for n in range(1, puts_started + 1):
                assert child.stdout.readline().strip() == str(n)  # put n has started
            time.sleep(delay)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        store = make_store(directory)
        seen.append(check_big(store))
        assert store.warnings == []  # killed writes are invisible, not "corrupt"
    assert seen[-1] is not None, seen  # the put completed before the last kill is intact
    # the next put clears the debris of the killed writers
    store = make_store(directory)
    store.put(Checkpoint("big", "fp0", {"x": 1}))
    assert store.get("big", "fp0").outputs == {"x": 1}
    no_debris(folder(store, "big"))  # only complete checkpoints (one per fingerprint) are left


CONCURRENT_CHILD = r"""
import sys
import numpy as np, pandas as pd
from nbsteps.stores.disk import DiskStore
from nbsteps.stores import Checkpoint

directory, tag = sys.argv[1], sys.argv[2]
store = DiskStore(directory)
problems = []
store.warn = lambda step, message: problems.append(message)
for i in range(25):
    value = {"tag": tag, "i": i, "arr": np.full(200_000, i), "df": pd.DataFrame({"t": [tag] * 1000, "i": i})}
    for step in ("shared", "own-" + tag):
        store.put(Checkpoint(step, f"{tag}-{i}", value))
assert not problems, problems
print("ok", flush=True)
"""


def check_consistent(cp: Checkpoint) -> None:
    tag, i = cp.outputs["tag"], cp.outputs["i"]
    assert cp.fingerprint == f"{tag}-{i}"
    assert (
        (cp.outputs["arr"] == i).all()
        and (cp.outputs["df"]["t"] == tag).all()
        and (cp.outputs["df"]["i"] == i).all()
    )


def test_two_processes_one_directory(tmp_path, key_file):
    directory = tmp_path / "store"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_CHILD, str(directory), tag],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("p", "q")
    ]
    reader = None
    reads = 0
    while any(c.poll() is None for c in children):  # read while they write
        if directory.exists():
            reader = reader or make_store(directory)
            cp = reader.get("shared")
            if cp is not None:
                check_consistent(cp)
                reads += 1
    for child in children:
        out, err = child.communicate()
        assert child.returncode == 0 and out.strip() == "ok", err
    store = make_store(directory)
    assert store.steps() == ["own-p", "own-q", "shared"]
    for step in store.steps():
        cp = store.get(step)
        check_consistent(cp)
        assert cp.outputs["i"] == 24
    assert store.warnings == [] and (reader is None or reader.warnings == [])
    assert len(store.fingerprints("shared")) == 50  # every checkpoint of both kernels is kept
    no_debris(folder(store, "shared"))  # no leftovers


def test_result_that_is_an_output_is_written_once(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(tmp_path / "key"))
    import pandas as pd

    from nbsteps.stores import Checkpoint
    from nbsteps.stores.disk import DiskStore

    store = DiskStore(tmp_path / "s")
    df = pd.DataFrame({"a": [1, 2]})
    store.put(Checkpoint("f", "fp", {"f": df}, df, True))
    files = [p for p in (tmp_path / "s").rglob("*") if p.suffix in (".parquet", ".pkl", ".arrow")]
    assert len(files) == 1
    cp = store.get("f", "fp")
    assert cp.result is cp.outputs["f"] and cp.result.equals(df)
