"""The teaching notebooks are kept as text: notebooks/0*.md (jupytext, MyST) is
the source and the .ipynb beside it is generated from it, executed, by
``python scripts/notebooks.py sync``. These tests need no kernel:

- every committed .md and .ipynb pair has the same cells (the check CI relies on
  to catch a .md edited without re-syncing, or an .ipynb edited alone);
- the check names the notebook and the fix when they drift apart, either way;
- ``sync --no-execute`` rebuilds an .ipynb from its .md and keeps unchanged cells' ids.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "notebooks.py"
TEACHING = sorted((ROOT / "notebooks").glob("0*.ipynb"))


def _script(root: Path | None = None):
    """scripts/notebooks.py as a module, pointed at ``root`` (a copy of the
    repository's notebooks) when given."""
    spec = importlib.util.spec_from_file_location("notebooks_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if root is not None:
        module.ROOT = root
        module.NOTEBOOKS = root / "notebooks"
    return module


@pytest.fixture
def copy(tmp_path) -> Path:
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    return tmp_path


def test_every_teaching_notebook_has_its_text():
    assert TEACHING
    for ipynb in TEACHING:
        md = ipynb.with_suffix(".md")
        assert md.exists(), f"{ipynb.name} has no {md.name}"
        assert jupytext.read(md).metadata["jupytext"]["formats"] == "ipynb,md:myst", md.name
        assert nbformat.read(ipynb, as_version=4).metadata["jupytext"]["formats"] == "ipynb,md:myst"


def test_every_md_and_ipynb_pair_has_the_same_cells():
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "check"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(TEACHING)} notebooks" in proc.stdout


def test_check_names_an_md_edited_without_sync(copy):
    md = copy / "notebooks" / "03-partial-completion-and-recovery.md"
    text = md.read_text()
    assert "builds these in" in text
    md.write_text(text.replace("builds these in", "provides these", 1))
    problems = _script(copy).differences()
    assert len(problems) == 1, problems
    assert "notebooks/03-partial-completion-and-recovery.md" in problems[0]
    assert "python scripts/notebooks.py sync 03" in problems[0]


def test_check_names_an_ipynb_edited_alone(copy):
    path = copy / "notebooks" / "05-risky-steps.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell("1 + 1"))
    nbformat.write(nb, path)
    problems = _script(copy).differences()
    assert len(problems) == 1 and "05-risky-steps" in problems[0], problems
    assert "python scripts/notebooks.py sync" in problems[0]
    assert "jupytext --to md:myst notebooks/05-risky-steps.ipynb" in problems[0]


def test_check_exits_1_on_a_missing_half(copy, capsys):
    (copy / "notebooks" / "01-getting-started.md").unlink()
    (copy / "notebooks" / "02-planning-before-acting.ipynb").unlink()
    script = _script(copy)
    assert script.check() == 1
    out = capsys.readouterr().out
    assert "01-getting-started.ipynb is paired with a .md that is missing" in out
    assert "02-planning-before-acting.md: no 02-planning-before-acting.ipynb" in out


def test_sync_rebuilds_the_ipynb_from_its_md_and_keeps_ids(copy):
    md = copy / "notebooks" / "01-getting-started.md"
    ipynb = md.with_suffix(".ipynb")
    before = nbformat.read(ipynb, as_version=4)
    md.write_text(
        md.read_text().replace(
            "```{code-cell} ipython3\n%steps graph\n```",
            "```{code-cell} ipython3\n%steps graph\n```\n\n"
            "A new paragraph.\n\n```{code-cell} ipython3\n%steps plan\n```",
            1,
        )
    )
    script = _script(copy)
    assert script.differences()
    assert script.sync(["01"], run=False) == 0
    assert script.differences() == []
    after = nbformat.read(ipynb, as_version=4)
    nbformat.validate(after)
    assert len(after.cells) == len(before.cells) + 2
    new = next(i for i, c in enumerate(after.cells) if c.source == "A new paragraph.")
    assert after.cells[new + 1].source == "%steps plan"
    kept = after.cells[:new] + after.cells[new + 2 :]
    assert [(c.cell_type, c.source) for c in kept] == [(c.cell_type, c.source) for c in before.cells]
    assert [c.id for c in kept] == [c.id for c in before.cells]
    assert len({c.id for c in after.cells}) == len(after.cells)
    assert after.metadata["jupytext"] == {"formats": "ipynb,md:myst"}
    assert after.metadata["kernelspec"]["name"] == "python3"
    # the other notebooks were not touched
    assert (copy / "notebooks" / "02-planning-before-acting.ipynb").read_bytes() == (
        ROOT / "notebooks" / "02-planning-before-acting.ipynb"
    ).read_bytes()
