"""A chunk of CPython's frame stack of its own for the steps' code (issue 26, target 1).

CPython (3.11 on) keeps a thread's Python frames in chunks of 16 KiB, each mapped with
``mmap``: a call whose frame does not fit in the current chunk gets a new chunk, unmapped
again when that call returns. Code whose calls go back and forth across the end of a chunk
maps and unmaps memory at each crossing, and touches fresh pages each time. Where that end
falls depends on how deep the code starts: nbsteps' frames under a step's code move it.
Measured in a kernel (thread CPU, strace): ``import numpy, sklearn.model_selection`` in a
``%%step`` cell made 65,776 ``mmap`` of 16 KiB (and as many ``munmap``) against 13,035 in a
plain cell, 91.6k minor page faults against 37.5k, system CPU 600 ms against 200 ms
(user CPU the same).

:func:`call` runs a function in a frame too large for the current chunk, with ~120 KiB free
after it in the chunk CPython maps for it: the frames of what the function calls stay in that
chunk unless they go deeper than that, and no chunk boundary is crossed below it. It costs one
``mmap``/``munmap`` pair a call (~10-25 us on the test VM, a frame object of 128 KiB when a stack
walk reaches it), so it is used once per executor run and once per worker thread, not per attempt.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

#: slots (8 bytes each) added to the frame of :func:`call`: 128 KiB, over a chunk's 16 KiB
_EXTRA_SLOTS = 16384


def call(func: Callable[..., Any], *args: Any) -> Any:
    """``func(*args)``, its frames in a chunk of the frame stack of their own (CPython 3.11+)."""
    return func(*args)


if sys.version_info >= (3, 11) and sys.implementation.name == "cpython":  # frames on a chunked stack
    call.__code__ = call.__code__.replace(co_stacksize=call.__code__.co_stacksize + _EXTRA_SLOTS)
