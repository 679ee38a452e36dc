"""A cell analysed again with the same text gets the same analysis (kept: a cell run again
unchanged is not walked again), but not when what it finds depends on more than the text."""

from __future__ import annotations

import linecache
import sys
import traceback

import pytest

from nbsteps.errors import StepDefinitionError
from nbsteps.model.analysis import analyse_cell


def test_the_same_text_gives_the_same_analysis_and_its_lines_for_tracebacks():
    src = "v = [1, 2]\nw = v * 3\nlen(w)\n"
    a = analyse_cell("cached_cell", src)
    linecache.clearcache()
    b = analyse_cell("cached_cell", src)
    assert b == a
    assert linecache.getline("<step cached_cell>", 2) == "w = v * 3\n"
    analyse_cell("cached_boom", "x = 1\nraise ValueError(x)\n")
    linecache.clearcache()
    with pytest.raises(ValueError) as info:
        exec(analyse_cell("cached_boom", "x = 1\nraise ValueError(x)\n").body, {})  # noqa: S102
    assert "raise ValueError(x)" in "".join(traceback.format_tb(info.tb))
    assert analyse_cell("cached_other", src).filename == "<step cached_other>"


def test_a_syntax_error_is_reported_each_time():
    for _ in range(2):
        with pytest.raises(StepDefinitionError, match="syntax error"):
            analyse_cell("cached_bad", "x = (\n")


def test_import_star_is_read_again_when_the_module_lists_other_names(tmp_path, monkeypatch):
    (tmp_path / "h3_star_mod.py").write_text("__all__ = ['a']\na = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    src = "from h3_star_mod import *\n"
    try:
        assert analyse_cell("star", src).outputs == ("a",)
        sys.modules["h3_star_mod"].__all__ = ["a", "b"]  # reloaded or changed since: other names
        sys.modules["h3_star_mod"].b = 2
        assert analyse_cell("star", src).outputs == ("a", "b")
    finally:
        sys.modules.pop("h3_star_mod", None)


def test_a_magic_reading_a_file_is_read_again(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "script.py").write_text("p = 1\n")
    src = "get_ipython().run_line_magic('run', '-i script.py')\n"
    first = analyse_cell("runs", src)
    (tmp_path / "script.py").write_text("p = 1\nq = 2\n")
    second = analyse_cell("runs", src)
    assert "q" not in first.outputs and "q" in second.outputs
