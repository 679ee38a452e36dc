"""A step's life: its statuses, the transitions between them, and the words
nbsteps uses for why a step runs or not. The one place these are defined.

Statuses
--------
One enum for the whole package (in the spirit of Prefect's state types).
``Status`` is a ``str``: ``Status.COMPLETED == "completed"`` and it prints,
formats and serialises as the plain word, so records, events, tables and JSON
reports all speak the same vocabulary. A step's status is its record's
(:class:`~nbsteps.model.record.StepRecord`); it tells what the last run that
considered the step did with it:

- ``pending``: registered, or part of a run that has not settled it yet;
- ``running``: an attempt is executing (on a worker, the kernel's thread or a
  dask worker); ``retrying``: an attempt failed and another one will start
  after the retry delay;
- ``completed``: its outputs are published and its checkpoint stored (never
  one without the other); ``cached`` on the record says its values were not
  computed by an execution in that run (restored from the store, or kept);
- ``failed`` (its code raised, or timed out, on the last attempt),
  ``blocked`` (an upstream step it needs did not complete) and ``cancelled``
  (the run was interrupted, stopped by ``--fail-fast``, or a ``--confirm`` was
  declined): settled without success.

Transitions
-----------
Every change of a record's status is one of :data:`TRANSITIONS`, each caused
by one component (``run.executor`` unless said otherwise)::

    pending   -> running     an attempt starts (a worker is free)
    running   -> retrying    the attempt failed and a retry is left (run.attempt.retry)
    retrying  -> running     the retry delay is over
    running   -> completed   the attempt succeeded: checkpoint stored, outputs published
    running   -> failed      the last attempt raised or timed out
    running   -> cancelled   interrupt or --fail-fast while it runs (its outcome is dropped)
    retrying  -> cancelled   the same, during the retry delay
    retrying  -> failed      the retry was abandoned (a timeout of the whole step)
    pending   -> completed   up to date: restored from the store, or kept as this kernel
                             holds it (no execution)
    pending   -> blocked     an upstream step it needs did not complete
    pending   -> cancelled   interrupt, --fail-fast, a declined confirmation; an interrupt
                             outside the loop (run.summary.record_interrupt)
    pending   -> failed      a value it needs could not be read, twice (run.recovery)
    <any>     -> pending     a run starts and considers it; reset, undo, removal of its
                             checkpoint, a checkpoint lost when read (StepRecord.reset)

A status may also be set to itself (a record written in one assignment).
Outside a run only ``-> pending`` happens. The test suite checks every
assignment against the table, in its own process and in the kernels it starts
(``STRICT``, from ``NBSTEPS_CHECK_TRANSITIONS``, set by ``tests/conftest.py``).

Words for why a step runs
-------------------------
- **stale**: a completed step whose fingerprint (code, options, upstream
  executions, outside values it reads, notebook functions it calls) is not the
  one it completed with (``record.stale``, set by
  :func:`nbsteps.run.decide.staleness.refresh_stale`); a run executes it again.
- **valid**: a completed step known to be up to date without checking its
  fingerprint again (:mod:`nbsteps.run.decide.validity`): a memo that makes
  one cell's run cost that cell, not the notebook above it.
- **replayed**: an up-to-date step executed again because its effect is on
  shared process state (a random seed, pyplot's current figure) that a step
  executing after it needs (:mod:`nbsteps.run.decide.replay`).
- **restored**: completed from a checkpoint in the store, not executed;
  **kept**: completed as this kernel already holds it, not executed;
  **executed**: ran in this run. ``record.origin`` is one of these three words
  for a completed step (set by the executor), ``""`` otherwise; ``record.cached``
  is true for restored and kept. Every view (status lines, graph, table,
  ``results.csv``, summary, CLI) says what happened with these words.
"""

from __future__ import annotations

from enum import Enum

from nbsteps import config


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
    Status.PENDING,
    Status.RUNNING,
    Status.RETRYING,
    Status.COMPLETED,
    Status.FAILED,
    Status.BLOCKED,
    Status.CANCELLED,
)
#: what a run did with a completed step (``record.origin``, see the module doc)
EXECUTED, KEPT, RESTORED = "executed", "kept", "restored"
ORIGINS = (EXECUTED, KEPT, RESTORED)

#: every status, in the order views list them
STATUSES = tuple(Status)
#: a step in one of these is settled for the run
TERMINAL = frozenset({COMPLETED, FAILED, BLOCKED, CANCELLED})
#: settled without success: a run that leaves any of these is not ok
UNSUCCESSFUL = frozenset({FAILED, BLOCKED, CANCELLED})
#: not settled yet
ACTIVE = frozenset({PENDING, RUNNING, RETRYING})

#: the allowed changes of a step's status (see the module doc); ``-> pending`` from any status too
TRANSITIONS = frozenset(
    {
        (PENDING, RUNNING),
        (RUNNING, RETRYING),
        (RETRYING, RUNNING),
        (RUNNING, COMPLETED),
        (RUNNING, FAILED),
        (RUNNING, CANCELLED),
        (RETRYING, CANCELLED),
        (RETRYING, FAILED),
        (PENDING, COMPLETED),
        (PENDING, BLOCKED),
        (PENDING, CANCELLED),
        (PENDING, FAILED),
    }
    | {(s, PENDING) for s in Status}
    | {(s, s) for s in Status}
)

#: check every status change against TRANSITIONS (NBSTEPS_CHECK_TRANSITIONS=1; the test suite sets it)
STRICT = config.check_transitions()


class IllegalTransition(AssertionError):
    """A record's status changed in a way :data:`TRANSITIONS` does not allow (a bug)."""


def check_transition(step: str, old: Status, new: Status) -> None:
    """Raise :class:`IllegalTransition` when *old* -> *new* is not a transition (STRICT only)."""
    if STRICT and (old, new) not in TRANSITIONS:
        raise IllegalTransition(f"step {step!r}: {old} -> {new} is not a transition of a step's life")
