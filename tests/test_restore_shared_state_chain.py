"""Restoring a chain of cells on shared process state (pyplot, rcParams, a global random
generator) ends with Run All's state, and a cell that may draw unseen replays the seed above it.

A one-cell run of a cell on shared state (or that may draw from a global generator unseen)
considers its whole chain: what to replay above it depends on every step of it. (Considering
such a cell alone, with the replays decided over the chain (e7a7a09), was reverted: a function
cell reading a global defined below it (skimage's ski_max_tree: ``plot_tree`` reads
``image_rav``) is fingerprinted again once that global exists, and only a run over the chain
restores that version.) Real components: IPython's InteractiveShell, directory stores.
"""

from __future__ import annotations

import collections

import matplotlib as mpl
from conftest import run_ok
from test_semantics import run_all

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
