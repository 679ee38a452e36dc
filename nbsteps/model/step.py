"""A step: what to run (a cell's source or a function) with its options."""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable

from nbsteps.errors import StepDefinitionError
from nbsteps.model.analysis import CellAnalysis, analyse_cell
from nbsteps.model.fingerprint import code_digest

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")



def check_name(name: str, what: str = "step name") -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise StepDefinitionError(
            f"invalid {what} {name!r}: use letters, digits, '_' and '-', not starting with a digit "
            f"(for example %%step load_data)."
        )
    return name


@dataclass(eq=False)
class Step:
    """A named unit of work: a cell's source or a Python function, plus options."""

    name: str
    source: str = ""
    func: Callable | None = None
    after: tuple = ()
    retry: int = 0
    retry_delay: float = 1.0
    retry_on: tuple = ()
    timeout: float | None = None
    optional: bool = False
    confirm: str | None = None
    cache: bool = True
    analysis: CellAnalysis | None = None
    #: function steps: parameter names that are steps (receive their results)
    params: tuple = ()
    undo: Any = None  # source text or a callable (see nbsteps.undo)
    static_digest: str = ""

    @property
    def source_text(self) -> str:
        """The cell's source, or the function's source when it can be found."""
        if self.source or self.func is None:
            return self.source
        try:
            return inspect.getsource(self.func)
        except (OSError, TypeError):
            return ""

    @property
    def kind(self) -> str:
        return "function" if self.func is not None else "cell"

    @property
    def inputs(self) -> frozenset:
        return self.analysis.inputs if self.analysis else frozenset()

    @property
    def outputs(self) -> tuple:
        return self.analysis.outputs if self.analysis else (self.name,)

    @property
    def options(self) -> dict:
        return {
            "after": list(self.after), "retry": self.retry, "retry_delay": self.retry_delay,
            "retry_on": list(self.retry_on), "timeout": self.timeout, "optional": self.optional,
            "confirm": self.confirm, "cache": self.cache,
        }


def _check_options(name: str, retry, retry_delay, timeout) -> None:
    if not isinstance(retry, int) or retry < 0:
        raise StepDefinitionError(f"step {name!r}: --retry must be a whole number >= 0, got {retry!r}.")
    if retry_delay < 0:
        raise StepDefinitionError(f"step {name!r}: --retry-delay must be >= 0 seconds, got {retry_delay!r}.")
    if timeout is not None and timeout <= 0:
        raise StepDefinitionError(f"step {name!r}: --timeout must be > 0 seconds, got {timeout!r}.")


def _retry_on(name: str, retry_on) -> tuple:
    if retry_on is None:
        return ()
    if isinstance(retry_on, str):
        retry_on = [p for p in re.split(r"[,\s]+", retry_on) if p]
    out = []
    for exc in retry_on:
        exc_name = exc if isinstance(exc, str) else getattr(exc, "__name__", None)
        if not exc_name or not exc_name.isidentifier():
            raise StepDefinitionError(f"step {name!r}: --retry-on takes exception class names, got {exc!r}.")
        out.append(exc_name)
    return tuple(out)


def cell_step(name: str, source: str, **options) -> Step:
    """A step from a cell's source (already transformed by IPython)."""
    check_name(name)
    analysis = analyse_cell(name, source)
    return _finish(Step(name=name, source=source, analysis=analysis, **_options(name, options)))


def function_step(name: str, func: Callable, known_steps, **options) -> Step:
    """A step from a Python function; parameters named after steps are dependencies."""
    check_name(name)
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        raise StepDefinitionError(f"step {name!r}: {func!r} is not a function nbsteps can inspect.") from None
    params = []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name in known_steps and p.name != name:
            params.append(p.name)
        elif p.default is p.empty:
            raise StepDefinitionError(
                f"step {name!r}: parameter {p.name!r} names no registered step. "
                f"Register step {p.name!r} first, rename the parameter, or give it a default."
            )
    # the source is read only when shown (Step.source_text): registering stays cheap
    step = Step(name=name, func=func, params=tuple(params), **_options(name, options))
    return _finish(step)


def _options(name: str, o: dict) -> dict:
    after = o.get("after") or ()
    if isinstance(after, str):
        after = (after,)
    after = tuple(dict.fromkeys(check_name(a, "--after step name") for a in after))
    retry = int(o.get("retry") or 0) if not isinstance(o.get("retry"), bool) else -1
    retry_delay = float(o.get("retry_delay", 1.0) if o.get("retry_delay") is not None else 1.0)
    timeout = o.get("timeout")
    timeout = float(timeout) if timeout is not None else None
    _check_options(name, retry, retry_delay, timeout)
    return dict(
        after=after, retry=retry, retry_delay=retry_delay, retry_on=_retry_on(name, o.get("retry_on")),
        timeout=timeout, optional=bool(o.get("optional", False)), confirm=o.get("confirm") or None,
        cache=bool(o.get("cache", True)),
    )


def _finish(step: Step) -> Step:
    if step.func is not None:
        code = getattr(step.func, "__code__", None)
        core = code_digest(code) if code is not None else repr(step.func)
    else:
        core = step.analysis.digest
    # options that change what the step computes: only its explicit order
    step.static_digest = f"{core}|after={sorted(step.after)}"
    return step
