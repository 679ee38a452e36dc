"""What the magics do with option values out of range and with Ctrl-C.

- :func:`checked` turns a check of :mod:`nbsteps.model.step` into an argparse
  type: ``--retry-delay nan`` is a usage error naming the option and the range.
- :func:`one_line_interrupts` wraps a magic so that Ctrl-C outside a run is a
  one-line :class:`~nbsteps.errors.StepsInterrupted` (no nbsteps frames).
"""

from __future__ import annotations

import argparse
import functools

from nbsteps.errors import StepsInterrupted


def checked(check):
    """An argparse type from a check of nbsteps.model.step: a bad value is a
    usage error naming the option and the allowed range."""

    def parse(text):
        try:
            return check(text, "")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = check.__name__.replace("check_", "")
    return parse


def one_line_interrupts(magic):
    """Ctrl-C anywhere in a magic is shown as one line, never with nbsteps'
    frames (a run's interrupt is already a StepsFailed with its summary)."""

    @functools.wraps(magic)
    def wrapper(*args, **kwargs):
        try:
            return magic(*args, **kwargs)
        except StepsInterrupted:
            raise
        except KeyboardInterrupt:
            raise StepsInterrupted() from None

    return wrapper
