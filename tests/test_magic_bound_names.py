"""Names a step's code binds through IPython (a script magic's ``--out``/``--err``) or a
``__future__`` import are the step's outputs, as they are names of the notebook in Run All.

The same cells run as plain cells in a plain IPython without nbsteps (a subprocess: Run
All) and as ``%%step`` cells in a real shell with nbsteps, interactively and in plan mode;
the names the notebook ends with must be the same, and the step reading them must run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import run_ok

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

PLAIN = textwrap.dedent("""
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    cells, names = json.loads(sys.argv[1])
    ok = [ip.run_cell(c).success for c in cells]
    print(json.dumps({"ok": ok, "ns": {n: repr(ip.user_ns.get(n, "<missing>")) for n in names}}))
""")


def run_all(cells, names, cwd) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, json.dumps([cells, names])],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(got["ok"]), got
    return got["ns"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("mode", ["interactive", "plan"])
@pytest.mark.parametrize("key", list(SCENARIOS))
def test_names_bound_through_ipython_are_the_steps_outputs(shell, key, mode, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cells, names = SCENARIOS[key]
    expected = run_all(cells, names, tmp_path)
    run_ok(shell, f"%steps mode {mode}")
    for i, cell in enumerate(cells, 1):
        run_ok(shell, f"%%step cell{i}\n{cell}")
    if mode == "plan":
        run_ok(shell, "%steps run --workers 2")
    assert {n: repr(shell.user_ns.get(n, "<missing>")) for n in names} == expected
