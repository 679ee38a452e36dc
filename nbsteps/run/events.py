"""Events: the seam between the executor and everything that shows a run.

The executor calls ``emit(Event)``; listeners (the text reporter, the widget,
the results table, the graph) are plain callables taking the event. All events
of a run are emitted from the thread that called ``Plan.run`` (workers hand
their news to it), so listeners need no locking against each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from nbsteps.model.record import StepRecord

#: kinds of event, in the order a run emits them
PLANNED, STARTED, RETRYING, COMPLETED, FAILED, BLOCKED, CANCELLED, WARNING, FINISHED = (
    "planned",
    "started",
    "retrying",
    "completed",
    "failed",
    "blocked",
    "cancelled",
    "warning",
    "finished",
)
#: a ``--confirm`` step waits for the user's answer (``message``: the question;
#: ``record.confirming`` says so meanwhile), then was approved: it runs when a
#: worker is free (declined: a ``cancelled`` event follows instead)
CONFIRMING, CONFIRMED = "confirming", "confirmed"
#: ``completed`` events of steps not executed say where their values came from,
#: in ``info["restored"]``: one of these
FROM_SESSION, FROM_STORE = "session", "store"


@dataclass
class Event:
    kind: str
    #: the :class:`~nbsteps.run.context.RunContext` of the plan the event is about
    context: Any
    step: str | None = None
    record: "StepRecord | None" = None
    message: str = ""
    #: planned: the steps this run will consider, in order; finished: the summary
    steps: list = field(default_factory=list)
    #: finished: the run's :class:`~nbsteps.run.summary.RunSummary`
    summary: Any = None
    info: dict = field(default_factory=dict)
    time: float = field(default_factory=time.time)


Listener = Callable[[Event], Any]


def emit_to(listeners, event: Event) -> None:
    """Call every listener; a failing listener never breaks the run."""
    for listener in list(listeners):
        try:
            listener(event)
        except Exception as exc:  # a display problem must not lose work
            import warnings

            warnings.warn(
                f"nbsteps: listener {listener!r} failed on {event.kind}: {exc!r}",
                RuntimeWarning,
                stacklevel=1,
            )
