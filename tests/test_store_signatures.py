"""Signatures of a directory store after issue 26: new checkpoints are signed
with keyed BLAKE3 (much faster than HMAC-SHA256 on one core), checkpoints
signed with HMAC-SHA256 by an earlier nbsteps are still read and verified, and
neither can be passed off as the other."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import warned_store

from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores import layout, signing
from nbsteps.stores.disk import DiskStore

KEY = b"s" * 32


def make_store(directory) -> DiskStore:
    return warned_store(directory, key=KEY, max_size=None)


@pytest.fixture
def hmac_era(monkeypatch):
    """Checkpoints written as nbsteps wrote them before issue 26 (HMAC-SHA256)."""
    monkeypatch.setattr(signing, "_PREFERRED", signing.HMAC_SHA256)


def _put(store, values, fp="f" * 32):
    store.put(Checkpoint("s", fp, values, None, False, parts={"token": "t1"}))


def _meta(store, fp="f" * 32):
    return store.directory / "s" / layout.meta_name(fp)


def test_new_checkpoints_are_signed_with_keyed_blake3(tmp_path):
    store = make_store(tmp_path / "st")
    _put(store, {"x": np.arange(10.0), "d": {"a": 1}})
    raw = _meta(store).read_bytes()
    assert raw.startswith(b"nbsteps-checkpoint 1 blake3=")
    body = json.loads(raw.partition(b"\n")[2])
    assert all(e["mac"].startswith("blake3:") and "hmac" not in e for e in body["values"])
    got = make_store(tmp_path / "st").get("s", "f" * 32)
    assert got.outputs["d"] == {"a": 1} and got.outputs["x"][3] == 3.0


def test_checkpoints_signed_with_hmac_by_an_earlier_nbsteps_are_still_read(tmp_path, hmac_era, monkeypatch):
    store = make_store(tmp_path / "st")
    _put(store, {"x": np.arange(10.0), "d": {"a": 1}})
    assert _meta(store).read_bytes().startswith(b"nbsteps-checkpoint 1 hmac-sha256=")
    monkeypatch.setattr(signing, "_PREFERRED", None)  # now: blake3 for what is written
    for lazy in (False, True):
        got = make_store(tmp_path / "st").get("s", "f" * 32, lazy=lazy)
        assert got is not None and got.outputs["d"] == {"a": 1} and got.outputs["x"][9] == 9.0


def test_a_tampered_value_file_is_rejected_with_either_signature(tmp_path, monkeypatch):
    for algorithm in signing.ALGORITHMS:
        monkeypatch.setattr(signing, "_PREFERRED", algorithm)
        store = make_store(tmp_path / algorithm)
        _put(store, {"d": {"a": 1}})
        monkeypatch.setattr(signing, "_PREFERRED", None)
        value = next(p for p in (store.directory / "s").iterdir() if p.suffix == ".pkl")
        data = bytearray(value.read_bytes())
        data[-2] ^= 1
        value.write_bytes(bytes(data))
        reader = make_store(tmp_path / algorithm)
        assert reader.get("s", "f" * 32) is None
        (step, message), *_ = reader.warnings
        assert step == "s" and "does not match its signature" in message and "recomputed" in message


def test_a_signature_cannot_be_relabelled_as_the_other_algorithm(tmp_path, hmac_era, monkeypatch):
    store = make_store(tmp_path / "st")
    _put(store, {"d": {"a": 1}})
    path = _meta(store)
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b" hmac-sha256=", b" blake3=", 1))
    monkeypatch.setattr(signing, "_PREFERRED", None)
    reader = make_store(tmp_path / "st")
    assert reader.get("s", "f" * 32) is None
    assert "does not match its signature" in reader.warnings[0][1]


def test_a_value_entry_naming_an_unknown_algorithm_is_never_loaded(tmp_path):
    body_entry = {"file": "0123456789abcdef-0.pkl", "size": 3, "mac": "md5:00"}
    assert signing.entry_mac(body_entry) == ("", "")
    with pytest.raises(ValueError):
        signing.new_mac(KEY, "md5")
