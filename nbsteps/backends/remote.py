"""What runs on a dask worker, and how a step's values travel there and back
(see :mod:`nbsteps.backends.distributed`)."""

from __future__ import annotations

import os
from typing import Any

import cloudpickle

from nbsteps.errors import UnserialisableValueError
from nbsteps.formatting import error_text
from nbsteps.run.attempt.task import Outcome, Task
from nbsteps.run.fusion import run_chain

PROTOCOL = 5


class RemoteStepError(Exception):
    """Stands in for a step's exception that could not travel back from the worker."""

    def __init__(self, message: str = "", remote_type: str = ""):
        super().__init__(message)
        self.remote_type = remote_type


def nbytes_of(value: Any) -> int:
    """Size of an array, frame or bytes, where that is cheap to know (else 0)."""
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int) and type(value).__module__.split(".")[0] in (
        "numpy",
        "pyarrow",
        "xarray",
        "torch",
    ):
        return nbytes
    if type(value).__module__.split(".")[0] == "pandas" and hasattr(value, "memory_usage"):
        try:
            usage = value.memory_usage(index=True, deep=False)
            return int(usage.sum()) if hasattr(usage, "sum") else int(usage)
        except Exception:
            return 0
    return 0


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


def run_remote(payload: bytes, shared: "dict | None" = None, then_shared: "list | None" = None) -> dict:
    """Run one attempt on a worker. *shared*: large inputs (or arguments)
    scattered once per run, resolved by dask. Returns ``{"outcome": bytes,
    "outputs": {name: bytes}, "result": bytes | None}``: every output pickled
    on its own, so one that cannot travel back is named. A fused chain
    (``task.then``, see :mod:`nbsteps.run.fusion`; *then_shared*: the large
    inputs of each follower) adds ``"then"``: the same for each follower that
    ran, in order."""
    task: Task = cloudpickle.loads(payload)
    for t, big in zip((task, *task.then), (shared, *(then_shared or ())), strict=False):
        if big:
            (t.args if t.kind == "function" else t.inputs).update(big)
    try:
        from distributed import get_worker

        worker = get_worker().address
    except Exception:
        worker = f"pid {os.getpid()}"
    done = run_chain(task, lambda t, outcome: _pack(t, outcome, worker))
    data = done[0]
    if task.then:
        data["then"] = done[1:]
    return data


def _pack(task: Task, outcome: Outcome, worker: str) -> dict:
    """One attempt's outcome, ready to travel (an output that cannot travel
    turns *outcome* into a failure, in place)."""
    outcome.worker = worker
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
                "Keep such values inside the step (or del them at its end), "
                "or run it with --backend threads."
            )
            outcome.ok, outcome.error, outcome.traceback = False, err, f"{type(err).__name__}: {err}"
            outputs, result = {}, None
    else:
        outcome.error = _portable_error(outcome.error) if outcome.error is not None else None
    meta = Outcome(
        outcome.ok,
        {},
        None,
        outcome.has_result and outcome.ok,
        outcome.error,
        outcome.traceback,
        outcome.started,
        outcome.duration,
        outcome.worker,
        outcome.output,
        # what the kernel needs to know of the attempt besides its values: the inputs seen changed
        # (their new versions are among the outputs), the files it read and wrote (fingerprints)
        changed=outcome.changed,
        hinted=outcome.hinted,
        together=outcome.together,
        files=outcome.files,
        wrote=outcome.wrote,
        half_imported=outcome.half_imported,
    )
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
