"""Identity across steps when an upstream value is read after a first put: the store's
record of what each upstream checkpoint holds (``stores.sharing.Held``, kept between puts)
follows the values read since, and a value replaced (``LazyValues.replace``). Real DiskStore,
read back by a store that knows nothing of the first two."""

from __future__ import annotations

import pytest
from conftest import warned_store as make_store

from nbsteps.stores import Checkpoint


@pytest.fixture
def directory(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(tmp_path / "keys" / "secret_key"))
    return tmp_path / "store"


def up(token):
    return {"token": token + "-own", "upstream": {"a": "ta"}}


def test_an_upstream_value_read_after_a_put_is_referred_to_by_the_next_put(directory):
    first = make_store(directory)
    first.put(Checkpoint("a", "fa", {"xs": [1, 2], "ys": [3]}, parts={"token": "ta"}))
    first.flush()
    store = make_store(directory)  # a new kernel: a's values not read yet
    a = store.get("a", "fa", lazy=True)
    store.put(Checkpoint("b", "fb", {"n": 1}, parts=up("tb")))  # a walked, nothing of it read
    xs = a.outputs["xs"]  # read now
    store.put(Checkpoint("c", "fc", {"holder": {"xs": xs}}, parts=up("tc")))
    ys = [3]
    a.outputs.replace("ys", ys)  # its value read again: another object, equal
    store.put(Checkpoint("d", "fd", {"holder": {"ys": ys}}, parts=up("td")))
    store.flush()
    again = make_store(directory)
    back_a = again.get("a", "fa", lazy=True)
    assert again.get("c", "fc").outputs["holder"]["xs"] is back_a.outputs["xs"]
    assert again.get("d", "fd").outputs["holder"]["ys"] is back_a.outputs["ys"]
