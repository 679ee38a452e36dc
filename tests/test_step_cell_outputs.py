"""A ``%%step`` cell shows the outputs Run All shows for the same body (SPEC 1,
"The promise"; SPEC 4, "Each step in its own cell"), in a real kernel through
nbclient: a status line first, then the same outputs, of the same types, in
the same order (streams, ``Out`` before the figures left open, figures as
``image/png``), when the cell runs its step, when a plan run fills the cell's
slots, and when the step is restored from a directory store in a new kernel.
"""

import re

import pytest
from conftest import execute_notebook

pytestmark = pytest.mark.kernel

BODY_A = (
    "import matplotlib.pyplot as plt\n"
    "print('drawing a')\n"
    "fig, ax = plt.subplots()\n"
    "ax.plot([1, 2, 3])\n"
    "ax.set_xlabel('time')"
)  # Out is a Text whose position the drawing changes
BODY_B = (
    "print('b sees', len(ax.lines))\nfor k in range(3):\n    plt.figure()\n    plt.plot([k, 1])\nn = 3\nn * 2"
)


def _shape(cell) -> list[tuple]:
    """(kind, text) per output, Run All's view: a stream's text, a display's
    text/plain (figures as 'figure'); nbsteps' status line and unused slots
    are left out."""
    out = []
    for o in cell.outputs:
        if o.output_type == "stream":
            out.append(("text", o.text.strip()))
        elif o.output_type in ("display_data", "execute_result"):
            data = o.get("data", {})
            if "nbsteps-status" in data.get("text/html", "") or data == {"text/plain": ""}:
                continue
            if "image/png" in data:
                out.append(("figure", re.sub(r"\d+x\d+", "WxH", data["text/plain"])))
            else:
                out.append(("text", data.get("text/plain", "").strip()))
        elif o.output_type == "error":
            out.append(("error", o.ename))
    return out


def _status(cell) -> str:
    return next(
        o.data["text/plain"]
        for o in cell.outputs
        if o.output_type == "display_data" and "nbsteps-status" in o.data.get("text/html", "")
    )


@pytest.fixture
def plain(tmp_path, kernel_name):
    nb = execute_notebook([BODY_A, BODY_B], kernel_name, tmp_path)
    shapes = [_shape(c) for c in nb.cells]
    assert shapes[0] == [
        ("text", "drawing a"),
        ("text", "Text(0.5, 0, 'time')"),
        ("figure", "<Figure size WxH with 1 Axes>"),
    ]
    assert [k for k, _ in shapes[1]] == ["text", "text", "figure", "figure", "figure"]
    return shapes


def test_interactive_cells_show_what_run_all_shows(plain, tmp_path, kernel_name):
    nb = execute_notebook(
        ["%load_ext nbsteps", f"%%step a\n{BODY_A}", f"%%step b\n{BODY_B}"], kernel_name, tmp_path
    )
    a, b = nb.cells[1:]
    assert [_shape(a), _shape(b)] == plain
    assert [o.output_type for o in a.outputs] == ["display_data", "stream", "execute_result", "display_data"]
    assert _status(a).startswith("✓ a completed") and _status(b).startswith("✓ b completed")


def test_plan_mode_fills_each_cell_with_its_outputs(plain, tmp_path, kernel_name):
    nb = execute_notebook(
        [
            "%load_ext nbsteps\n%steps mode plan",
            f"%%step a\n{BODY_A}",
            f"%%step b\n{BODY_B}",
            "%steps run --workers 4",
        ],
        kernel_name,
        tmp_path,
    )
    a, b, run = nb.cells[1:]
    assert [_shape(a), _shape(b)] == plain
    # the run cell shows the run, none of the steps' output
    assert not any(
        "image/png" in o.get("data", {})
        for o in run.outputs
        if "nbsteps-view" not in o.get("data", {}).get("text/html", "")
    )
    assert "drawing a" not in "".join(o.get("text", "") for o in run.outputs)


def test_headless_run_fills_the_cells_too(plain, tmp_path, kernel_name):
    import subprocess
    import sys

    import nbformat

    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(s)
            for s in (
                "%load_ext nbsteps\n%steps mode plan",
                f"%%step a\n{BODY_A}",
                f"%%step b\n{BODY_B}",
                "%steps run",
            )
        ]
    )
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": kernel_name, "language": "python"}
    nbformat.write(nb, tmp_path / "p.ipynb")
    proc = subprocess.run(
        [sys.executable, "-m", "nbsteps", "run", "p.ipynb", "-o", "out.ipynb", "--kernel", kernel_name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ran = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert [_shape(ran.cells[1]), _shape(ran.cells[2])] == plain


def test_restored_in_a_new_kernel_shows_the_same_outputs(plain, tmp_path, kernel_name):
    cells = ["%load_ext nbsteps\n%steps store .nbsteps", f"%%step a\n{BODY_A}", f"%%step b\n{BODY_B}"]
    execute_notebook(cells, kernel_name, tmp_path)
    nb = execute_notebook(
        cells + ["import matplotlib.pyplot as plt\nprint(plt.get_fignums())"], kernel_name, tmp_path
    )
    a, b, after = nb.cells[1:]
    assert "restored from its checkpoint" in _status(a) and "restored from its checkpoint" in _status(b)
    assert [_shape(a), _shape(b)] == plain
    assert [o.output_type for o in a.outputs] == ["display_data", "stream", "execute_result", "display_data"]
    assert after.outputs[0].text.strip() == "[]"  # restored figures are images, not live pyplot figures


def test_more_outputs_than_slots_are_shown_together_in_the_last(tmp_path, kernel_name):
    body = (
        "n = 12\nfor i in range(n):\n    print(i)\n    display(i)"  # 24 outputs; the cell's guess is smaller
    )
    nb = execute_notebook(
        ["%load_ext nbsteps\n%steps mode plan", f"%%step many\n{body}", "%steps run"], kernel_name, tmp_path
    )
    cell = nb.cells[1]
    shown = [o.data for o in cell.outputs if o.output_type == "display_data"][1:]
    assert len(shown) < 24 and all(d.get("text/plain") for d in shown)
    text = "\n".join(d["text/plain"] for d in shown).split()
    assert text == [str(i) for i in range(12) for _ in range(2)]  # nothing lost, in order


def test_a_figure_that_is_out_is_shown_as_run_all_shows_it(tmp_path, kernel_name):
    body = "import matplotlib.pyplot as plt\nf = plt.figure()\nplt.plot([1, 2])\nf"
    plain = execute_notebook([body], kernel_name, tmp_path).cells[0]
    nb = execute_notebook(["%load_ext nbsteps", f"%%step a\n{body}"], kernel_name, tmp_path)
    assert _shape(nb.cells[1]) == _shape(plain)
    assert [k for k, _ in _shape(plain)] == ["figure", "figure"]  # Out, and the inline backend's flush


def test_a_step_run_again_from_another_cell_replaces_the_figures_its_cell_showed(tmp_path, kernel_name):
    draw = (
        "%%step b\nimport matplotlib.pyplot as plt\nprint('b draws', k)\n"
        "plt.figure()\nplt.plot([k, 2])\nm = k"
    )
    nb = execute_notebook(
        ["%load_ext nbsteps", "%%step a\nk = 1", draw, "%%step a\nk = 2", "%steps run"], kernel_name, tmp_path
    )
    b = nb.cells[2]
    status = next(o for o in b.outputs if "nbsteps-status" in o.get("data", {}).get("text/html", ""))
    # the status output shows the run that %steps run made (k = 2), its figure included ...
    assert "b draws 2" in status.data["text/plain"] and "data:image/png;base64," in status.data["text/html"]
    # ... and the figure of the cell's own run (k = 1) is gone; only its printed line stays (a stream)
    assert not any("image/png" in o.get("data", {}) for o in b.outputs)
    assert [o.text for o in b.outputs if o.output_type == "stream"] == ["b draws 1\n"]


def test_out_is_formatted_with_the_print_options_a_step_above_set(tmp_path, kernel_name):
    """numpy keeps its print options in a context variable (SciPy's outliers tutorial
    sets ``linewidth=120`` in its first cell): a step's ``Out`` uses them as Run All's does."""
    bodies = ["import numpy as np\nnp.set_printoptions(linewidth=120)", "np.arange(30.)"]
    plain = execute_notebook(bodies, kernel_name, tmp_path).cells[1]
    nb = execute_notebook(
        ["%load_ext nbsteps", f"%%step a\n{bodies[0]}", f"%%step b\n{bodies[1]}"], kernel_name, tmp_path
    )
    assert _shape(nb.cells[2]) == _shape(plain)
    assert len(_shape(plain)[0][1].splitlines()) == 2  # 120 columns: two lines, not three


def test_a_step_replayed_for_shared_state_keeps_the_figure_its_cell_shows(tmp_path, kernel_name):
    """In a new kernel, a step below a seeded, plotting step executes: the seeded step is replayed
    (its effect is on the process) while its own cell shows its restored figure; the figure stays
    (a replay keeps its token: nothing about the cell changed), also when the display timer
    fires during the replay (it sleeps longer than the timer's interval)."""
    seeded = (
        "import time\nimport numpy as np\nimport matplotlib.pyplot as plt\nnp.random.seed(0)\n"
        "plt.plot([1, 3, 2])\ntime.sleep(0.8)"
    )
    cells = [
        "%load_ext nbsteps\n%steps store .nbsteps",
        f"%%step seeded\n{seeded}",
        "%%step draw\nx = np.random.rand()",
    ]
    execute_notebook(cells, kernel_name, tmp_path)
    cells[2] += " * 1"  # edited in the new kernel: it executes, and the seed above is replayed
    nb = execute_notebook(
        cells + ["import nbsteps\nprint(nbsteps.step('seeded').reason)"], kernel_name, tmp_path
    )
    assert "replayed" in nb.cells[3].outputs[0].text
    assert [k for k, _ in _shape(nb.cells[1])] == ["figure"]  # the restored figure is still shown


def test_a_figure_stays_when_a_write_seen_below_recomputes_its_step(tmp_path, kernel_name):
    """A later cell changes an object of the plotting step's through a call nothing predicted
    (an unlisted class caches into it): with the kernel's memory store the plotting step is
    recomputed to keep its own version intact. That recomputation shows what the cell already
    shows, so the cell keeps its figure, as Run All's (statsmodels' deterministic-terms tutorial:
    ``AutoReg(y, deterministic=det_proc)`` filling ``det_proc``'s cache)."""
    cells = [
        "import matplotlib.pyplot as plt\n"
        "class Terms:\n    def __init__(self):\n        self.cache = {}\n"
        "def fit(terms):\n    terms.cache['fit'] = 1\n    return 2",
        "terms = Terms()\nax = plt.plot([1, 3, 2])",
        "res = fit(terms)",
        "res + 1",
    ]
    plain = execute_notebook(cells, kernel_name, tmp_path)
    nb = execute_notebook(
        ["%load_ext nbsteps"] + [f"%%step s{i}\n{c}" for i, c in enumerate(cells)], kernel_name, tmp_path
    )
    assert [k for k, _ in _shape(plain.cells[1])] == ["figure"]
    assert [k for k, _ in _shape(nb.cells[2]) if k == "figure"] == ["figure"]
    status = next(
        o for o in nb.cells[2].outputs if "nbsteps-status" in o.get("data", {}).get("text/html", "")
    )
    assert "<Figure" not in status.data["text/plain"]  # not shown a second time, as text, by the status


# pandas' DataFrame.plot() makes a figure of its own: the one plt.figure() made before it
# stays empty, and the inline backend shows it as its text only, no image (pd_10min, cell74)
BODY_EMPTY = "import matplotlib.pyplot as plt\nplt.figure();\nfig = plt.figure()\nfig.gca().plot([1, 2]);"


def test_an_empty_figure_shows_as_text_as_in_run_all(tmp_path, kernel_name):
    plain = execute_notebook([BODY_EMPTY], kernel_name, tmp_path)
    assert _shape(plain.cells[0]) == [
        ("text", "<Figure size 640x480 with 0 Axes>"),
        ("figure", "<Figure size WxH with 1 Axes>"),
    ]
    modes = (("%load_ext nbsteps", []), ("%load_ext nbsteps\n%steps mode plan", ["%steps run"]))
    for prelude, after in modes:
        nb = execute_notebook([prelude, f"%%step empty\n{BODY_EMPTY}", *after], kernel_name, tmp_path)
        assert _shape(nb.cells[1]) == _shape(plain.cells[0]), prelude


def test_a_step_cell_shows_what_changed_between_runs(tmp_path, kernel_name):
    """After each run every step cell's status line is brought up to date (StepCells.refresh_all,
    which redraws only the lines whose step changed: StepCells._status_only): a step reset
    between two runs says so after the next run, one whose upstream changed says it is stale."""
    nb = execute_notebook(
        [
            "%load_ext nbsteps",
            "%%step a\nx = 1",
            "%%step b\ny = x + 1",
            "%%step c\nw = 5",
            "%steps reset b",
            "%%step d\nz = 3",
            "%%step a\nx = 2",
        ],
        kernel_name,
        tmp_path,
    )
    assert "b registered, not run yet" in _status(nb.cells[2]), _status(nb.cells[2])
    assert "c completed" in _status(nb.cells[3]) and "stale" not in _status(nb.cells[3])
    assert "d completed" in _status(nb.cells[5]) and "stale" not in _status(nb.cells[5])

    nb = execute_notebook(
        ["%load_ext nbsteps", "%%step a\nx = 1", "%%step b\ny = x + 1", "%%step c\nw = 5", "%%step a\nx = 2"],
        kernel_name,
        tmp_path,
    )
    assert "b completed" in _status(nb.cells[2]) and "stale: upstream a changed" in _status(nb.cells[2])
    assert "stale" not in _status(nb.cells[3])
