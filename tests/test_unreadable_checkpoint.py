"""A checkpoint whose value pickles but cannot be unpickled (its class fails
to rebuild it: a constructor that needs arguments its pickle does not give,
a ``__setstate__`` that raises) is found when a new kernel reads it: the step
that wrote it executes again, as Run All computes it, with the true reason
(not "the code it needs changed"). A value whose class has a ``__getattr__``
reading the instance (scikit-image's ``FailedEstimation``), which plain
pickle writes but cannot read back, is written so that it reads back: the
new kernel restores it. Real IPython shell, real directory store, real
files; nothing mocked."""

from __future__ import annotations

import sys

import pytest
from conftest import run_ok

from nbsteps.ipython import session

pytestmark = pytest.mark.usefixtures("nothing_outside_the_store_changes")

# pickles (BaseException.__reduce__: the class and self.args), but unpickling
# calls FitFailed(message) without *why*: TypeError
LIBRARY = """
class FitFailed(Exception):
    def __init__(self, what, why):
        super().__init__(f"{what}: {why}")
        self.what, self.why = what, why

    def __repr__(self):
        return f"FitFailed({self.what!r}, {self.why!r})"


def fit(points):
    if len(set(points)) < 2:
        return FitFailed("projective", "the points are all the same")
    return sum(points)


class Failed:  # like skimage's FailedEstimation: every missing attribute is an error naming the message
    def __init__(self, message):
        self.message = message

    def __bool__(self):
        return False

    def __repr__(self):
        return f"Failed({self.message!r})"

    def __getattr__(self, name):
        raise AttributeError(f"Failed has no attribute {name!r}: {self.message}")


class Slotted:
    __slots__ = ("message", "points")

    def __getattr__(self, name):
        return getattr(self.message, name)


def estimate(points):
    if len(set(points)) < 2:
        return Failed("the points are all the same")
    return sum(points)


def slotted(points):
    s = Slotted()
    s.message, s.points = "same", points
    return s
"""


@pytest.fixture
def library(tmp_path, monkeypatch):
    name = f"fitlib_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(LIBRARY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def new_kernel(shell):
    session._plan = None
    shell.reset(new_session=False)
    session.bind(shell)


def test_value_that_cannot_be_unpickled_is_recomputed_with_the_true_reason(
    shell, tmp_path, tmp_key, capsys, recwarn, library
):
    cells = [
        f"%steps store {tmp_path / 's'}",
        f"%%step a\nimport {library}\nsrc = [3, 3, 3]\nbad = {library}.fit(src)\nbad",
        "%%step b\nmsg = repr(bad) + str(src)",
        "%%step c\nok = bool(bad)\nok",
    ]
    first = [run_ok(shell, c) for c in cells]
    plain = {k: shell.user_ns[k] for k in ("src", "msg", "ok")}
    assert repr(first[1]) == "FitFailed('projective', 'the points are all the same')"

    new_kernel(shell)  # a new kernel on the same store: a restores lazily, its result is read by its cell
    capsys.readouterr()
    again = [run_ok(shell, c) for c in cells]  # no cell fails
    assert repr(again[1]) == repr(first[1]) and again[3] is True
    assert {k: shell.user_ns[k] for k in plain} == plain
    assert repr(shell.user_ns["bad"]) == repr(first[1])
    said = capsys.readouterr().out + " ".join(str(w.message) for w in recwarn)
    assert "output 'bad' of step 'a' could not be read from its checkpoint" in said
    assert "could not be unpickled (TypeError" in said and "step 'a' will be recomputed" in said
    assert "code it needs changed" not in said
    rec = session.current().records["a"]
    assert rec.origin == "executed"
    assert rec.reason == "its checkpoint could not be read: TypeError while unpickling bad"


def test_value_that_cannot_be_unpickled_read_by_a_plain_cell(shell, tmp_path, tmp_key, library):
    cells = [
        f"%steps store {tmp_path / 's'}",
        f"%%step a\nimport {library}\nsrc = [3, 3]\nbad = {library}.fit(src)",
    ]
    for c in cells:
        run_ok(shell, c)
    new_kernel(shell)
    for c in cells:
        run_ok(shell, c)
    with pytest.warns(RuntimeWarning) as caught:
        run_ok(shell, "seen = repr(bad)")  # a executes again before the cell runs, saying why
    (message,) = [str(w.message) for w in caught]
    assert "could not be unpickled (TypeError" in message and "code it needs changed" not in message
    assert session.current().last_summary.completed_order == ["a"]
    rec = session.current().records["a"]
    assert rec.origin == "executed"
    assert rec.reason == "its checkpoint could not be read: TypeError while unpickling bad"
    assert shell.user_ns["seen"] == "FitFailed('projective', 'the points are all the same')"


def test_value_whose_getattr_reads_the_instance_is_restored(shell, tmp_path, tmp_key, capsys, library):
    cells = [
        f"%steps store {tmp_path / 's'}",
        f"%%step a\nimport {library}\nsrc = [3, 3]\nbad = {library}.estimate(src)\nbad",
        f"%%step b\nok = bool(bad)\nsl = {library}.slotted(src)\nok",
        "%%step c\nmsg = str(bad.message) + sl.upper() + str(sl.points)",
    ]
    first = [run_ok(shell, c) for c in cells]
    plain = {k: shell.user_ns[k] for k in ("src", "ok", "msg")}
    new_kernel(shell)
    capsys.readouterr()
    again = [run_ok(shell, c) for c in cells]
    out = capsys.readouterr().out
    assert repr(again[1]) == repr(first[1]) == "Failed('the points are all the same')"
    assert again[2] is False and session.current().last_summary.completed_order == []  # nothing executed
    assert "could not be" not in out and "a restored" in out
    run_ok(shell, "seen = (src, ok, msg, bad.message, sl.points, sl.message)")  # read from the store now
    assert shell.user_ns["seen"] == (*plain.values(), "the points are all the same", [3, 3], "same")
    assert "could not be" not in capsys.readouterr().out
