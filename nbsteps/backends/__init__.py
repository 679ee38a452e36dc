"""Where a step's attempts run, behind one small protocol.

A backend has ``workers``, ``inline_ok`` (whether the executor may run a lone
step on its own thread), ``submit(task, done)`` (run ``task`` and call
``done(task, outcome)`` from any thread), ``abandon(task)`` (a timed-out
attempt: its late outcome is discarded) and ``close()``. A backend with
``fuses = True`` also runs ``task.then`` (the steps after it in a linear chain,
:mod:`nbsteps.run.fusion`) in the same unit of work and hands their outcomes
back in ``outcome.then``. A backend with ``flush()`` may hold what ``submit``
was given until the executor calls ``flush()``, which it does after starting
every task it can and before it waits (the dask backend sends them in one
graph update). Implementations:
:mod:`nbsteps.backends.threads` (default) and :mod:`nbsteps.backends.distributed`
(a dask.distributed cluster). ``make_backend`` chooses; the executor and the
plan never import an implementation.
"""

from __future__ import annotations

from nbsteps.errors import NbstepsError

BACKENDS = ("threads", "dask")


def make_backend(name: "str | None", workers: int, address=None):
    """A started backend: ``threads`` or ``dask`` (*address*: a scheduler
    address, a ``distributed.Client`` or a cluster; default: a LocalCluster)."""
    if name in (None, "threads", "thread"):
        from nbsteps.backends.threads import ThreadBackend

        return ThreadBackend(workers)
    if name == "dask":
        from nbsteps.backends.distributed import DaskBackend

        return DaskBackend(workers, address)
    raise NbstepsError(f"unknown backend {name!r}: use 'threads' or 'dask'.")
