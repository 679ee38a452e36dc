"""What is no write, decided by what the value is (SPEC 1, "Observed, not guessed"):

- reading a ``functools.cached_property`` stores its value in the instance's ``__dict__`` (networkx's
  ``G.edges``, ``G.degree``): a cache filled by a read, not a change of the object, so the reading
  step does not become a writer of it (before, every networkx gallery script re-ran the step that
  made the graph, and the steps between, when a later cell read ``G.edges``);
- calling a function a module holds (``nx.write_edgelist(G, path)``, ``textwrap.dedent(s)`` with
  its result unused) does not change the module, so the step is no writer of the module's name
  (before, editing such a cell made every later reader of ``nx`` stale).
"""

import pytest
from conftest import run_ok, shell_on_store

import nbsteps

GRAPH = (
    "%%step make\nimport functools\n"
    "class Graph:\n"
    "    def __init__(self):\n        self.adj = {1: [2], 2: [1]}\n"
    "    @functools.cached_property\n"
    "    def edges(self):\n        return sorted((a, b) for a in self.adj for b in self.adj[a] if a < b)\n"
    "G = Graph()"
)


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_reading_a_cached_property_is_no_write(shell, mode):
    run_ok(shell, f"%steps mode {mode}")
    for cell in (GRAPH, "%%step lines\nlines = list(G.edges)", "%%step other\nz = 1"):
        run_ok(shell, cell)
    if mode == "plan":
        run_ok(shell, "%steps run --workers 4")
    plan = nbsteps.current()
    assert shell.user_ns["lines"] == [(1, 2)]
    assert "G" not in plan.steps["lines"].outputs and not plan.steps["lines"].observed
    run_ok(shell, "%%step other\nz = 2")  # an unrelated cell edited: nothing above is stale
    if mode == "plan":
        assert plan.plan().to_run == ["other"]
    else:
        assert plan.last_summary.completed_order == ["other"] and plan.plan().to_run == []


def test_a_real_networkx_graph_read_by_a_later_step_is_not_written(shell):
    pytest.importorskip("networkx")
    run_ok(shell, "%%step make\nimport networkx as nx\nG = nx.grid_2d_graph(2, 2)")
    run_ok(shell, "%%step lines\nlines = list(nx.generate_edgelist(G))")
    plan = nbsteps.current()
    assert plan.last_summary.completed_order == ["lines"]  # `make` was not run again to keep its G
    assert "G" not in plan.steps["lines"].outputs and len(shell.user_ns["lines"]) == 4


def test_calling_what_a_module_holds_does_not_write_the_module(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_ok(shell, "%%step imports\nimport textwrap")
    run_ok(shell, "%%step use\ntextwrap.dedent('  x')")
    run_ok(shell, "%%step below\nwrapped = textwrap.fill('a b c', width=3)")
    plan = nbsteps.current()
    assert "textwrap" not in plan.steps["use"].outputs
    assert plan.dependencies("below") == {"imports": "inferred"}
    run_ok(shell, "%%step use\ntextwrap.dedent('  y')")  # edited: `below` is not stale
    assert plan.plan().to_run == []


EXECUTED = 'out["executed"] = sorted(s for s in plan.steps if plan[s].origin == "executed")'


def test_a_new_kernel_resuming_decides_the_same_without_the_modules_in_its_namespace(tmp_path, tmp_key):
    """Whether ``pylab.autoscale(...)`` changes ``pylab`` is decided from the code (the ``import``
    above), not from the namespace: a new kernel, where nothing is restored yet when the cells
    register, gives every step the same upstream, so resuming executes nothing (statsmodels'
    lowess tutorial re-ran five of six steps: ``upstream cell4 changed``)."""
    cells = [
        "%%step imports\nimport textwrap",
        "%%step use\nwrapped = textwrap.fill('a b c', width=3)\ntextwrap.dedent('  x')",
        "%%step below\nagain = textwrap.fill(wrapped, width=5)",
    ]
    store = tmp_path / "store"

    def kernel() -> list:
        return shell_on_store(store, cells, tmp_path, EXECUTED)["executed"]

    assert kernel() == ["below", "imports", "use"]
    assert kernel() == []  # everything restored: nothing is stale in the new kernel
