"""Every exception nbsteps raises to its users, in one module (no IPython here).

Every message names the step (or option, or file) and says how to fix the
problem. In IPython the ``NbstepsError`` ones are shown as one line, without
nbsteps' own frames (``_render_traceback_``).
"""

from __future__ import annotations


class NbstepsError(Exception):
    """Base class: a user-facing nbsteps error.

    IPython shows it as one line (``_render_traceback_``), without nbsteps'
    own frames: the message says what is wrong and how to fix it.
    """

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class StepDefinitionError(NbstepsError):
    """A step cannot be registered (bad name, syntax error, bad option)."""


def did_you_mean(word: str, known) -> str:
    """``; did you mean 'evaluate'?`` for the closest of *known* to *word* (difflib), else ''."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class UnknownStepError(NbstepsError, KeyError):
    """A step name that is not registered."""

    def __init__(self, name: str, known: "list[str] | tuple[str, ...]" = (), where: str = ""):
        self.name = name
        known = sorted(known)
        hint = f"registered steps: {', '.join(known)}" if known else "no steps are registered yet"
        place = f" {where}" if where else ""
        close = did_you_mean(name, known)
        super().__init__(
            f"unknown step {name!r}{place}{close}; {hint}. Define it with "
            f"%%step {name} (or plan.step) first, or fix the name."
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class CycleError(NbstepsError):
    """Registering a step would create a dependency cycle."""

    def __init__(self, step: str, cycle: "list[str]"):
        self.step = step
        self.cycle = list(cycle)
        super().__init__(
            f"step {step!r} would create a dependency cycle: {' -> '.join(self.cycle)}. "
            f"The previous definition stays registered; remove the dependency "
            f"(an --after, or a name read from a downstream step) to break the cycle."
        )


class AmbiguousDependencyError(NbstepsError):
    """Several steps write a name a step reads and their order is not defined.

    No longer raised: reads bind to the nearest writer above (notebook order).
    Kept so that code catching it keeps working."""

    def __init__(self, step: str, name: str, candidates: "list[str]"):
        self.step, self.name, self.candidates = step, name, sorted(candidates)
        super().__init__(
            f"step {step!r} reads {name!r}, which several steps write: {', '.join(self.candidates)}; "
            f"their order is not defined. Say which one with --after "
            f"(e.g. %%step {step} --after {self.candidates[-1]})."
        )


class StepsFailed(NbstepsError):
    """A run left steps failed, blocked or cancelled. The message is the summary."""

    def __init__(self, summary):
        self.summary = summary
        super().__init__(summary.text)

    #: how a frontend formats a step's own exception (a list of lines), set by
    #: the IPython frontend to its coloured traceback; None: the recorded text
    format_error = None

    def _render_traceback_(self) -> list[str]:
        """The failed steps' own tracebacks (user frames only), then the summary."""
        stb: list[str] = []
        for name in self.summary.failed:
            rec = self.summary.records[name]
            err = rec.error
            fmt = type(self).format_error
            if err is not None and err.__traceback__ is not None and fmt is not None:
                try:
                    stb += fmt(err)
                    continue
                except Exception:  # pragma: no cover - formatting must not hide the summary
                    pass
            if rec.traceback:
                stb.append(rec.traceback)
        return stb + super()._render_traceback_()


class StepsInterrupted(KeyboardInterrupt):
    """Ctrl-C while a magic was not running steps (registering one, say):
    shown as one line, without nbsteps' own frames."""

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self}" if str(self) else "KeyboardInterrupt"]


class NotReadyError(NbstepsError):
    """A step's result was asked for before the step completed."""


class StoreError(NbstepsError):
    """A checkpoint store cannot be opened (not a directory, an unsafe key file...)."""


class CheckpointUnavailable(StoreError):
    """A value of a restored checkpoint could not be read when it was first
    needed (removed or damaged since the step was restored); the step is
    recomputed by the next run. *reason*: why, in a few words ("RecursionError
    while unpickling x"), for the reason the step executes again."""

    def __init__(self, message: str, step: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.step = step
        self.reason = reason


class ConfigError(NbstepsError, ValueError):
    """An ``NBSTEPS_*`` variable with a value nbsteps cannot use."""


class KeyFileError(NbstepsError, PermissionError):
    """The checkpoint-signing key file can be written by someone else: not trusted."""


class StepTimeout(TimeoutError):
    """A step ran longer than its ``--timeout`` (its thread is abandoned)."""


class UnserialisableValueError(NbstepsError, TypeError):
    """A step's input or output cannot travel to or from a dask worker."""

    #: retrying cannot help (for executors that honour it)
    retryable = False


class WorkerLostError(NbstepsError, RuntimeError):
    """The dask workers running a step kept dying (dask's KilledWorker)."""


class UsageError(Exception):
    """``nbsteps run``: bad usage, a one-line message and exit status 2."""
