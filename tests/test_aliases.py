"""Names bound to one object graph change together (SPEC 1, "Mutation";
nbsteps/model/aliases.py): a step that changes ``ax`` also writes ``fig`` of
``fig, ax = plt.subplots()``, on copies made together, so the cells below see
what Run All shows."""

import pytest

import nbsteps
from nbsteps.model.analysis import analyse_cell

CELLS = [
    (
        "setup",
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\n"
        "ax.plot([1, 2])",
    ),
    ("more", "ax.plot([2, 1])\nax.set_title('two lines')"),
    ("title", "ax.set_xlabel('x')"),
    (
        "check",
        "lines = len(fig.axes[0].lines)\ntitle = fig.axes[0].get_title()\nxlabel = fig.axes[0].get_xlabel()\n"
        "same = ax.figure is fig",
    ),
]


def run_all(cells) -> dict:
    ns: dict = {}
    for _, src in cells:
        exec(src, ns)
    return ns


@pytest.mark.parametrize(
    "source, groups",
    [
        ("fig, ax = plt.subplots()", [{"fig", "ax"}]),
        ("fig, (a1, a2) = plt.subplots(1, 2)", [{"fig", "a1", "a2"}]),
        ("a = b = []", [{"a", "b"}]),
        ("x, y = 1, 2", []),  # two distinct values
        ("d = {}\nalias = d", [{"d", "alias"}]),
        ("fig = plt.figure()\nax = fig.add_subplot()", [{"fig", "ax"}]),
        ("import numpy as np\nx, y = np.ones(2), np.zeros(2)", []),
        (
            "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()",
            [{"fig", "ax"}],
        ),  # plt is not one of them
        ("df2 = df.dropna()", []),  # a new object
    ],
)
def test_groups(source, groups):
    assert sorted(map(set, analyse_cell("s", source).groups), key=sorted) == sorted(groups, key=sorted)


@pytest.mark.parametrize("workers", [1, 4])
def test_changing_ax_changes_fig_as_in_run_all(workers):
    expected = run_all(CELLS)
    plan = nbsteps.Plan()
    for name, src in CELLS:
        plan.add_cell(name, src)
    assert set(plan.steps["more"].outputs) == {"ax", "fig"}
    assert plan.run(workers=workers).ok
    check = plan["check"].outputs
    assert (
        (check["lines"], check["title"], check["xlabel"], check["same"])
        == (expected["lines"], expected["title"], expected["xlabel"], expected["same"])
        == (2, "two lines", "x", True)
    )
    # the upstream checkpoints are unchanged, and a forced re-run gives the same again
    assert len(plan["setup"].outputs["fig"].axes[0].lines) == 1
    assert plan.run(force=["more"]).ok
    assert plan["check"].outputs["lines"] == 2


def test_in_a_shell_the_namespace_shows_the_changed_figure(shell):
    for name, src in CELLS[:3]:
        assert shell.run_cell(f"%%step {name}\n{src}").success
    ns = shell.user_ns
    assert len(ns["fig"].axes[0].lines) == 2 and ns["ax"].figure is ns["fig"]
    assert ns["fig"].axes[0].get_xlabel() == "x"
