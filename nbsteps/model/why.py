"""``%steps why NAME`` / :meth:`nbsteps.Plan.why`: what a step reads and writes, and how nbsteps
knows each (SPEC 1, "Observed, not guessed").

Every name is marked by where the knowledge comes from:

- ``inferred from the code``: the static analysis (:mod:`nbsteps.model.analysis`);
- ``observed at run time``: a change the digests of :mod:`nbsteps.run.attempt.observe` saw;
- ``hint for type T``: a hint keyed by the type of the actual value (:mod:`nbsteps.model.hints`);
- ``assumed until its value is known`` (``x.plot()`` on a name from elsewhere: an axes?).

The files it read are the ones its last run opened (:mod:`nbsteps.run.attempt.opened`), with the
fingerprint its checkpoint holds (:mod:`nbsteps.model.file_inputs`) and their size and modification
time now.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Iterable

from nbsteps.model import file_inputs

INFERRED = "inferred from the code"
OBSERVED = "observed at run time"
ASSUMED = "assumed until its value is known"


def hint_for(hint: str) -> str:
    """``hint for type numpy.ndarray (numpy.ndarray.sort)`` for the hint ``numpy.ndarray.sort``."""
    return f"hint for type {hint.rpartition('.')[0]} ({hint})"


@dataclass(frozen=True)
class Access:
    """One name a step reads or writes."""

    name: str
    how: str  # INFERRED, OBSERVED, ASSUMED or hint_for(...)
    detail: str = ""  # "from step load", "changed in place", "an immutable value: only read"


@dataclass(frozen=True)
class FileInput:
    """A file the step's last run read."""

    path: str
    fingerprint: str  # as its checkpoint holds it: "blake2b:<hex>", "stat:<size>:<mtime_ns>", "missing"
    size: "int | None"  # now (None: missing)
    mtime: "float | None"
    changed: bool  # its fingerprint is not the checkpoint's any more: the step is stale
    #: not the checkpoint's any more, but as a step below left it (Run All changes it after the step
    #: reads it): no change of the step's input (nbsteps.run.decide.staleness.files_moved)
    below: bool = False


@dataclass(frozen=True)
class Why:
    """What :meth:`nbsteps.Plan.why` returns; ``str()`` is what ``%steps why`` prints."""

    step: str
    reads: tuple = ()  # Access
    writes: tuple = ()  # Access
    files: tuple = ()  # FileInput
    state: tuple = field(
        default=()
    )  # (label, "changes" | "uses") of process state and files named in the code

    def __str__(self) -> str:
        lines = [f"step {self.step}"]
        lines.append("  reads:" if self.reads else "  reads: nothing")
        lines += [_line(a) for a in self.reads]
        lines.append("  writes:" if self.writes else "  writes: nothing")
        lines += [_line(a) for a in self.writes]
        if self.state:
            lines.append("  shared state (inferred from the code):")
            lines += [f"    {label} ({what})" for label, what in self.state]
        if self.files:
            lines.append("  files read (observed at run time):")
            for f in self.files:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(f.mtime)) if f.mtime else ""
                now = "missing now" if f.size is None else f"size {f.size} B, modified {when}"
                mark = " - changed since: the step is stale" if f.changed else ""
                if f.below:
                    mark = " - as a step below left it: not a change of its input"
                lines.append(f"    {file_inputs.shown(f.path)}: {f.fingerprint} ({now}){mark}")
        else:
            lines.append("  files read: none seen (the step has not run, or opened no file)")
        return "\n".join(lines)


def _line(a: Access) -> str:
    return f"    {a.name}: {a.how}" + (f"; {a.detail}" if a.detail else "")


def explain(step, sources: dict, files: "dict | None", moved: "Iterable[str] | None" = None) -> Why:
    """The :class:`Why` of *step*: *sources* ``{input: the step it comes from}``, *files* the
    ``{path: fingerprint}`` its record holds, *moved* those of them that make it stale, as a run
    decides (changed since, but for what the steps below it wrote:
    ``nbsteps.run.decide.staleness.files_moved``); None: every file changed since."""
    a = step.analysis
    if a is None:  # a function step: its parameters are steps
        reads = tuple(Access(p, INFERRED, f"the result of step {p}") for p in step.params)
        returned = (Access(step.name, INFERRED, "its return value"),)
        return Why(step.name, reads, returned, _files(files, moved))
    hints = {n: h for n, h in step.hints.items() if n not in step.unchanged}
    reads = []
    for n in sorted(step.inputs):
        src = sources.get(n)
        where = f"from step {src}" if src else "from the notebook's namespace"
        if n in step.unchanged:
            kind = "not an axes" if n in a.assumed else "an immutable value or a module"
            where += f"; {kind}: only read, not changed"
        reads.append(Access(n, INFERRED, where))
    writes = []
    bound = set(a.outputs)
    for n in step.outputs:
        if n in hints:
            writes.append(Access(n, hint_for(hints[n]), "changed in place"))
        elif n in step.observed:
            writes.append(Access(n, OBSERVED, "changed in place although the code did not show it"))
        elif n in a.mutated:
            writes.append(Access(n, INFERRED, "changed in place"))
        elif n in a.assumed:
            writes.append(Access(n, ASSUMED, "changed in place if it is an axes (x.plot())"))
        elif n in step.linked:
            writes.append(Access(n, INFERRED, "bound to an object it changes"))
        elif n in bound:
            writes.append(Access(n, INFERRED, "assigned"))
        else:
            writes.append(Access(n, INFERRED))
    effects = set(a.effects)
    state = tuple((label, "changes" if label in effects else "uses") for label in sorted(a.state))
    return Why(step.name, tuple(reads), tuple(writes), _files(files, moved), state)


def _files(files: "dict | None", moved: "Iterable[str] | None") -> tuple:
    if not files or not isinstance(files, dict):
        return ()
    changed = set(file_inputs.changed(files))  # since the step read them
    moved = changed if moved is None else set(moved)
    out = []
    for path, fp in sorted(files.items()):
        try:
            st = os.stat(path)
            size, mtime = st.st_size, st.st_mtime
        except OSError:
            size = mtime = None
        out.append(FileInput(path, str(fp), size, mtime, path in moved, path in (changed - moved)))
    return tuple(out)
