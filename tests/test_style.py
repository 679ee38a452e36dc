"""The code keeps the style pyproject.toml asks for (``[tool.ruff]``): ``ruff check``
(pyflakes, pycodestyle, import order, complexity at most 15, bugbear) and ``ruff
format --check`` pass on the package, the tests, the benchmarks and the scripts.
A ``# noqa`` says why the rule is wrong for its line; no whole category is ignored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["nbsteps", "tests", "bench", "scripts"]
RUFF = Path(sys.executable).with_name("ruff")


def _ruff(*args: str) -> subprocess.CompletedProcess:
    if not RUFF.exists():
        pytest.skip(f"ruff is not installed next to {sys.executable} (pip install 'nbsteps[test]')")
    return subprocess.run(
        [str(RUFF), *args, "--no-cache", *PATHS], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_check_passes():
    proc = _ruff("check", "--output-format", "concise")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_ruff_format_leaves_everything_as_it_is():
    proc = _ruff("format", "--check")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
