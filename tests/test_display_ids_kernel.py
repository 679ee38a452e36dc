"""Jupyter's output protocol inside ``%%step`` cells, in a real kernel through nbclient
(SPEC 1: the same outputs in the same cells as Run All), as IPython's own example
notebooks use it (tests/corpus: ``ipy_updating_displays``, ``ipy_clear_output``):

- ``display(obj, display_id=...)``, ``DisplayHandle.update``, ``update_display``: an
  update, or a new display with the same id, changes every output with that id, in
  the step's own cell and in the cells above, when the cell runs its step, when a
  plan run fills the cells' slots, and when the steps are restored in a new kernel;
- ``clear_output()`` clears the step's cell (``wait=True``: when the next output comes).
"""

import pytest
from conftest import execute_notebook

pytestmark = pytest.mark.kernel

CELLS = [
    "from IPython.display import display, update_display",
    "handle = display('x', display_id='update-me')",
    "handle.display('y')",
    "handle.update('z')",
    "h2 = display('a', display_id='own')\nfor k in range(3):\n    h2.update(f'a{k}')",
]
# what Run All shows in each of those cells at the end
RUN_ALL = [[], ["'z'"], ["'z'"], [], ["'a2'"]]


def _texts(cell) -> list[str]:
    """The text of each output Run All would show (nbsteps' status line and empty slots left out)."""
    out = []
    for o in cell.outputs:
        if o.output_type == "stream":
            out.append(o.text.strip())
        elif o.output_type in ("display_data", "execute_result"):
            data = o.get("data", {})
            if "nbsteps-status" in data.get("text/html", "") or data == {"text/plain": ""}:
                continue
            out.append(data.get("text/plain", "").strip())
    return out


def test_run_all_shows_what_the_test_expects(tmp_path, kernel_name):
    nb = execute_notebook(CELLS, kernel_name, tmp_path)
    assert [_texts(c) for c in nb.cells] == RUN_ALL


def test_step_cells_update_displays_by_id_in_their_own_and_earlier_cells(tmp_path, kernel_name):
    steps = [f"%%step c{i}\n{body}" for i, body in enumerate(CELLS)]
    nb = execute_notebook(["%load_ext nbsteps", *steps], kernel_name, tmp_path)
    assert [_texts(c) for c in nb.cells[1:]] == RUN_ALL


def test_restored_steps_update_the_displays_again(tmp_path, kernel_name):
    steps = [f"%%step c{i}\n{body}" for i, body in enumerate(CELLS)]
    cells = ["%load_ext nbsteps\n%steps store store", *steps]
    execute_notebook(cells, kernel_name, tmp_path)
    nb = execute_notebook(cells, kernel_name, tmp_path)  # a new kernel: every step restored
    assert all("restored" in c.outputs[0].data["text/plain"] for c in nb.cells[1:] if c.outputs)
    assert [_texts(c) for c in nb.cells[1:]] == RUN_ALL


def test_a_plan_run_fills_the_slots_with_the_last_display_of_each_id(tmp_path, kernel_name):
    steps = [f"%%step c{i}\n{body}" for i, body in enumerate(CELLS)]
    nb = execute_notebook(
        ["%load_ext nbsteps\n%steps mode plan", *steps, "%steps run"], kernel_name, tmp_path
    )
    assert [_texts(c) for c in nb.cells[1:-1]] == RUN_ALL


CLEAR = (
    "import sys\n"
    "from IPython.display import clear_output, display\n"
    "print('gone')\n"
    "display('gone too')\n"
    "for i in range(3):\n"
    "    clear_output(wait=True)\n"
    "    print(i)\n"
    "clear_output()\n"
    "display('last')\n"
    "print('kept', end='')\n"
    "clear_output(wait=True)"
)


def test_clear_output_in_a_step_cell_clears_it_as_in_run_all(tmp_path, kernel_name):
    plain = execute_notebook([CLEAR], kernel_name, tmp_path)
    # wait=True with nothing after it: the cell keeps what it shows
    assert _texts(plain.cells[0]) == ["'last'", "kept"]
    nb = execute_notebook(["%load_ext nbsteps", f"%%step a\n{CLEAR}"], kernel_name, tmp_path)
    assert _texts(nb.cells[1]) == _texts(plain.cells[0])
    # the cell still shows its step's status line, first
    assert "nbsteps-status" in nb.cells[1].outputs[0].data["text/html"]
    assert "a completed" in nb.cells[1].outputs[0].data["text/plain"]


def test_capture_magics_in_parallel_steps_capture_each_its_own_step(tmp_path, kernel_name):
    """``%%capture`` in steps running in parallel: each captures its own step's output, and
    the kernel's streams and display publisher are its own again afterwards (IPython's
    ``capture_output`` swaps the process's, and steps that restored each other's swaps
    out of order left a finished capture in place: the next cell hung)."""
    body = (
        "%%capture c{i}\nimport time\nprint('hi {i}')\ndisplay('shown {i}')\n"
        "time.sleep({d})\nprint('bye {i}')"
    )
    steps = [f"%%step s{i}\n" + body.format(i=i, d=d) for i, d in ((1, 0.2), (2, 0.5), (3, 0.35))]
    check = (
        "import sys\n"
        "print(type(sys.stdout).__name__, type(get_ipython().display_pub).__name__)\n"
        "print([(c.stdout, [o.data['text/plain'] for o in c.outputs]) for c in (c1, c2, c3)])"
    )
    nb = execute_notebook(
        ["%load_ext nbsteps\n%steps mode plan", *steps, "%steps run --workers 4", check],
        kernel_name,
        tmp_path,
        timeout=60,
    )
    kinds, captured = nb.cells[-1].outputs[0].text.strip().splitlines()
    assert kinds == "_Router ZMQDisplayPublisher"
    assert captured == repr([(f"hi {i}\nbye {i}\n", [f"'shown {i}'"]) for i in (1, 2, 3)])


def test_nbsteps_run_without_step_lines_writes_the_last_display_of_each_id(tmp_path, kernel_name):
    import subprocess
    import sys

    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": kernel_name, "display_name": kernel_name, "language": "python"}
    nbformat.write(nb, tmp_path / "nb.ipynb")
    cmd = [sys.executable, "-m", "nbsteps", "run", "nb.ipynb", "-o", "out.ipynb", "--kernel", kernel_name]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert [_texts(c) for c in out.cells] == RUN_ALL
