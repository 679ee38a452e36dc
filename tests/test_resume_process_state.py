"""Process state a restored step changed comes back in a new kernel (SPEC 1, the promise).

A step that sets matplotlib's rcParams, numpy's print options or a pandas option leaves its
effect in the process, not in its values. A new kernel that restores every step from a
directory store (nothing below executes) must still end with the state plain Restart & Run
All leaves: the steps that changed it are replayed, the others stay restored. Real kernels
(jupyter_client): plain Run All is the reference.
"""

from __future__ import annotations

import pytest
from live_kernel import LiveKernel

CELLS = [
    "import matplotlib as mpl\nmpl.use('Agg')\nimport numpy as np\nimport pandas as pd",
    "mpl.rcParams['lines.linewidth'] = 3",
    "np.set_printoptions(precision=3)",
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


def _steps(k: LiveKernel, store, plan_mode: bool = False) -> None:
    k.run(f"%load_ext nbsteps\n%steps store {store}")
    if plan_mode:
        k.run("%steps mode plan")
    for i, cell in enumerate(CELLS):
        k.run(f"%%step c{i}\n{cell}")
    if plan_mode:
        k.run("%steps run")


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
