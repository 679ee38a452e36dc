"""After a restore, the replays of process state a run left pending (``plan.pending_replays``,
settled before the next cell that is not a ``%%step`` cell) are told by ``%steps status``, which
does not execute them itself; the first ordinary cell does, and shows nothing more than Run All.
A real IPython InteractiveShell, a directory store, a new session on it (a kernel restart)."""

from __future__ import annotations

from conftest import run_ok
from test_semantics import new_kernel

import nbsteps

CELLS = [
    "import numpy as np",
    "np.set_printoptions(precision=3)",
    "xs = np.arange(4) / 3",
    "import os\nos.environ['NBSTEPS_TEST_PENDING'] = 'yes'",
    "total = float(xs.sum())",
]


def _restored(shell, store):
    """Every cell a step, executed; then a restart and every cell again: all restored."""
    run_ok(shell, f"%steps store {store}")
    for i, body in enumerate(CELLS):
        run_ok(shell, f"%%step c{i}\n{body}")
    new_kernel(shell, store)
    for i, body in enumerate(CELLS):
        run_ok(shell, f"%%step c{i}\n{body}")
    plan = nbsteps.current()
    assert all(plan[f"c{i}"].cached for i in range(len(CELLS)))
    return plan


def _started(plan) -> list:
    seen: list = []
    plan.listeners.append(lambda e: e.kind == "started" and seen.append(e.step))
    return seen


def test_status_lists_the_pending_replays_without_running_them(shell, tmp_path, tmp_key, capsys):
    plan = _restored(shell, tmp_path / "store")
    assert sorted(plan.pending_replays) == ["c1", "c3"]
    started = _started(plan)
    capsys.readouterr()
    run_ok(shell, "%steps status")
    out = capsys.readouterr().out
    assert started == []  # asking executes nothing
    assert "pending: 2 restored steps will be replayed" in out
    assert out.rstrip().splitlines()[-1].endswith("c1 (options:numpy), c3 (environ)")
    run_ok(shell, "%steps plan")  # the preview of a run says so too
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].endswith("c1 (options:numpy), c3 (environ)") and started == []
    assert plan["c1"].cached and plan["c3"].cached  # still restored, still pending
    assert sorted(plan.pending_replays) == ["c1", "c3"]

    r = shell.run_cell("shown = np.arange(2) / 3")  # the first ordinary cell replays them, once
    assert r.success and started == ["c1", "c3"]
    assert capsys.readouterr().out == ""  # and shows nothing of it
    run_ok(shell, "%steps status")
    assert "will be replayed" not in capsys.readouterr().out
    run_ok(shell, "after = 1")
    assert started == ["c1", "c3"]


def test_status_leaves_out_a_pending_step_reset_since(shell, tmp_path, tmp_key, capsys):
    plan = _restored(shell, tmp_path / "store")
    plan.reset("c3")  # (through the API: a %steps reset cell settles first, as any command but a few)
    capsys.readouterr()
    run_ok(shell, "%steps status")
    out = capsys.readouterr().out
    assert "pending: 1 restored step will be replayed" in out
    assert out.rstrip().splitlines()[-1].endswith(": c1 (options:numpy)")
