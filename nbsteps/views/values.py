"""Short, readable summaries of step results for tables and status lines:
the type, the shape, a few values. ``np.float64(16880.9)`` reads ``16880.9``,
a frame ``DataFrame 1000×5 (region, amount, ...)``, a long list
``list of 120: [1, 2, 3, …]``. Never raises; never cuts a word in half.
"""

from __future__ import annotations

import reprlib

LIMIT = 80

_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxdict = 4
_repr.maxlevel = 2


def _cut(text: str, limit: int = LIMIT) -> str:
    """One line, at most *limit* characters, cut at a word or comma boundary."""
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    space = max(head.rfind(" "), head.rfind(","))
    if space > limit // 2:
        head = head[:space].rstrip(",")
    return head + "…"


def _names(names, limit: int = 4) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit])
    return shown + (", …" if len(names) > limit else "")


def _scalar(value):
    """A numpy scalar as the Python number it holds (``np.float64(2.5)`` -> ``2.5``)."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) == () and type(value).__module__ == "numpy":
        try:
            return item()
        except Exception:
            return value
    return value


def _container(value, depth: int = 0) -> str:
    """Small containers element by element (numpy scalars read as numbers)."""
    if depth > 1:
        return "…"
    items = list(value.items() if isinstance(value, dict) else value)[:4]
    more = ", …" if len(value) > 4 else ""

    def one(v):
        if isinstance(v, (list, tuple, set, frozenset, dict)):
            return _container(v, depth + 1)
        return _cut(_summary(v), 30)

    if isinstance(value, dict):
        body = ", ".join(f"{one(k)}: {one(v)}" for k, v in items)
        return "{" + body + more + "}"
    body = ", ".join(one(v) for v in items)
    if isinstance(value, tuple):
        return "(" + body + ("," if len(value) == 1 else "") + more + ")"
    if isinstance(value, list):
        return "[" + body + more + "]"
    return "{" + body + more + "}" if value else f"{type(value).__name__}()"


def summarize(value, limit: int = LIMIT) -> str:
    """A one-line summary of *value* (see the module docstring)."""
    try:
        return _cut(_summary(value), limit)
    except Exception:
        return f"<{type(value).__name__}>"


def _summary(value) -> str:
    value = _scalar(value)
    kind = type(value)
    module = kind.__module__.split(".")[0]
    if value is None or isinstance(value, (bool, int, float, complex)):
        return repr(value)
    if isinstance(value, str):
        return _cut(repr(value), 60) + ("'" if len(repr(value)) > 60 else "")
    if module == "pandas":
        shape = getattr(value, "shape", None)
        if kind.__name__ == "DataFrame" and shape is not None:
            return f"DataFrame {shape[0]}×{shape[1]} ({_names(value.columns)})"
        if kind.__name__ == "Series" and shape is not None:
            name = f" {value.name}" if value.name is not None else ""
            head = value.head(3)
            labelled = type(head.index).__name__ != "RangeIndex"
            shown = ", ".join(
                (f"{_cut(str(k), 20)}={_summary(v)}" if labelled else _summary(v))
                for k, v in zip(head.index, head.tolist(), strict=True)
            )
            return f"Series{name} ({len(value)}): {shown}{', …' if len(value) > 3 else ''}"
        if shape is not None:
            return f"{kind.__name__} {'×'.join(str(d) for d in shape)}"
    if module == "numpy" and hasattr(value, "shape") and hasattr(value, "dtype"):
        shape = "×".join(str(d) for d in value.shape) or "scalar"
        flat = value.ravel()[:4].tolist() if value.size else []
        values = ", ".join(_summary(v) for v in flat) + (", …" if value.size > 4 else "")
        return f"array {shape} {value.dtype}: [{values}]"
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        text = _container(value)
        return f"{kind.__name__} of {len(value)}: {text}" if len(value) > 4 else text
    text = _repr.repr(value)
    if " at 0x" in text:  # <Foo object at 0x7f...>: the type is what helps
        return f"<{kind.__module__}.{kind.__qualname__}>"
    return text
