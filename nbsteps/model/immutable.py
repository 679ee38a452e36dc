"""Values that cannot change in place (SPEC 1, "Observed, not guessed": immutable values are never writes).

The analysis predicts that a cell changes a name from how the name is used (``split(X,
random_state=SEED)``, ``f(n)`` with its result unused); it cannot see the value. Where the value is
known (the namespace when a step is registered, the actual input when an attempt starts), an
immutable one voids the prediction: the step only reads the name. No copy is made and the name is not
an output, so the version above it (or the notebook's parameter) stays the one readers get.

Immutable here is structural, by exact type: ``None``, ``bool``, ``int``, ``float``, ``complex``,
``str``, ``bytes``, ``range``, ``Ellipsis``, and ``tuple``/``frozenset``/frozen dataclasses whose items
(fields) are all immutable. A subclass of ``int``
may carry a mutable ``__dict__``: it is not immutable.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis)})
_MAX_ITEMS = 10_000


def is_immutable(value: Any) -> bool:
    """Whether nothing reachable from *value* can be changed in place (see the module doc)."""
    stack, seen = [value], 0
    while stack:
        v = stack.pop()
        seen += 1
        if seen > _MAX_ITEMS:
            return False
        t = type(v)
        if t in _ATOMS:
            continue
        if t is tuple or t is frozenset:
            stack.extend(v)
        elif _frozen_dataclass(t):
            names = [f.name for f in dataclasses.fields(v)]
            if set(getattr(v, "__dict__", ())) - set(names):
                return False  # an attribute set past the fields (object.__setattr__)
            try:
                stack.extend(getattr(v, n) for n in names)
            except AttributeError:
                return False
        else:
            return False
    return True


def _frozen_dataclass(t: type) -> bool:
    params = getattr(t, "__dataclass_params__", None)
    return params is not None and params.frozen and dataclasses.is_dataclass(t)
