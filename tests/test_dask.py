"""The dask backend on a real ``distributed.LocalCluster`` of worker processes."""

import os
import signal
import subprocess
import sys
import threading
import time

import nbformat
import pandas as pd
import pytest
from conftest import run_err, run_ok
from nbformat.v4 import new_code_cell, new_notebook

import nbsteps
from nbsteps.ipython import session

distributed = pytest.importorskip("distributed")

pytestmark = [pytest.mark.dask, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def client():
    from nbsteps.backends.distributed import spawn_safe_main

    spawn_safe_main()  # earlier tests ran an IPython shell, which replaces __main__
    cluster = distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
    )
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def worker_pids(client):
    return set(client.run(os.getpid).values())


def cell_plan(namespace=None):
    plan = nbsteps.Plan(namespace={} if namespace is None else namespace)
    plan.add_cell("raw", "import pandas as pd\nraw = pd.DataFrame({'g': list('abcabc'), 'v': range(6)})")
    plan.add_cell("clean", "clean = raw[raw.v > 0].copy()\nclean['w'] = clean.v * SCALE")
    plan.add_cell("by_g", "by_g = clean.groupby('g').w.sum()\nby_g")
    plan.add_cell("total", "import os\ntotal = int(clean.w.sum())\npid = os.getpid()\ntotal")
    plan.add_cell("report", "report = f'{len(by_g)} groups, total {total}'\nreport")
    return plan


def test_steps_run_in_worker_processes_with_the_same_results_as_threads(client):
    threads, dask = cell_plan({"SCALE": 10}), cell_plan({"SCALE": 10})
    assert threads.run().ok
    summary = dask.run(backend="dask", address=client)
    assert summary.ok, summary.text
    assert dask["total"].outputs["pid"] in worker_pids(client)
    assert dask["total"].outputs["pid"] != os.getpid()
    assert threads["total"].outputs["pid"] == os.getpid()
    for name in threads.order():
        a, b = threads[name], dask[name]
        assert a.status == b.status == "completed" and set(a.outputs) == set(b.outputs)
        assert not b.cached
    pd.testing.assert_frame_equal(threads.namespace["clean"], dask.namespace["clean"])
    pd.testing.assert_series_equal(threads["by_g"].result, dask["by_g"].result)
    assert threads["report"].result == dask["report"].result == "3 groups, total 150"
    # checkpoints are kept in the kernel: a second run restores everything
    again = dask.run(backend="dask", address=client)
    assert again.ok and again.cached == dask.order()


def test_function_steps_retries_timeouts_and_optional_steps_behave_as_with_threads(client, tmp_path):
    marker = tmp_path / "calls"

    def make(plan):
        @plan.step("flaky", retry=2, retry_delay=0.05)
        def flaky():
            n = int(marker.read_text()) if marker.exists() else 0
            marker.write_text(str(n + 1))
            if n == 0:
                raise ConnectionError("first call fails")
            return os.getpid()

        @plan.step("slow", timeout=0.8)
        def slow():
            time.sleep(2.5)  # keeps its worker busy after the timeout: keep it short

        @plan.step("maybe", optional=True)
        def maybe():
            raise ValueError("not today")

        @plan.step("after_maybe", after=["maybe"])
        def after_maybe(flaky):
            return flaky

        @plan.step("after_slow")
        def after_slow(slow):
            return 1

    results = {}
    for backend in ("threads", "dask"):
        marker.unlink(missing_ok=True)
        plan = nbsteps.Plan()
        make(plan)
        summary = plan.run(backend=backend, address=client if backend == "dask" else None, workers=4)
        results[backend] = (plan, summary)
    (tp, ts), (dp, ds) = results["threads"], results["dask"]
    assert dp["slow"].finished - dp["slow"].started < 2.0, "the timeout fails the step in time"
    for name in tp.order():
        assert tp[name].status == dp[name].status, name
        assert tp[name].attempts == dp[name].attempts, name
    assert dp["flaky"].status == "completed" and dp["flaky"].attempts == 2
    assert dp["flaky"].result != os.getpid() and dp["after_maybe"].result == dp["flaky"].result
    assert dp["slow"].status == "failed" and "timed out" in dp["slow"].error_text
    assert dp["after_slow"].status == "blocked"
    assert dp["maybe"].status == "failed" and dp["after_maybe"].status == "completed"
    # the same summary, but for how the timed-out attempt was abandoned
    assert ds.text.replace("its dask task was cancelled", "a thread cannot be killed") == ts.text


def test_unserialisable_input_and_output_are_clear_errors(client):
    plan = nbsteps.Plan(namespace={"lock": threading.Lock(), "n": 3})
    plan.add_cell("guarded", "with lock:\n    guarded = n + 1")
    plan.add_cell("makes_lock", "import threading\nmy_lock = threading.Lock()\nok = 1")
    plan.add_cell("fine", "fine = n * 2")
    summary = plan.run(backend="dask", address=client)
    assert not summary.ok
    err = plan["guarded"].error_text
    assert plan["guarded"].status == "failed" and plan["guarded"].attempts == 1
    assert "step 'guarded'" in err and "input 'lock'" in err and "_thread.lock" in err
    assert "--backend threads" in err
    err = plan["makes_lock"].error_text
    assert "step 'makes_lock'" in err and "output 'my_lock'" in err
    assert plan["fine"].ok and plan.namespace["fine"] == 6
    assert "my_lock" not in plan.namespace and "ok" not in plan.namespace  # nothing half-published


def test_killed_worker_mid_step_is_retried_on_another_worker(client, tmp_path):
    """SIGKILL the worker process running a step: dask runs it again elsewhere."""
    pidfile = tmp_path / "pid"
    before = worker_pids(client)
    plan = nbsteps.Plan(namespace={"PIDFILE": str(pidfile)})
    plan.add_cell(
        "long",
        "import os, time\nopen(PIDFILE, 'w').write(str(os.getpid()))\ntime.sleep(3)\npid = os.getpid()\npid",
    )
    plan.add_cell("after", "after = pid")
    box = {}
    runner = threading.Thread(target=lambda: box.update(summary=plan.run(backend="dask", address=client)))
    runner.start()
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    victim = int(pidfile.read_text())
    assert victim in before and victim != os.getpid()
    os.kill(victim, signal.SIGKILL)
    runner.join(timeout=60)
    assert not runner.is_alive()
    summary = box["summary"]
    assert summary.ok, summary.text
    assert plan["long"].result != victim and plan["long"].attempts == 1  # dask's own rescheduling
    assert plan.namespace["after"] == plan["long"].result
    # the nanny restarts the killed worker
    deadline = time.monotonic() + 20
    while len(client.scheduler_info()["workers"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(client.scheduler_info()["workers"]) == 2


def test_steps_run_backend_dask_in_a_real_shell(shell, client, capsys):
    """`%steps run --backend dask` uses the session's Client (the default one,
    or one named with --address), and shows the same progress lines."""
    run_ok(shell, "import os\nKERNEL = os.getpid()")
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step a\nimport os\na_pid = os.getpid()")
    run_ok(shell, "%%step b\nb = a_pid != KERNEL\nb")
    run_ok(shell, "%steps run --backend dask")
    out = capsys.readouterr().out
    assert "on dask" in out and "2 of 2 steps completed" in out
    assert shell.user_ns["b"] is True and shell.user_ns["a_pid"] in worker_pids(client)
    shell.user_ns["my_client"] = client
    run_ok(shell, "%steps run --backend dask --address my_client --force-all")
    assert "2 of 2 steps completed" in capsys.readouterr().out
    run_ok(shell, "import threading\nLOCK = threading.Lock()")
    run_ok(shell, "%%step c\nwith LOCK:\n    c = 1")
    err = run_err(shell, "%steps run --backend dask --address my_client")
    assert isinstance(err, nbsteps.StepsFailed)
    assert "input 'LOCK'" in str(err) and "step 'c'" in str(err)
    err = run_err(shell, "%steps run --backend dask --address no_such_client")
    assert "no_such_client" in str(err)
    session.set_mode("interactive")


def test_a_notebook_function_sees_names_defined_below_it_on_dask(shell, client):
    """Run All: a function defined in one cell looks up, when called, a name a later cell
    assigned. The step calling it on a dask worker has only its inputs: the versions the
    function needs travel with it."""
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step helper\ndef rescale(c):\n    return c * factor + offset")
    run_ok(shell, "%%step factor\nfactor = 3")
    run_ok(shell, "%%step offset\noffset = 0.5")
    run_ok(shell, "%%step use\nr = rescale(2.0)")  # names neither factor nor offset itself
    run_ok(shell, "%steps run --backend dask")
    assert shell.user_ns["r"] == 6.5
    session.set_mode("interactive")


def test_which_cluster(client, monkeypatch):
    from nbsteps.backends import distributed as dask_backend
    from nbsteps.errors import NbstepsError

    assert dask_backend.get_client() is client  # the Client already running in the session
    assert dask_backend.get_client(client) is client
    try:
        by_address = dask_backend.get_client(client.scheduler.address)
        assert by_address is not client and by_address.scheduler.address == client.scheduler.address
        assert dask_backend.get_client(client.cluster) is by_address  # connected once, reused
        assert sorted(by_address.run(os.getpid).values()) == sorted(worker_pids(client))
    finally:
        dask_backend.shutdown()
    monkeypatch.setattr(dask_backend, "CONNECT_TIMEOUT", 0.5)
    with pytest.raises(NbstepsError, match="cannot connect to the dask scheduler at 'tcp://127.0.0.1:9'"):
        dask_backend.get_client("tcp://127.0.0.1:9")


def test_lost_workers_and_cluster_errors_become_clear_failures():
    from distributed.scheduler import KilledWorker

    from nbsteps.backends.distributed import DaskBackend
    from nbsteps.errors import WorkerLostError
    from nbsteps.run.attempt.task import Task

    class FakeFuture:
        def __init__(self, status, exc=None):
            self.status, self._exc = status, exc

        def exception(self):
            return self._exc

    backend = DaskBackend.__new__(DaskBackend)
    task = Task("fit", "cell", "x = 1", {}, ("x",))
    out = backend._outcome(FakeFuture("error", KilledWorker("nbsteps-fit-1-abc", None, 3)), task)
    assert not out.ok and isinstance(out.error, WorkerLostError)
    assert "step 'fit'" in str(out.error) and "died 3 times" in str(out.error)
    out = backend._outcome(FakeFuture("error", ModuleNotFoundError("No module named 'nbsteps'")), task)
    assert "step 'fit' could not run on the dask cluster" in str(out.error)
    assert "installed on the workers" in str(out.error)
    out = backend._outcome(FakeFuture("cancelled"), task)
    assert not out.ok and "cancelled on the dask cluster" in str(out.error)


@pytest.mark.kernel
def test_cli_backend_dask_starts_a_local_cluster(tmp_path):
    """`nbsteps run --backend dask`: a LocalCluster is started in the kernel on first use."""
    nb = new_notebook(
        cells=[
            new_code_cell(s)
            for s in (
                "%load_ext nbsteps\n%steps mode plan\nimport os\nKERNEL = os.getpid()",
                "%%step a\nimport os\na = os.getpid()",
                "%%step b\nb = a != KERNEL\nb",
            )
        ],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path = tmp_path / "dask.ipynb"
    nbformat.write(nb, path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "nbsteps",
            "run",
            str(path),
            "--backend",
            "dask",
            "--results",
            str(tmp_path / "r.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "NBSTEPS_DASK_WORKERS": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "steps on dask" in proc.stdout
    df = pd.read_csv(tmp_path / "r.csv", dtype={"result": str}).set_index("step")
    assert df.loc["b", "result"] == "True"


def test_large_inputs_travel_once_and_results_come_back_in_batches(client, monkeypatch):
    """A large input read by several steps is scattered once per run (not
    pickled into every task); many independent steps are all in flight and
    their results fetched together (issue 14). Counts, no timings."""
    import numpy as np

    from nbsteps.backends import distributed as dask_backend

    big = pd.DataFrame(np.arange(400_000.0).reshape(-1, 4), columns=list("abcd"))  # 3.2 MB
    scattered, payloads = [], []
    real_scatter, real_split = distributed.Client.scatter, dask_backend.DaskBackend._split
    monkeypatch.setattr(
        distributed.Client,
        "scatter",
        lambda self, value, **kw: scattered.append(type(value).__name__) or real_scatter(self, value, **kw),
    )

    def split(self, task):
        light, shared = real_split(self, task)
        payloads.append(len(__import__("cloudpickle").dumps(light)))
        return light, shared

    monkeypatch.setattr(dask_backend.DaskBackend, "_split", split)
    plan = nbsteps.Plan(namespace={"big": big})
    for k in range(6):
        plan.add_cell(f"use{k}", f"r{k} = float(big['{'abcd'[k % 4]}'].sum()) + {k}")
    summary = plan.run(backend="dask", address=client)
    assert summary.ok, summary.text
    assert [plan.namespace[f"r{k}"] for k in range(6)] == [
        float(big["abcd"[k % 4]].sum()) + k for k in range(6)
    ]
    assert scattered == ["DataFrame"] and max(payloads) < 10_000  # sent once; every task is small
    from nbsteps.run.decide.selection import default_workers

    wide = nbsteps.Plan(namespace={})
    for k in range(40):
        wide.add_cell(f"t{k}", f"v{k} = {k}")
    assert default_workers(wide, wide.order(), "dask") == 40 and default_workers(wide, wide.order()) == 8
    assert wide.run(backend="dask", address=client).ok and wide.namespace["v39"] == 39


def test_ready_steps_reach_the_scheduler_in_one_graph_update(client, monkeypatch):
    """Steps that are ready together are sent together: one ``client.map``
    (one graph update for the scheduler), not a ``client.submit`` each, and
    their completion is watched on the client's event loop, not through
    dask's callback thread (issue 26 target 7). Counts, no timings; the
    values, order of completion and a failing step are as before."""
    calls = []
    real_map, real_submit = distributed.Client.map, distributed.Client.submit
    monkeypatch.setattr(
        distributed.Client,
        "map",
        lambda self, fn, *its, **kw: calls.append(("map", len(its[0]))) or real_map(self, fn, *its, **kw),
    )
    monkeypatch.setattr(
        distributed.Client,
        "submit",
        lambda self, fn, *a, **kw: calls.append(("submit", 1)) or real_submit(self, fn, *a, **kw),
    )
    callbacks = []
    real_cb = distributed.Future.add_done_callback
    monkeypatch.setattr(
        distributed.Future, "add_done_callback", lambda self, fn: callbacks.append(fn) or real_cb(self, fn)
    )
    plan = nbsteps.Plan(namespace={})
    for k in range(30):
        plan.add_cell(f"t{k}", f"v{k} = {k} * 2")
    plan.add_cell("bad", "1 / 0")
    plan.add_cell("total", "total = " + " + ".join(f"v{k}" for k in range(30)))
    summary = plan.run(backend="dask", address=client)
    assert plan.namespace["total"] == sum(k * 2 for k in range(30))
    assert plan["bad"].status == "failed" and isinstance(plan["bad"].error, ZeroDivisionError)
    assert not summary.ok and plan["total"].status == "completed"
    assert calls[0] == ("map", 31) and calls[1:] == [("submit", 1)], calls  # then total, alone
    assert callbacks == []


def state_plan():
    plan = nbsteps.Plan(namespace={})
    plan.add_cell("seed", "import numpy as np\nnp.random.seed(0)")
    plan.add_cell("draw", "import os\nx = np.random.randn(3)\ndraw_pid = os.getpid()")
    plan.add_cell("square", "import os\nsquares = [float(v) ** 2 for v in x]\nsquare_pid = os.getpid()")
    plan.add_cell(
        "plot",
        "import os\nimport matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\nax.plot(x)\nplot_pid = os.getpid()",
    )
    return plan


def run_both(make, client):
    """Two plans from *make*: one run with threads, one on dask; both must complete."""
    threads, dask = make(), make()
    assert threads.run().ok
    summary = dask.run(backend="dask", address=client)
    assert summary.ok, summary.text
    return threads, dask


def test_steps_that_need_the_kernels_process_run_in_the_kernel(client):
    """A seed and a draw from numpy's global generator, a pyplot figure: a worker process has
    generators and a pyplot of its own, so these run in the kernel's threads and the draw is
    Run All's; a step that needs only its inputs still runs on a worker."""
    threads, dask = run_both(state_plan, client)
    assert list(dask["draw"].outputs["x"]) == list(threads["draw"].outputs["x"])
    assert dask["draw"].outputs["draw_pid"] == os.getpid()
    assert dask["plot"].outputs["plot_pid"] == os.getpid()
    assert dask["square"].outputs["square_pid"] in worker_pids(client)
    assert dask["square"].outputs["squares"] == threads["square"].outputs["squares"]


def test_an_input_a_step_changes_on_a_worker_comes_back_as_its_write(client):
    """``rng.random`` advances the generator it is given: Run All's second draw differs from
    the first. On a worker, the change is seen there; the kernel must learn of it (the step
    writes ``rng``), or the next step draws from the generator as it was and repeats the draw."""

    def plan():
        p = nbsteps.Plan(namespace={})
        p.add_cell("make", "import numpy as np\nrng = np.random.default_rng(0)")
        p.add_cell("first", "a = [float(v) for v in rng.random(3)]")
        p.add_cell("second", "b = [float(v) for v in rng.random(3)]")
        return p

    threads, dask = run_both(plan, client)
    assert threads["first"].outputs["a"] != threads["second"].outputs["b"]
    assert dask["first"].outputs["a"] == threads["first"].outputs["a"]
    assert dask["second"].outputs["b"] == threads["second"].outputs["b"]


def test_a_chain_step_thought_to_change_an_immutable_value_passes_it_on(client):
    """``x.hex()`` on a name not known yet may change it (registration), but ``x`` is a float:
    the step only read it and gives no new version. The next step of the chain, on the same
    worker, reads the value the step before was given (py_floatingpoint: NameError before)."""

    def plan():
        p = nbsteps.Plan(namespace={})  # the Python tutorial's floatingpoint page, cells 9-12
        p.add_cell("make", "x = 3.14159\nx.as_integer_ratio()")
        p.add_cell("ratio", "x == 3537115888337719 / 1125899906842624")
        p.add_cell("show", "x.hex()")
        p.add_cell("check", "same = x == float.fromhex('0x1.921f9f01b866ep+1')")
        return p

    threads, dask = run_both(plan, client)
    assert dask["check"].outputs["same"] is threads["check"].outputs["same"] is True
