"""A checkpoint: the outputs and result of one completed step, with the
fingerprint of everything that determined them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Checkpoint:
    """Outputs and result of one completed step, with what determined them."""

    step: str
    fingerprint: str
    outputs: dict[str, Any]
    result: Any = None
    has_result: bool = False
    # the parts of the fingerprint (source, options, upstream, params, helpers),
    # kept so that a plan can say *why* a step is stale
    parts: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0
    finished: float = 0.0  # time.time() when the step completed
    started: float = 0.0  # time.time() when its first attempt started
    attempts: int = 0  # attempts the run that produced it took
    #: what the step printed and displayed (see ``StepRecord.output``): plain data, figures as images
    output: tuple = ()
