"""How nbsteps writes times for people: one duration formatter, one clock format.

Every view (text lines, plan preview, graph tooltips, live view, results table,
status) uses these, so the same duration reads the same everywhere.
"""

from __future__ import annotations

import math
import time


def fmt_seconds(seconds, missing: str = "?") -> str:
    """``<1 ms``, ``340 ms``, ``2.35 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if seconds is None:
        return missing
    try:
        seconds = float(seconds)
    except (TypeError, ValueError):
        return missing
    if not math.isfinite(seconds):
        return missing
    if seconds < 0.001:
        return "<1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min {rest:02d} s"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours} h {rest:02d} min"


def fmt_clock(timestamp, missing: str = "") -> str:
    """A ``time.time()`` value as local ``HH:MM:SS`` (no microseconds)."""
    if timestamp is None:
        return missing
    return time.strftime("%H:%M:%S", time.localtime(timestamp))


_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


#: the largest size a limit may have: 1 EB (past it, say 'none')
MAX_SIZE = 10**18


def parse_size(value) -> "int | None":
    """Bytes from ``2GB``, ``500 MB``, ``1.5GiB``, ``10000`` (decimal units,
    ``KiB``/``MiB``/``GiB`` binary); ``None``, ``none``, ``unlimited``: no
    limit. Raises ValueError with a message saying what is accepted."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number, unit = float(value), ""
        except OverflowError:  # an int beyond any float: too large, said below
            number, unit = float(MAX_SIZE), ""
    else:
        text = str(value).strip().lower().replace("_", "")
        if text in ("none", "unlimited", "inf"):
            return None
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
        unit = text[len(digits) :].strip() if text.startswith(digits) else "?"
        try:
            number = float(digits)
        except ValueError:
            number, unit = float("nan"), "?"
    if unit not in _UNITS or not math.isfinite(number) or number <= 0:
        raise ValueError(
            f"invalid size {value!r}: use a positive number of bytes with an optional unit "
            f"(500MB, 2GB, 1.5GiB) or 'none' for no limit"
        )
    size = number * _UNITS[unit]
    if not size < MAX_SIZE:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:30] + "..."
        raise ValueError(f"size {shown} is too large (the largest is 1 EB): use 'none' for no limit")
    return int(size)


def fmt_bytes(n) -> str:
    """``512 B``, ``3.2 MB``, ``10 GB`` (decimal units, as parse_size reads them)."""
    n = float(n)
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


# -- user text (error messages, option texts) --------------------------------------
def clean_text(text: str) -> str:
    """*text* with lone surrogates (``'\\udcff'``, from a file name that is not
    UTF-8) written as ``\\udcff``: every file format, terminal and Jupyter
    message can carry the result."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def safe_str(value) -> str:
    """``str(value)``, never raising (a user exception whose ``__str__``
    fails gives ``<unprintable ValueError>``), with lone surrogates escaped."""
    try:
        text = str(value)
    except Exception:
        return f"<unprintable {_type_name(value)}>"
    return clean_text(text)


def error_text(exc: BaseException) -> str:
    """``ValueError: message`` (or just the type name when the message is
    empty), for any exception, whatever its ``__str__`` does."""
    name = _type_name(exc)
    try:
        text = str(exc)
    except Exception:
        return f"<unprintable {name}>"
    text = clean_text(text)
    return f"{name}: {text}" if text else name


def _type_name(value) -> str:
    try:
        return clean_text(str(type(value).__name__))
    except Exception:  # pragma: no cover - a metaclass with a failing __name__
        return "object"
