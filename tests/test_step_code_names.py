"""A step's code is compiled under the file name IPython's compiler gives the same cell in Run All
(nbsteps.ipython.magics.code_name): ipykernel's ``/tmp/ipykernel_<pid>/<hash of the cell>.py``,
IPython's ``<ipython-input-N-<hash>>``. Code keying on the file its code comes from sees what Run
All gives it: joblib's ``Memory`` names a function's cache folder after it (joblib's user guide
shows the folder in a ``MemorizedResult``'s repr), ``inspect.getsource`` reads the function's
lines, warnings and IPython's tracebacks name the cell. nbsteps' own traceback text still names
the step (``<step NAME>``).
"""

from __future__ import annotations

import inspect
import re

import pytest
from conftest import cell_text, execute_notebook, run_err

import nbsteps

BODY = "def twice(x):\n    return 2 * x\nwhere = twice.__code__.co_filename"


def test_a_step_defines_its_functions_in_the_file_ipython_names_for_the_cell(shell):
    shell.run_cell(BODY, store_history=True)  # the cell as Run All runs it
    plain, plain_twice = shell.user_ns["where"], shell.user_ns["twice"]
    shell.run_cell("%%step s\n" + BODY, store_history=True)
    stepped, twice = shell.user_ns["where"], shell.user_ns["twice"]
    assert not stepped.startswith("<step")
    # IPython's name: <ipython-input-N-HASH>, N the cell's number, HASH the cell's text's
    assert stepped.rsplit("-", 1)[1] == plain.rsplit("-", 1)[1], (stepped, plain)
    assert inspect.getsource(twice) == inspect.getsource(plain_twice)
    func_inspect = pytest.importorskip("joblib.func_inspect")
    # the folder joblib keeps the function's cache in: the same as for the plain cell
    assert func_inspect.get_func_name(twice) == func_inspect.get_func_name(plain_twice)


def test_a_failed_step_s_traceback_still_names_the_step(shell):
    run_err(shell, "%%step boom\nx = 1\ny = 2\nraise ValueError('third line of the body')")
    tb = nbsteps.step("boom").traceback
    assert '"<step boom>", line 4' in tb, tb
    assert "raise ValueError('third line of the body')" in tb  # the line, read from the cell's code


def test_in_a_kernel_a_step_s_code_file_is_the_cell_s_in_run_all(kernel_name, tmp_path):
    """ipykernel names a cell's file after the hash of its text: the step's body (without the
    ``%%step`` line) gets the very name the same cell gets in Run All, in the same kernel."""
    show = BODY + "\nprint(where)"
    nb = execute_notebook(["%load_ext nbsteps", show, "%%step s\n" + show], kernel_name, tmp_path)
    plain, stepped = (re.findall(r"/\S*ipykernel_\d+\S*\.py", cell_text(c)) for c in nb.cells[1:])
    assert len(plain) == 1, cell_text(nb.cells[1])
    assert stepped == plain, cell_text(nb.cells[2])
