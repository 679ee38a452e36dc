"""``_`` in a step is what Run All gives: the ``Out`` of the nearest cell above that showed one
(IPython's displayhook; a cell whose last expression is None leaves it alone), whatever order
the steps run in (Python's tutorial, corpus py_introduction: ``price * tax``, then
``price + _``, then ``round(_, 2)``)."""

import json
import subprocess
import sys

import pytest
from conftest import run_ok

import nbsteps

CELLS = [
    "tax = 12.5 / 100\nprice = 100.50\nprice * tax",
    "price + _",
    "print('a line')",  # its last expression is None: `_` stays what it was
    "round(_, 2)",
    "label = 'x'\nlabel",
]


PLAIN = (
    "import json, sys\nfrom IPython.core.interactiveshell import InteractiveShell\n"
    "ip = InteractiveShell.instance()\n"
    "print(json.dumps([ip.run_cell(c).result for c in json.loads(sys.argv[1])]))"
)


def plain_results(tmp_path) -> list:
    """The results of the cells in a plain IPython, in order (Run All), in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, json.dumps(CELLS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"IPYTHONDIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_underscore_is_the_out_of_the_nearest_cell_above(shell, mode, tmp_path):
    expected = plain_results(tmp_path)
    assert expected[3] == 113.06
    run_ok(shell, f"%steps mode {mode}")
    for i, c in enumerate(CELLS):
        run_ok(shell, f"%%step s{i}\n{c}")
    if mode == "plan":
        run_ok(shell, "%steps run --workers 4")
    plan = nbsteps.current()
    assert [plan[f"s{i}"].result for i in (0, 1, 3, 4)] == [expected[i] for i in (0, 1, 3, 4)]
    # s3 runs after s2, the nearest cell ending in an expression; s2's is None, so `_` is s1's Out
    assert "s2" in plan.dependencies("s3") and "s0" in plan.dependencies("s1")
