"""The teaching notebooks (notebooks/0*.ipynb).

- They run top to bottom under nbval, in a fresh kernel each (``--nbval-lax``:
  every cell must run without error; outputs are not compared, since they hold
  timings and dates), and nbval has nothing to complain about (nbsteps sends no
  display update to a client that cannot take one).
- The committed copies are generated from their text (notebooks/0*.md, jupytext
  MyST) by ``python scripts/notebooks.py sync``, with their outputs saved: every
  run and ``%steps show`` leaves a static picture (the graph as a data-URI image,
  which renders in untrusted notebooks, and the table), no widget; every
  ``%%step`` cell shows its step's output. Each teaches in the agreed shape: an explanation
  first, "What to try next" last. tests/test_notebooks_text.py checks that each
  .md and its .ipynb have the same cells.
- Opt-in (needs network, a few minutes): NBSTEPS_BINDER_CHECK=1 builds a clean
  virtualenv from binder/requirements.txt only and executes every notebook in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("0*.ipynb"))
EXPECTED = [
    "01-getting-started.ipynb",
    "02-planning-before-acting.ipynb",
    "03-partial-completion-and-recovery.ipynb",
    "04-data-pipeline.ipynb",
    "05-risky-steps.ipynb",
    "06-scaling-out.ipynb",
]

pytestmark = pytest.mark.kernel


def _env() -> dict:
    """The environment for kernels: this interpreter's bin directory first on
    PATH (so ``!nbsteps`` in a notebook is the nbsteps under test), no
    inherited nbsteps settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBSTEPS_")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_the_six_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == EXPECTED


def test_notebooks_run_under_nbval():
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-s",
        "--nbval-lax",
        "--nbval-current-env",
        "--nbval-cell-timeout=300",
        *[str(p.relative_to(ROOT)) for p in NOTEBOOKS],
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1200)
    took = time.monotonic() - start
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"nbval failed (exit {proc.returncode}, {took:.0f} s):\n{out[-8000:]}"
    # every cell of every notebook ran: nbval reports one test item per code cell
    n_cells = sum(1 for p in NOTEBOOKS for c in nbformat.read(p, as_version=4).cells if c.cell_type == "code")
    assert f"{n_cells} passed" in out, out[-3000:]
    # nbval reports iopub messages it does not handle (update_display_data, clear_output)
    assert "unhandled iopub msg" not in out, out[-3000:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_saved_outputs_and_shape(path):
    nb = nbformat.read(path, as_version=4)
    cells = nb.cells
    # teaching shape: the idea first, what to try next last
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), path.name
    assert cells[-1].cell_type == "markdown" and "What to try next" in cells[-1].source, path.name
    code = [c for c in cells if c.cell_type == "code"]
    # executed and saved: every code cell has run, in order, with no error output
    counts = [c.execution_count for c in code]
    assert None not in counts and counts == sorted(counts), f"{path.name}: not executed top to bottom"
    for c in code:
        assert not [o for o in c.outputs if o.output_type == "error"], (
            f"{path.name}: error saved in\n{c.source}"
        )
    mimes = {m for c in code for o in c.outputs for m in o.get("data", {})}
    sources = "\n".join(c.source for c in code)
    if "%steps graph" in sources:
        assert "image/svg+xml" in mimes, f"{path.name}: the graph's SVG is not saved"
    if "%steps results" in sources:
        assert "text/html" in mimes, f"{path.name}: the results table is not saved"
    # no widget anywhere: runs and %steps show leave static pictures that render untrusted,
    # without a kernel, on GitHub and nbviewer
    assert "application/vnd.jupyter.widget-view+json" not in mimes, path.name
    assert "widgets" not in nb.metadata, path.name
    for c in code:
        first = c.source.split("\n", 1)[0]
        html_outs = [o["data"]["text/html"] for o in c.outputs if "text/html" in o.get("data", {})]
        if first.startswith(("%steps run", "%steps show")):
            picture = next((h for h in html_outs if "nbsteps-static" in h), "")
            assert 'class="nbsteps-graph-img"' in picture and "data:image/svg+xml;base64," in picture, (
                f"{path.name}: no graph picture under {first!r}"
            )
            assert "<svg" not in picture and "nbsteps-results" in picture, path.name
        if first.startswith("%%step"):
            assert any("nbsteps-step-output" in h for h in html_outs), (
                f"{path.name}: no step output under {first!r}"
            )
    # nothing machine-specific beyond temp paths: no absolute path into this checkout
    assert str(ROOT) not in nbformat.writes(nb), f"{path.name} mentions {ROOT}"


@pytest.mark.skipif(
    os.environ.get("NBSTEPS_BINDER_CHECK") != "1", reason="opt-in (network, minutes): NBSTEPS_BINDER_CHECK=1"
)
def test_binder_requirements_alone_run_every_notebook(tmp_path):
    venv = tmp_path / "bindervenv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # as repo2docker does: from the repository root, only binder/requirements.txt
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"],
        cwd=ROOT,
        check=True,
        timeout=1800,
    )
    script = (
        "import sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        "for path in sys.argv[1:]:\n"
        "    nb = nbformat.read(path, as_version=4)\n"
        "    NotebookClient(nb, timeout=300, kernel_name='python3',\n"
        "                   resources={'metadata': {'path': 'notebooks'}}).execute()\n"
        "    print('ok', path, flush=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NBSTEPS_", "JUPYTER_", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    proc = subprocess.run(
        [str(py), "-c", script, *[str(p.relative_to(ROOT)) for p in NOTEBOOKS]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-8000:]
    assert proc.stdout.count("ok ") == len(NOTEBOOKS)
