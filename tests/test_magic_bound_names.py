"""Names a step's code binds through IPython (a script magic's ``--out``/``--err``) or a
``__future__`` import are the step's outputs, as they are names of the notebook in Run All.

The same cells run as plain cells in a plain IPython without nbsteps (a subprocess: Run
All) and as ``%%step`` cells in a real shell with nbsteps, interactively and in plan mode;
the names the notebook ends with must be the same, and the step reading them must run.
"""

from __future__ import annotations

import shutil

import pytest
from conftest import plain_run_all as run_all
from conftest import run_steps

pytestmark = pytest.mark.usefixtures("nothing_outside_the_store_changes")

SCENARIOS = {
    # IPython's script magics write self.shell.user_ns[name] (the stream read in another thread)
    "bash": (
        [
            "%%bash --out output --err error\necho to stdout\necho to stderr >&2",
            "lengths = (len(output), len(error))\nboth = output + error",
        ],
        ["output", "error", "lengths", "both"],
    ),
    "script": (
        [
            "%%script bash --no-raise-error --err=problems\necho only an error >&2",
            "shown = problems.upper()",
        ],
        ["problems", "shown"],
    ),
    # `from __future__ import x` binds x (a __future__._Feature) in the namespace
    "future": (
        ["from __future__ import print_function, division\nhalf = 1 / 2", "feature = repr(division)"],
        ["print_function", "division", "half", "feature"],
    ),
}


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("mode", ["interactive", "plan"])
@pytest.mark.parametrize("key", list(SCENARIOS))
def test_names_bound_through_ipython_are_the_steps_outputs(shell, key, mode, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells, names = SCENARIOS[key]
    expected = run_all(cells, names, tmp_path)
    run_steps(shell, [f"%%step cell{i}\n{cell}" for i, cell in enumerate(cells, 1)], mode, workers=2)
    assert {n: repr(shell.user_ns.get(n, "<missing>")) for n in names} == expected
