"""The dask backend: attempts run on a ``dask.distributed`` cluster.

``DaskBackend`` has the interface of :class:`~nbsteps.backends.ThreadBackend`:
``submit(task, done)``, ``abandon(task)``, ``close()``. The executor keeps
everything else (retries, timeouts, optional steps, failure policies, events,
publishing and checkpoints) on the kernel side, exactly as with threads.

Which cluster:

* ``address`` given: a scheduler address (``tcp://host:8786``), a
  ``distributed.Client``, a cluster object (anything with
  ``scheduler_address``), or the *name* of a Client in the IPython session
  (``%steps run --backend dask --address client``);
* else a Client already running in the session (``distributed.default_client()``);
* else a ``LocalCluster`` of worker *processes* (one single-threaded worker per
  core), started on first use and reused by later runs (:func:`shutdown` closes it).

A task travels as bytes pickled here with cloudpickle (so a value that cannot
be serialised is reported at once, naming the step and the value) and comes
back as separately pickled outputs (so an output that cannot come back is
named too). A worker that dies mid-step is handled by dask: the scheduler
runs the task again on another worker, up to its ``allowed-failures`` limit,
after which the step fails with a clear message. ``nbsteps`` must be
importable on the workers (it is for a LocalCluster).
"""
from __future__ import annotations

import os
import sys
import threading
import uuid
from typing import Any

import cloudpickle

from nbsteps import config
from nbsteps.errors import NbstepsError, UnserialisableValueError, WorkerLostError
from nbsteps.formatting import error_text
from nbsteps.run.task import Outcome, Task, run_task

PROTOCOL = 5
#: seconds to wait for a scheduler given with --address
CONNECT_TIMEOUT = 10


class RemoteStepError(Exception):
    """Stands in for a step's exception that could not travel back from the worker."""

    def __init__(self, message: str = "", remote_type: str = ""):
        super().__init__(message)
        self.remote_type = remote_type


# -- the cluster ---------------------------------------------------------------
_lock = threading.RLock()
_local: dict[str, Any] = {}  # "cluster", "client": the LocalCluster started on first use
_clients: dict[str, Any] = {}  # address -> Client connected by nbsteps


def spawn_safe_main() -> None:
    """IPython may replace ``__main__`` by a module without ``__spec__``,
    which multiprocessing's spawn (dask's worker processes) reads."""
    main = sys.modules.get("__main__")
    if main is not None and not hasattr(main, "__spec__"):
        main.__spec__ = None


def _distributed():
    try:
        import distributed
    except ImportError:
        raise NbstepsError(
            "the dask backend needs dask.distributed: pip install 'nbsteps[dask]' "
            "(or 'dask[distributed]'), or run with --backend threads."
        ) from None
    return distributed


def _alive(client) -> bool:
    return client is not None and getattr(client, "status", "closed") in ("running", "connecting", "newly-created")


def local_cluster_workers() -> int:
    """Worker processes of the LocalCluster nbsteps starts: ``NBSTEPS_DASK_WORKERS``
    or one per core."""
    return config.dask_workers()


def get_client(address=None):
    """The ``distributed.Client`` a run of the dask backend uses (see module doc)."""
    distributed = _distributed()
    with _lock:
        if address is not None and not isinstance(address, str):
            if isinstance(address, distributed.Client):
                return address
            scheduler = getattr(address, "scheduler_address", None)
            if scheduler is None:
                raise NbstepsError(
                    f"--address must be a scheduler address, a distributed.Client or a cluster, not {type(address).__name__}."
                )
            address = scheduler
        if isinstance(address, str) and address.strip():
            address = address.strip()
            if address.isidentifier():  # a name: the notebook frontend resolves names of Clients
                raise NbstepsError(
                    f"--address {address!r}: not a scheduler address; give tcp://host:8786, or pass the "
                    f"distributed.Client itself (in a notebook, the name of a Client variable works too)."
                )
            client = _clients.get(address)
            if _alive(client):
                return client
            try:
                client = distributed.Client(address, set_as_default=False, timeout=CONNECT_TIMEOUT)
            except Exception as exc:
                raise NbstepsError(
                    f"cannot connect to the dask scheduler at {address!r}: {type(exc).__name__}: {exc}. "
                    f"Is it running? (or run without --address to start a local cluster)"
                ) from None
            _clients[address] = client
            return client
        try:  # a Client the user started in this session
            client = distributed.default_client()
        except ValueError:
            client = None
        if _alive(client):
            return client
        client = _local.get("client")
        if _alive(client):
            return client
        import logging

        spawn_safe_main()
        try:
            cluster = distributed.LocalCluster(
                n_workers=local_cluster_workers(), threads_per_worker=1, processes=True,
                dashboard_address=":0", silence_logs=logging.ERROR,  # no fixed port to collide on
            )
            client = distributed.Client(cluster, set_as_default=False)
        except Exception as exc:
            raise NbstepsError(f"cannot start a local dask cluster: {type(exc).__name__}: {exc}") from None
        _local.update(cluster=cluster, client=client)
        return client


def shutdown() -> None:
    """Close the LocalCluster and the clients nbsteps started (they are
    otherwise closed when the process exits)."""
    with _lock:
        for client in list(_clients.values()) + [_local.get("client")]:
            if client is not None:
                try:
                    client.close()
                except Exception:  # pragma: no cover
                    pass
        cluster = _local.get("cluster")
        if cluster is not None:
            try:
                cluster.close()
            except Exception:  # pragma: no cover
                pass
        _clients.clear()
        _local.clear()


# -- what runs on the worker -------------------------------------------------------
def _describe(value) -> str:
    t = type(value)
    return f"{t.__module__}.{t.__qualname__}" if t.__module__ not in ("builtins", None) else t.__qualname__


def _portable_error(exc: BaseException) -> BaseException:
    """*exc* itself when it survives a pickle round trip, else a stand-in
    with the same text (the type name is kept in the message)."""
    try:
        cloudpickle.loads(cloudpickle.dumps(exc, protocol=PROTOCOL))
        return exc
    except Exception:
        return RemoteStepError(error_text(exc), type(exc).__name__)


def run_remote(payload: bytes) -> dict:
    """Run one attempt on a worker. Returns ``{"outcome": bytes, "outputs":
    {name: bytes}, "result": bytes | None}``: every output pickled on its own,
    so one that cannot travel back is named."""
    task: Task = cloudpickle.loads(payload)
    outcome = run_task(task)
    try:
        from distributed import get_worker

        outcome.worker = get_worker().address
    except Exception:
        outcome.worker = f"pid {os.getpid()}"
    outputs: dict[str, bytes] = {}
    result = None
    if outcome.ok:
        try:
            for name, value in outcome.outputs.items():
                what = f"output {name!r}"
                outputs[name] = cloudpickle.dumps(value, protocol=PROTOCOL)
            if outcome.has_result:
                what = "result (its last expression)"
                result = cloudpickle.dumps(outcome.result, protocol=PROTOCOL)
        except Exception as exc:
            value = outcome.outputs.get(name) if what.startswith("output") else outcome.result
            err = UnserialisableValueError(
                f"step {task.name!r}: its {what} ({_describe(value)}) cannot be sent back from "
                f"dask worker {outcome.worker}: {type(exc).__name__}: {exc}. "
                f"Keep such values inside the step (or del them at its end), or run it with --backend threads."
            )
            outcome = Outcome(False, error=err, traceback=f"{type(err).__name__}: {err}",
                              started=outcome.started, duration=outcome.duration, worker=outcome.worker)
            outputs, result = {}, None
    else:
        outcome.error = _portable_error(outcome.error) if outcome.error is not None else None
    meta = Outcome(outcome.ok, {}, None, outcome.has_result and outcome.ok, outcome.error, outcome.traceback,
                   outcome.started, outcome.duration, outcome.worker, outcome.output)
    return {"outcome": cloudpickle.dumps(meta, protocol=PROTOCOL), "outputs": outputs, "result": result}


# -- the backend ------------------------------------------------------------------
def _failed(task: Task, err: BaseException, **kw) -> Outcome:
    return Outcome(False, error=err, traceback=error_text(err), **kw)


def unserialisable_input(task: Task, exc: BaseException) -> UnserialisableValueError:
    """Which of the task's values cannot be pickled, as a clear error."""
    culprits: list[tuple[str, Any, BaseException]] = []
    if task.kind == "function":
        try:
            cloudpickle.dumps(task.func, protocol=PROTOCOL)
        except Exception as e:
            culprits.append((f"function {getattr(task.func, '__qualname__', task.func)!r}", task.func, e))
        items = [(f"input {k!r} (the result of step {k!r})", v) for k, v in task.args.items()]
    else:
        items = [(f"input {k!r}", v) for k, v in task.inputs.items()]
    for label, value in items:
        try:
            cloudpickle.dumps(value, protocol=PROTOCOL)
        except Exception as e:
            culprits.append((label, value, e))
    if not culprits:
        return UnserialisableValueError(
            f"step {task.name!r} cannot be sent to the dask cluster: {type(exc).__name__}: {exc}"
        )
    label, value, e = culprits[0]
    more = f" (also: {', '.join(c[0] for c in culprits[1:])})" if len(culprits) > 1 else ""
    return UnserialisableValueError(
        f"step {task.name!r}: its {label} ({_describe(value)}) cannot be serialised for dask: "
        f"{error_text(e)}{more}. Create it inside the step, or run with --backend threads."
    )


class DaskBackend:
    name = "dask"
    #: every attempt goes to the cluster, never onto the executor's thread
    inline_ok = False
    #: what happens to a timed-out attempt (for the executor's timeout message)
    abandon_note = "its dask task was cancelled"

    def __init__(self, workers: int, address=None) -> None:
        self.workers = max(1, int(workers))
        self.client = get_client(address)
        self._futures: dict[str, tuple[Any, Task]] = {}
        self._lock = threading.Lock()

    def submit(self, task: Task, done) -> None:
        try:
            payload = cloudpickle.dumps(task, protocol=PROTOCOL)
        except Exception as exc:
            done(task, _failed(task, unserialisable_input(task, exc)))
            return
        key = f"nbsteps-{task.name}-{task.attempt}-{uuid.uuid4().hex[:10]}"
        try:
            future = self.client.submit(run_remote, payload, key=key, pure=False)
        except Exception as exc:
            done(task, _failed(task, NbstepsError(
                f"step {task.name!r} could not be submitted to the dask cluster: {type(exc).__name__}: {exc}")))
            return
        with self._lock:
            self._futures[key] = (future, task)
        future.add_done_callback(lambda fut: self._finished(fut, key, task, done))

    def _finished(self, future, key: str, task: Task, done) -> None:  # dask's callback thread
        with self._lock:
            self._futures.pop(key, None)
        if task.abandoned:
            return  # timed out or interrupted: the executor has moved on
        try:
            outcome = self._outcome(future, task)
        except BaseException as exc:  # never lose a step silently
            outcome = _failed(task, NbstepsError(
                f"step {task.name!r}: could not collect its result from dask: {type(exc).__name__}: {exc}"))
        done(task, outcome)

    def _outcome(self, future, task: Task) -> Outcome:
        status = future.status
        if status == "cancelled":
            return _failed(task, NbstepsError(
                f"step {task.name!r} was cancelled on the dask cluster (scheduler lost or client closed)"))
        if status == "error":
            exc = future.exception()
            from distributed.scheduler import KilledWorker

            if isinstance(exc, KilledWorker):
                tries = exc.args[2] if len(exc.args) > 2 else "several"
                return _failed(task, WorkerLostError(
                    f"step {task.name!r}: the dask workers running it died {tries} times "
                    f"(KilledWorker; out of memory, or a crash in native code?); dask gave up on it"))
            hint = (" Is nbsteps installed on the workers, with the packages the kernel has?"
                    if isinstance(exc, ImportError) else "")
            return _failed(task, NbstepsError(
                f"step {task.name!r} could not run on the dask cluster: {type(exc).__name__}: {exc}.{hint}"))
        data = future.result()
        outcome: Outcome = cloudpickle.loads(data["outcome"])
        if not outcome.ok:
            return outcome
        outputs = {}
        for name, blob in data["outputs"].items():
            try:
                outputs[name] = cloudpickle.loads(blob)
            except Exception as exc:
                return _failed(task, UnserialisableValueError(
                    f"step {task.name!r}: its output {name!r} came back from the dask worker but cannot be "
                    f"loaded here: {type(exc).__name__}: {exc}"), started=outcome.started, duration=outcome.duration)
        outcome.outputs = outputs
        if data["result"] is not None:
            outcome.result = cloudpickle.loads(data["result"])
            outcome.has_result = True
        return outcome

    def abandon(self, task: Task) -> None:
        """A timed-out attempt: forget it and cancel its future; its outcome is
        discarded. Cancelling does not stop a task that already runs, so on the
        LocalCluster nbsteps started, the worker running it is restarted (its
        nanny starts a fresh process); on other clusters it runs to its end."""
        task.abandoned = True
        with self._lock:
            items = [(k, f) for k, (f, t) in self._futures.items() if t is task]
            for key, _ in items:
                self._futures.pop(key, None)
        if items:
            threading.Thread(target=self._cancel, args=(items,), name="nbsteps-dask-cancel", daemon=True).start()

    def close(self) -> None:
        """The run is over: cancel what is still queued or running (after an
        interrupt or fail-fast), as for :meth:`abandon`. The cluster stays up
        for the next run."""
        with self._lock:
            items = [(k, f) for k, (f, _) in self._futures.items()]
            for _, task in self._futures.values():
                task.abandoned = True
            self._futures.clear()
        if items:
            self._cancel(items)

    def _cancel(self, items) -> None:
        keys = {k for k, _ in items}
        workers = []
        if self.client is _local.get("client"):  # only a cluster nbsteps owns is restarted
            try:
                workers = [w for w, running in self.client.processing().items() if keys & set(running)]
            except Exception:  # pragma: no cover
                workers = []
        try:
            self.client.cancel([f for _, f in items])
        except Exception:  # pragma: no cover
            pass
        if workers:
            try:
                self.client.restart_workers(workers, raise_for_error=False)
            except Exception:  # pragma: no cover
                pass
