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
