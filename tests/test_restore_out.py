"""A ``%%step`` cell restored in a new kernel shows its result as Run All showed it
without reading the value (issue 26, target 2): the display taken when the step ran
is shown, and ``Out[n]``, ``_n``, ``_`` hold a placeholder until a cell names one of
them; then they are the value itself, the same object as the step's output. Real
kernels through nbclient (``store_history``, as a notebook runs cells); whether the
result was read is seen in ``sys.modules``: only unpickling it imports the module
its class lives in."""

import json
import os

import pytest
from conftest import execute_notebook

pytestmark = pytest.mark.kernel

MARK = "@@out@@"
#: IPython's Out, seen without naming it (naming Out or _N reads the results)
HIST = "get_ipython().history_manager.output_hist"
#: whether the module of the result's class is imported ('thinglib' named as one word would be
#: read as the restored output of that name, which imports it)
IMPORTED = "'thing' + 'lib' in __import__('sys').modules"

LIBRARY = (
    "class Thing:\n"
    "    def __init__(self, v):\n        self.v = v\n"
    "    def __repr__(self):\n        return f'Thing({self.v})'\n"
    "    def _repr_html_(self):\n        return f'<b>Thing {self.v}</b>'\n"
    "def make(v):\n    return Thing(v)\n"
)


def _probe(expr: str) -> str:
    """A cell printing *expr*'s JSON value after MARK."""
    return f"import json as _j\nprint({MARK!r} + _j.dumps({expr}))"


def _printed(cell):
    line = [ln for o in cell.outputs if o.output_type == "stream" for ln in o.text.splitlines() if MARK in ln]
    return json.loads(line[-1].split(MARK, 1)[1])


def _results(cell) -> list:
    return [(o.execution_count, dict(o.data)) for o in cell.outputs if o.output_type == "execute_result"]


@pytest.fixture
def library(tmp_path, monkeypatch):
    (tmp_path / "thinglib.py").write_text(LIBRARY)
    # (after the PYTHONPATH the suite runs with: a snapshot's nbsteps, not the editable install's)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    )
    return tmp_path / "thinglib.py"


def _cells(store):
    return [
        "%load_ext nbsteps",  # 1
        f"%steps store {store}",  # 2
        "%%step a\nimport thinglib\nt = thinglib.make(3)\nt",  # 3: Out[3] is the output t
        "%%step b\npair = [t.v, 4]\npair",  # 4: Out[4] is pair
        "%%step c\nsize = len(pair)\n{'size': size}",  # 5: Out[5] is a result that is no output
    ]


def test_a_restored_cell_shows_its_result_and_reads_it_when_named(tmp_path, tmp_key, kernel_name, library):
    store = tmp_path / "store"
    first = execute_notebook(_cells(store), kernel_name, tmp_path)
    unread = f"[n for n in (3, 4, 5) if type({HIST}[n]).__name__ == 'UnreadResult']"
    probes = [
        _probe(f"[{IMPORTED}, {unread}]"),  # 6: nothing read yet
        _probe("[_ is _5, __ is _4, ___ is _3, _4 is pair, Out[3] is t, type(_3).__name__, _5, pair]"),  # 7
        _probe(f"[{IMPORTED}, {unread}]"),  # 8
    ]
    again = execute_notebook(_cells(store) + probes, kernel_name, tmp_path)
    for n in (3, 4, 5):  # each restored cell shows the Out Run All showed, under the same number
        assert _results(again.cells[n - 1]) == _results(first.cells[n - 1]) != []
        assert "restored" in json.dumps(again.cells[n - 1].outputs[0]["data"])
    assert _results(again.cells[2])[0][1]["text/html"] == "<b>Thing 3</b>"
    assert _printed(again.cells[5]) == [False, [3, 4, 5]]  # shown, not read: thinglib never imported
    assert _printed(again.cells[6]) == [True, True, True, True, True, "Thing", {"size": 2}, [3, 4]]
    assert _printed(again.cells[7]) == [True, []]


def test_steps_load_reads_the_results_too(tmp_path, tmp_key, kernel_name, library):
    store = tmp_path / "store"
    execute_notebook(_cells(store), kernel_name, tmp_path)
    nb = execute_notebook(
        _cells(store)
        + [
            "%steps load",  # 6
            _probe(f"[{IMPORTED}, type({HIST}[3]).__name__, {HIST}[5]]"),  # 7
            _probe("[Out[3] is t, _4 is pair]"),  # 8
        ],
        kernel_name,
        tmp_path,
    )
    assert "the results in Out" in "".join(o.text for o in nb.cells[5].outputs if o.output_type == "stream")
    assert _printed(nb.cells[6]) == [True, "Thing", {"size": 2}]
    assert _printed(nb.cells[7]) == [True, True]


def test_a_result_that_no_longer_decodes_is_computed_again_when_named(
    tmp_path, tmp_key, kernel_name, library
):
    store = tmp_path / "store"
    execute_notebook(_cells(store), kernel_name, tmp_path)
    library.write_text(library.read_text().replace("Thing", "Item"))  # the class was renamed since
    nb = execute_notebook(
        _cells(store) + [_probe("[type(Out[3]).__name__, Out[3] is t, t.v]")], kernel_name, tmp_path
    )
    probe = nb.cells[5]
    assert _printed(probe) == ["Item", True, 3]  # step a executed again: Out[3] is its new result
    warned = "".join(o.text for o in probe.outputs if o.output_type == "stream")
    assert "output 't' of step 'a'" in warned and "no longer decodes" in warned and "recomputed" in warned
    # the cell showed the display its checkpoint kept; its status output now shows the run that replaced it
    assert _results(nb.cells[2])[0][1]["text/plain"] == "Thing(3)"
    status = nb.cells[2].outputs[0]["data"]["text/plain"]
    assert status.startswith("✓ a completed") and status.endswith("Item(3)")


def test_a_cell_that_only_assigns_underscore_does_not_read_the_result_it_held(
    tmp_path, tmp_key, kernel_name, library
):
    """``_ = plt.title(...)`` after a cell with a result (sk_gpr_noisy_targets: its restore
    unpickled a fitted kernel, importing scikit-learn, only to overwrite ``_``): a cell that
    only binds ``_`` does not read what ``_`` held; one that reads it still does."""
    store = tmp_path / "store"
    cells = [
        "%load_ext nbsteps",  # 1
        f"%steps store {store}",  # 2
        "%%step a\nimport thinglib\nt = thinglib.make(3)\nt",  # 3: Out[3], _ is t
        "%%step d\nv = 1\n_ = 'a title'",  # 4: only binds _
        _probe(f"[{IMPORTED}, type({HIST}[3]).__name__]"),  # 5
        "%%step e\nw = 2\n_ = _3",  # 6: binds _ and reads _3
        _probe(f"[{IMPORTED}, type({HIST}[3]).__name__]"),  # 7
    ]
    first = execute_notebook(cells, kernel_name, tmp_path)
    assert _printed(first.cells[4]) == [True, "Thing"]
    again = execute_notebook(cells, kernel_name, tmp_path)
    assert _results(again.cells[2]) == _results(first.cells[2]) != []
    assert _printed(again.cells[4]) == [False, "UnreadResult"]  # cell 4 read nothing
    assert _printed(again.cells[6]) == [True, "Thing"]  # cell 6 names _3: read


LAZY_MAGIC = """
from IPython.core.magic import Magics, magics_class, line_magic


@magics_class
class TwiceMagics(Magics):
    @line_magic
    def twice(self, line):
        return 2 * int(line)
"""


def test_ipythons_lazy_magics_are_imported_only_for_a_run_on_threads(shell, tmp_path, monkeypatch):
    """IPython imports the magics it declares lazily on first use, which is not thread-safe:
    nbsteps imports them all before steps may run on worker threads (see
    tests/test_run_all_values.py), and only then: a lone cell's step, or a restore, runs on
    the kernel's thread and imports nothing it does not use."""
    from conftest import run_ok
    from IPython.core.magic import LazyMagic

    module = f"nbsteps_twice_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(LAZY_MAGIC)
    monkeypatch.syspath_prepend(str(tmp_path))
    shell.magics_manager.register_lazy("twice", f"{module}:TwiceMagics", "line")
    run_ok(shell, "%%step a\nx = 1")
    assert isinstance(shell.magics_manager.magics["line"]["twice"], LazyMagic)
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step b\ny = x + 1")
    run_ok(shell, "%%step c\nz = x + 2")
    run_ok(shell, "%steps run --workers 2")  # b and c may run at once: every lazy magic is imported first
    assert not isinstance(shell.magics_manager.magics["line"]["twice"], LazyMagic)
    assert (shell.user_ns["y"], shell.user_ns["z"]) == (2, 3)
