"""The retry policy: which failures are retried, and after how long.

``--retry N`` gives N more attempts; the delay starts at ``--retry-delay`` and
doubles, with up to 10 % jitter so that parallel retries do not stampede.
Structural errors are never retried: retrying cannot fix them.
"""

from __future__ import annotations

import random

from nbsteps.model.step import MAX_RETRY_DELAY

#: exceptions that retrying cannot fix
STRUCTURAL_ERRORS = (SyntaxError, NameError, ImportError, KeyboardInterrupt)


def retryable(step, attempts: int, err: "BaseException | None") -> bool:
    """Whether attempt number *attempts* of *step*, which failed with *err*,
    gets another attempt."""
    if attempts > step.retry or err is None:
        return False
    if isinstance(err, STRUCTURAL_ERRORS) or getattr(err, "retryable", True) is False:
        return False
    if not isinstance(err, Exception):  # GeneratorExit, a bare BaseException: not a retryable failure
        return False
    if step.retry_on:
        return any(c.__name__ in step.retry_on for c in type(err).__mro__)
    return True


def backoff(step, attempts: int) -> float:
    """Seconds to wait before the attempt after attempt number *attempts*
    (never more than a day, however many attempts)."""
    return min(step.retry_delay * (2 ** min(attempts - 1, 64)), MAX_RETRY_DELAY) * (
        1 + random.uniform(0, 0.1)
    )
