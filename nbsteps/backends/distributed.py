"""The dask backend: attempts run on a ``dask.distributed`` cluster.

``DaskBackend`` has the interface of :class:`~nbsteps.backends.threads.ThreadBackend`:
``submit(task, done)``, ``abandon(task)``, ``close()``. The executor keeps
everything else (retries, timeouts, optional steps, failure policies, events,
publishing and checkpoints) on the kernel side, exactly as with threads. A
linear chain of steps travels as one dask task (``fuses``; see
:mod:`nbsteps.run.fusion`): one round trip for the chain, not one per step.

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

import copy
import itertools
import queue
import sys
import threading
import uuid
from typing import Any

import cloudpickle

from nbsteps import config
from nbsteps.backends.remote import (  # noqa: F401  (what runs on the workers; re-exported)
    PROTOCOL,
    RemoteStepError,
    _failed,
    nbytes_of,
    run_remote,
    unserialisable_input,
)
from nbsteps.errors import NbstepsError, UnserialisableValueError, WorkerLostError
from nbsteps.run.attempt.task import Outcome, Task

#: inputs at least this large are sent to the cluster once per run (scattered)
#: and shared by the steps that read them, instead of travelling with each step
SCATTER_MIN = 1 << 20
#: seconds to wait for a scheduler given with --address
CONNECT_TIMEOUT = 10


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


def _loop_done_callback():
    """distributed's coroutine that waits for a future on the client's event
    loop and then calls a function there (what ``Future.add_done_callback``
    schedules), or None."""
    try:
        from distributed.client import done_callback
    except ImportError:  # pragma: no cover
        return None
    return done_callback


_done_callback = None  # set on first use (importing distributed is slow)


def _alive(client) -> bool:
    return client is not None and getattr(client, "status", "closed") in (
        "running",
        "connecting",
        "newly-created",
    )


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
                    "--address must be a scheduler address, a distributed.Client "
                    f"or a cluster, not {type(address).__name__}."
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
                n_workers=local_cluster_workers(),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,  # no fixed port to collide on
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


class DaskBackend:
    name = "dask"
    #: every attempt goes to the cluster, never onto the executor's thread
    inline_ok = False
    #: what happens to a timed-out attempt (for the executor's timeout message)
    abandon_note = "its dask task was cancelled"
    #: linear chains of steps may travel as one task (``task.then``, nbsteps.run.fusion)
    fuses = True

    def __init__(self, workers: int, address=None) -> None:
        global _done_callback
        self.workers = max(1, int(workers))
        self.client = get_client(address)
        if _done_callback is None:
            _done_callback = _loop_done_callback()
        self._futures: dict[str, tuple[Any, Task]] = {}
        self._lock = threading.Lock()
        # finished futures wait here for the collector thread, which fetches
        # their results in batches (one gather for all that finished meanwhile)
        self._ready: queue.SimpleQueue = queue.SimpleQueue()
        self._collector: "threading.Thread | None" = None
        self._scattered: dict[int, tuple[Any, Any]] = {}  # id(value) -> (value, future), for this run
        # tasks submitted since the last flush: (key, task, done, payload, shared, then_shared)
        self._pending: list[tuple] = []
        self._nonce, self._seq = f"{uuid.uuid4().hex[:10]}-", itertools.count()  # unique task keys
        self._kernel_threads = None  # ThreadBackend for the steps that need the kernel (task.kernel)

    def submit(self, task: Task, done) -> None:
        """Queue *task* for the cluster: it is sent with the other tasks
        submitted before the next :meth:`flush` (the executor flushes before it
        waits), all in one graph update. A task that needs the kernel's own
        process (``task.kernel``: process state, files, IPython; see
        :func:`nbsteps.model.state.needs_kernel`) runs in the kernel's threads, as with
        the threads backend: a worker process has its own random generators, pyplot and
        working directory, so what it drew, drew or read would not be what Run All gives."""
        if task.kernel or any(t.kernel for t in task.then):
            task.then = ()  # the executor sends the rest of the chain on its own
            if task.kernel:
                self._in_kernel().submit(task, done)
                return
        try:
            payload, shared, then_shared = self._payload(task)
        except Exception as exc:
            if not task.then:
                done(task, _failed(task, unserialisable_input(task, exc)))
                return
            task.then = ()  # a follower's input cannot travel: the executor sends each of them alone
            self.submit(task, done)
            return
        key = f"nbsteps-{task.name}-{task.attempt}-{self._nonce}{next(self._seq)}"
        self._pending.append((key, task, done, payload, shared or None, then_shared))

    def flush(self) -> None:
        """Send the queued tasks: one ``client.map`` (one graph update the
        scheduler handles at once) instead of a ``client.submit`` each, whose
        updates the scheduler takes one at a time, each handed to a thread to
        build the graph. One task goes as ``client.submit``."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        keys = [p[0] for p in pending]
        try:
            if len(pending) == 1:
                _, _, _, payload, shared, then_shared = pending[0]
                futures = [
                    self.client.submit(run_remote, payload, shared, then_shared, key=keys[0], pure=False)
                ]
            else:
                futures = self.client.map(
                    run_remote,
                    [p[3] for p in pending],
                    [p[4] for p in pending],
                    [p[5] for p in pending],
                    key=keys,
                    pure=False,
                )
        except Exception as exc:
            for _, task, done, *_ in pending:
                done(
                    task,
                    _failed(
                        task,
                        NbstepsError(
                            f"step {task.name!r} could not be submitted to "
                            f"the dask cluster: {type(exc).__name__}: {exc}"
                        ),
                    ),
                )
            return
        with self._lock:
            for (key, task, _, *_), future in zip(pending, futures, strict=True):
                self._futures[key] = (future, task)
            if self._collector is None:
                self._collector = threading.Thread(
                    target=self._collect, name="nbsteps-dask-results", daemon=True
                )
                self._collector.start()
        for (key, task, done, *_), future in zip(pending, futures, strict=True):
            self._when_done(future, (future, key, task, done))

    def _when_done(self, future, item) -> None:
        """Put *item* on the collector's queue once *future* is finished, erred
        or cancelled. The wait runs on the client's event loop and puts the item
        there (``SimpleQueue.put`` never blocks): ``Future.add_done_callback``
        would hand each finished future to dask's callback thread first, a thread
        pool submission on the event loop (which on a LocalCluster is also the
        scheduler's) and one more thread to wake per step."""
        if _done_callback is None:  # pragma: no cover - a distributed without it
            future.add_done_callback(lambda fut: self._ready.put(item))
            return
        self.client.loop.add_callback(_done_callback, future, lambda fut: self._ready.put(item))

    def _payload(self, task: Task) -> tuple:
        """The pickled task (and its followers, for a fused chain), and the
        large inputs of each, scattered."""
        light, shared = self._split(task)
        then_shared = None
        if task.then:
            pairs = [self._split(t) for t in task.then]
            if light is task:
                light = copy.copy(task)  # the executor keeps its own followers (with their namespace)
            light.then = tuple(t for t, _ in pairs)
            if any(s for _, s in pairs):
                then_shared = [s for _, s in pairs]
        return cloudpickle.dumps(light, protocol=PROTOCOL), shared, then_shared

    def _split(self, task: Task) -> "tuple[Task, dict]":
        """The task without its large inputs, and those inputs as futures of
        data scattered to the cluster once per run (shared by every step that
        reads the same object)."""
        values = task.args if task.kind == "function" else task.inputs
        big = [n for n, v in values.items() if nbytes_of(v) >= SCATTER_MIN]
        if not big:
            return task, {}
        shared = {}
        for name in big:
            value = values[name]
            hit = self._scattered.get(id(value))
            if hit is None or hit[0] is not value:
                hit = self._scattered[id(value)] = (value, self.client.scatter(value, hash=False))
            shared[name] = hit[1]
        light = Task(
            task.name,
            task.kind,
            task.source,
            {n: v for n, v in task.inputs.items() if n not in shared},
            task.outputs,
            func=task.func,
            args={n: v for n, v in task.args.items() if n not in shared},
            analysis=task.analysis,
        )
        light.attempt, light.links = task.attempt, task.links
        return light, shared

    def _collect(self) -> None:
        """Fetch the results of finished futures, all that are ready in one
        ``gather`` (concurrent fetches from the workers), and hand each step its
        outcome. A result fetched one future at a time costs a round trip each."""
        while True:
            batch = [self._ready.get()]
            while True:
                try:
                    batch.append(self._ready.get_nowait())
                except queue.Empty:
                    break
            stop = None in batch
            batch = [b for b in batch if b is not None]
            fetched: dict[str, Any] = {}
            wanted = [b for b in batch if b[0].status == "finished" and not b[2].abandoned]
            if wanted:
                try:
                    data = self.client.gather([b[0] for b in wanted])
                    fetched = {b[1]: d for b, d in zip(wanted, data, strict=True)}
                except Exception:  # e.g. a worker holding one died since: fetch them one by one
                    fetched = {}
            for future, key, task, done in batch:
                self._finished(future, key, task, done, fetched.get(key))
            if stop:
                return

    def _finished(self, future, key: str, task: Task, done, data=None) -> None:
        with self._lock:
            self._futures.pop(key, None)
        if task.abandoned:
            return  # timed out or interrupted: the executor has moved on
        try:
            outcome = self._outcome(future, task, data)
        except BaseException as exc:  # never lose a step silently
            outcome = _failed(
                task,
                NbstepsError(
                    f"step {task.name!r}: could not collect its result from dask: {type(exc).__name__}: {exc}"
                ),
            )
        done(task, outcome)

    def _outcome(self, future, task: Task, data=None) -> Outcome:
        status = future.status
        if status == "cancelled":
            return _failed(
                task,
                NbstepsError(
                    f"step {task.name!r} was cancelled on the dask cluster (scheduler lost or client closed)"
                ),
            )
        if status == "error":
            exc = future.exception()
            from distributed.scheduler import KilledWorker

            if isinstance(exc, KilledWorker):
                tries = exc.args[2] if len(exc.args) > 2 else "several"
                return _failed(
                    task,
                    WorkerLostError(
                        f"step {task.name!r}: the dask workers running it died {tries} times "
                        f"(KilledWorker; out of memory, or a crash in native code?); dask gave up on it"
                    ),
                )
            hint = (
                " Is nbsteps installed on the workers, with the packages the kernel has?"
                if isinstance(exc, ImportError)
                else ""
            )
            return _failed(
                task,
                NbstepsError(
                    f"step {task.name!r} could not run on the dask "
                    f"cluster: {type(exc).__name__}: {exc}.{hint}"
                ),
            )
        if data is None:
            data = future.result()
        outcome = self._decode(task, data)
        if outcome.ok and task.then:  # a fused chain: its followers that ran, up to the first failure
            then = []
            for follower, part in zip(task.then, data.get("then", ()), strict=False):
                then.append((follower, self._decode(follower, part)))
                if not then[-1][1].ok:
                    break
            outcome.then = tuple(then)
        return outcome

    def _decode(self, task: Task, data: dict) -> Outcome:
        outcome: Outcome = cloudpickle.loads(data["outcome"])
        if not outcome.ok:
            return outcome
        outputs = {}
        for name, blob in data["outputs"].items():
            try:
                outputs[name] = cloudpickle.loads(blob)
            except Exception as exc:
                return _failed(
                    task,
                    UnserialisableValueError(
                        f"step {task.name!r}: its output {name!r} "
                        "came back from the dask worker but cannot be "
                        f"loaded here: {type(exc).__name__}: {exc}"
                    ),
                    started=outcome.started,
                    duration=outcome.duration,
                )
        outcome.outputs = outputs
        if data["result"] is not None:
            outcome.result = cloudpickle.loads(data["result"])
            outcome.has_result = True
        return outcome

    def _in_kernel(self):
        """The threads that run, in the kernel, the steps that need it (made on first use)."""
        if self._kernel_threads is None:
            from nbsteps.backends.threads import ThreadBackend

            self._kernel_threads = ThreadBackend(self.workers)
        return self._kernel_threads

    def abandon(self, task: Task) -> None:
        """A timed-out attempt: forget it and cancel its future; its outcome is
        discarded. Cancelling does not stop a task that already runs, so on the
        LocalCluster nbsteps started, the worker running it is restarted (its
        nanny starts a fresh process); on other clusters it runs to its end."""
        if task.kernel and self._kernel_threads is not None:
            self._kernel_threads.abandon(task)
            return
        task.abandoned = True
        self._pending = [p for p in self._pending if p[1] is not task]
        with self._lock:
            items = [(k, f) for k, (f, t) in self._futures.items() if t is task]
            for key, _ in items:
                self._futures.pop(key, None)
        if items:
            threading.Thread(
                target=self._cancel, args=(items,), name="nbsteps-dask-cancel", daemon=True
            ).start()

    def close(self) -> None:
        """The run is over: cancel what is still queued or running (after an
        interrupt or fail-fast), as for :meth:`abandon`. The cluster stays up
        for the next run."""
        if self._kernel_threads is not None:
            self._kernel_threads.close()
            self._kernel_threads = None
        for _, task, *_ in self._pending:  # never sent
            task.abandoned = True
        self._pending = []
        with self._lock:
            items = [(k, f) for k, (f, _) in self._futures.items()]
            for _, task in self._futures.values():
                task.abandoned = True
            self._futures.clear()
            if self._collector is not None:
                self._ready.put(None)  # the collector ends once it has handed out what it has
                self._collector = None
            self._scattered.clear()  # dask releases shared inputs nobody holds any more
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
