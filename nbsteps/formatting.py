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
