"""Two defects the corpus's xarray pages found (tests/corpus: ``xr_groupby``, ``xr_computation``;
docs/corpus.md, "xarray's user guide"). Each test is a minimal reproduction in a real IPython
InteractiveShell, compared with plain Run All (each failed before its fix).

1. **A read that fills a private slot bound to None is seen as a change in place.** xarray
   keeps ``attrs`` and ``encoding`` in slots that start as None and become ``{}`` the first
   time anything reads the property (``if self._attrs is None: self._attrs = {}``); xarray's
   own operations read them (``ds.groupby("letters") - alt``, ``prec.weighted(weights)``,
   ``xr.apply_ufunc(f, arr1, 1)``). ``nbsteps.run.attempt.observe`` accepts a private container
   that *appears* (a cache a read made) but not one that replaces None, so the reading step is
   taken for a writer of the object, and the step that made it is executed again to rebuild its
   version. Fix (observe.py): a private attribute bound to None is left out of an object's
   layout, so None -> container is a private container appearing (``same()`` accepts it), and
   None -> any other object still shows as a change.

2. **Rebuilding the version above drew again from a seeded global generator.** When a step is
   seen changing its input in place (a true change here: ``np.add.at``), the step that made the
   input executes again to rebuild its version; when that step drew from numpy's global
   generator, seeded by a step above that is not executed again, the rebuild draws other numbers,
   and in plan mode a reader of that version (``alt = arr.sum()``) gets them: Run All's ``alt``
   is the sum of the first draw. Fix (nbsteps.run.attempt.generators): a step that may draw from
   a global generator is rebuilt with the generators' states it began with (taken when it
   started, set for the rebuild, the current states put back after).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import run_steps
from tests.test_semantics import run_all

# a stand-in for xarray's DataArray: state in slots, attrs made on first read
LAZYLIB = """
class Labelled:
    __slots__ = ("data", "_attrs")

    def __init__(self, data):
        self.data = data
        self._attrs = None

    @property
    def attrs(self):
        if self._attrs is None:
            self._attrs = {}
        return self._attrs
"""


@pytest.fixture(autouse=True)
def lazylib(module_from_source):
    return module_from_source("lazylib_nbsteps", LAZYLIB)


READ_FILLS_A_SLOT = [
    "import numpy as np\nfrom lazylib_nbsteps import Labelled\nnp.random.seed(123456)",
    "da = Labelled(np.random.rand(3))\nvalues = da.data",
    "total = da.data.sum()",
    "n = len(da.attrs)",  # only reads
    "after = da.data.sum()",
]

TRUE_WRITE_BELOW_A_DRAW = [
    "import numpy as np\nnp.random.seed(123456)",
    "arr = np.random.rand(3)",
    "alt = arr.sum()",
    "np.add.at(arr, [0], 1)",  # a change the analysis cannot see: observed at run time
]


def _cells(bodies):
    return [f"%%step c{i}\n{body}" for i, body in enumerate(bodies)]


def _values(ns, names):
    return {n: np.asarray(ns[n]).tolist() for n in names}


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_a_read_that_fills_a_private_slot_is_no_write(shell, mode):
    import nbsteps

    run_steps(shell, _cells(READ_FILLS_A_SLOT), mode)
    names = ("values", "total", "n", "after")
    assert _values(shell.user_ns, names) == _values(run_all(READ_FILLS_A_SLOT), names)
    assert nbsteps.current()["c1"].reason != "rebuilt: its da was changed in place by c3"
    assert shell.user_ns["values"] is shell.user_ns["da"].data  # one object, as in Run All


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_the_version_rebuilt_above_an_observed_write_draws_what_run_all_drew(shell, mode):
    run_steps(shell, _cells(TRUE_WRITE_BELOW_A_DRAW), mode)
    names = ("arr", "alt")
    assert _values(shell.user_ns, names) == _values(run_all(TRUE_WRITE_BELOW_A_DRAW), names)
