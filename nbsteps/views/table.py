"""The results table (SPEC 4): one row per step in plan order, as a pandas
DataFrame, and its exports by file suffix (.csv .json .parquet .html).
All HTML escapes user text (step errors and results are user data)."""

from __future__ import annotations

import datetime as _dt
import html
import os

from nbsteps.files import atomic_write
from nbsteps.formatting import clean_text, fmt_seconds
from nbsteps.run.context import RunContext
from nbsteps.views.values import summarize

#: the export formats, by file suffix (also what `nbsteps run --results` accepts)
EXPORT_SUFFIXES = (".csv", ".json", ".parquet", ".html", ".htm")

COLUMNS = [
    "step",
    "status",
    "origin",
    "cached",
    "stale",
    "attempts",
    "started",
    "finished",
    "duration_s",
    "outputs",
    "result",
    "error",
]
#: what the HTML table shows (durations as text, the rest as in COLUMNS)
HTML_COLUMNS = [
    "step",
    "status",
    "origin",
    "stale",
    "attempts",
    "started",
    "finished",
    "duration",
    "outputs",
    "result",
    "error",
]


def _when(ts):
    """A timestamp to the second (no microseconds)."""
    return _dt.datetime.fromtimestamp(int(ts)) if ts else None


def short_repr(value, has: bool = True) -> str:
    """The result summary of the table: type, shape, a few values (nothing
    for ``None``, which a notebook does not show as ``Out`` either)."""
    return clean_text(summarize(value)) if has and value is not None else ""


#: a result restored from a directory store up to this size is read for the table (else it says so)
EAGER_RESULT_BYTES = 1 << 20


def _result_text(r) -> str:
    """The result column: a short summary; a restored result is read when it is small."""
    if not (r.ok and r.has_result):
        return ""
    if not r.result_loaded:
        size = getattr(r.outputs, "result_size", None)
        if size is None or size > EAGER_RESULT_BYTES:
            return "(on disk, not read yet)"
        try:
            r.result  # noqa: B018 - small: read now, so that the saved table shows it
        except Exception:
            return "(on disk, could not be read)"
    return short_repr(r.result, True)


def rows(ctx: RunContext, session: bool = False) -> list[dict]:
    """One dict per step, in plan order (stale flags as the records have them). A step
    not settled in the current run (pending) shows nothing of an earlier run. *session*:
    the run is the whole kernel session (``nbsteps run``): a step kept says how it came."""
    out = []
    for name in ctx.order():
        r = ctx.records[name]
        now = r.status != "pending"
        origin = (r.origin_in_session if session else r.origin) if r.ok else ""
        out.append(
            {
                "step": name,
                "status": r.status,
                "origin": origin,
                "cached": origin in ("kept", "restored"),
                "stale": bool(r.stale),
                "attempts": int(r.attempts) if now else 0,
                "started": _when(r.started) if now else None,
                "finished": _when(r.finished) if r.status in ("completed", "failed") else None,
                "duration_s": round(r.duration, 3) if r.duration is not None and now else None,
                "duration": fmt_seconds(r.duration, missing="")
                if r.duration is not None and r.status in ("completed", "failed")
                else "",
                "outputs": clean_text(", ".join(r.outputs)) if r.ok else "",
                "result": _result_text(r),
                "error": r.error_text,
                "confirming": r.confirming
                if r.status == "pending"
                else "",  # not a column: the HTML shows it
            }
        )
    return out


def results_frame(ctx, session: bool = False):
    import pandas as pd

    df = pd.DataFrame(rows(ctx, session), columns=COLUMNS)
    for col in ("started", "finished"):
        df[col] = pd.to_datetime(df[col])
    return df


def html_table(ctx: RunContext, session: bool = False) -> str:
    """A self-contained HTML table, every cell escaped."""
    head = "".join(
        f'<th style="text-align:left">{html.escape(c)}</th>'
        if c in _TEXT_COLUMNS
        else f"<th>{html.escape(c)}</th>"
        for c in HTML_COLUMNS
    )
    body = []
    for row in rows(ctx, session):
        key = "stale" if row["stale"] else row["status"]
        if not row["stale"] and row["status"] == "completed" and row["cached"]:
            key = "kept" if row["origin"] == "kept" else "cached"
        if row["confirming"]:
            key, row["status"] = "confirming", "waiting for confirmation"
        cells = []
        for c in HTML_COLUMNS:
            text = html.escape(_cell(row[c]))
            if c == "status":
                status = text + (" (stale)" if row["stale"] else "")
                if row["confirming"]:
                    status += f"<br><small>{html.escape(_cell(row['confirming']))}</small>"

                cells.append(f'<td style="background-color:{_STATUS_FILL.get(key, "#ffffff")}">{status}</td>')
            elif c in _TEXT_COLUMNS:  # words read from the left (notebook CSS right-aligns cells)
                cells.append(f'<td style="text-align:left">{text}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        classes = f"nbsteps-{html.escape(key if key == 'confirming' else row['status'])}" + (
            " nbsteps-stale" if row["stale"] else ""
        )
        step = html.escape(row["step"], quote=True)
        body.append(f'<tr class="{classes}" data-step="{step}">{"".join(cells)}</tr>')
    return (
        '<table class="nbsteps-results" border="1" style="border-collapse:collapse">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


_TEXT_COLUMNS = frozenset({"step", "outputs", "result", "error"})
#: the status cell's colour, as in the graph
_STATUS_FILL = {
    "pending": "#f4f4f4",
    "running": "#ffe66d",
    "retrying": "#ffb347",
    "completed": "#8fd694",
    "kept": "#c5e8c7",
    "cached": "#a9d6ff",
    "stale": "#f1ecc8",
    "failed": "#ff6b6b",
    "blocked": "#b8b8b8",
    "cancelled": "#d7ccc8",
    "confirming": "#f8d3ec",
}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, _dt.datetime):
        return (
            value.strftime("%H:%M:%S")
            if value.date() == _dt.date.today()
            else value.strftime("%Y-%m-%d %H:%M:%S")
        )
    return str(value)


def export(ctx, path, session: bool = False) -> str:
    """Write the results table to *path*; the format follows the suffix. *session*: see :func:`rows`."""
    from nbsteps.errors import NbstepsError

    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in EXPORT_SUFFIXES:
        raise NbstepsError(f"cannot export to {path!r}: use a .csv, .json, .parquet or .html file name.")
    df = results_frame(ctx, session)
    # atomic: the previous file stays whole on any failure (see nbsteps.files)
    if suffix == ".parquet":
        with atomic_write(path, "wb") as f:
            df.to_parquet(f, index=False)
    else:
        with atomic_write(path, "w") as f:
            if suffix == ".csv":
                df.to_csv(f, index=False)
            elif suffix == ".json":
                df.to_json(f, orient="records", date_format="iso", indent=1)
            else:
                f.write("<!doctype html><meta charset='utf-8'><title>nbsteps results</title>\n")
                f.write(html_table(ctx, session))
    return path
