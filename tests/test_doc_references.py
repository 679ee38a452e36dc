"""Docstrings and docs name modules and files that exist: every dotted name
``nbsteps.x.y`` in the package's source, the README and docs/, and every
``folder/module.py`` path in docs/architecture.md, resolves to a module, an
attribute of one, or a file. (Moving code used to leave docstrings naming
modules that were gone.)"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "nbsteps"
DOTTED = re.compile(r"(?<![\w/<])nbsteps(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
PATH = re.compile(r"`((?:nbsteps/)?(?:[a-z_]+/)+[a-z_]+\.py|[a-z_]+\.py)`")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _texts():
    for p in sorted(PACKAGE.rglob("*.py")):
        yield p
    yield ROOT / "README.md"
    yield from sorted((ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("path", list(_texts()), ids=lambda p: str(p.relative_to(ROOT)))
def test_dotted_names_resolve(path):
    text = path.read_text(encoding="utf-8")
    missing = sorted({m.rstrip(".") for m in DOTTED.findall(text) if not _resolves(m.rstrip("."))})
    assert missing == [], f"{path.relative_to(ROOT)} names what does not exist: {missing}"


def test_files_named_in_the_architecture_walk_exist():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = []
    for name in set(PATH.findall(text)):
        candidates = [ROOT / name, PACKAGE / name, ROOT / "scripts" / name, ROOT / "tests" / name]
        if not any(c.is_file() for c in candidates):
            missing.append(name)
    assert sorted(missing) == []


def test_the_module_map_is_drawn_from_the_code():
    """docs/architecture.md lists every module of the package with its docstring's first
    sentence; a module added, moved or redescribed must show there."""
    import runpy

    module_map = runpy.run_path(str(ROOT / "scripts" / "module_map.py"))
    in_doc = module_map["current_in_doc"]()
    assert in_doc is not None, "docs/architecture.md has no module map section"
    assert in_doc == module_map["section"](), (
        "docs/architecture.md's module map is out of date: run python scripts/module_map.py --write"
    )
    for path in sorted(PACKAGE.rglob("*.py")):
        assert f"`{path.relative_to(PACKAGE).as_posix()}`" in in_doc
