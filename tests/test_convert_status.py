"""``nbsteps convert``, ``nbsteps status`` and ``nbsteps install-kernel-ext`` (issue 25):
real subprocesses, real kernels, real files."""

from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.conftest import cell_text, execute_notebook

CMD = [sys.executable, "-m", "nbsteps"]
SPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}

CELLS = [
    new_markdown_cell("# Title"),
    new_code_cell("import json\nimport os"),
    new_code_cell("raw = [3, 1, 2]\nprint('loaded', len(raw))"),
    new_code_cell("# step: clean --retry 1\nclean = sorted(raw)\nclean"),
    new_code_cell("%matplotlib inline"),
    new_code_cell("total = sum(clean)\nmean = total / len(clean)\nmean"),
    new_code_cell("other = sum(raw)"),
]


def nbsteps(*args, cwd=None, timeout=300):
    return subprocess.run([*CMD, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


@pytest.fixture
def notebook(tmp_path):
    nbformat.write(new_notebook(cells=CELLS, metadata=SPEC), tmp_path / "a.ipynb")
    return tmp_path / "a.ipynb"


def test_convert_check_prints_names_and_writes_nothing(notebook):
    before = sorted(p.name for p in notebook.parent.iterdir())
    proc = nbsteps("convert", notebook.name, "--check", cwd=notebook.parent)
    assert proc.returncode == 0, proc.stderr
    assert "cell 2: %%step imports" in proc.stdout
    assert "cell 3: %%step raw" in proc.stdout
    assert "cell 4: %%step clean --retry 1" in proc.stdout
    assert "cell 6: %%step mean" in proc.stdout and "cell 7: %%step other" in proc.stdout
    assert "cell 5" not in proc.stdout  # a magic-only cell is not a step
    assert sorted(p.name for p in notebook.parent.iterdir()) == before


def test_convert_keeps_untouched_cells_byte_identical(notebook):
    proc = nbsteps("convert", notebook.name, "-o", "b.ipynb", cwd=notebook.parent)
    assert proc.returncode == 0, proc.stderr
    old = json.loads(notebook.read_text())
    new = json.loads((notebook.parent / "b.ipynb").read_text())
    assert new["cells"][0]["source"] == ["%load_ext nbsteps"]
    assert new["metadata"] == old["metadata"]
    for before, after in zip(old["cells"], new["cells"][1:], strict=True):
        if before["cell_type"] != "code" or "".join(before["source"]).startswith("%matplotlib"):
            assert after == before
        else:  # only the %%step line is added
            assert after["source"][0].startswith("%%step ") and after["source"][1:] == before["source"]
            assert {k: v for k, v in after.items() if k != "source"} == {
                k: v for k, v in before.items() if k != "source"
            }
    # the file's text: the old text with lines inserted, nothing else changed
    import difflib

    old_lines = notebook.read_text().splitlines(keepends=True)
    new_lines = (notebook.parent / "b.ipynb").read_text().splitlines(keepends=True)
    ops = {op for op, *_ in difflib.SequenceMatcher(None, old_lines, new_lines).get_opcodes()}
    assert ops == {"equal", "insert"}
    again = nbsteps("convert", "b.ipynb", "-o", "c.ipynb", cwd=notebook.parent)
    assert again.returncode == 2 and "already has %%step cells" in again.stderr


@pytest.mark.kernel
def test_converted_notebook_runs_like_the_zero_edit_run(notebook, kernel_name):
    d = notebook.parent
    assert nbsteps("convert", notebook.name, "-o", "b.ipynb", cwd=d).returncode == 0
    zero = nbsteps(
        "run", "a.ipynb", "-o", "a.out.ipynb", "--results", "a.json", "--kernel", kernel_name, cwd=d
    )
    conv = nbsteps(
        "run", "b.ipynb", "-o", "b.out.ipynb", "--results", "b.json", "--kernel", kernel_name, cwd=d
    )
    assert zero.returncode == conv.returncode == 0, zero.stdout + zero.stderr + conv.stdout + conv.stderr
    assert "OK: 5 of 5 steps completed" in zero.stdout and "OK: 5 of 5 steps completed" in conv.stdout
    a = nbformat.read(d / "a.out.ipynb", as_version=4)
    b = nbformat.read(d / "b.out.ipynb", as_version=4)
    assert "loaded 3" in cell_text(a.cells[2]) and "loaded 3" in cell_text(b.cells[3])
    assert cell_text(a.cells[3]) == "[1, 2, 3]" and "[1, 2, 3]" in cell_text(b.cells[4])
    assert cell_text(a.cells[5]) == "2.0" and "2.0" in cell_text(b.cells[6])
    rows_a = json.loads((d / "a.json").read_text())
    rows_b = json.loads((d / "b.json").read_text())
    assert [r["status"] for r in rows_a] == [r["status"] for r in rows_b] == ["completed"] * 5


@pytest.mark.kernel
def test_status_exit_codes_in_a_shell(notebook, kernel_name):
    d = notebook.parent
    sh = lambda cmd: subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, cwd=d, timeout=300)
    nbs = f"{sys.executable} -m nbsteps"
    never = sh(f"{nbs} status a.ipynb --store st")
    assert never.returncode == 1 and "never run" in never.stdout
    assert not (d / "st").exists()  # status writes nothing
    made = sh(f"{nbs} status a.ipynb --store st || {nbs} run a.ipynb --store st --kernel {kernel_name}")
    assert made.returncode == 0, made.stdout + made.stderr
    assert sh(f"{nbs} status a.ipynb --store st").returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (d / "st").rglob("*")}
    doc = json.loads(sh(f"{nbs} status a.ipynb --store st --json").stdout)
    assert doc["up_to_date"] and {r["state"] for r in doc["steps"]} == {"done"}
    assert {p: p.stat().st_mtime_ns for p in (d / "st").rglob("*")} == before
    # change one cell's code: it is stale (code), what reads it is stale (upstream), the rest done
    nb = nbformat.read(notebook, as_version=4)
    nb.cells[3].source = "# step: clean --retry 1\nclean = sorted(raw, reverse=True)\nclean"
    nbformat.write(nb, notebook)
    proc = sh(f"{nbs} status a.ipynb --store st --json")
    assert proc.returncode == 1
    states = {r["step"]: (r["state"], r["why"]) for r in json.loads(proc.stdout)["steps"]}
    assert states["clean"] == ("stale", "code changed")
    name = {i: f"cell-{c.id[:8]}" for i, c in enumerate(nb.cells)}  # zero edits: named by cell id
    assert states[name[5]] == ("stale", "upstream clean is stale")
    assert states[name[1]][0] == states[name[2]][0] == states[name[6]][0] == "done"
    assert sh(f"{nbs} status missing.ipynb").returncode == 2


@pytest.mark.kernel
def test_status_of_a_step_notebook_reading_a_kernel_value_is_unknown(tmp_path, kernel_name):
    cells = [
        "%load_ext nbsteps",
        "factor = 3",
        "%%step load\ndata = [1, 2]",
        "%%step scale\nout = [x * factor for x in data]",
    ]
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells], metadata=SPEC), tmp_path / "s.ipynb")
    assert nbsteps("run", "s.ipynb", "--store", "st", "--kernel", kernel_name, cwd=tmp_path).returncode == 0
    proc = nbsteps("status", "s.ipynb", "--store", "st", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "load   done" in proc.stdout and "unknown until run" in proc.stdout and "factor" in proc.stdout


@pytest.mark.kernel
def test_install_kernel_ext_loads_nbsteps_in_a_real_kernel_and_uninstall_restores(
    tmp_path, kernel_name, monkeypatch
):
    ipdir = tmp_path / "ipython"
    monkeypatch.setenv("IPYTHONDIR", str(ipdir))
    config = ipdir / "profile_default" / "ipython_config.py"
    config.parent.mkdir(parents=True)
    original = b"c = get_config()  # my settings\nc.InteractiveShell.colors = 'nocolor'"  # no final newline
    config.write_bytes(original)
    proc = nbsteps("install-kernel-ext")
    assert proc.returncode == 0, proc.stderr
    assert config.read_bytes().startswith(original) and b'extensions.append("nbsteps")' in config.read_bytes()
    assert "already" in nbsteps("install-kernel-ext").stdout  # twice is once
    nb = execute_notebook(["%%step first\nx = 41 + 1\nx", "x"], kernel_name, tmp_path)
    assert "42" in cell_text(nb.cells[0]) and cell_text(nb.cells[1]) == "42"
    assert nbsteps("install-kernel-ext", "--uninstall").returncode == 0
    assert config.read_bytes() == original
    # a file it created is removed again
    other = ipdir / "profile_work" / "ipython_config.py"
    assert nbsteps("install-kernel-ext", "--profile", "work").returncode == 0 and other.exists()
    assert nbsteps("install-kernel-ext", "--profile", "work", "--uninstall").returncode == 0
    assert not other.exists()
