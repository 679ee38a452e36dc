"""A step: what to run (a cell's source or a function) with its options."""

from __future__ import annotations

import inspect
import math
import operator
import re
import types
from dataclasses import dataclass, field
from typing import Any, Callable

from nbsteps.errors import StepDefinitionError
from nbsteps.model.analysis import CellAnalysis, analyse_cell
from nbsteps.model.fingerprint import code_digest

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
#: the empty set a step's set fields (``linked``, ``observed``...) are reset to: one object, made once
NOTHING: frozenset = frozenset()


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
    undo: Any = None  # source text or a callable (see nbsteps.run.undo)
    static_digest: str = ""
    #: names bound with a name this step changes, in the step above that wrote it (``fig`` of
    #: ``fig, ax = plt.subplots()`` when this step calls ``ax.plot``): changed with it (set by the plan)
    linked: frozenset = frozenset()
    #: global names the notebook functions it calls read when called, bound to the steps above it that
    #: write them (set by the plan; nbsteps.model.dependencies.link_called)
    called_reads: frozenset = frozenset()
    #: names the analysis predicted it changes whose value, when it was registered, was immutable (an
    #: int handed over as ``random_state=SEED``): read, not written (set by the plan; nbsteps.model.immutable)
    unchanged: frozenset = frozenset()
    #: inputs a run saw it change in place that the analysis did not predict (nbsteps.run.attempt.observe):
    #: written and changed on a private copy from then on, as ``mutated`` (set by the plan)
    observed: frozenset = frozenset()
    #: process state labels a run saw it change where the analysis could not (``environ``: a library
    #: writing ``os.environ``; nbsteps.run.attempt.opened): effects, as the analysis's (set by the
    #: executor, and by the plan from its checkpoint in a new kernel; nbsteps.model.state)
    observed_state: frozenset = frozenset()
    #: name -> the hint keyed by type that says a call of the step changes it
    #: (``"numpy.random.Generator.choice"``), resolved on the value the name had when the step was
    #: registered or ran (set by the plan; nbsteps.model.hints): a write, as ``mutated``
    hints: dict = field(default_factory=dict, compare=False)

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
        a = self.analysis
        if a is None:
            return frozenset()
        # a builtin it reads (input, len) is bound to the step above that rebinds it, if any
        extra = a.shadowable or self.linked or self.called_reads
        return a.inputs | a.shadowable | self.linked | self.called_reads if extra else a.inputs

    @property
    def outputs(self) -> tuple:
        a = self.analysis
        if not a:
            return (self.name,)
        outs = a.outputs
        if not (self.unchanged or self.linked or self.observed or self.hints or a.assumed):
            return outs  # (most steps: what the code binds, nothing more)
        if self.unchanged:
            outs = tuple(n for n in outs if n not in self.unchanged)
        extra = self.linked | self.observed | self.hinted | (self.analysis.assumed - self.unchanged)
        return outs + tuple(sorted(extra - set(outs))) if extra else outs

    @property
    def mutated(self) -> frozenset:
        """The inputs the step changes (it works on private copies of them)."""
        if not self.analysis:
            return frozenset()
        return self.changes | self.linked if self.linked else self.changes

    @property
    def hinted(self) -> frozenset:
        """The names a hint keyed by type says it changes (nbsteps.model.hints)."""
        return frozenset(self.hints) - self.unchanged if self.hints else frozenset()

    @property
    def changes(self) -> frozenset:
        """What its own code changes: predicted from the code, assumed until the value is known
        (``ax.plot()``), hinted by type, observed at run time (not the names bound with them)."""
        a = self.analysis
        if a is None:
            return frozenset()
        if not (a.assumed or self.unchanged or self.observed or self.hints):
            return a.mutated  # (most steps)
        return ((a.mutated | a.assumed) - self.unchanged) | self.observed | self.hinted

    @property
    def options(self) -> dict:
        return {
            "after": list(self.after),
            "retry": self.retry,
            "retry_delay": self.retry_delay,
            "retry_on": list(self.retry_on),
            "timeout": self.timeout,
            "optional": self.optional,
            "confirm": self.confirm,
            "cache": self.cache,
        }


#: allowed ranges of the numeric options (the magics' parsers use these checks too)
MAX_RETRY = 100
MAX_RETRY_DELAY = 86400.0  # one day


def _refuse(option: str, allowed: str, value) -> ValueError:
    return ValueError(f"{option + ' ' if option else ''}must be {allowed}, got {value!r}")


def _whole(value, option: str, allowed: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        return int(value)
    try:
        if isinstance(value, bool):
            raise TypeError
        return operator.index(value)
    except TypeError:
        raise _refuse(option, allowed, value) from None


def _seconds(value, option: str, allowed: str) -> float:
    if type(value) is float and math.isfinite(value):
        return value
    try:
        if isinstance(value, bool):
            raise TypeError
        seconds = float(value)
    except (TypeError, ValueError):
        raise _refuse(option, allowed, value) from None
    if not math.isfinite(seconds):
        raise _refuse(option, allowed, value)
    return seconds


def check_retry(value, option: str = "--retry") -> int:
    """A number of retries: a whole number from 0 to 100 (else ValueError)."""
    allowed = f"a whole number from 0 to {MAX_RETRY}"
    n = _whole(value, option, allowed)
    if not 0 <= n <= MAX_RETRY:
        raise _refuse(option, allowed, value)
    return n


def check_retry_delay(value, option: str = "--retry-delay") -> float:
    """Seconds before the first retry: finite, from 0 to 86400 (one day)."""
    allowed = f"a number of seconds from 0 to {MAX_RETRY_DELAY:g} (one day)"
    seconds = _seconds(value, option, allowed)
    if not 0 <= seconds <= MAX_RETRY_DELAY:
        raise _refuse(option, allowed, value)
    return seconds


def check_timeout(value, option: str = "--timeout") -> float:
    """A step's time limit: a finite number of seconds greater than 0."""
    allowed = "a finite number of seconds greater than 0"
    seconds = _seconds(value, option, allowed)
    if not seconds > 0:
        raise _refuse(option, allowed, value)
    return seconds


def check_workers(value, option: str = "--workers") -> int:
    """A number of parallel workers: a whole number >= 1."""
    allowed = "a whole number >= 1"
    n = _whole(value, option, allowed)
    if n < 1:
        raise _refuse(option, allowed, value)
    return n


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


def cell_step(name: str, source: str, code_name: "str | None" = None, **options) -> Step:
    """A step from a cell's source (already transformed by IPython); *code_name*: the file name
    its code is compiled under (default ``<step NAME>``, see analyse_cell)."""
    check_name(name)
    analysis = analyse_cell(name, source, filename=code_name)
    opts = _options(name, options)
    if opts is None:  # no options (``%%step NAME``): the dataclass's defaults
        d = _STEP_FIELDS.copy()
        d["name"], d["source"], d["analysis"], d["hints"] = name, source, analysis, {}
        del d["static_digest"]  # computed when first read (_StaticDigest)
        step = object.__new__(Step)
        object.__setattr__(step, "__dict__", d)
        return step
    return _finish(Step(name=name, source=source, analysis=analysis, **opts))


def function_step(name: str, func: Callable, known_steps, **options) -> Step:
    """A step from a Python function; parameters named after steps are dependencies."""
    check_name(name)
    params = []
    code = getattr(func, "__code__", None)  # read once: reading it is an audit event
    names, has_default = _plain_parameters(func, code), None
    if names is None:
        names, has_default = _parameters(name, func, code)
    for p in names:
        if p in known_steps and p != name:
            params.append(p)
        elif not (_code_default(func, code, p) if has_default is None else has_default(p)):
            raise StepDefinitionError(
                f"step {name!r}: parameter {p!r} names no registered step. "
                f"Register step {p!r} first, rename the parameter, or give it a default."
            )
    # the source is read only when shown (Step.source_text): registering stays cheap
    opts = _options(name, options)
    if opts is None:  # no options (@plan.step): the dataclass's defaults
        step = _new_step(name, func, tuple(params))
    else:
        step = Step(name=name, func=func, params=tuple(params), **opts)
    return _finish(step, code)


def _parameters(name: str, func: Callable, code: "types.CodeType | None" = None) -> tuple:
    """``(names, has_default)``: *func*'s named parameters (not ``*args``,
    ``**kwargs``) as :func:`inspect.signature` gives them, and a function telling
    whether one has a default. A plain function (no ``__wrapped__``,
    ``__signature__``) is read from its code object (:func:`_plain_parameters`):
    ``inspect.signature`` costs as much as the rest of registering a step (and
    reading a function's ``__defaults__`` is an audit event: only done for a
    parameter that needs it)."""
    names = _plain_parameters(func, code)
    if names is not None:
        return names, lambda p: _code_default(func, code, p)
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        raise StepDefinitionError(f"step {name!r}: {func!r} is not a function nbsteps can inspect.") from None
    defaults = {
        p.name: p.default is not p.empty
        for p in sig.parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    return tuple(defaults), defaults.__getitem__


def _plain_parameters(func: Callable, code: "types.CodeType | None") -> "tuple | None":
    """The named parameters of *func* read from its code, or None when it is not a plain
    function (see :func:`_parameters`); then :func:`_code_default` says which have a default."""
    if type(func) is types.FunctionType and not _SIGNATURE_ATTRS.intersection(func.__dict__):
        code = code or func.__code__
        return code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
    return None


def _code_default(func: Callable, code: "types.CodeType | None", p: str) -> bool:
    """Whether parameter *p* of the plain function *func* has a default (see :func:`_parameters`)."""
    code = code or func.__code__
    n_pos = code.co_argcount
    i = code.co_varnames.index(p)
    if i < n_pos:
        return i >= n_pos - len(func.__defaults__ or ())
    return p in (func.__kwdefaults__ or {})


#: attributes that make inspect.signature look further than a function's code
_SIGNATURE_ATTRS = frozenset({"__wrapped__", "__signature__", "_partialmethod", "__text_signature__"})


#: the options of a step registered without any (``@plan.step``): nothing to check
_DEFAULTS = dict(
    after=(), retry=0, retry_delay=1.0, retry_on=(), timeout=None, optional=False, confirm=None, cache=True
)


#: the options ``%%step NAME`` gives (argparse's defaults: a list, None), which check to _DEFAULTS
_MAGIC_DEFAULTS = dict(_DEFAULTS, after=[], retry_on=None)


def _options(name: str, o: dict) -> "dict | None":
    """The checked options *o* of step *name*; None when they are the defaults (or none given)."""
    # (0 == False == 0.0: the numbers' types too, or a refused --retry False would pass)
    if not o or (
        (o == _MAGIC_DEFAULTS or o == _DEFAULTS)
        and type(o["retry"]) is int
        and type(o["retry_delay"]) is float
    ):
        return None
    after = o.get("after") or ()
    if isinstance(after, str):
        after = (after,)
    after = tuple(dict.fromkeys(check_name(a, "--after step name") for a in after))
    try:
        retry = check_retry(0 if o.get("retry") is None else o["retry"])
        retry_delay = check_retry_delay(1.0 if o.get("retry_delay") is None else o["retry_delay"])
        timeout = None if o.get("timeout") is None else check_timeout(o["timeout"])
    except ValueError as exc:
        raise StepDefinitionError(f"step {name!r}: {exc}.") from None
    return dict(
        after=after,
        retry=retry,
        retry_delay=retry_delay,
        retry_on=_retry_on(name, o.get("retry_on")),
        timeout=timeout,
        optional=bool(o.get("optional", False)),
        confirm=o.get("confirm") or None,
        cache=bool(o.get("cache", True)),
    )


def _new_step(name: str, func: Callable, params: tuple) -> Step:
    """``Step(name=name, func=func, params=params)``: the other fields a copy of the defaults (the
    dataclass's ``__init__`` sets its 23 fields one by one, called with keywords: most of making a
    function step)."""
    d = _STEP_FIELDS.copy()
    d["name"], d["func"], d["params"], d["hints"] = name, func, params, {}
    step = object.__new__(Step)
    object.__setattr__(step, "__dict__", d)
    return step


def _step_fields() -> dict:
    """A new Step's fields as its ``__init__`` sets them with only a name (in the same order)."""
    fields = dict(Step(name="").__dict__)
    mutable = [k for k, v in fields.items() if k != "hints" and isinstance(v, (list, dict, set, bytearray))]
    if mutable:  # a new field with a default_factory: _new_step must make it per step, as hints
        raise TypeError(f"Step fields {mutable} would be shared by every new step: make them in _new_step")
    return fields


#: see _step_fields (``hints`` is replaced by a new dict in each step)
_STEP_FIELDS = _step_fields()
_UNREAD = object()


def _finish(step: Step, code=_UNREAD) -> Step:
    step.static_digest = _static_digest(step, code)
    return step


def _static_digest(step: Step, code=_UNREAD) -> str:
    if step.func is not None:
        if code is _UNREAD:
            code = getattr(step.func, "__code__", None)
        core = code_digest(code) if code is not None else repr(step.func)
    else:
        core = step.analysis.digest
    # options that change what the step computes: only its explicit order
    return f"{core}|after={sorted(step.after)}"


class _StaticDigest:
    """``Step.static_digest`` of a step whose own fields have none: a cell step registered without
    options (cell_step) gets it when it is first read (its run, its registration again), not when it
    is registered: a plan-mode cell is only registered (the digest of its code, and the analysis'
    ``digest``, ~5 us of it). A non-data descriptor: a digest set on the step is the step's."""

    def __get__(self, step, owner=None):
        if step is None:
            return ""  # the field's default (what the class attribute was)
        digest = step.__dict__["static_digest"] = _static_digest(step)
        return digest


Step.static_digest = _StaticDigest()
