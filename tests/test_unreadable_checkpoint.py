"""A checkpoint whose value pickles but cannot be unpickled (its class fails
to rebuild it: a constructor that needs arguments its pickle does not give,
a ``__setstate__`` that raises) is found when a new kernel reads it: the step
that wrote it executes again, as Run All computes it, with the true reason
(not "the code it needs changed"). Real IPython shell, real directory
store, real files; nothing mocked."""

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
