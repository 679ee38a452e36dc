"""A function a package makes inside a function and hands out as a module attribute is
stored by reference to that attribute (found by the corpus: SymPy's tutorial).

``from sympy import *`` binds ``cacheit``, made by ``cacheit = __cacheit(maxsize)``: a function
whose qualified name is ``__cacheit.<locals>.func_wrapper``, so pickle cannot find it by name and
cloudpickle copied it by value, closure and globals with it, and failed on SymPy's caches. The step
of the import was then never stored, and a new kernel executed it and every step below it again
(``sym_calculus``, ``sym_basic_operations`` resume). The same rule already held for classes
(``marray.numpy.MArray``, tests/test_diskstore.py).
"""

from __future__ import annotations

import pytest
from conftest import run_ok
from test_semantics import new_kernel, steps

import nbsteps

FACTORY = """\
import threading

def _make_cache(maxsize):
    lock = threading.RLock()  # what the closure holds: a lock no checkpoint can hold

    def func_wrapper(func):
        with lock:
            func.maxsize = maxsize
        return func

    return func_wrapper

cacheit = _make_cache(128)
"""
CELLS = ["from factorylib_nbsteps import *\nx = 1", "y = x + 1", "z = y * 2"]


@pytest.fixture
def factorylib(tmp_path, monkeypatch):
    pkg = tmp_path / "lib"
    pkg.mkdir()
    (pkg / "factorylib_nbsteps.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(pkg))
    import factorylib_nbsteps

    yield factorylib_nbsteps
    import sys

    sys.modules.pop("factorylib_nbsteps", None)


def test_a_star_import_of_a_factory_made_function_is_restored_in_a_new_kernel(
    shell, tmp_path, tmp_key, factorylib
):
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    steps(shell, CELLS)
    new_kernel(shell, tmp_path / "store")
    run_ok(shell, "%steps mode plan")
    steps(shell, CELLS)
    run_ok(shell, "%steps run --workers 4")
    plan = nbsteps.current()
    assert all(plan[f"c{i}"].cached for i in range(len(CELLS))), {
        f"c{i}": plan[f"c{i}"].reason for i in range(len(CELLS))
    }
    run_ok(shell, "%steps load")
    assert shell.user_ns["cacheit"] is factorylib.cacheit  # the module's own, not a copy
    assert shell.user_ns["z"] == 4
