"""A step that fails while another step ran beside it runs again alone (found by the corpus:
SymPy's tutorial).

Run All runs every cell alone. A plan runs independent steps on threads at once, and a
library need not be thread-safe: SymPy evaluates integrals with mpmath, whose working
precision is one module-level context, so ``Integral(1/sqrt(x), (x, 0, 1)).evalf()`` raised
``TypeError: cannot unpack non-iterable ComplexInfinity object`` while another step evaluated
an integral. nbsteps cannot know beforehand which library keeps such state. So every attempt
is counted while it runs (:func:`attempt`, a shared hold of a readers-writer lock), and an
attempt that failed while another was running is run once more with no other attempt
running (:func:`acquire`, the exclusive hold: it waits for the running ones to end and keeps new
ones from starting), before its failure counts: one that fails alone too fails as in Run All.

Only when running it again is the same as running it the first time: it was given nothing it
could have changed (every input it may change in place would be a private copy the failed
attempt may have changed half-way; see :func:`again_is_first`), and its code raised an
ordinary exception (not one retrying cannot fix: a ``NameError``, a ``SyntaxError``); and not
for a step with its own ``--retry``, whose policy decides. A wrong value computed without an
error is not seen.
"""

from __future__ import annotations

import contextlib
import threading
import time

from nbsteps.run.attempt.retry import STRUCTURAL_ERRORS

_cond = threading.Condition()
_running = 0  # attempts holding the shared side
_exclusive = False  # an attempt running alone
_starts = 0  # attempts started so far (to see one that started beside another)
#: seconds an attempt waits for the others to end before it runs alone (else its failure stands)
WAIT = 60.0


class Hold:
    """One attempt's shared hold; ``beside``: another attempt ran while it did."""

    __slots__ = ("beside", "_starts")

    def __init__(self) -> None:
        self.beside = False
        self._starts = 0


@contextlib.contextmanager
def attempt():
    """Count an attempt while it runs (waits while one runs alone)."""
    global _running, _starts
    hold = Hold()
    with _cond:
        while _exclusive:
            _cond.wait()
        hold.beside = _running > 0
        _running += 1
        _starts += 1
        hold._starts = _starts
    try:
        yield hold
    finally:
        with _cond:
            _running -= 1
            hold.beside = hold.beside or _starts != hold._starts
            _cond.notify_all()


def acquire(timeout: float = WAIT, give_up=None) -> bool:
    """Hold the exclusive side: wait for the running attempts to end (at most *timeout*
    seconds: one abandoned by an interrupt may never end; and not once *give_up()* is true:
    the run is being cancelled) and keep new ones out; whether it could."""
    global _exclusive
    deadline = time.monotonic() + timeout
    with _cond:
        while _exclusive or _running:
            left = deadline - time.monotonic()
            if left <= 0 or (give_up is not None and give_up()):
                return False
            _cond.wait(min(left, 0.1))
        _exclusive = True
    return True


def release() -> None:
    global _exclusive
    with _cond:
        _exclusive = False
        _cond.notify_all()


def again_is_first(error: "BaseException | None", unchanged: bool) -> bool:
    """Whether an attempt that failed with *error* may run again alone: an ordinary exception,
    and its inputs are as they were before it (*unchanged*: nothing it may change in place)."""
    return isinstance(error, Exception) and not isinstance(error, STRUCTURAL_ERRORS) and unchanged
