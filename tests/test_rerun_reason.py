"""What a step run again after an observed write says about why (SPEC: what nbsteps shows is true).

A step that reads a value while a step beside it, on another worker, is seen changing that
value in place (nbsteps.run.observed_writes) may have read the changed object; the run's second
pass executes it again with the version it reads in Run All. It used to be passed to that pass
as *forced*, and its record said ``forced``: nobody forced it. Found by the corpus (SQLAlchemy's
tutorial, ``sa_dbapi_file``'s zero-edit second run: steps reading an engine another step was seen
changing said ``forced``). Its reason now names the step and the value.
"""

from __future__ import annotations

import pytest

import nbsteps
from tests.conftest import run_ok

MYLIB = """
def scale_inplace(a):
    a *= 10
    return len(a)
"""


@pytest.fixture
def mylib(module_from_source):
    return module_from_source("mylib_rerun_reason", MYLIB)


def test_a_step_run_again_after_a_change_beside_it_says_why(shell, mylib):
    run_ok(shell, "%steps mode plan")
    # read (above) and change (below) both read arr only: in plan mode they run side by side;
    # read is still running when change changes arr in place, where the analysis sees no write
    run_ok(shell, "%%step make\nimport numpy as np\nimport mylib_rerun_reason as mylib\narr = np.arange(3.0)")
    run_ok(shell, "%%step read\nimport time\ntime.sleep(0.5)\ns = arr.sum()")
    run_ok(shell, "%%step change\nn = mylib.scale_inplace(arr)")
    run_ok(shell, "%steps run --workers 4")
    assert shell.user_ns["s"] == 3.0  # Run All's: read sees arr before the change
    assert shell.user_ns["arr"].tolist() == [0.0, 10.0, 20.0]
    reason = nbsteps.current()["read"].reason
    assert reason != "forced", reason  # nobody forced it
    assert "change" in reason and "arr" in reason, reason


def test_a_step_the_user_forces_still_says_forced(shell):
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%steps run")
    assert nbsteps.current().plan(force=["a"]).reason("a") == "forced"
    nbsteps.current().run(force=["a"])
    assert nbsteps.current()["a"].reason == "forced"
