"""Zero edits (issue 25): ``nbsteps run`` on notebooks without ``%%step`` cells,
and ``%steps auto`` in a real kernel. Real ``nbsteps run`` processes, real kernels."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from tests.conftest import cell_text, execute_notebook

pytestmark = pytest.mark.kernel

CMD = [sys.executable, "-m", "nbsteps"]
SPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def nbsteps(*args, cwd=None, timeout=300):
    return subprocess.run([*CMD, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def write(path, cells):
    nb = new_notebook(cells=cells, metadata=SPEC)
    nbformat.write(nb, path)
    return nb


def run_all(path, kernel_name, cwd):
    """A plain nbclient Run All of the notebook at *path*."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, kernel_name=kernel_name, timeout=120, resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def shown(cell) -> str:
    """What a cell shows, as text (HTML and images ignored)."""
    return cell_text(cell)


PANDAS = [
    new_markdown_cell("# Sales"),
    new_code_cell("import pandas as pd"),
    new_code_cell("df = pd.read_csv('sales.csv')\nprint(len(df), 'rows')\ndf.head(2)"),
    new_code_cell("# step: total --retry 1\ntotal = int(df['amount'].sum())\ntotal"),
    new_raw_cell("raw text stays"),
    new_code_cell("%matplotlib inline"),
    new_code_cell(
        "by_region = df.groupby('region')['amount'].sum().to_dict()\ndisplay(by_region)\nprint('done')"
    ),
]


@pytest.fixture
def sales(tmp_path):
    (tmp_path / "sales.csv").write_text("region,amount\nnorth,10\nsouth,20\nnorth,5\n")
    return tmp_path


def test_pandas_notebook_runs_as_steps_with_run_all_outputs(sales, kernel_name):
    nb = write(sales / "sales.ipynb", PANDAS)
    out = sales / "out.ipynb"
    proc = nbsteps(
        "run", "sales.ipynb", "--store", ".nbsteps", "-o", out, "--workers", "2", "--kernel", kernel_name,
        "--results", "r.csv", "--graph", "g.svg", cwd=sales,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ids = [c.id for c in nb.cells]
    assert "each code cell is a step" in proc.stdout
    assert f"cell-{ids[2][:8]} completed" in proc.stdout and "total completed" in proc.stdout
    assert "OK: 4 of 4 steps completed" in proc.stdout
    executed = nbformat.read(out, as_version=4)
    reference = run_all(sales / "sales.ipynb", kernel_name, sales)
    # the original sources, no injected lines; markdown and raw kept; outputs as Run All shows them
    assert [c.source for c in executed.cells] == [c.source for c in nb.cells]
    assert [c.cell_type for c in executed.cells] == [c.cell_type for c in nb.cells]
    for mine, ref in zip(executed.cells, reference.cells, strict=True):
        if mine.cell_type == "code":
            assert shown(mine) == shown(ref), mine.source
            assert [o.output_type for o in mine.outputs] == [o.output_type for o in ref.outputs]
    assert "3 rows" in shown(executed.cells[2]) and shown(executed.cells[3]) == "35"
    assert (sales / "r.csv").exists() and (sales / "g.svg").read_text().lstrip().startswith("<?xml")
    # a second run restores everything: nothing executes, the outputs are the same
    again = nbsteps(
        "run", "sales.ipynb", "--store", ".nbsteps", "-o", out, "--kernel", kernel_name, cwd=sales
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert " started" not in again.stdout
    rerun = nbformat.read(out, as_version=4)
    assert [shown(c) for c in rerun.cells] == [shown(c) for c in executed.cells]


def test_failing_cell_fixed_and_rerun_executes_only_what_is_left(tmp_path, kernel_name):
    cells = [
        new_code_cell("a = 1\nprint('a ran')"),
        new_code_cell("b = a + 1\nprint('b ran')"),
        new_code_cell("c = b * undefined_name"),
        new_code_cell("d = c + 1\nd"),
        new_code_cell("e = a * 100\ne"),
    ]
    nb = write(tmp_path / "nb.ipynb", cells)
    name = {i: f"cell-{c.id[:8]}" for i, c in enumerate(nb.cells)}
    first = nbsteps(
        "run", "nb.ipynb", "--store", "st", "-o", "out.ipynb", "--kernel", kernel_name, cwd=tmp_path
    )
    assert first.returncode == 1, first.stdout + first.stderr
    assert f"{name[2]} failed" in first.stdout and f"{name[4]} completed" in first.stdout
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[2].outputs[-1].output_type == "error" and "undefined_name" in shown(out.cells[2])
    assert shown(out.cells[4]) == "100"
    status = nbsteps("status", "nb.ipynb", "--store", "st", cwd=tmp_path)
    assert status.returncode == 1 and "failed" in status.stdout and "NameError" in status.stdout
    # fix the failing cell, run again: only it and what it feeds execute
    nb.cells[2].source = "c = b * 10"
    nbformat.write(nb, tmp_path / "nb.ipynb")
    second = nbsteps(
        "run", "nb.ipynb", "--store", "st", "-o", "out.ipynb", "--kernel", kernel_name, cwd=tmp_path
    )
    assert second.returncode == 0, second.stdout + second.stderr
    started = {line.split()[1] for line in second.stdout.splitlines() if line.strip().startswith("▶")}
    assert started == {name[2], name[3]}
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert shown(out.cells[3]) == "21" and "a ran" in shown(out.cells[0])  # restored steps keep their output
    assert nbsteps("status", "nb.ipynb", "--store", "st", cwd=tmp_path).returncode == 0


def test_inserted_cells_keep_the_names_of_the_others(tmp_path, kernel_name):
    nb = write(tmp_path / "nb.ipynb", [new_code_cell("x = 2"), new_code_cell("y = x * 3\ny")])
    assert nbsteps("run", "nb.ipynb", "--store", "st", "--kernel", kernel_name, cwd=tmp_path).returncode == 0
    nb.cells.insert(1, new_code_cell("z = 7\nz"))
    nb.cells.insert(0, new_markdown_cell("intro"))
    nbformat.write(nb, tmp_path / "nb.ipynb")
    proc = nbsteps("run", "nb.ipynb", "--store", "st", "-o", "o.ipynb", "--kernel", kernel_name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    started = {line.split()[1] for line in proc.stdout.splitlines() if line.strip().startswith("▶")}
    assert started == {f"cell-{nb.cells[2].id[:8]}"}  # only the new cell executes
    out = nbformat.read(tmp_path / "o.ipynb", as_version=4)
    assert [shown(c) for c in out.cells] == ["", "", "7", "6"]


def test_old_notebook_without_ids_is_named_by_position_and_says_so(tmp_path, kernel_name):
    nb = new_notebook(cells=[new_code_cell("x = 1"), new_code_cell("x + 1")], metadata=SPEC)
    nb.nbformat_minor = 4
    for c in nb.cells:
        del c["id"]
    nbformat.write(nb, tmp_path / "old.ipynb")
    proc = nbsteps("run", "old.ipynb", "-o", "o.ipynb", "--kernel", kernel_name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no cell ids" in proc.stdout and "cell-2 completed" in proc.stdout
    assert shown(nbformat.read(tmp_path / "o.ipynb", as_version=4).cells[1]) == "2"


def test_mixed_notebook_keeps_plain_cells_ordinary(tmp_path, kernel_name):
    write(
        tmp_path / "mixed.ipynb",
        [new_code_cell("%load_ext nbsteps"), new_code_cell("k = 3"), new_code_cell("%%step s\nv = k * 2\nv")],
    )
    proc = nbsteps("run", "mixed.ipynb", "--kernel", kernel_name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: 1 of 1 steps completed" in proc.stdout and "each code cell" not in proc.stdout


# -- %steps auto in a real kernel ---------------------------------------------------------


def test_steps_auto_makes_plain_cells_steps_in_a_kernel(tmp_path, kernel_name):
    nb = execute_notebook(
        [
            "%load_ext nbsteps\n%steps auto",
            "x = 4\nprint('x set')\nx * 10",
            "# step: double --retry 1\ny = x * 2\ny",
            "",
            "%matplotlib inline",
            "%steps status",
            "%steps auto off",
            "z = y + 1\nz",
            "%steps status",
        ],
        kernel_name,
        tmp_path,
    )
    assert "auto on" in shown(nb.cells[0])
    assert "x set" in shown(nb.cells[1]) and "40" in shown(nb.cells[1])
    assert "8" in shown(nb.cells[2])
    status = shown(nb.cells[5])
    assert "double: completed" in status and "2 steps" in status  # magic-only and empty cells are not steps
    assert shown(nb.cells[7]) == "9" and "2 steps" in shown(nb.cells[8])  # after off: ordinary code


def test_steps_auto_names_cells_by_the_id_jupyter_sends(tmp_path, kernel_name):
    """JupyterLab sends each execution's cell id in the request's metadata (``cellId``)."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=kernel_name, cwd=str(tmp_path))
    try:

        def execute(code, cell_id=None, expressions=None):
            msg = kc.session.msg(
                "execute_request",
                {"code": code, "silent": False, "store_history": True, "user_expressions": expressions or {},
                 "allow_stdin": False, "stop_on_error": True},
                metadata={"cellId": cell_id} if cell_id else {},
            )  # fmt: skip
            kc.shell_channel.send(msg)
            return kc._recv_reply(msg["header"]["msg_id"], timeout=60)["content"]

        assert execute("%load_ext nbsteps\n%steps auto")["status"] == "ok"
        assert execute("a = 5", "3f2a9c1e-aaaa-bbbb")["status"] == "ok"
        assert execute("b = a + 1", "77aa0011-cccc")["status"] == "ok"
        reply = execute("", expressions={"s": "sorted(__import__('nbsteps').current().steps)"})
        assert reply["user_expressions"]["s"]["data"]["text/plain"] == "['cell-3f2a9c1e', 'cell-77aa0011']"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
