"""Display formatters run one at a time, as in Run All (found by the corpus: SymPy's tutorial).

Run All formats every ``Out`` and every ``display()`` on the kernel's one thread. A library
may register a formatter that is not safe to enter twice at once: SymPy's ``init_printing()``
renders each expression's LaTeX to PNG with matplotlib's mathtext, whose parser keeps a state
stack; two steps of a plan formatting their results on two threads at once failed with
``IndexError: pop from empty list`` and lost their images (``sym_calculus``,
``sym_simplification`` in plan mode, headless and zero-edit). Here the formatter is a stand-in
for any such library: it fails when it is entered while another call is inside it.
"""

import pytest
from conftest import execute_notebook

pytestmark = pytest.mark.kernel

SETUP = """\
import time

class Tex:
    def __init__(self, s):
        self.s = s
    def __repr__(self):
        return f"Tex({self.s!r})"

_inside = []

def tex_png(obj):
    # a renderer keeping shared state (a parser's stack): not to be entered twice at once
    _inside.append(obj)
    try:
        time.sleep(0.3)
        if len(_inside) > 1:
            raise IndexError("pop from empty list")
        return b"\\x89PNG " + obj.s.encode()
    finally:
        _inside.remove(obj)

get_ipython().display_formatter.formatters["image/png"].for_type(Tex, tex_png)
"""
STEPS = [f"Tex('{k}')" for k in range(4)] + [
    "from IPython.display import display\ndisplay(Tex('shown'))\nTex('out')"
]


def _images(cell) -> list[str]:
    """The ``text/plain`` of each output that has an ``image/png``, and errors' names."""
    out = []
    for o in cell.outputs:
        if o.output_type in ("display_data", "execute_result") and "image/png" in o.get("data", {}):
            out.append(o.data["text/plain"])
        elif o.output_type == "stream" and "IndexError" in o.text:
            out.append("IndexError")
    return out


def test_steps_on_threads_format_their_results_one_at_a_time_as_in_run_all(tmp_path, kernel_name):
    plain = execute_notebook([SETUP, *STEPS], kernel_name, tmp_path)
    expected = [_images(c) for c in plain.cells[1:]]
    assert expected == [[f"Tex('{k}')"] for k in range(4)] + [["Tex('shown')", "Tex('out')"]]
    nb = execute_notebook(
        [
            "%load_ext nbsteps\n%steps mode plan",
            f"%%step setup\n{SETUP}",
            *[f"%%step s{k}\n{body}" for k, body in enumerate(STEPS)],
            "%steps run --workers 4",
        ],
        kernel_name,
        tmp_path,
    )
    assert [_images(c) for c in nb.cells[2 : 2 + len(STEPS)]] == expected
