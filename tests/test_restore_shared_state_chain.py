"""A restored cell on shared process state costs its own step, not its whole chain above.

Cells that share process state (pyplot, rcParams, a global random generator) form a chain:
what to replay above one of them depends on every step of it. A new kernel restoring such
a notebook cell by cell must not prepare, complete and announce again every step above each
cell (O(cells²) events and store reads): the upstream is known to be up to date, so each
restored cell's run considers that cell alone, while the replays of process state are still
decided over the whole chain (left pending until a cell that is not a restore, or executed
when a step below executes). (First done in e7a7a09, reverted in 666e89b: a global that a
function above reads, restored unread, was not seen as a change; see
tests/test_restore_forward_reference.py.) A cell that may draw unseen replays the seed above
it. Real components: IPython's InteractiveShell, directory stores.
"""

from __future__ import annotations

import collections

import matplotlib as mpl
from conftest import run_ok
from test_semantics import new_kernel, run_all

import nbsteps
from nbsteps.run import events as ev

CELLS = [
    "import matplotlib as mpl\nmpl.use('Agg')\nimport matplotlib.pyplot as plt",
    "mpl.rcParams['lines.linewidth'] = 3",
    "fig1, ax1 = plt.subplots()\nline1, = ax1.plot([1, 2])\nw1 = line1.get_linewidth()",
    "mpl.rcParams['lines.markersize'] = 11",
    "fig2, ax2 = plt.subplots()\nline2, = ax2.plot([1, 2], 'o')\nm2 = line2.get_markersize()",
    "size = [w1, m2, mpl.rcParams['lines.linewidth']]",
]
#: the steps whose effect on process state (rcParams, the backend) Run All leaves
EFFECTS = ["c0", "c1", "c3"]


class Events:
    """A listener keeping, per kind, the steps named by the events of a plan."""

    def __init__(self) -> None:
        self.seen: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.planned: list[list[str]] = []

    def __call__(self, e) -> None:
        if e.kind == ev.PLANNED:
            self.planned.append(list(e.steps))
        elif e.step is not None:
            self.seen[e.kind][e.step] += 1


def _fill(shell, store) -> dict:
    run_ok(shell, f"%steps store {store}")
    for i, cell in enumerate(CELLS):
        run_ok(shell, f"%%step c{i}\n{cell}")
    return {n: shell.user_ns[n] for n in ("w1", "m2", "size")}


def test_a_new_kernel_restoring_a_chain_on_shared_state_completes_each_step_once(shell, tmp_path, tmp_key):
    ref = run_all(CELLS)
    mpl.rcdefaults()
    assert _fill(shell, tmp_path / "store") == {n: ref[n] for n in ("w1", "m2", "size")}
    mpl.rcdefaults()  # what a new kernel starts with
    new_kernel(shell, tmp_path / "store")
    events = Events()
    nbsteps.current().listeners.append(events)
    for i, cell in enumerate(CELLS):
        run_ok(shell, f"%%step c{i}\n{cell}")
    plan = nbsteps.current()
    assert all(plan[f"c{i}"].cached for i in range(len(CELLS)))
    # each restored cell's run considered its own step: the steps above were neither
    # prepared nor completed (nor announced) again (before: c0 completed 6 times, 21 in all)
    assert events.planned == [[f"c{i}"] for i in range(len(CELLS))]
    assert events.seen[ev.COMPLETED] == {f"c{i}": 1 for i in range(len(CELLS))}
    assert not events.seen[ev.STARTED]  # nothing executed while restoring
    # the replays for Run All's process state were decided over the whole chain: pending
    assert sorted(plan.pending_replays) == EFFECTS
    assert mpl.rcParams["lines.linewidth"] != 3
    run_ok(shell, "state = [mpl.rcParams['lines.linewidth'], mpl.rcParams['lines.markersize']]")
    assert shell.user_ns["state"] == [3, 11]  # settled before the ordinary cell, each once
    assert events.seen[ev.STARTED] == {s: 1 for s in EFFECTS}
    run_ok(shell, "got = [w1, m2, size]")
    assert shell.user_ns["got"] == [ref["w1"], ref["m2"], ref["size"]]


def test_a_restore_replaying_at_once_ends_with_run_alls_state_and_replays_each_step_once(tmp_path, tmp_key):
    """Without a frontend to settle later (plain Python), a run replays at once what the
    state Run All leaves needs: a quick run of a restored cell on shared state then
    considers its chain, and each change is replayed once over the cell-by-cell restore."""

    def make():
        plan = nbsteps.Plan(store=tmp_path / "store")
        return plan

    first = make()
    for i, cell in enumerate(CELLS):
        first.add_cell(f"c{i}", cell)
        assert first.run(f"c{i}").ok
    ref = first.namespace["size"]
    mpl.rcdefaults()
    plan = make()
    events = Events()
    plan.listeners.append(events)
    for i, cell in enumerate(CELLS):
        plan.add_cell(f"c{i}", cell)
        assert plan.run(f"c{i}").ok
        assert plan[f"c{i}"].status == "completed"
    assert [mpl.rcParams["lines.linewidth"], mpl.rcParams["lines.markersize"]] == [3, 11]
    assert events.seen[ev.STARTED] == {s: 1 for s in EFFECTS}
    assert plan.namespace["size"] == ref and not plan.pending_replays


SEEDED_HIDDEN = [
    "import numpy as np\nnp.random.seed(0)\ndef draw():\n    return np.random.rand()",
    "x = 1",
    "a = draw()",
]


def test_a_cell_that_may_draw_unseen_replays_the_restored_seed_above_it(tmp_path, tmp_key):
    """A one-cell run of an edited cell that may draw from a global generator where the
    analysis cannot see it (a notebook function): in a new kernel where the seed above was
    restored, not executed, the seed is replayed first, as Run All gives it the generator
    (before: the cell ran alone, its upstream being up to date, and drew another number)."""
    ref = run_all(SEEDED_HIDDEN)

    def make():
        plan = nbsteps.Plan(store=tmp_path / "store")
        plan.lazy_publish = plan.lazy_settle = True  # as in a notebook
        return plan

    first = make()
    for i, cell in enumerate(SEEDED_HIDDEN):
        first.add_cell(f"c{i}", cell)
        assert first.run(f"c{i}").ok
    assert first.namespace["a"] == ref["a"]
    plan = make()
    for i, cell in enumerate(SEEDED_HIDDEN[:2]):
        plan.add_cell(f"c{i}", cell)
        assert plan.run(f"c{i}").ok and plan[f"c{i}"].cached
    plan.add_cell("c2", "a = draw() * 1")  # edited: it executes
    assert plan.run("c2").ok
    assert "replayed" in plan["c0"].reason
    assert plan.namespace["a"] == ref["a"]
