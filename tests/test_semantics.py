"""SPEC section 1 in a real InteractiveShell: notebook order, versions, mutation, shared state.

Every test compares with what Restart & Run All of the same cells gives.
"""

from __future__ import annotations

import numpy as np
import pytest

import nbsteps
from tests.conftest import run_ok


def run_all(cells: list[str]) -> dict:
    """The plain Restart & Run All of *cells* (bodies only): the reference."""
    ns: dict = {"__name__": "__main__"}
    for body in cells:
        exec(compile(body, "<cell>", "exec"), ns)
    return ns


def steps(shell, cells: list[str]) -> None:
    for i, body in enumerate(cells):
        run_ok(shell, f"%%step c{i}\n{body}")


REDEFINE = ["x = 1", "total = x + 1", "x = 10"]
REDEFINE_NP = ["import numpy as np\nx = np.arange(3)", "total = int(x.sum())", "x = np.arange(10)"]


def test_redefinition_interactive_binds_to_the_nearest_writer_above(shell):
    steps(shell, REDEFINE)
    ref = run_all(REDEFINE)
    assert shell.user_ns["total"] == ref["total"] == 2
    assert shell.user_ns["x"] == ref["x"] == 10


def test_redefinition_in_plan_mode_with_workers(shell):
    run_ok(shell, "%steps mode plan")
    steps(shell, REDEFINE_NP)
    run_ok(shell, "%steps run --workers 4")
    ref = run_all(REDEFINE_NP)
    assert shell.user_ns["total"] == ref["total"] == 3
    assert list(shell.user_ns["x"]) == list(ref["x"])


def test_the_namespace_keeps_the_lowest_writers_version(shell):
    steps(shell, REDEFINE)
    run_ok(shell, "%steps run --force c0")  # the top writer runs again after the lower one
    assert shell.user_ns["x"] == 10 and shell.user_ns["total"] == 2
    assert nbsteps.step("c0").outputs == {"x": 1}  # each version stays on its record


def test_a_rewrite_reads_the_version_above_it(shell):
    cells = ["x = 1", "x += 1", "y = x * 10", "x = x * 100"]
    steps(shell, cells)
    ref = run_all(cells)
    assert (shell.user_ns["x"], shell.user_ns["y"]) == (ref["x"], ref["y"]) == (200, 20)
    run_ok(shell, "%steps run --force-all --workers 4")
    assert (shell.user_ns["x"], shell.user_ns["y"]) == (200, 20)


SHADOW = ["import numpy as np\ninput = np.arange(6).reshape(2, 3)", "shape = input.shape", "n = len(input)"]


def test_a_builtin_rebound_above_is_an_input_in_plan_mode(shell):
    """SciPy's batched linear algebra tutorial names an array ``input``."""
    run_ok(shell, "%steps mode plan")
    steps(shell, SHADOW)
    run_ok(shell, "%steps run --workers 4")
    ref = run_all(SHADOW)
    assert shell.user_ns["shape"] == ref["shape"] == (2, 3) and shell.user_ns["n"] == ref["n"] == 2
    assert nbsteps.current().dependencies("c1") == {"c0": "inferred"}


PRINT_OPTIONS = [
    "import numpy as np\nnp.set_printoptions(linewidth=150)",
    "x = np.arange(30.)\nprint(x)",
    "y = np.arange(30.) + 1\nprint(y)",
]


def test_context_variables_a_step_sets_hold_for_the_steps_after_it(shell, capsys):
    """numpy keeps its print options in a context variable: steps on worker threads see
    them as the cells after ``np.set_printoptions`` do, and so does the kernel afterwards."""
    run_ok(shell, "%steps mode plan")
    steps(shell, PRINT_OPTIONS)
    try:
        run_ok(shell, "%steps run --workers 4")
        rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
        assert len(rows) == 2 and all(len(r) > 100 for r in rows), rows  # one line each, as in Run All
        assert np.get_printoptions()["linewidth"] == 150
    finally:
        np.set_printoptions(linewidth=75)


VIEWS = [
    "import numpy as np\nx = np.arange(10.)",
    "a = np.ma.masked_array(x[2:8], mask=x[2:8] > 5)  # views x's memory\nv = x[::2]",
    "x[3:5] = np.nan",
    "total = float(np.nansum(x))",
]


def _same_views(ns, ref) -> bool:
    return (
        np.array_equal(ns["a"].data, ref["a"].data, equal_nan=True)
        and list(ns["a"].mask) == list(ref["a"].mask)
        and np.array_equal(ns["v"], ref["v"], equal_nan=True)
        and ns["total"] == ref["total"]
    )


def test_views_of_an_array_changed_in_place_see_the_change(shell):
    ref = run_all(VIEWS)
    assert np.isnan(ref["a"].data[1]) and np.isnan(ref["v"][2])  # Run All: the views show the NaNs
    steps(shell, VIEWS)
    assert _same_views(shell.user_ns, ref)
    # the checkpoints above are untouched: re-running a reader gives what it gave
    assert not np.isnan(nbsteps.step("c0").outputs["x"]).any()
    assert not np.isnan(nbsteps.step("c1").outputs["a"].data).any()
    assert nbsteps.step("c2").outputs["a"].base is not None  # still a view, of the changed copy


def test_views_in_plan_mode_the_change_waits_for_the_readers(shell):
    run_ok(shell, "%steps mode plan")
    steps(shell, VIEWS)
    assert nbsteps.current().dependencies("c2") == {"c0": "inferred", "c1": "order"}
    run_ok(shell, "%steps run --workers 4")
    assert _same_views(shell.user_ns, run_all(VIEWS))


# a step below the change reads the views: in Run All it reads the changed memory
VIEWS_READ = [*VIEWS, "vsum = float(np.nansum(v))\nafirst = float(a.data[1])"]


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_a_step_below_reads_the_views_as_changed(shell, mode):
    ref = run_all(VIEWS_READ)
    assert np.isnan(ref["afirst"]) and ref["vsum"] == 16.0  # Run All: the views read the NaNs
    run_ok(shell, f"%steps mode {mode}")
    steps(shell, VIEWS_READ)
    if mode == "plan":
        run_ok(shell, "%steps run --workers 4")
    ns = shell.user_ns
    assert ns["vsum"] == ref["vsum"] and np.isnan(ns["afirst"])
    assert not np.isnan(nbsteps.step("c1").outputs["v"]).any()  # the version above is untouched
    assert set(nbsteps.step("c2").outputs) >= {"x", "a", "v"}  # the views are written by c2


# SciPy's outliers page (sp_outliers, edit-real): the views are found again when the steps run again
VIEWS_EDITED = [
    "import numpy as np\nlo = 0.1",
    "x = np.arange(19.) + lo",
    "a = np.ma.masked_array(x, mask=x < 2)  # views x's memory",
    "x[9:11] = np.nan",
]


def test_views_written_once_are_found_again_after_an_edit_above(shell):
    """The step changing ``x`` was seen writing ``a`` (a view of ``x``): when an edit above makes
    ``x`` and ``a`` new objects and everything runs again, ``a`` is the view of the new ``x`` the
    step changed, as in Run All, not the new ``a`` as it was before the change."""
    steps(shell, VIEWS_EDITED)
    edited = [VIEWS_EDITED[0].replace("0.1", "0.2"), *VIEWS_EDITED[1:]]
    ref = run_all(edited)
    assert np.isnan(ref["a"].data[9])
    run_ok(shell, f"%%step c0\n{edited[0]}")
    run_ok(shell, "%steps run")
    ns = shell.user_ns
    assert np.array_equal(ns["a"].data, ref["a"].data, equal_nan=True)
    assert np.array_equal(ns["x"], ref["x"], equal_nan=True)


RC = [
    "import matplotlib as mpl\nimport matplotlib.pyplot as plt\nmpl.rcParams['lines.linewidth'] = 2\n"
    "data = [1, 3, 2]\n"
    "plt.plot(data)",
    "mpl.rc('lines', linewidth=4)\nplt.plot(data)",
    "with mpl.rc_context({'lines.linewidth': 2}):\n    plt.plot(data)",
    "@mpl.rc_context({'lines.linewidth': 3})\ndef plotting_function():\n    return plt.plot(data)\n\n"
    "width = plotting_function()[0].get_linewidth()",
    "plt.style.use('ggplot')",
]


def test_cells_run_in_order_replay_nothing(shell):
    """matplotlib's customizing tutorial, cell by cell: the process already holds the
    state each cell needs, so no step above runs again (a replay drew its figures anew)."""
    try:
        for i, body in enumerate(RC):
            run_ok(shell, f"%%step c{i}\n{body}")
            plan = nbsteps.current()
            assert not [s for s in plan.steps if "replayed" in plan[s].reason], f"after c{i}"
        assert shell.user_ns["width"] == 3.0
    finally:
        import matplotlib as mpl

        mpl.rcdefaults()


HELPER = ["def rescale(c):\n    return c * factor + offset", "factor = 3", "offset = 0.5", "r = rescale(2.0)"]


def test_a_function_reads_at_call_time_the_names_defined_below_it(shell):
    """Run All: ``rescale`` looks ``factor`` up when the last cell calls it. The calling step
    depends on the steps that write it (order in plan mode, staleness when one is edited)."""
    run_ok(shell, "%steps mode plan")
    steps(shell, HELPER)
    assert nbsteps.current().dependencies("c3") == {"c0": "inferred", "c1": "inferred", "c2": "inferred"}
    run_ok(shell, "%steps run --workers 4")
    assert shell.user_ns["r"] == run_all(HELPER)["r"] == 6.5
    run_ok(shell, "%%step c1\nfactor = 5")  # edited: the caller is stale and runs again
    run_ok(shell, "%steps run --workers 4")
    assert shell.user_ns["r"] == 10.5


MODEL = [
    "class Model:\n    def fit(self, xs):\n        self.coef_ = [sum(xs) / len(xs)]\n        return self",
    "model = Model()",
    "model.fit([1, 2, 3])",
    "slope = model.coef_[0]",
]


def test_a_method_call_is_a_new_version_plan_mode(shell):
    run_ok(shell, "%steps mode plan")
    steps(shell, MODEL)
    run_ok(shell, "%steps run --workers 4")
    assert shell.user_ns["slope"] == run_all(MODEL)["slope"] == 2.0
    assert nbsteps.current().dependencies("c3") == {"c2": "inferred"}
    assert not hasattr(nbsteps.step("c1").outputs["model"], "coef_")  # the checkpoint above is untouched
    run_ok(shell, "%%step c2\nmodel.fit([10, 20])")  # edit the fit cell
    run_ok(shell, "%steps run")
    assert shell.user_ns["slope"] == 15.0  # the reader re-ran


def test_generator_draws_replay_the_same_sample(shell):
    cells = ["import numpy as np\nrng = np.random.default_rng(0)", "sample = rng.normal(size=3)"]
    steps(shell, cells)
    first = shell.user_ns["sample"].copy()
    for _ in range(2):
        run_ok(shell, "%steps run --force c1")
        assert np.array_equal(shell.user_ns["sample"], first)
    assert np.array_equal(first, run_all(cells)["sample"])


SEEDED = ["import numpy as np\nnp.random.seed(0)", "a = np.random.rand()", "b = np.random.rand()"]


def new_kernel(shell, store):
    """What a kernel restart leaves: an empty namespace and a fresh session on the same store."""
    from nbsteps.ipython import session

    shell.reset(new_session=False)
    session._plan = None
    session.bind(shell)
    run_ok(shell, f"%steps store {store}")


def test_a_seed_is_replayed_when_a_step_below_runs_in_a_new_kernel(shell, tmp_path, tmp_key):
    ref = run_all(SEEDED)
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    steps(shell, SEEDED)
    assert (shell.user_ns["a"], shell.user_ns["b"]) == (ref["a"], ref["b"])
    new_kernel(shell, tmp_path / "store")
    run_ok(shell, "%steps mode plan")
    steps(shell, SEEDED[:2] + ["b = np.random.rand() * 1"])  # the last cell edited
    run_ok(shell, "%steps run")
    plan = nbsteps.current()
    assert plan["c1"].cached is False and "replayed" in plan["c1"].reason
    assert shell.user_ns["b"] == ref["b"] and shell.user_ns["a"] == ref["a"]
    assert not plan["c2"].stale


CACHING = [
    "class Data:\n    pass\n\n"
    "class Model:\n    def __init__(self):\n        self.data = Data()\n    def fit(self):\n"
    "        return Results(self)\n\n"
    "class Results:  # like statsmodels: a forecast keeps its dates on the model's data\n"
    "    def __init__(self, model):\n        self.model = model\n"
    "    def forecast(self, n):\n        self.model.data.predict_dates = list(range(n))\n"
    "        return [0.5] * n\n"
    "    def append(self, n):  # no caching method by name: seen as the model's layout changes\n"
    "        self.model.data.append_ix = n\n        return Results(Model())",
    "model = Model()\nres = model.fit()",
    "fcast = res.forecast(3)",
    "res2 = res.append(7)",
]


def test_caches_left_on_a_value_above_survive_a_resume(shell, tmp_path, tmp_key):
    ref = run_all(CACHING)
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    steps(shell, CACHING)
    assert shell.user_ns["model"].data.predict_dates == ref["model"].data.predict_dates == [0, 1, 2]
    new_kernel(shell, tmp_path / "store")
    steps(shell, CACHING)  # all restored: nothing runs again
    plan = nbsteps.current()
    assert all(plan[s].cached and not plan[s].stale for s in ("c0", "c1", "c2", "c3"))
    run_ok(shell, "%steps load")
    assert shell.user_ns["model"].data.predict_dates == [0, 1, 2]
    assert shell.user_ns["model"].data.append_ix == ref["model"].data.append_ix == 7
    assert shell.user_ns["fcast"] == ref["fcast"]


def test_no_replay_when_the_process_state_is_already_right(shell):
    steps(shell, SEEDED)
    plan = nbsteps.current()
    assert not any("replayed" in plan[s].reason for s in ("c0", "c1", "c2"))  # nothing ran twice
    assert shell.user_ns["b"] == run_all(SEEDED)["b"]


def test_a_name_nothing_defines_is_warned_at_registration(shell, capsys):
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step a\nvalue = 41")
    run_ok(shell, "%%step b\nresult = valu + 1")
    out = capsys.readouterr().out
    assert "step 'b' reads 'valu'" in out and "did you mean 'value'?" in out
    run_ok(shell, "%%step c\nfine = value + len([1])")
    assert "warning" not in capsys.readouterr().out


def test_shared_state_edges_keep_order_without_false_staleness(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_ok(shell, "%steps mode plan")
    steps(
        shell,
        [
            "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
            "plt.style.use('ggplot')",
            "fig1 = plt.figure()\nplt.plot([1, 2])",
            "fig2 = plt.figure()\nplt.plot([3, 4])",
            "plt.style.use('default')",
            "import pandas as pd\npd.DataFrame({'a': [1, 2]}).to_csv('data.csv', index=False)",
            "import pandas as pd\nback = pd.read_csv('data.csv')",
        ],
    )
    plan = nbsteps.current()
    assert "c0" in plan.dependencies("c1")  # after the style it uses (it also reads plt)
    assert "c1" not in plan.dependencies("c2")  # plots only share the style above: they may run in parallel
    assert (
        plan.dependencies("c3")["c1"] == plan.dependencies("c3")["c2"] == "order"
    )  # a restyle waits for the plots
    assert plan.dependencies("c5")["c4"] == "state"  # reads the file c4 writes
    assert plan.deps.state_labels[("c4", "c5")] == ["file:data.csv"]
    run_ok(shell, "%steps run --workers 4")
    assert shell.user_ns["back"]["a"].tolist() == [1, 2]
    run_ok(shell, "%%step c1\nfig1 = plt.figure()\nplt.plot([1, 5])")  # edit a plot
    run_ok(shell, "%%step c4\nimport pandas as pd\npd.DataFrame({'a': [7]}).to_csv('data.csv', index=False)")
    preview = plan.plan()
    assert set(preview.to_run) == {"c1", "c4", "c5"}  # c2, c3 only share pyplot with c1: not stale
    run_ok(shell, "%steps run")
    assert shell.user_ns["back"]["a"].tolist() == [7]
    source = plan.graph().source
    assert "style=dotted" in source and "file:data.csv" in source
