"""nbsteps.formatting: the one duration formatter."""

from __future__ import annotations

import pytest

from nbsteps.formatting import fmt_clock, fmt_seconds


@pytest.mark.parametrize(
    "seconds,text",
    [
        (9e-06, "<1 ms"),
        (0.0123, "12 ms"),
        (0.34, "340 ms"),
        (2.345, "2.35 s"),
        (59.994, "59.99 s"),
        (185, "3 min 05 s"),
        (3725, "1 h 02 min"),
        (None, "?"),
        (float("nan"), "?"),
        ("x", "?"),
    ],
)
def test_durations_read_the_same_everywhere(seconds, text):
    assert fmt_seconds(seconds) == text


def test_missing_and_clock():
    assert fmt_seconds(None, missing="") == ""
    assert len(fmt_clock(0.0)) == 8 and fmt_clock(None) == ""
