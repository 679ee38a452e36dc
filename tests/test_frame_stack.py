"""A step's code runs in a chunk of CPython's frame stack of its own (nbsteps.run.attempt.stack).

CPython 3.11+ maps a new 16 KiB chunk for a call that does not fit in the current one and
unmaps it when that call returns. A step whose calls go deeper than one chunk, again and again,
mapped (and touched, a page fault) a fresh chunk at each crossing; in a chunk of its own with
~120 KiB free it maps nothing. Measured here by the minor page faults of the thread that runs
the step (Linux), over 2,000 calls 40 frames deep (~22 KiB of frames: more than a chunk,
whatever the depth the step's code starts at).
"""

from __future__ import annotations

import resource
import sys

import pytest

import nbsteps
from nbsteps.backends import make_backend
from nbsteps.run.executor import Executor

pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11) or not hasattr(resource, "RUSAGE_THREAD"),
    reason="frames on a chunked stack (CPython 3.11+), per-thread page faults (Linux)",
)

_NAMES = ", ".join(f"a{i}" for i in range(60))
DEEP = f"""
import resource, threading

def _deep(n):
    {_NAMES} = range(60)  # a frame of ~550 bytes
    return _deep(n - 1) if n else a0

_f0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
for _ in range(2000):
    _deep(40)
faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - _f0
thread = threading.current_thread().name
"""


def test_a_step_cell_calling_deeper_than_a_chunk_maps_no_chunk_per_call(shell):
    """An interactive ``%%step`` cell: its attempt runs on the executor's (the shell's) thread."""
    assert shell.run_cell("%%step deep\n" + DEEP).success
    assert shell.user_ns["thread"] == "MainThread"
    assert shell.user_ns["faults"] < 500  # before: >= 2,000 (one fresh chunk a call)


def test_steps_on_worker_threads_map_no_chunk_per_call():
    plan = nbsteps.Plan()
    plan.add_cell("one", DEEP.replace("faults =", "faults1 =").replace("thread =", "thread1 ="))
    plan.add_cell("two", DEEP.replace("faults =", "faults2 =").replace("thread =", "thread2 ="))
    summary = Executor(
        plan.context, plan.order(), workers=2, backend=make_backend("threads", 2), emit=[].append
    ).run()
    ns = plan.namespace
    assert summary.ok
    assert ns["thread1"].startswith("nbsteps-worker") and ns["thread2"].startswith("nbsteps-worker")
    assert ns["faults1"] < 500 and ns["faults2"] < 500
