"""A notebook function that reads a global defined in a later cell, with cells on shared
process state (pyplot) below: a new kernel's Run All against the store executes nothing and
ends with Run All's values (issue 26, target 2).

The shape of scikit-image's max-tree page (ski_max_tree): ``plot_tree``, defined in an early
cell, reads ``image_rav``, which a later cell defines. A notebook function's fingerprint
includes the outside names it reads, so once ``image_rav`` exists the defining cell has a new
version and the cells below follow it. A restore that considers a restored cell alone must
agree with the first kernel on those versions, or the cells below re-run (the failure of
e7a7a09, reverted in 666e89b). Real components: IPython's InteractiveShell, directory stores.
"""

from __future__ import annotations

import collections

import matplotlib as mpl
from conftest import run_ok
from test_semantics import new_kernel, run_all

import nbsteps
from nbsteps.run import events as ev

CELLS = [
    "import matplotlib as mpl\nimport matplotlib.pyplot as plt\nimport numpy as np",
    "def span():\n    return int(data.max() - data.min())\n\n"
    "def title(ax):\n    ax.set_title(f'span {span()}')",
    "data = np.arange(7) * 3",
    "fig1, ax1 = plt.subplots()\nax1.plot(data)\ntitle(ax1)\nt1 = ax1.get_title()",
    "mpl.rcParams['lines.linewidth'] = 4",
    "fig2, ax2 = plt.subplots()\nline, = ax2.plot(data[::-1])\ntitle(ax2)\n"
    "t2 = [ax2.get_title(), line.get_linewidth()]",
    "total = span() + len(t1) + len(t2)",
]
NAMES = ("data", "t1", "t2", "total")


class Events:
    def __init__(self) -> None:
        self.seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)

    def __call__(self, e) -> None:
        if e.step is not None:
            self.seen[e.kind][e.step] += 1


def _run(shell) -> None:
    for i, cell in enumerate(CELLS):
        run_ok(shell, f"%%step c{i}\n{cell}")


def test_a_new_kernel_restores_a_function_reading_a_later_global_without_executing(shell, tmp_path, tmp_key):
    ref = run_all(CELLS)
    mpl.rcdefaults()
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    _run(shell)
    assert [shell.user_ns[n] for n in NAMES[1:]] == [ref[n] for n in NAMES[1:]]
    mpl.rcdefaults()  # what a new kernel starts with
    new_kernel(shell, tmp_path / "store")
    events = Events()
    nbsteps.current().listeners.append(events)
    _run(shell)
    plan = nbsteps.current()
    # nothing executed but replays of the steps that set process state (pyplot's backend,
    # rcParams), each at most once; every cell restored
    assert set(events.seen[ev.STARTED]) <= {"c4"}
    assert all(n == 1 for n in events.seen[ev.STARTED].values())
    assert [plan[f"c{i}"].cached for i in range(len(CELLS))] == [True] * len(CELLS)
    run_ok(shell, "got = [data.tolist(), t1, t2, total, span(), mpl.rcParams['lines.linewidth']]")
    assert shell.user_ns["got"] == [
        ref["data"].tolist(),
        ref["t1"],
        ref["t2"],
        ref["total"],
        ref["span"](),
        4,
    ]
    assert set(events.seen[ev.STARTED]) <= {"c4"}  # the pending replays settled, no more


PLAIN = [
    "import numpy as np",
    "def span():\n    return int(data.max() - data.min())",
    "data = np.arange(7) * 3",
    "total = span() + 1",
    "more = total * 2",
]


def test_without_shared_state_the_cells_below_a_later_global_are_restored_too(shell, tmp_path, tmp_key):
    """The same shape without pyplot: in the first kernel ``data`` appearing (run by c2) is a
    change of an outside value above c3, so c3's run considers its chain and ``span``'s cell
    gets its new version; in a new kernel ``data`` comes back unread (restored lazily): that
    must count as the same change, or c3 and c4 are found to be on an older upstream and run."""
    ref = run_all(PLAIN)
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    for i, cell in enumerate(PLAIN):
        run_ok(shell, f"%%step c{i}\n{cell}")
    assert (shell.user_ns["total"], shell.user_ns["more"]) == (ref["total"], ref["more"])
    new_kernel(shell, tmp_path / "store")
    events = Events()
    nbsteps.current().listeners.append(events)
    for i, cell in enumerate(PLAIN):
        run_ok(shell, f"%%step c{i}\n{cell}")
    plan = nbsteps.current()
    assert not events.seen[ev.STARTED]
    assert [plan[f"c{i}"].reason for i in range(len(PLAIN))] == ["up to date"] * len(PLAIN)
    run_ok(shell, "got = [total, more, span()]")
    assert shell.user_ns["got"] == [ref["total"], ref["more"], ref["span"]()]
