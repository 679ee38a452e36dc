"""The stale flags after a cell check again only the steps reading an outside name whose
value changed (``refresh_stale`` keeps each outside name's digests: a name is digested once
a pass, however many steps read it), with the flags a full pass gives (real InteractiveShell).

Nearly every cell reads an outside name (``sum``, ``len``, ``print``: builtins a cell could
rebind, or a name an ordinary cell set); a pass over all of them after every cell made each
cell of a long notebook cost what the notebook costs (issue 26, target 6)."""

import random

from conftest import run_ok

import nbsteps
from nbsteps.run.decide import staleness


def flags(plan) -> dict:
    plan.refresh_stale()
    return {name: plan[name].stale for name in plan.order()}


def full_pass(plan) -> dict:
    """The flags a first pass (every step checked) gives now, the records left as they were."""
    ctx = plan.context
    kept = {name: plan[name].stale for name in plan.order()}
    memo = ctx.__dict__.pop("_stale_pass", None)
    try:
        plan.refresh_stale()
        return {name: plan[name].stale for name in plan.order()}
    finally:
        for name, flag in kept.items():
            if plan[name].stale != flag:
                plan[name].stale = flag
        ctx.__dict__["_stale_pass"] = memo


def test_a_cell_changing_no_name_read_checks_no_step_again(shell, monkeypatch):
    run_ok(shell, "rate = 2")
    for i in range(30):
        run_ok(shell, f"%%step s{i}\nv{i} = sum([{i}, rate])")
    plan = nbsteps.current()
    flags(plan)
    checked = []
    parts = staleness.fingerprint_parts

    def counting(ctx, step, *args, **kw):
        checked.append(step.name)
        return parts(ctx, step, *args, **kw)

    monkeypatch.setattr(staleness, "fingerprint_parts", counting)
    run_ok(shell, "unrelated = 1")
    assert flags(plan) == {f"s{i}": False for i in range(30)}
    assert checked == []  # (every step before: each reads `sum` and `rate` from outside)
    run_ok(shell, "rate = 3")
    assert flags(plan) == {f"s{i}": True for i in range(30)}
    assert sorted(checked) == sorted(f"s{i}" for i in range(30))


def test_a_builtin_rebound_and_a_helper_redefined_make_their_readers_stale(shell):
    run_ok(shell, "def scale(v):\n    return 2 * v")
    run_ok(shell, "%%step a\nx = sum([1, 2])")
    run_ok(shell, "%%step b\ny = scale(3)")
    run_ok(shell, "%%step c\nz = x + y")
    plan = nbsteps.current()
    assert flags(plan) == {"a": False, "b": False, "c": False}
    run_ok(shell, "sum = lambda v: 0")  # a builtin the cell reads, now a name of the notebook
    assert flags(plan) == {"a": True, "b": False, "c": True}
    run_ok(shell, "del sum")
    assert flags(plan) == {"a": False, "b": False, "c": False}
    run_ok(shell, "def scale(v):\n    return 3 * v")
    assert flags(plan) == {"a": False, "b": True, "c": True}
    run_ok(shell, "def scale(v):\n    return 2 * v")
    assert flags(plan) == {"a": False, "b": False, "c": False}


def test_a_value_changed_and_changed_back_between_two_passes_changes_nothing(shell):
    run_ok(shell, "p = 1\nq = [1, 2]")
    run_ok(shell, "%%step a\nx = p + 1")
    run_ok(shell, "%%step b\ny = len(q)")
    plan = nbsteps.current()
    assert flags(plan) == {"a": False, "b": False}
    run_ok(shell, "p = 2")
    run_ok(shell, "p = 1\nq.append(3)")  # p as it ran, q changed in place
    assert flags(plan) == {"a": False, "b": True}
    run_ok(shell, "q.pop()")
    assert flags(plan) == {"a": False, "b": False}


def test_after_each_cell_the_flags_are_those_of_a_full_pass(shell):
    rng = random.Random(26)
    run_ok(shell, "a = 1\nb = 2\nc = [0]")
    bodies = [
        "x{i} = a + {i}",
        "x{i} = sum([b, {i}])",
        "x{i} = len(c) + x{j}",
        "x{i} = x{j} * 2",
        "x{i} = {i}",
    ]
    plan = nbsteps.current()
    for i in range(40):
        body = rng.choice(bodies if i else bodies[:2]).format(i=i, j=rng.randrange(i) if i else 0)
        run_ok(shell, f"%%step s{i}\n{body}")
        ordinary = rng.choice(
            [
                "a = 1",
                "a = 2",
                "b = 2",
                "b = 5",
                "c.append(1)",
                "c.clear()",
                "pass",
                f"x{rng.randrange(i + 1)} = -1",
            ]
        )
        run_ok(shell, ordinary)
        if rng.random() < 0.3:  # an upstream step run again
            run_ok(shell, f"%%step s{i}\n{body}")
        assert flags(plan) == full_pass(plan), (i, body, ordinary)
