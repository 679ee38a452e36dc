"""Fused linear chains on the dask backend (nbsteps.run.fusion), on a real
``distributed.LocalCluster``: fewer dask tasks than steps (counted by the
scheduler), the same values, records, events and checkpoints as unfused (the
threads backend runs every step alone). Counts, no timings."""

import os

import pytest

import nbsteps

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.dask, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def client():
    from nbsteps.backends.distributed import spawn_safe_main

    spawn_safe_main()
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def dask_tasks(client, steps, since=()):
    """The tasks the scheduler was given for these steps (keys nbsteps-STEP-ATTEMPT-ID),
    but those in *since*."""
    prefixes = tuple(f"nbsteps-{s}-" for s in steps)

    def keys(dask_scheduler):
        return sorted({t[0] for t in dask_scheduler.transition_log if str(t[0]).startswith(prefixes)})

    return [k for k in client.run_on_scheduler(keys) if k not in since]


def recorder(events):
    """A listener appending ``(kind, step)`` of every event to *events*."""
    return lambda e: events.append((e.kind, e.step))


def run_both(make, client, **kw):
    """The same plan on threads (every step alone) and on dask: (plan, events) each."""
    out = {}
    for backend in ("threads", "dask"):
        plan = make()
        events = []
        summary = plan.run(
            backend=backend,
            address=client if backend == "dask" else None,
            listeners=[recorder(events)],
            **kw,
        )
        out[backend] = (plan, summary, events)
    return out


def _values(outputs):
    return {k: v for k, v in outputs.items() if k != "pid"}  # which process ran it differs


def same_records(a, b, names):
    for n in names:
        ra, rb = a[n], b[n]
        assert (ra.status, ra.attempts, ra.cached, ra.output) == (
            rb.status,
            rb.attempts,
            rb.cached,
            rb.output,
        ), n
        assert _values(ra.outputs) == _values(rb.outputs) and ra.result == rb.result, n
        assert ra.error_text == rb.error_text, n
        ca, cb = a.store.peek(n), b.store.peek(n)
        assert (ca is None) == (cb is None), n
        if ca is not None:
            assert (
                _values(ca.outputs) == _values(cb.outputs)
                and ca.result == cb.result
                and ca.output == cb.output
            ), n
            assert ca.attempts == cb.attempts and cb.fingerprint == b[n].fingerprint, n


STEPS = ["fz0", "fz1", "fz2", "fz3", "fz4"]


def chain(fail_at=None, marker=None):
    plan = nbsteps.Plan(namespace={"SCALE": 10, "MARKER": str(marker)})
    plan.add_cell("fz0", "xs = [1, 2]")
    plan.add_cell(
        "fz1", "xs.append(3)\nn = len(xs)\nprint('n is', n)\nn"
    )  # mutates its input: a private copy
    body = "total = sum(xs) + n\ntotal"
    if fail_at == "fz2":
        body = "raise ValueError('fz2 broke')\n" + body
    if marker is not None:  # fails once, then succeeds
        body = (
            "import os\nif not os.path.exists(MARKER):\n    open(MARKER, 'w').close()\n"
            "    raise ConnectionError('first attempt fails')\n" + body
        )
    plan.add_cell("fz2", body, retry=1, retry_delay=0.05) if marker is not None else plan.add_cell(
        "fz2", body
    )
    plan.add_cell("fz3", "import os\npid = os.getpid()\nhalf = total / 2\nprint('half', half)")
    plan.add_cell("fz4", "final = half * SCALE\nfinal")
    return plan


def test_a_chain_runs_as_one_dask_task_with_the_same_records_events_and_checkpoints(client):
    runs = run_both(chain, client)
    (tp, ts, tev), (dp, ds, dev) = runs["threads"], runs["dask"]
    assert ts.ok and ds.ok, ds.text
    assert dask_tasks(client, STEPS) and len(dask_tasks(client, STEPS)) == 1  # five steps, one task
    assert dp["fz3"].outputs["pid"] != os.getpid()  # it ran on a worker
    same_records(tp, dp, STEPS)
    assert dp["fz0"].outputs["xs"] == [1, 2] and dp["fz1"].outputs["xs"] == [1, 2, 3]
    assert dp.namespace["final"] == 45.0 and dp["fz4"].result == 45.0
    assert dev == tev and [k for k, _ in dev[1:]] == ["started", "completed"] * 5 + ["finished"]
    assert [s for _, s in dev[1:-1]] == [s for s in STEPS for _ in (0, 1)]  # step by step, in order
    assert ds.completed_order == STEPS
    again = dp.run(backend="dask", address=client)  # every step has its own checkpoint: all restored
    assert again.ok and again.cached == STEPS


def test_a_failure_in_the_middle_leaves_the_steps_before_completed_and_the_rest_blocked(client):
    before = dask_tasks(client, STEPS)
    runs = run_both(lambda: chain(fail_at="fz2"), client)
    (tp, ts, tev), (dp, ds, dev) = runs["threads"], runs["dask"]
    assert not ds.ok and len(dask_tasks(client, STEPS, before)) == 1
    assert [dp[s].status for s in STEPS] == ["completed", "completed", "failed", "blocked", "blocked"]
    assert "ValueError: fz2 broke" in dp["fz2"].error_text
    assert "raise ValueError('fz2 broke')" in dp["fz2"].traceback
    assert dp.store.peek("fz1") is not None and dp.store.peek("fz2") is None
    assert dp["fz3"].message == "upstream fz2 failed"
    same_records(tp, dp, STEPS)
    assert dev == tev and ds.text == ts.text


def test_a_retry_inside_a_chain_is_the_step_s_own(client, tmp_path):
    before = dask_tasks(client, STEPS)
    runs = {}
    for backend in ("threads", "dask"):
        marker = tmp_path / backend
        plan = chain(marker=marker)
        events = []
        summary = plan.run(
            backend=backend,
            address=client if backend == "dask" else None,
            listeners=[recorder(events)],
        )
        runs[backend] = (plan, summary, events)
    (tp, ts, tev), (dp, ds, dev) = runs["threads"], runs["dask"]
    assert ts.ok and ds.ok, ds.text
    assert dp["fz2"].attempts == 2 and [dp[s].attempts for s in STEPS] == [1, 1, 2, 1, 1]
    assert ("retrying", "fz2") in dev and dev == tev
    # fz0-fz2 as one task (fz2 fails), then fz2's second attempt heads the rest: fz2-fz4
    keys = dask_tasks(client, STEPS, before)
    assert len(keys) == 2 and any(k.startswith("nbsteps-fz2-2-") for k in keys), keys
    assert dp.namespace["final"] == tp.namespace["final"] == 45.0
    same_records(tp, dp, STEPS)


def test_a_branch_point_ends_a_chain_and_function_steps_fuse_too(client):
    def make():
        plan = nbsteps.Plan()

        @plan.step("br_a")
        def br_a():
            return 2

        @plan.step("br_b")  # br_a has two downstream steps: it travels alone
        def br_b(br_a):
            return br_a + 1

        @plan.step("br_c")
        def br_c(br_a):
            return br_a * 10

        @plan.step("br_d")  # br_b -> br_d -> br_e is a chain
        def br_d(br_b):
            return br_b * 2

        @plan.step("br_e")
        def br_e(br_d):
            return [br_d]

        return plan

    runs = run_both(make, client)
    (tp, _, _), (dp, ds, dev) = runs["threads"], runs["dask"]
    assert ds.ok, ds.text
    names = ["br_a", "br_b", "br_c", "br_d", "br_e"]
    assert [dp[s].result for s in names] == [2, 3, 20, 6, [6]]
    same_records(tp, dp, names)
    keys = dask_tasks(client, names)
    assert len(keys) == 3, keys  # br_a; br_b with br_d and br_e; br_c
    assert sorted(k.split("-")[1] for k in keys) == ["br_a", "br_b", "br_c"]
    for s in names:  # each step: started before completed, after its upstream completed
        assert dev.index(("started", s)) < dev.index(("completed", s))
    assert dev.index(("completed", "br_d")) < dev.index(("started", "br_e"))


def test_steps_that_need_the_client_between_them_are_not_fused(client):
    plan = nbsteps.Plan(namespace={})
    plan.add_cell("nf0", "a = 1")
    plan.add_cell("nf1", "b = a + 1", timeout=30)  # its timer and abandoning are the client's
    plan.add_cell("nf2", "c = b + 1")
    plan.add_cell("nf3", "d = c + 1", confirm="really?")
    plan.add_cell("nf4", "e = d + 1")
    summary = plan.run(backend="dask", address=client, yes=False, confirm=lambda name, why: True)
    assert summary.ok, summary.text
    assert plan.namespace["e"] == 5
    keys = dask_tasks(client, ["nf0", "nf1", "nf2", "nf3", "nf4"])
    # nf0 alone (nf1 has a timeout), nf1 alone (it has a timeout), nf2 alone (nf3 asks first), nf3 + nf4
    assert sorted(k.split("-")[1] for k in keys) == ["nf0", "nf1", "nf2", "nf3"], keys


def test_a_large_input_of_a_step_inside_a_chain_travels_once(client, monkeypatch):
    import numpy as np
    import pandas as pd

    big = pd.DataFrame(np.arange(400_000.0).reshape(-1, 4), columns=list("abcd"))  # 3.2 MB
    scattered = []
    real_scatter = distributed.Client.scatter
    monkeypatch.setattr(
        distributed.Client,
        "scatter",
        lambda self, value, **kw: scattered.append(type(value).__name__) or real_scatter(self, value, **kw),
    )
    before = dask_tasks(client, ["sc0", "sc1", "sc2"])
    plan = nbsteps.Plan(namespace={"big": big})
    plan.add_cell("sc0", "k = 2")
    plan.add_cell("sc1", "s = float(big['a'].sum()) * k")
    plan.add_cell("sc2", "t = s + float(big['b'].iloc[2])")  # not k: sc0 would branch
    summary = plan.run(backend="dask", address=client)
    assert summary.ok, summary.text
    assert plan.namespace["t"] == float(big["a"].sum()) * 2 + float(big["b"].iloc[2])
    assert scattered == ["DataFrame"] and len(dask_tasks(client, ["sc0", "sc1", "sc2"], before)) == 1


def test_values_that_cannot_travel_fail_their_own_step_inside_a_chain(client):
    import threading

    plan = nbsteps.Plan(namespace={"lock": threading.Lock()})
    plan.add_cell("un0", "a = 1")
    plan.add_cell("un1", "with lock:\n    b = a + 1")  # its input cannot go: un0 goes alone, un1 fails
    plan.add_cell("un2", "c = b + 1")
    plan.add_cell("other0", "x = 1")
    plan.add_cell(
        "other1", "import threading\ny = x + 1\nmine = threading.Lock()"
    )  # its output cannot come back
    plan.add_cell("other2", "z = y + 1")
    summary = plan.run(backend="dask", address=client)
    assert not summary.ok
    status = {s: plan[s].status for s in plan.order()}
    assert status == {
        "un0": "completed",
        "un1": "failed",
        "un2": "blocked",
        "other0": "completed",
        "other1": "failed",
        "other2": "blocked",
    }
    assert "step 'un1'" in plan["un1"].error_text and "input 'lock'" in plan["un1"].error_text
    assert "step 'other1'" in plan["other1"].error_text and "output 'mine'" in plan["other1"].error_text
    assert plan.store.peek("un0") is not None and plan.store.peek("other0") is not None
    assert "y" not in plan.namespace and plan.namespace["x"] == 1


def test_a_slow_step_ends_its_chain_so_checkpoints_are_not_held_back(client):
    names = ["sl0", "sl1", "sl2"]
    plan = nbsteps.Plan(namespace={})
    plan.add_cell("sl0", "import time\ntime.sleep(0.3)\na = 1")  # longer than fusion.BUDGET (0.2 s)
    plan.add_cell("sl1", "b = a + 1")
    plan.add_cell("sl2", "c = b + 1")
    before = dask_tasks(client, names)
    # first run: the worker starts no step after the budget; sl1 then heads the rest
    assert plan.run(backend="dask", address=client).ok
    first = dask_tasks(client, names, before)
    assert sorted(k.split("-")[1] for k in first) == ["sl0", "sl1"], first
    # next run: sl0 was slow last time, so it is sent alone
    assert plan.run(backend="dask", address=client, force_all=True).ok and plan.namespace["c"] == 3
    second = dask_tasks(client, names, before + first)
    assert sorted(k.split("-")[1] for k in second) == ["sl0", "sl1"], second
    assert [plan[s].status for s in names] == ["completed"] * 3


def test_a_name_sharing_objects_with_an_input_a_follower_changes_is_written_with_it(client):
    """``box["inner"].append(2)`` changes ``inner`` too, as in Run All (nbsteps.run.attempt.together):
    in a fused chain the follower's private copy of ``box`` is made with ``inner``, which it writes."""

    def make():
        plan = nbsteps.Plan(namespace={})
        plan.add_cell("hz0", "inner = [1]\nbox = {'inner': inner}")
        plan.add_cell("hz1", "box['inner'].append(2)")
        return plan

    runs = run_both(make, client)
    for backend, (plan, summary, _) in runs.items():
        assert summary.ok, (backend, summary.text)
        ns = plan.namespace
        assert ns["inner"] == [1, 2] and ns["box"] == {"inner": [1, 2]}, backend
        if backend == "threads":  # (a worker's outputs travel one by one: equal, not one object)
            assert ns["inner"] is ns["box"]["inner"]
        assert plan["hz0"].outputs["inner"] == [1], backend  # the version above is intact
    assert len(dask_tasks(client, ["hz0", "hz1"])) == 1  # fused
