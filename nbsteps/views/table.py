"""The results table (SPEC 4): one row per step in plan order, as a pandas
DataFrame, and its exports by file suffix (.csv .json .parquet .html).
All HTML escapes user text (step errors and results are user data)."""
from __future__ import annotations

import datetime as _dt
import html
import os
import reprlib

#: the export formats, by file suffix (also what `nbsteps run --results` accepts)
EXPORT_SUFFIXES = (".csv", ".json", ".parquet", ".html", ".htm")

COLUMNS = ["step", "status", "cached", "stale", "attempts", "started", "finished", "duration_s",
           "outputs", "result", "error"]

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80


def _when(ts):
    return _dt.datetime.fromtimestamp(ts) if ts else None


def short_repr(value, has: bool = True) -> str:
    if not has:
        return ""
    try:
        text = _repr.repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return " ".join(text.split())


def rows(plan, refresh: bool = True) -> list[dict]:
    """One dict per step; *refresh* recomputes stale flags first (not mid-run)."""
    if refresh:
        plan.refresh_stale()
    out = []
    for name in plan.order():
        r = plan.records[name]
        out.append({
            "step": name,
            "status": r.status,
            "cached": bool(r.cached),
            "stale": bool(r.stale),
            "attempts": int(r.attempts),
            "started": _when(r.started),
            "finished": _when(r.finished) if r.status in ("completed", "failed") else None,
            "duration_s": round(r.duration, 6) if r.duration is not None else None,
            "outputs": ", ".join(r.outputs) if r.ok else "",
            # a result restored from a directory store and not read yet is not read for the table
            "result": short_repr(r.result, r.has_result and r.ok) if r.result_loaded else "(on disk, not read yet)",
            "error": r.error_text,
        })
    return out


def results_frame(plan):
    import pandas as pd

    df = pd.DataFrame(rows(plan), columns=COLUMNS)
    for col in ("started", "finished"):
        df[col] = pd.to_datetime(df[col])
    return df


def html_table(plan, refresh: bool = True) -> str:
    """A self-contained HTML table, every cell escaped."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = []
    for row in rows(plan, refresh):
        cells = "".join(
            f"<td>{html.escape('' if row[c] is None else str(row[c]))}</td>" for c in COLUMNS
        )
        body.append(f'<tr class="nbsteps-{html.escape(row["status"])}">{cells}</tr>')
    return (
        '<table class="nbsteps-results" border="1">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def export(plan, path) -> str:
    """Write the results table to *path*; the format follows the suffix."""
    from nbsteps.errors import NbstepsError

    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in EXPORT_SUFFIXES:
        raise NbstepsError(f"cannot export to {path!r}: use a .csv, .json, .parquet or .html file name.")
    df = results_frame(plan)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".json":
        df.to_json(path, orient="records", date_format="iso", indent=1)
    elif suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write("<!doctype html><meta charset='utf-8'><title>nbsteps results</title>\n")
            f.write(html_table(plan))
    return path
