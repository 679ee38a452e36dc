"""A checkpoint: the outputs and result of one completed step, with the
fingerprint of everything that determined them.

A checkpoint read from a directory store may hold its values as
:class:`LazyValues`: the names are known, each value is read (and verified) the
first time it is asked for, and only once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


class _Lazy:
    def __repr__(self) -> str:
        return "<not loaded yet>"


#: placeholder of a result that is loaded on first access (see StepRecord.result)
LAZY: Any = _Lazy()


class LazyValues(Mapping):
    """Output values loaded on first access, each at most once.

    ``load(name)`` returns the value of output *name* (``None``: the result);
    it is called at most once per value. Iterating, ``len`` and ``in`` never
    load anything. ``dict(lazy)`` or ``namespace.update(lazy)`` load everything.
    """

    __slots__ = (
        "_names",
        "_load",
        "_values",
        "_lock",
        "_result_is",
        "has_result",
        "describe",
        "sizes",
        "_adapt",
    )

    def __init__(
        self,
        names: "list[str]",
        load: Callable[["str | None"], Any],
        *,
        has_result: bool = False,
        result_is: "str | None" = None,
        describe: str = "",
        sizes: "dict | None" = None,
    ) -> None:
        self._names = tuple(names)
        self._load = load
        self._values: dict = {}
        self._lock = threading.Lock()
        self._result_is = result_is
        self.has_result = has_result
        self.describe = describe  # where the values come from, for messages
        #: bytes on disk of each value (``None``: the result), when the store knows them
        self.sizes = sizes or {}
        self._adapt: "Callable[[Any], Any] | None" = None

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            if name not in self._names:
                raise
        return self._get(name)

    def _get(self, name: "str | None") -> Any:
        key = name if name is not None else _RESULT
        with self._lock:  # one load per value, even when two threads ask at once
            if key not in self._values:
                value = self._load(name)
                if self._adapt is not None and name is not None:
                    value = self._adapt(value)
                self._values[key] = value
            return self._values[key]

    def adapt(self, fn: "Callable[[Any], Any]") -> None:
        """Each output value, when read (and those read already), is what *fn* makes of it (the
        notebook functions of a restored checkpoint bound to the kernel's namespace)."""
        with self._lock:
            self._adapt = fn
            for key, value in list(self._values.items()):
                if key is not _RESULT:
                    self._values[key] = fn(value)

    def replace(self, name: str, value: Any) -> None:
        """Output *name* is *value* from now on (a value read again: nbsteps.run.observed_writes)."""
        with self._lock:
            self._values[name] = value

    def result(self) -> Any:
        """The checkpoint's result (loaded on first call)."""
        if not self.has_result:
            return None
        if self._result_is is not None:
            return self[self._result_is]
        return self._get(None)

    @property
    def result_size(self) -> "int | None":
        """Bytes on disk of the result (``None``: unknown); the table reads a small one."""
        return self.sizes.get(self._result_is if self._result_is is not None else None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def loaded(self, name: str) -> bool:
        return name in self._values

    @property
    def complete(self) -> bool:
        """Whether every output is loaded already."""
        return all(n in self._values for n in self._names)

    def __repr__(self) -> str:
        shown = ", ".join(f"{n}{'' if n in self._values else ' (not loaded)'}" for n in self._names)
        return f"<LazyValues {shown}>"


_RESULT = object()


@dataclass(init=False)
class Checkpoint:
    """Outputs and result of one completed step, with what determined them.

    ``outputs`` is a dict, or :class:`LazyValues` (then ``result`` is
    :data:`LAZY`, resolved through ``outputs.result()``)."""

    step: str
    fingerprint: str
    outputs: "dict[str, Any] | LazyValues"
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

    def __init__(
        self,
        step: str,
        fingerprint: str,
        outputs: "dict[str, Any] | LazyValues",
        result: Any = None,
        has_result: bool = False,
        parts: "dict[str, Any] | None" = None,
        duration: float = 0.0,
        finished: float = 0.0,
        started: float = 0.0,
        attempts: int = 0,
        output: tuple = (),
    ) -> None:
        # (written out, not generated: the dataclass's __init__ and __post_init__ were two
        # Python calls for every step a run completes)
        self.step, self.fingerprint, self.outputs = step, fingerprint, outputs
        # (the cheap tests first: LazyValues is an ABC, its isinstance a Python call)
        if result is None and has_result and isinstance(outputs, LazyValues):
            result = LAZY
        self.result, self.has_result = result, has_result
        self.parts = {} if parts is None else parts
        self.duration, self.finished, self.started = duration, finished, started
        self.attempts, self.output = attempts, output

    def value_of_result(self) -> Any:
        """The result, loading it if it is lazy."""
        if self.result is LAZY:
            return self.outputs.result()  # type: ignore[union-attr]
        return self.result
