"""Writes checked at run time (issue 23, cases 3 and 4; SPEC section 1, "Observed, not guessed").

A step that changes an input in place in a way the analysis cannot see (``np.add.at``,
``out=``, a function of an unlisted library that changes its argument and returns
something) is seen changing it (nbsteps.run.attempt.observe): the change is its write,
readers below it read its version, the version above it stays intact. Each case is
compared with plain Run All: interactively, in plan mode with 4 workers, resumed from a
directory store in a new shell, and after editing a middle cell.
"""

from __future__ import annotations

import numpy as np
import pytest

import nbsteps
from nbsteps.run.attempt import observe
from tests.conftest import run_ok, run_steps
from tests.test_semantics import new_kernel, run_all, steps

# case 3: in-place writes through ufunc.at and out=
UFUNC = [
    "import numpy as np\ncounts = np.zeros(5)\nA = np.arange(4.0)",
    "before = counts.sum() + A.sum()",  # reads the version above the change
    "np.add.at(counts, [0, 1, 1, 3], 1)\nnp.negative(A, out=A)",
    "total = counts.sum()\nfirst = A[1]",
]
# case 4: a function of a library nobody listed changes its argument and returns something
MYLIB = """
def scale_inplace(a):
    a *= 10
    return len(a)
"""
UNSEEN = [
    "import numpy as np\nimport mylib_observed as mylib\narr = np.arange(3.0)",
    "n = mylib.scale_inplace(arr)",
    "s = arr.sum()",
]


@pytest.fixture(autouse=True)
def mylib(module_from_source):
    return module_from_source("mylib_observed", MYLIB)


def _values(ns, names):
    return {n: (ns[n].tolist() if isinstance(ns[n], np.ndarray) else ns[n]) for n in names}


CASES = [
    pytest.param(UFUNC, ("before", "total", "first", "counts", "A"), id="ufunc-at-and-out"),
    pytest.param(UNSEEN, ("n", "s", "arr"), id="unlisted-library"),
]


@pytest.mark.parametrize("cells,names", CASES)
def test_interactive_matches_run_all(shell, cells, names):
    steps(shell, cells)
    assert _values(shell.user_ns, names) == _values(run_all(cells), names)


@pytest.mark.parametrize("cells,names", CASES)
def test_plan_mode_with_workers_matches_run_all(shell, cells, names):
    run_ok(shell, "%steps mode plan")
    steps(shell, cells)
    run_ok(shell, "%steps run --workers 4")
    assert _values(shell.user_ns, names) == _values(run_all(cells), names)
    plan = nbsteps.current()
    writer = "c2" if cells is UFUNC else "c1"
    assert plan.dependencies(f"c{len(cells) - 1}").get(writer) == "observed"
    run_ok(shell, "%steps run --workers 4")  # a second run changes nothing
    assert _values(shell.user_ns, names) == _values(run_all(cells), names)


@pytest.mark.parametrize("cells,names", CASES)
def test_resumed_from_a_directory_store_in_a_new_shell(shell, tmp_path, tmp_key, cells, names):
    ref = _values(run_all(cells), names)
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    steps(shell, cells)
    assert _values(shell.user_ns, names) == ref
    new_kernel(shell, tmp_path / "store")
    run_ok(shell, "%steps mode plan")
    steps(shell, cells)
    run_ok(shell, "%steps run --workers 4")
    plan = nbsteps.current()
    assert all(plan[f"c{i}"].cached for i in range(len(cells)))  # nothing runs again
    run_ok(shell, "%steps load")
    assert _values(shell.user_ns, names) == ref


@pytest.mark.parametrize("cells,names", CASES)
def test_editing_the_middle_cell_reruns_from_the_version_above(shell, cells, names):
    steps(shell, cells)
    middle = len(cells) - 2
    edited = cells[middle] + "\nedited = 1"
    run_ok(shell, f"%%step c{middle}\n{edited}")  # runs again: must not apply the change twice
    run_ok(shell, "%steps run")
    new = cells[:middle] + [edited] + cells[middle + 1 :]
    assert _values(shell.user_ns, names) == _values(run_all(new), names)


def test_the_version_above_is_never_the_changed_object(shell):
    steps(shell, UFUNC)
    plan = nbsteps.current()
    assert plan["c0"].outputs["counts"].tolist() == [0.0] * 5
    assert plan["c2"].outputs["counts"] is not plan["c0"].outputs["counts"]
    assert "counts" in plan._require("c2").observed


def test_an_observed_write_is_shown_in_the_plan_and_on_the_graph(shell):
    steps(shell, UFUNC)
    plan = nbsteps.current()
    assert "c2 changes A, counts in place (observed)" in plan.plan().text
    edge = [e for e in plan.edges() if e[:2] == ("c2", "c3")]
    assert edge and edge[0][2] == "observed"


def test_immutable_values_are_never_checked():
    assert observe.digest(3) is None and observe.digest("x") is None
    assert observe.digest((1, "a", (2.0, None))) is None
    assert observe.digest([1]) is not None


def test_the_digest_sees_buffers_frames_and_attributes():
    import pandas as pd

    a = np.arange(10.0)
    d = observe.digest(a)
    a[3] = -1
    assert observe.digest(a) != d
    df = pd.DataFrame({"x": [1.0, 2.0]})
    d = observe.digest(df)
    df.to_numpy()  # a read changes nothing
    assert observe.digest(df) == d
    df.loc[0, "x"] = 5.0
    assert observe.digest(df) != d

    class Box:
        pass

    b = Box()
    b.inner = Box()
    d = observe.digest(b)
    b.inner.value = 1
    assert observe.digest(b) != d


# case 5: an axes of an array of axes (``fig, axs = plt.subplots(1, 2)``) drawn on through a subscript, by
# a method of another object given it as an argument (``frame.plot.bar(ax=axs[1])``: no write the analysis
# sees): the digest walks what a numpy object array holds (before, it read its pointers only: unchanged),
# and the figure bound with the axes in the step above is written with them (networkx's Girvan-Newman
# example: resumed in a new kernel, its figure had no bars)
AXES = [
    "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nimport pandas as pd\n"
    "frame = pd.DataFrame({'k': [1, 2, 3], 'v': [3.0, 1.0, 2.0]})",
    "fig, axs = plt.subplots(1, 2)",
    "frame.plot.bar(x='k', ax=axs[1])",
]


def _drawn(ns) -> tuple:
    return [len(a.patches) for a in ns["fig"].axes], ns["fig"] is ns["axs"][1].figure


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_bars_drawn_on_an_axes_of_an_array_are_a_write_of_the_array_and_its_figure(
    shell, tmp_path, tmp_key, mode
):
    pytest.importorskip("pandas")
    ref = _drawn(run_all(AXES))
    assert ref == ([0, 3], True)
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    run_ok(shell, f"%steps mode {mode}")
    steps(shell, AXES)
    if mode == "plan":
        run_ok(shell, "%steps run --workers 2")
    plan = nbsteps.current()
    assert _drawn(shell.user_ns) == ref
    assert {"fig", "axs"} <= set(plan["c2"].outputs)
    assert [len(a.patches) for a in plan["c1"].outputs["fig"].axes] == [0, 0]  # the version above: intact
    new_kernel(shell, tmp_path / "store")  # resumed: restored as Run All left them, nothing runs again
    steps(shell, AXES)
    if mode == "plan":
        run_ok(shell, "%steps run --workers 2")
    plan = nbsteps.current()
    assert all(plan[f"c{i}"].cached for i in range(len(AXES)))
    run_ok(shell, "%steps load")
    assert _drawn(shell.user_ns) == ref


def test_the_digest_walks_what_an_object_array_holds():
    class Box:
        pass

    boxes = np.array([Box(), Box()], dtype=object)
    d = observe.digest(boxes)
    boxes[1].value = 1
    assert observe.digest(boxes) != d


# a frame with a column of pandas' Arrow-backed strings only read (seaborn's catplot(data=df) in
# scikit-learn's GMM selection example): before, the digest compared the identities of the strings
# ``tolist()`` made anew on every call, saw a write, and the step that made the frame ran again (its
# figure shown twice)
STRINGS = [
    "import pandas as pd\n"
    "kinds = pd.array(['ab', 'cd', 'ef'], dtype='string[pyarrow]')\n"
    "frame = pd.DataFrame({'kind': kinds, 'v': [1.0, 2.0, 3.0]})",
    "kept = [k.upper() + '!' for k in frame['kind']] * 50\nlast = sum(len(k) for k in frame['kind'])",
]


def test_reading_a_column_of_arrow_strings_is_no_write(shell):
    pytest.importorskip("pyarrow")
    steps(shell, STRINGS)
    plan = nbsteps.current()
    assert "frame" not in plan["c1"].outputs and not plan._require("c1").observed
    assert plan.last_summary.completed_order == ["c1"]  # c0 was not run again
    assert shell.user_ns["last"] == run_all(STRINGS)["last"] == 6


def test_the_digest_sees_arrow_strings_changed_not_read():
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    frame = pd.DataFrame({"kind": pd.array(["ab", "cd"], dtype="string[pyarrow]")})
    d = observe.digest(frame)
    kept = list(frame["kind"].str.upper())  # noqa: F841 - new strings kept alive
    assert observe.digest(frame) == d
    frame.loc[0, "kind"] = "zz"
    assert observe.digest(frame) != d


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_a_step_seen_changing_its_input_runs_once_as_in_run_all(shell, capfd, mode):
    """With the memory store the version above is the very object the step changed: the
    step above executes again (its token kept, its output not shown twice), and the step
    that changed it is not executed a second time (it printed once, as in Run All)."""
    cells = [
        "%%step a\nimport numpy as np\nprint('made by a')\narr = np.zeros(3)",
        "%%step b\nprint('changed by b')\nnp.add.at(arr, [0], 1)",
        "%%step c\ntotal = arr.sum()",
    ]
    run_steps(shell, cells, mode)
    printed = capfd.readouterr().out
    assert printed.count("changed by b") == 1, printed
    assert printed.count("made by a") == 1, printed
    plan = nbsteps.current()
    assert plan["a"].outputs["arr"].tolist() == [0.0, 0.0, 0.0]  # the version above, intact
    assert plan["a"].reason == "rebuilt: its arr was changed in place by b"
    assert shell.user_ns["arr"].tolist() == [1.0, 0.0, 0.0] and shell.user_ns["total"] == 1.0  # Run All's
