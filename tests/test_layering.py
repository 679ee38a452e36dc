"""The package's shape cannot rot: layers, no import cycles, the facade above.

``lint-imports`` (import-linter) checks the contracts in pyproject.toml; the
cycle check uses grimp (import-linter's import graph, which counts imports
inside functions too: a lazy import is still a design dependency). Imports
under ``if TYPE_CHECKING:`` count everywhere: a type hint pointing up a layer
is still a dependency. The length of a module is not checked (it is as long as
its one concept needs); ruff checks complexity (tests/test_style.py).
"""

from __future__ import annotations

import graphlib
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nbsteps"


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph("nbsteps", include_external_packages=False, exclude_type_checking_imports=False)
    modules = sorted(graph.modules)
    deps = {}
    for m in modules:
        # a package's own __init__ importing its submodules is not a cycle
        deps[m] = {d for d in graph.find_modules_directly_imported_by(m) if not m.startswith(d + ".")}
    try:
        graphlib.TopologicalSorter(deps).prepare()
    except graphlib.CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
    assert len(modules) > 30


def test_layers_are_folders():
    for layer in ("model", "run", "stores", "backends", "views", "ipython", "cli"):
        assert (PACKAGE / layer / "__init__.py").is_file(), layer


def test_nothing_below_the_facade_knows_the_plan():
    """run/, stores/, backends/ and views/ work on the run context: no code there
    imports, receives or type-hints Plan (docstrings may name the facade)."""
    import io
    import tokenize

    offenders = []
    for layer in ("run", "stores", "backends", "views"):
        for p in sorted((PACKAGE / layer).rglob("*.py")):
            for tok in tokenize.generate_tokens(io.StringIO(p.read_text()).readline):
                if tok.type == tokenize.NAME and tok.string == "Plan":
                    offenders.append(f"{p.relative_to(ROOT)}:{tok.start[0]}")
                if (
                    tok.type == tokenize.NAME
                    and tok.string == "plan"
                    and tok.line.lstrip().startswith(
                        ("def ", "from nbsteps import plan", "import nbsteps.plan")
                    )
                ):
                    offenders.append(f"{p.relative_to(ROOT)}:{tok.start[0]}: {tok.line.strip()}")
    assert offenders == [], offenders


def test_import_picture_script_finds_no_upward_import_or_cycle():
    """scripts/import_graph.py draws docs/imports.svg from the code; --check is the same rule."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_graph.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


def test_one_status_enum_and_one_place_for_configuration():
    from nbsteps.model.status import Status

    assert [s.value for s in Status] == [
        "pending",
        "running",
        "retrying",
        "completed",
        "failed",
        "blocked",
        "cancelled",
    ]
    readers = [
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if 'os.environ.get("NBSTEPS' in p.read_text() or 'environ["NBSTEPS' in p.read_text()
    ]
    assert readers == [], readers
