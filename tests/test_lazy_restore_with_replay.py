"""Lazy restore, fingerprint-keyed checkpoints and the interactive fast path
together with shared-state replay, the lowest writer's version and captured
output: each keeps working with the other."""

from __future__ import annotations

from conftest import run_ok
from test_semantics import SEEDED, new_kernel, run_all

import nbsteps
from nbsteps.model.checkpoint import LazyValues


def test_an_edited_draw_replays_its_seed_in_interactive_mode_in_a_new_kernel(shell, tmp_path, tmp_key):
    """The fast path (upstream known to be up to date) must not skip the replay
    of a seed that was restored, not executed, in this kernel."""
    ref = run_all(SEEDED)
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    for i, cell in enumerate(SEEDED):
        run_ok(shell, f"%%step c{i}\n{cell}")
    new_kernel(shell, tmp_path / "store")
    run_ok(shell, f"%%step c0\n{SEEDED[0]}")
    run_ok(shell, f"%%step c1\n{SEEDED[1]}")
    plan = nbsteps.current()
    assert plan["c0"].cached and plan["c1"].cached  # restored: the generator was not seeded here
    run_ok(shell, "%%step c2\nb = np.random.rand() * 1")  # edited
    assert shell.user_ns["b"] == ref["b"]
    assert "replayed" in plan["c1"].reason


def test_the_lowest_writer_wins_with_lazily_restored_values(tmp_path, tmp_key):
    def make():
        plan = nbsteps.Plan(store=tmp_path / "store")
        plan.add_cell("first", "x = [1]")
        plan.add_cell("second", "x = [2]")
        return plan

    assert make().run().ok
    plan = make()
    plan.lazy_publish = True  # as in a notebook: values are read when used
    assert plan.run().ok
    assert isinstance(plan["first"].outputs, LazyValues) and "x" in plan.deferred
    plan.run("first")  # held, published again: the version below stays
    assert plan.load() == ["x"] and plan.namespace["x"] == [2]
    plan.run("first", force=["first"])  # executes: still the lower writer's version
    assert plan.namespace["x"] == [2]


def test_captured_output_comes_back_with_a_lazily_restored_checkpoint(tmp_path, tmp_key):
    def make():
        plan = nbsteps.Plan(store=tmp_path / "store")
        plan.add_cell("talk", "print('hello')\nbig = list(range(1000))")
        return plan

    first = make()
    assert first.run().ok
    plan = make()
    plan.lazy_publish = True
    assert plan.run().ok
    rec = plan["talk"]
    assert rec.cached and isinstance(rec.outputs, LazyValues) and not rec.outputs.loaded("big")
    assert rec.stdout == "hello\n" and rec.attempts == 1


def test_checkpoints_of_two_fingerprints_each_keep_their_output(tmp_path, tmp_key):
    plan = nbsteps.Plan(store=tmp_path / "store")
    plan.namespace["p"] = 1
    plan.add_cell("show", "print('p is', p)\nq = p")
    assert plan.run().ok
    plan.namespace["p"] = 2
    assert plan.run().ok and plan["show"].stdout == "p is 2\n"
    again = nbsteps.Plan(store=tmp_path / "store")  # a new kernel, p back to 1
    again.namespace["p"] = 1
    again.add_cell("show", "print('p is', p)\nq = p")
    assert again.run().ok
    assert again["show"].cached and again["show"].stdout == "p is 1\n"
