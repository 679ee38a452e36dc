"""A library's set-up call is process state: the results below it are shown as it set them up
(found by the corpus: SymPy's tutorial).

``from sympy import *`` then ``init_printing(use_unicode=True)`` registers display formatters:
in Run All every later ``Out`` is a PNG of its LaTeX. A later cell that makes its own
``from sympy import Integral, ...`` depends on no step above, so plan mode ran it beside the
first cell, before the formatters existed, and its ``Out`` was plain text (``sym_calculus``
plan, headless, zero-edit). A call of a library no rule knows, at a cell's top level, given
only literals, its result dropped, is now a change of the ``display`` state, which every step
showing a result uses (nbsteps.model.state): those steps come after it. Here the library is
a stand-in for any such: its set-up takes a moment, as registering formatters may.
"""

import pytest
from conftest import execute_notebook

from nbsteps.model.analysis import analyse

pytestmark = pytest.mark.kernel

LIBRARY = """\
import time

class Thing:
    def __init__(self, n):
        self.n = n
    def __repr__(self):
        return f"Thing({self.n})"

def init_display(style="fancy"):
    time.sleep(0.5)  # a set-up that takes a moment
    get_ipython().display_formatter.formatters["text/plain"].for_type(
        Thing, lambda obj, p, cycle: p.text(f"<{style} thing {obj.n}>")
    )
"""
CELLS = [
    "from displaylib_nbsteps import *\ninit_display(style='fancy')",
    "from displaylib_nbsteps import Thing\nThing(1)",  # needs nothing above: its own import
    "t = Thing(2)\nt",
]


def _outs(cell) -> list[str]:
    return [
        o.data["text/plain"]
        for o in cell.outputs
        if o.output_type in ("execute_result", "display_data")
        and "nbsteps-status" not in o.data.get("text/html", "")
        and o.data.get("text/plain")
    ]


def test_the_results_below_a_display_set_up_are_shown_as_it_set_them_up(tmp_path, kernel_name):
    (tmp_path / "displaylib_nbsteps.py").write_text(LIBRARY)
    plain = execute_notebook(CELLS, kernel_name, tmp_path)
    expected = [_outs(c) for c in plain.cells]
    assert expected == [[], ["<fancy thing 1>"], ["<fancy thing 2>"]]
    nb = execute_notebook(
        [
            "%load_ext nbsteps\n%steps mode plan",
            *[f"%%step c{i}\n{body}" for i, body in enumerate(CELLS)],
            "%steps run --workers 4",
        ],
        kernel_name,
        tmp_path,
    )
    assert [_outs(c) for c in nb.cells[1 : 1 + len(CELLS)]] == expected


def test_which_calls_are_a_display_set_up():
    setup = ["from sympy import *\ninit_printing(use_unicode=True)", "import sympy\nsympy.init_printing()"]
    for source in setup:
        assert "display" in analyse(source).effects, source
    others = [
        "import networkx as nx\nnx.draw(G)",  # given a notebook value: changes it, not the display
        "import gc\ngc.collect()",  # the standard library
        "import numpy as np\nnp.random.seed(0)",  # a rule knows it
        "fib(2000)",  # a notebook function
        "import sympy\ny = sympy.init_printing()",  # its result kept
    ]
    for source in others:
        assert "display" not in analyse(source).effects, source


REGISTRY_CELLS = [
    'import altair as alt\nalt.renderers.enable("mimetype")',
    "import altair as alt\nimport pandas as pd\n"
    "alt.Chart(pd.DataFrame({'a': [1, 2]})).mark_point().encode(x='a')",
]


def test_a_registry_set_up_on_a_library_object_orders_the_results_below():
    """Found by the corpus (Altair's gallery): ``alt.renderers.enable("mimetype")`` sets how every
    chart below is shown. Altair is a library the rules know (no call of it changes a notebook
    value it is given), so the set-up rule above never looked at its calls, and a chart cell with
    its own import had no edge from the set-up: in plan mode it could run first, and the chart
    it shows (formatted with its checkpoint) would be HTML where Run All shows the Vega-Lite spec.
    A call on an object a library module holds (a registry, a config object), given only literals
    and its result dropped, is a set-up too: the chart step comes after it (a ``state`` edge)."""
    import nbsteps

    plan = nbsteps.Plan()
    for i, body in enumerate(REGISTRY_CELLS):
        plan.add_cell(f"c{i}", body)
    assert ("c0", "c1", "state") in plan.edges()


def test_which_calls_on_a_library_object_are_a_set_up():
    setup = [
        'import altair as alt\nalt.renderers.enable("mimetype")',
        "import polars as pl\npl.Config.set_tbl_rows(2)",
        "from pandas.plotting import register_matplotlib_converters\nregister_matplotlib_converters()",
    ]
    for source in setup:
        assert "display" in analyse(source).effects, source
    others = [
        'from pandas.api.types import CategoricalDtype\nCategoricalDtype(["a", "b"])',  # a class, dropped
        'import os\nos.path.join("a", "b")',  # the standard library
        "import numpy as np\nnp.testing.assert_allclose(a, b)",  # given notebook values
        'import altair as alt\nr = alt.renderers.enable("mimetype")',  # its result kept
    ]
    for source in others:
        assert "display" not in analyse(source).effects, source
