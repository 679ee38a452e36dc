"""A directory store's put leaves the user's objects exactly as they were, whatever their
class's ``__getstate__`` does to them in place (nested dicts empty or not, attributes
removed, added, replaced), and objects whose class claims another ``__class__`` pickle
as before. Real DiskStore, values read back in the same process and in a new store."""

from __future__ import annotations

import types

import pytest
from conftest import warned_store as make_store

from nbsteps.stores import Checkpoint


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(tmp_path / "keys" / "secret_key"))
    return make_store(tmp_path / "store")


class Meddler:
    """``__getstate__`` edits its own ``__dict__`` and the dicts in it, then hands it back."""

    def __init__(self):
        self.empty = {}
        self.one = {"k": [1]}
        self.gone = [2]
        self.kept = (3,)
        self.swapped = [4]

    def __getstate__(self):
        self.empty["filled"] = 1  # an empty dict filled
        self.one.clear()  # a dict emptied
        del self.gone  # an attribute removed
        self.added = 5  # and one added
        self.swapped = [4]  # an equal value that is another object
        return self.__dict__


class Quiet:
    """``__getstate__`` changes nothing (a copy, as matplotlib's artists do)."""

    def __init__(self):
        self.nested = {"a": [1]}
        self.other = {}
        self.x = 1

    def __getstate__(self):
        state = self.__dict__.copy()
        state["x"] = None
        return state


def test_a_getstate_editing_in_place_leaves_the_live_object_as_it_was(store):
    m, q = Meddler(), Quiet()
    before = {k: v for k, v in vars(m).items()}
    nested = (m.empty, m.one, dict(m.one), m.one["k"])
    store.put(Checkpoint("s", "fp", {"m": m, "q": q}))
    store.flush()
    assert list(vars(m)) == list(before) and all(vars(m)[k] is v for k, v in before.items())
    assert m.empty is nested[0] and m.empty == {} and m.one is nested[1] and m.one == nested[2]
    assert m.one["k"] is nested[3]
    assert q.x == 1 and q.nested == {"a": [1]} and q.other == {}
    back = make_store(store.directory).get("s", "fp").outputs
    # faithful: the state written is the object as it really is
    assert back["m"].empty == {} and back["m"].one == {"k": [1]} and back["m"].gone == [2]
    assert back["m"].swapped == [4] and not hasattr(back["m"], "added")
    assert back["q"].x is None and back["q"].nested == {"a": [1]}  # the class's own state


class Liar:
    """An object whose class says another ``__class__`` (as proxies and mocks do)."""

    def __init__(self, v):
        self.v = v

    @property
    def __class__(self):
        return types.SimpleNamespace


class Proxy:
    """A ``__class__`` property that tells the truth, and a ``__getattribute__`` of its own."""

    def __init__(self, v):
        self.v = v

    @property
    def __class__(self):
        return Proxy

    def __getattribute__(self, name):
        return object.__getattribute__(self, name)


def test_objects_claiming_a_class_pickle_as_before(store):
    # what pickle does with the class the object claims: refused, as without nbsteps' fast path
    store.put(Checkpoint("l", "fp", {"obj": Liar(7)}))
    store.flush()
    assert store.get("l", "fp") is not None  # kept in memory, with the warning
    assert make_store(store.directory).get("l", "fp") is None
    assert "has the wrong class" in store.warnings[0][1]
    p = Proxy(8)
    store.put(Checkpoint("p", "fp", {"obj": p, "xs": [p]}))
    store.flush()
    back = make_store(store.directory).get("p", "fp").outputs
    assert type(back["obj"]) is Proxy and back["obj"].v == 8 and back["xs"][0] is back["obj"]
