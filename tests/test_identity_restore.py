"""Identity kept across a restore (issue 26, target 3): values that share
objects in the kernel that wrote a directory store share them in a new kernel
that restores it, within a step and across steps. Real kernels (jupyter_client):
the first runs the cells and writes the store, it is shut down, a second one
runs the same cells (everything restored, nothing executed) and checks with
``is``.

What pandas allows: with copy-on-write (pandas 3), a Series taken from a
DataFrame (``df["a"]``) or a slice of it is a new object whose buffer is shared
lazily, and no change to one is ever seen through the other: there is no
identity to keep there, only memory. What is kept is the frame object itself
under several names or inside containers (``df2 = df``, ``{"df": df}``).
"""

from __future__ import annotations

import json

import pytest
from live_kernel import LiveKernel

CELLS = [
    # within one step: a container and what it holds, a figure and its axes, a pipeline and its estimator
    "%%step shared\nxs = [1, 2, 3]\nholder = {'xs': xs, 'again': xs}",
    "%%step figure\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
    "fig, ax = plt.subplots()\nplt.close(fig)",
    "%%step model\nimport numpy as np\nfrom sklearn.linear_model import LogisticRegression\n"
    "from sklearn.pipeline import Pipeline\nfrom sklearn.preprocessing import StandardScaler\n"
    "clf = LogisticRegression()\nscaler = StandardScaler()\n"
    "pipe = Pipeline([('scale', scaler), ('clf', clf)])\n"
    "X = np.arange(20.0).reshape(10, 2)\ny = np.arange(10) % 2\npipe.fit(X, y)",
    "%%step frame\nimport pandas as pd\ndf = pd.DataFrame({'a': np.arange(5.0), 'b': np.arange(5)})\n"
    "frames = {'df': df}\nsame = df",
    # across steps: a later step holds objects an earlier step made (it reads them, never changes them)
    "%%step later\nholder2 = {'xs': xs}\nboth = [holder, df]\nalias = df\nmodels = {'pipe': pipe}\n"
    "axes_of = {'ax': ax}",
    "%%step inner\nfitted = pipe.named_steps['clf']\nfirst = holder['xs']",
]

CHECKS = {
    "holder['xs'] is xs": "holder['xs'] is xs",
    "holder['again'] is xs": "holder['again'] is xs",
    "ax.figure is fig": "ax.figure is fig",
    "fig.axes[0] is ax": "fig.axes[0] is ax",
    "pipe.named_steps['clf'] is clf": "pipe.named_steps['clf'] is clf",
    "pipe.named_steps['scale'] is scaler": "pipe.named_steps['scale'] is scaler",
    "frames['df'] is df": "frames['df'] is df",
    "same is df": "same is df",
    "holder2['xs'] is xs": "holder2['xs'] is xs",
    "both[0] is holder": "both[0] is holder",
    "both[1] is df": "both[1] is df",
    "alias is df": "alias is df",
    "models['pipe'] is pipe": "models['pipe'] is pipe",
    "axes_of['ax'] is ax": "axes_of['ax'] is ax",
    "fitted is clf": "fitted is clf",
    "first is xs": "first is xs",
}


def _run_all(k: LiveKernel, store) -> None:
    k.run(f"%load_ext nbsteps\n%steps store {store}")
    for cell in CELLS:
        k.run(cell)


def _checks(k: LiveKernel) -> dict:
    expr = "{" + ", ".join(f"{json.dumps(name)}: bool({code})" for name, code in CHECKS.items()) + "}"
    return k.value(expr)


@pytest.mark.timeout(300)
def test_shared_objects_stay_shared_after_a_restart(tmp_path, tmp_key, kernel_name):
    store = tmp_path / "store"
    env = {"NBSTEPS_KEY_FILE": str(tmp_key)}
    with LiveKernel(kernel_name, tmp_path, env) as k:
        _run_all(k, store)
        assert all(_checks(k).values())  # as Run All makes them
    with LiveKernel(kernel_name, tmp_path, env) as k:
        _run_all(k, store)
        executed = "sorted(n for n, r in __import__('nbsteps.ipython.session').ipython.session.current()"
        # (asked silently: an ordinary cell first replays the restored steps that changed process
        # state, here matplotlib's backend, so that it sees what Run All leaves; see
        # test_resume_process_state.py)
        assert k.quiet_value(executed + ".records.items() if r.origin != 'restored')") == []
        got = _checks(k)
    assert {name for name, ok in got.items() if not ok} == set()


# -- the same through the Python API (a new Plan and store object: what a new process has) --------


def _plan(store):
    import nbsteps

    plan = nbsteps.Plan(store=store)
    plan.add_cell("a", "xs = [1, 2, 3]\nholder = {'xs': xs}\npair = [holder, holder]")
    plan.add_cell("b", "h2 = {'xs': xs}\nsame = xs\nmine = [4]\nboth = [mine, holder]")
    return plan


def test_a_new_plan_restores_shared_objects_as_shared(tmp_path, tmp_key):
    _plan(tmp_path / "s").run()
    plan = _plan(tmp_path / "s")
    summary = plan.run()
    assert summary.cached == ["a", "b"]
    ns = plan.namespace
    assert ns["holder"]["xs"] is ns["xs"] and ns["pair"][0] is ns["pair"][1] is ns["holder"]
    assert ns["h2"]["xs"] is ns["xs"] and ns["same"] is ns["xs"] and ns["both"] == [[4], ns["holder"]]
    assert ns["both"][0] is ns["mine"] and ns["both"][1] is ns["holder"]


def test_a_reference_is_a_reference_on_disk_not_a_copy(tmp_path, tmp_key):
    """A later step that holds an earlier step's big array writes a reference, not its bytes."""
    import nbsteps

    plan = nbsteps.Plan(store=tmp_path / "s")
    plan.add_cell("big", "import numpy as np\narr = np.ones(2_000_000)")
    plan.add_cell("hold", "kept = {'arr': arr}\nalias = arr")
    plan.run()

    def size(step):
        return sum(p.stat().st_size for p in (tmp_path / "s" / step).iterdir())

    assert size("big") > 16_000_000 and size("hold") < 20_000


def test_a_reference_to_a_value_no_longer_in_the_store_says_which(tmp_path, tmp_key):
    from nbsteps.errors import CheckpointUnavailable
    from nbsteps.model.checkpoint import Checkpoint
    from nbsteps.stores.disk import DiskStore

    xs = [1, 2, 3]
    store = DiskStore(tmp_path / "s")
    store.put(Checkpoint("a", "fa", {"xs": xs}, parts={"token": "ta"}))
    store.put(Checkpoint("b", "fb", {"h": {"xs": xs}}, parts={"token": "tb", "upstream": {"a": "ta"}}))
    # a new process restoring b alone reads a's value from the store for it
    got = DiskStore(tmp_path / "s").get("b", "fb", lazy=True)
    assert got.outputs["h"] == {"xs": [1, 2, 3]}
    # a's checkpoint removed by hand: b's value names what it misses, b will be recomputed
    import shutil

    shutil.rmtree(tmp_path / "s" / "a")
    fresh = DiskStore(tmp_path / "s")
    fresh.warn = lambda step, message: None
    got = fresh.get("b", "fb", lazy=True)
    with pytest.raises(CheckpointUnavailable) as err:
        got.outputs["h"]
    assert "output 'xs' of step 'a'" in str(err.value) and "step 'b' will be recomputed" in str(err.value)


def test_reading_a_value_reads_what_it_refers_to_once_and_nothing_else(tmp_path, tmp_key, monkeypatch):
    from nbsteps.model.checkpoint import Checkpoint
    from nbsteps.stores import layout
    from nbsteps.stores.disk import DiskStore

    reads: list = []
    real = layout.load_value

    def spy(folder, entry, meta, key, meta_file=layout.META, **kw):
        reads.append(entry.get("name"))
        return real(folder, entry, meta, key, meta_file, **kw)

    monkeypatch.setattr(layout, "load_value", spy)
    xs, other = [1, 2], list(range(1000))
    DiskStore(tmp_path / "s").put(Checkpoint("a", "fa", {"xs": xs, "holder": {"xs": xs}, "other": other}))
    got = DiskStore(tmp_path / "s").get("a", "fa", lazy=True)
    holder = got.outputs["holder"]
    assert sorted(reads) == ["holder", "xs"]  # not 'other'
    assert got.outputs["xs"] is holder["xs"] and sorted(reads) == ["holder", "xs"]  # read once
    assert got.outputs["other"] == list(range(1000)) and len(reads) == 3
