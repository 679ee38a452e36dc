"""Process state a restored step changed comes back in a new kernel (SPEC 1, the promise).

A step that sets matplotlib's rcParams, numpy's print options or a pandas option leaves its
effect in the process, not in its values. A new kernel that restores every step from a
directory store (nothing below executes) must still end with the state plain Restart & Run
All leaves: the steps that changed it are replayed, the others stay restored. The replays
wait (they are pending) until the kernel runs something that is not a restore: an ordinary
cell, or a step that executes; the restored cells themselves execute no step. Real kernels
(jupyter_client): plain Run All is the reference.
"""

from __future__ import annotations

import json

import pytest
from live_kernel import MARK, LiveKernel

CELLS = [
    "import matplotlib as mpl\nmpl.use('Agg')\nimport numpy as np\nimport pandas as pd",
    "mpl.rcParams['lines.linewidth'] = 3",
    "np.set_printoptions(precision=3)\nprint('set', np.arange(3) / 3)",
    "xs = np.arange(4) / 3",
    "pd.set_option('display.max_rows', 7)",
    "mpl.rcParams.update({'lines.markersize': 11})",
    "total = float(xs.sum())",
]
STATE = (
    "[mpl.rcParams['lines.linewidth'], mpl.rcParams['lines.markersize'],"
    " np.get_printoptions()['precision'], pd.get_option('display.max_rows'), repr(xs)]"
)
SESSION = "__import__('nbsteps.ipython.session').ipython.session.current()"
EXECUTED = f"sorted(n for n, r in {SESSION}.records.items() if r.origin_in_session == 'executed')"
#: an ordinary cell counting the steps that start executing from now on (a listener of the plan)
COUNT = f"STARTS = []\n{SESSION}.listeners.append(lambda e: e.kind == 'started' and STARTS.append(e.step))"
#: the steps that replay the state changes: c0 sets the backend; the others stay restored
REPLAYED = ["c0", "c1", "c2", "c4", "c5"]


def _steps(k: LiveKernel, store, plan_mode: bool = False, count: bool = False) -> list[str]:
    """Every cell as a step (cell by cell, or registered then ``%steps run``): what each printed."""
    k.run(f"%load_ext nbsteps\n%steps store {store}")
    if count:
        k.run(COUNT)
    if plan_mode:
        k.run("%steps mode plan")
    printed = [k.run(f"%%step c{i}\n{cell}")["stdout"] for i, cell in enumerate(CELLS)]
    if plan_mode:
        k.run("%steps run")
    return printed


@pytest.mark.timeout(400)
def test_a_resume_that_restores_every_step_ends_with_run_alls_process_state(tmp_path, tmp_key, kernel_name):
    env = {"NBSTEPS_KEY_FILE": str(tmp_key)}
    store = tmp_path / "store"
    with LiveKernel(kernel_name, tmp_path, env) as k:  # plain Restart & Run All: the reference
        for cell in CELLS:
            k.run(cell)
        ref = k.value(STATE)
    assert ref[:4] == [3, 11, 3, 7]
    with LiveKernel(kernel_name, tmp_path, env) as k:  # the steps execute and fill the store
        _steps(k, store)
        assert k.value(STATE) == ref
    for plan_mode in (False, True):  # a new kernel, cell by cell, then the plan's Run All
        with LiveKernel(kernel_name, tmp_path, env) as k:
            _steps(k, store, plan_mode)
            got, executed = k.value(STATE), k.value(EXECUTED)
        assert got == ref, f"plan mode {plan_mode}"
        # replayed (c0 sets the backend): the others stay restored
        assert executed == ["c0", "c1", "c2", "c4", "c5"], f"plan mode {plan_mode}"


@pytest.mark.timeout(400)
def test_the_replays_wait_until_a_cell_that_is_not_a_restore(tmp_path, tmp_key, kernel_name):
    """A new kernel restoring every step executes none while the restored cells run (they show
    what Run All showed); the first ordinary cell, or a step that executes, replays the state
    changes first (once), and sees Run All's rcParams, print options and reprs."""
    env = {"NBSTEPS_KEY_FILE": str(tmp_key)}
    store = tmp_path / "store"
    with LiveKernel(kernel_name, tmp_path, env) as k:  # plain Restart & Run All: the reference
        ref_printed = [k.run(cell)["stdout"] for cell in CELLS]
        ref = k.value(STATE)
    assert ref_printed[2] == "set [0.    0.333 0.667]\n"
    with LiveKernel(kernel_name, tmp_path, env) as k:  # the steps execute and fill the store
        _steps(k, store)
    for plan_mode in (False, True):
        with LiveKernel(kernel_name, tmp_path, env) as k:
            printed = _steps(k, store, plan_mode, count=True)
            if not plan_mode:  # (registered cells show their step's output through display updates)
                assert printed == ref_printed  # the restored cells show what Run All showed
            assert k.quiet_value("STARTS") == [], f"plan mode {plan_mode}"  # no step executed
            assert k.quiet_value(EXECUTED) == [], f"plan mode {plan_mode}"
            if not plan_mode:  # a step that executes (a new cell below): the replays come first
                out = k.run("%%step c7\nrep = repr(xs)")
                assert k.quiet_value("STARTS") == [*REPLAYED, "c7"]
                assert k.quiet_value("rep") == ref[4]
                assert "set" not in out["stdout"]  # a replay's print is kept, not shown again
            out = k.run(f"print({MARK!r} + __import__('json').dumps({STATE}))")  # an ordinary cell
            assert json.loads(out["stdout"].split(MARK)[-1]) == ref, f"plan mode {plan_mode}"
            assert out["stdout"].startswith(MARK), out["stdout"]  # nothing else shown in it
            executed = [*REPLAYED, "c7"] if not plan_mode else REPLAYED
            assert k.quiet_value("STARTS") == executed, f"plan mode {plan_mode}"  # each replayed once
            k.run("x_after = 1")  # the next cells replay nothing again
            assert k.quiet_value("STARTS") == executed, f"plan mode {plan_mode}"
            assert k.quiet_value(EXECUTED) == sorted(executed), f"plan mode {plan_mode}"
