"""Frames written as Arrow or Parquet skip the sample round trip once a frame of the same
shape came back equal (stores.encoding._frame_shape): every frame of a shape still comes
back exactly, whatever its length and values, and a shape that fails the sample is pickled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import warned_store as make_store

from nbsteps.stores import Checkpoint


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(tmp_path / "keys" / "secret_key"))
    return make_store(tmp_path / "store")


def assert_all_equal(got: dict, values: dict) -> None:
    """Each value read back is its frame or series exactly (types of index and columns too)."""
    for name, value in values.items():
        if isinstance(value, pd.Series):
            pd.testing.assert_series_equal(got[name], value, check_exact=True, check_index_type=True)
        else:
            pd.testing.assert_frame_equal(
                got[name], value, check_exact=True, check_index_type=True, check_column_type=True
            )


def _frames(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    a = rng.random(n)
    if n > 3:
        a[[1, 3]] = [np.nan, -0.0]
    return {
        "plain": pd.DataFrame({"a": a, "i": np.arange(n, dtype="int32"), "flag": a > 0.5}),
        "int_labels": pd.DataFrame({0: a, 7: np.arange(n, dtype="uint64") * 2**40}),
        "stepped": pd.DataFrame({"v": a}, index=pd.RangeIndex(5, 5 + 3 * n, 3, name="r")),
        "float_index": pd.DataFrame({"v": a}, index=pd.Index(rng.random(n), name="x")),
        "series": pd.Series(a, name="s"),
        "unnamed": pd.Series(np.arange(n, dtype="int16")),
    }


def test_frames_of_one_shape_come_back_exactly_whatever_their_length(store):
    encodings = set()
    for k, n in enumerate((70, 0, 1, 64, 65, 1000, 3)):
        values = _frames(n, k)
        store.put(Checkpoint(f"s{k}", "fp", values))
        got = make_store(store.directory).get(f"s{k}", "fp").outputs
        files = sorted(p.name.split("-", 1)[1] for p in (store.directory / f"s{k}").glob("*-*.*"))
        if n:  # the same encoding for each value as the first frame of its shape, sampled
            encodings.add(tuple(files))
        assert "0.arrow" in files and "4.arrow" in files
        assert_all_equal(got, values)
        assert np.signbit(got["plain"]["a"].to_numpy()).tolist() == np.signbit(values["plain"]["a"]).tolist()
    assert len(encodings) == 1


def test_a_frame_with_attrs_is_sampled_again(store):
    df = pd.DataFrame({"a": np.arange(3.0)})
    store.put(Checkpoint("plain", "fp", {"df": df}))
    with_attrs = df.copy()
    with_attrs.attrs["unit"] = "m"
    store.put(Checkpoint("attrs", "fp", {"df": with_attrs}))
    got = make_store(store.directory).get("attrs", "fp").outputs["df"]
    assert got.attrs == {"unit": "m"}
    pd.testing.assert_frame_equal(got, with_attrs, check_exact=True)


def _mixed(n: int, seed: int) -> dict:
    """Frames Arrow cannot take as they are (strings, timestamps, categoricals,
    nullable integers): written as Parquet."""
    rng = np.random.default_rng(seed)
    words = np.array(["", "a", "é", "naïve", "日本", "x" * 40])
    ts = pd.to_datetime(rng.integers(0, 2**62, n), unit="ns")
    ints = pd.array(rng.integers(-5, 5, n), dtype="Int64")
    if n > 3:
        ints[2] = pd.NA
    pick = words[rng.integers(0, len(words), n)]
    levels = ["lo", "hi", "mid"]
    return {
        "strings": pd.DataFrame({"s": pick, "v": rng.random(n)}),
        "stamps": pd.DataFrame({"t": ts, "tz": ts.tz_localize("UTC").tz_convert("Asia/Kolkata")}),
        "categories": pd.DataFrame({"c": pd.Categorical(rng.choice(levels[:2], n), categories=levels)}),
        "nullable": pd.DataFrame({"i": ints}, index=pd.Index(pick[::-1], name="w")),
        "series": pd.Series(words[rng.integers(0, len(words), n)], name="words"),
    }


def test_parquet_frames_of_one_shape_come_back_exactly_and_are_sampled_once(store, monkeypatch):
    from nbsteps.stores import encoding

    reads = []
    real = encoding.parquet_read
    monkeypatch.setattr(encoding, "parquet_read", lambda data: reads.append(1) or real(data))
    encoding._SAMPLED.clear()
    for k, n in enumerate((70, 1, 64, 65, 1000, 3)):
        values = _mixed(n, k)
        store.put(Checkpoint(f"m{k}", "fp", values))
        if k == 0:
            sampled = len(reads)
            assert sampled == len(values)  # one sample of each shape
        got = make_store(store.directory).get(f"m{k}", "fp").outputs
        files = sorted(p.name.split("-", 1)[1] for p in (store.directory / f"m{k}").glob("*-*.*"))
        assert files == [f"{i}.parquet" for i in range(len(values))], files
        assert_all_equal(got, values)
    assert len(reads) - sampled <= 5 * 6  # the reads of the values themselves (get), no more samples


def test_another_categories_or_zone_is_another_shape(store):
    from nbsteps.stores import encoding

    encoding._SAMPLED.clear()
    a = pd.DataFrame({"c": pd.Categorical(["x"], categories=["x", "y"])})
    b = pd.DataFrame({"c": pd.Categorical(["x"], categories=["x", "z"])})
    t = pd.DataFrame({"t": pd.to_datetime([0]).tz_localize("UTC")})
    u = pd.DataFrame({"t": pd.to_datetime([0]).tz_localize("Europe/Paris")})
    shapes = {encoding._frame_shape(f, "frame", "parquet") for f in (a, b, t, u)}
    assert len(shapes) == 4
