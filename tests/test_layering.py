"""The package's shape cannot rot: layers, no import cycles, small modules.

``lint-imports`` (import-linter) checks the contracts in pyproject.toml; the
cycle check uses grimp (import-linter's import graph, which counts imports
inside functions too: a lazy import is still a design dependency).
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
    proc = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout


def test_no_import_cycles_between_modules():
    graph = grimp.build_graph("nbsteps", include_external_packages=False, exclude_type_checking_imports=True)
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


def test_layers_are_folders_and_modules_are_small():
    for layer in ("model", "run", "stores", "backends", "views", "ipython", "cli"):
        assert (PACKAGE / layer / "__init__.py").is_file(), layer
    big = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 400}
    assert not big, f"modules over 400 lines: {big}"


def test_one_status_enum_and_one_place_for_configuration():
    from nbsteps.model.status import Status

    assert [s.value for s in Status] == [
        "pending", "running", "retrying", "completed", "failed", "blocked", "cancelled"]
    readers = [str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")
               if "os.environ.get(\"NBSTEPS" in p.read_text() or "environ[\"NBSTEPS" in p.read_text()]
    assert readers == [], readers
