import os
import sys

import pytest

from nbsteps import session


@pytest.fixture
def shell():
    """A real IPython InteractiveShell with nbsteps loaded and an empty plan."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.reset(new_session=False)
    session._plan = None
    session.set_mode("interactive")
    ip.run_line_magic("load_ext", "nbsteps")
    session.bind(ip)
    yield ip
    session._plan = None


def run_ok(ip, cell):
    """Run a cell that must succeed; returns its result."""
    r = ip.run_cell(cell)
    if not r.success:
        raise AssertionError(f"cell failed: {r.error_in_exec or r.error_before_exec!r}\n{cell}")
    return r.result


def run_err(ip, cell):
    """Run a cell that must fail; returns the exception it raised."""
    r = ip.run_cell(cell)
    assert not r.success, f"cell unexpectedly succeeded:\n{cell}"
    return r.error_in_exec or r.error_before_exec


@pytest.fixture
def tmp_key(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(tmp_path / "key" / "secret"))
    return tmp_path / "key" / "secret"
