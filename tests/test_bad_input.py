"""Bad input gets one clear line naming the option, file or link, never an
nbsteps-internal traceback, and loses nothing (issue 21, defects 9-11).

Real ``nbsteps run`` processes, a real IPython shell, real files and links.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import run_err

pytestmark = pytest.mark.usefixtures("nothing_outside_the_store_changes")

HUGE = "1e300GB"


# -- defect 9: a size too large for any number --------------------------------------------------


def test_a_huge_max_size_names_the_option_in_the_magic(shell, tmp_path):
    err = run_err(shell, f"%steps store {tmp_path / 's'} --max-size {HUGE}")
    assert type(err).__name__ == "StoreError", repr(err)
    assert "max_size" in str(err) and HUGE in str(err) and "too large" in str(err) and "'none'" in str(err)
    assert not (tmp_path / "s").exists()  # nothing created for a refused store


def test_a_huge_max_size_from_the_environment_names_the_variable(shell, tmp_path, monkeypatch):
    monkeypatch.setenv("NBSTEPS_STORE_MAX_SIZE", HUGE)
    err = run_err(shell, f"%steps store {tmp_path / 's'}")
    assert "NBSTEPS_STORE_MAX_SIZE" in str(err) and "too large" in str(err), str(err)


@pytest.mark.parametrize("size", [HUGE, 1e300, 10**400])
def test_a_huge_max_size_in_the_api_is_a_clear_error(tmp_path, size):
    import nbsteps
    from nbsteps.errors import NbstepsError

    with pytest.raises(NbstepsError) as info:
        nbsteps.Plan(store=str(tmp_path / "s"), max_size=size)
    assert "too large" in str(info.value) and "max_size" in str(info.value)
    assert len(str(info.value)) < 200  # a 400-digit number is not printed whole


# -- defect 10: malformed notebooks -------------------------------------------------------------

GOOD_CELL = {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [], "execution_count": None}
BASE = {"cells": [GOOD_CELL], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}

MALFORMED = {
    "deep": '{"cells": ' + "[" * 100_000 + "]" * 100_000 + ', "nbformat": 4}',
    "source_number": dict(BASE, cells=[dict(GOOD_CELL, source=5)]),
    "source_null": dict(BASE, cells=[dict(GOOD_CELL, source=None)]),
    "source_list_of_numbers": dict(BASE, cells=[dict(GOOD_CELL, source=[1, 2])]),
    "cells_not_a_list": dict(BASE, cells={"a": 1}),
    "cell_not_an_object": dict(BASE, cells=["x = 1"]),
    "unknown_cell_type": dict(BASE, cells=[dict(GOOD_CELL, cell_type="python")]),
    "metadata_number": dict(BASE, metadata=5),
    "kernelspec_number": dict(BASE, metadata={"kernelspec": 3}),
    "nbformat_text": dict(BASE, nbformat="4"),
    "outputs_not_a_list": dict(BASE, cells=[dict(GOOD_CELL, outputs=5)]),
    "cell_metadata_list": dict(BASE, cells=[dict(GOOD_CELL, metadata=[])]),
    "not_json": "{cells: [",
    "not_utf8": b"\xff\xfe{",
    "top_level_list": [],
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_notebook_gets_one_line_and_exit_2(tmp_path, name):
    content = MALFORMED[name]
    path = tmp_path / f"{name}.ipynb"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    before = path.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "nbsteps", "run", str(path), "-o", str(path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(path) in lines[0] and lines[0].startswith("nbsteps: error:"), lines
    assert path.read_bytes() == before  # -o naming the bad notebook leaves it alone
    assert sorted(os.listdir(tmp_path)) == [path.name]


# -- defect 11: a key file that is a link to nothing -----------------------------------------------


def test_a_dangling_key_link_is_named_as_such(shell, tmp_path, monkeypatch):
    key = tmp_path / "keys" / "secret"
    key.parent.mkdir()
    target = tmp_path / "elsewhere" / "real_secret"
    key.symlink_to(target)
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(key))
    err = run_err(shell, f"%steps store {tmp_path / 'store'}")
    assert type(err).__name__ in ("StoreError", "KeyFileError"), repr(err)  # one line, no traceback
    text = str(err)
    assert "symbolic link" in text and str(key) in text and str(target) in text and "Remove the link" in text
    assert (
        key.is_symlink() and not target.exists() and not target.parent.exists()
    )  # nothing written through it
    assert sorted(os.listdir(key.parent)) == ["secret"]
