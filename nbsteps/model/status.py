"""The statuses a step can have, and which of them end a run.

One enum for the whole package (in the spirit of Prefect's state types).
``Status`` is a ``str``: ``Status.COMPLETED == "completed"`` and it prints,
formats and serialises as the plain word, so records, events, tables and JSON
reports all speak the same vocabulary.
"""
from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"

    # shown as the plain word everywhere (records, dicts, tables): 'completed'
    __str__ = str.__str__
    __format__ = str.__format__
    __repr__ = str.__repr__

    @property
    def terminal(self) -> bool:
        """Whether a run is over for a step in this status."""
        return self in TERMINAL

    @property
    def unsuccessful(self) -> bool:
        return self in UNSUCCESSFUL


PENDING, RUNNING, RETRYING, COMPLETED, FAILED, BLOCKED, CANCELLED = (
    Status.PENDING, Status.RUNNING, Status.RETRYING, Status.COMPLETED, Status.FAILED, Status.BLOCKED,
    Status.CANCELLED,
)
#: every status, in the order views list them
STATUSES = tuple(Status)
#: a step in one of these is settled for the run
TERMINAL = frozenset({COMPLETED, FAILED, BLOCKED, CANCELLED})
#: settled without success: a run that leaves any of these is not ok
UNSUCCESSFUL = frozenset({FAILED, BLOCKED, CANCELLED})
#: not settled yet
ACTIVE = frozenset({PENDING, RUNNING, RETRYING})
