"""nbsteps.run.attempt.retry: which failures get another attempt, and when."""

from __future__ import annotations

import pytest

from nbsteps.model.step import cell_step
from nbsteps.run.attempt import retry


def step(**options):
    return cell_step("s", "x = 1", **options)


@pytest.mark.parametrize(
    "err", [SyntaxError("s"), NameError("n"), ImportError("i"), ModuleNotFoundError("m"), KeyboardInterrupt()]
)
def test_structural_errors_are_never_retried(err):
    assert not retry.retryable(step(retry=5), 1, err)


def test_ordinary_errors_are_retried_until_attempts_run_out():
    s = step(retry=2)
    assert retry.retryable(s, 1, ValueError())
    assert retry.retryable(s, 2, ValueError())
    assert not retry.retryable(s, 3, ValueError())  # 1 + 2 attempts made


def test_retry_on_narrows_by_class_name_and_its_bases():
    s = step(retry=3, retry_on="ConnectionError")
    assert retry.retryable(s, 1, ConnectionResetError())  # a subclass of ConnectionError
    assert not retry.retryable(s, 1, ValueError())


def test_errors_that_say_they_are_not_retryable_and_bare_base_exceptions():
    class Fatal(Exception):
        retryable = False

    s = step(retry=3)
    assert not retry.retryable(s, 1, Fatal())
    assert not retry.retryable(s, 1, GeneratorExit())
    assert not retry.retryable(s, 1, None)


def test_backoff_doubles_with_at_most_ten_percent_jitter():
    s = step(retry=4, retry_delay=0.5)
    for attempt, base in ((1, 0.5), (2, 1.0), (3, 2.0)):
        delays = [retry.backoff(s, attempt) for _ in range(50)]
        assert all(base <= d <= base * 1.1 for d in delays)
        assert len(set(delays)) > 1  # jitter
