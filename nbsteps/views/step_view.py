"""What a ``%%step`` cell's output area shows (SPEC 4, "Each step in its own
cell"): a one-line status, then what the step printed and displayed, in
order, then (when the cell's own ``Out`` does not show them) its result and
its traceback.

One mime bundle, so that one display id keeps it current: ``text/html`` (the
status line, ``<pre>`` blocks for printed text, each display's HTML, images as
``<img>`` with a ``data:`` URI: it renders in untrusted notebooks and without
a kernel) and ``text/plain``. Printed text, errors and the status line are
escaped; a display's own HTML is the step's, shown as ``display()`` would.
"""

from __future__ import annotations

import html
import os
import re

from nbsteps.formatting import fmt_clock, fmt_seconds
from nbsteps.model.status import (
    BLOCKED,
    CANCELLED,
    COMPLETED,
    FAILED,
    KEPT,
    PENDING,
    RESTORED,
    RETRYING,
    RUNNING,
)
from nbsteps.views.static import attempts_failed, store_where

#: printed text shown per stream (the record keeps it all)
SHOWN_TEXT = 20_000
COLOURS = {
    PENDING: "#bbbbbb",
    "confirming": "#d63384",
    RUNNING: "#e0b000",
    RETRYING: "#ff9f1c",
    COMPLETED: "#4caf50",
    "kept": "#81c784",  # completed as this kernel held it (up to date, not run)
    "cached": "#5aa9e6",
    FAILED: "#e53935",
    BLOCKED: "#888888",
    CANCELLED: "#a1887f",
    "stale": "#e08a00",
}
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def _names(names) -> str:
    names = list(names)
    return ", ".join(names) if names else "nothing"


def stale_reason(ctx, name: str) -> str:
    """Why a completed step is stale (after ``plan.refresh_stale()``)."""
    from nbsteps.run.decide.staleness import explained_below, fingerprint_parts
    from nbsteps.run.decide.staleness import stale_reason as why

    for up in ctx.dependencies(name):
        r = ctx.records.get(up)
        if r is not None and r.stale:
            return f"upstream {up} is stale"
    try:
        step = ctx.steps[name]
        return (
            why(
                step,
                fingerprint_parts(ctx, step),
                ctx.store.peek(name),
                ctx.records.get(name),
                explained_below(ctx, name),  # as the run decides
            )
            or "its inputs changed"
        )
    except Exception:  # pragma: no cover - a display must not fail
        return "its code or inputs changed"


#: step -> (its :func:`status_key`, the line made for it) of the last line made for it (not stale)
_LINES: dict = {}
#: entries kept at most (one a step name): all are dropped when it is reached
_LINES_LIMIT = 4096


def status_line(ctx, name: str, rec=None) -> str:
    """One line: pending, running, completed in 2.1 s, failed: ..., restored
    from its checkpoint of 10:42, stale: upstream clean changed. *rec*
    overrides the plan's record of the step. A line whose :func:`status_key` is the one
    the step's last line was made for is that line (a restored cell's line is asked for by
    its output area and by its JupyterLab badge: ~20 us each, the key ~2)."""
    step, rec = ctx.steps.get(name), rec if rec is not None else ctx.records.get(name)
    if step is None or rec is None:
        return f"nbsteps: step {name} is not registered (any more)."
    key = status_key(ctx, name, rec)
    if key is None:  # stale: its reason depends on the steps above it
        return _status_line(ctx, name, step, rec)
    last = _LINES.get(name)
    if last is not None and same_status(last[0], key):
        return last[1]
    line = _status_line(ctx, name, step, rec)
    if len(_LINES) >= _LINES_LIMIT:
        _LINES.clear()
    _LINES[name] = (key, line)  # (the key holds its Step and store: compared by identity, never reused)
    return line


def _status_line(ctx, name: str, step, rec) -> str:
    status = rec.status
    if status == PENDING and rec.confirming:
        return f"? {name} waiting for confirmation: {rec.confirming}"
    if status == PENDING:
        why = f" ({rec.message})" if rec.message else ""
        deps = _names(ctx.dependencies(name))
        return f"○ {name} registered, not run yet{why}; needs {deps}, writes {_names(step.outputs)}"
    if status == RUNNING:
        tries = f" (attempt {rec.attempts} of {step.retry + 1})" if rec.attempts > 1 else ""
        return f"▶ {name} running{tries}…"
    if status == RETRYING:
        return f"↻ {name} attempt {rec.attempts} failed ({rec.error_text}); retrying…"
    if status == COMPLETED:
        outs = f" → {', '.join(rec.outputs)}" if rec.outputs else ""
        tries = f", {rec.attempts} attempts" if rec.attempts > 1 else ""
        if rec.origin == KEPT:  # not run: what it holds is up to date
            since = f" since {fmt_clock(rec.finished)}" if rec.finished else ""
            line = f"✓ {name} kept{outs}"
            if not rec.stale:
                line += f" · up to date (nothing it reads changed{since})"
                line += f" — %%step {name} --force to run it anyway"
        elif rec.cached:
            when = f" of {fmt_clock(rec.finished)}" if rec.finished else ""
            took = f" (it took {fmt_seconds(rec.duration)}{tries})" if rec.duration else ""
            line = f"✓ {name} restored from its checkpoint{when} in {store_where(ctx)}{took}{outs}"
        else:
            at = f" at {fmt_clock(rec.finished)}" if rec.finished else ""
            line = f"✓ {name} completed in {fmt_seconds(rec.duration)}{tries}{at}{outs}{attempts_failed(rec)}"
        if rec.stale:
            line += f" · stale: {stale_reason(ctx, name)}"
        return line
    if status == FAILED:
        tries = f" after {rec.attempts} attempts" if rec.attempts > 1 else ""
        return f"✗ {name} failed{tries}: {rec.error_text}{attempts_failed(rec)}"
    if status in (BLOCKED, CANCELLED):
        return f"– {name} {status}: {rec.message}"
    return f"{name} {status}"  # pragma: no cover


def status_key(ctx, name: str, rec) -> "tuple | None":
    """Everything :func:`status_line` and the colour key read of a step that is not stale,
    by value: two keys that are :func:`same_status` give the same line. None for a stale
    step (its reason depends on the steps above it and on the values it reads). Cheaper
    than the line (~2 against ~20 us): views that redraw every step after each cell keep
    the key of what they drew and skip the steps whose key did not change."""
    if rec is None or rec.stale:
        return None
    restored = rec.origin == RESTORED  # "restored from its checkpoint … in DIR": the store, the cwd
    return (
        ctx.steps.get(name),  # compared by identity: a step registered again is a new Step
        ctx.store if restored else None,  # likewise the store
        (
            os.getcwd() if restored else "",
            tuple(ctx.dependencies(name)),
            str(rec.status),
            rec.confirming,
            rec.message,
            rec.started,
            rec.finished,
            rec.duration,
            rec.origin,
            rec.attempts,
            rec.error_text if rec.error is not None else None,
            rec.attempt_errors,
            tuple(rec.outputs),
        ),
    )


def same_status(old: "tuple | None", new: "tuple | None") -> bool:
    """Whether two :func:`status_key` keys give the same status line (never for None)."""
    return old is not None and new is not None and old[0] is new[0] and old[1] is new[1] and old[2] == new[2]


def _key(ctx, name: str, rec=None) -> str:
    rec = rec if rec is not None else ctx.records.get(name)
    if rec is None:
        return PENDING
    if rec.status == COMPLETED:
        if rec.stale:
            return "stale"
        return ("kept" if rec.origin == KEPT else "cached") if rec.cached else COMPLETED
    if rec.status == PENDING and rec.confirming:
        return "confirming"
    return str(rec.status)


def clean_text(text: str, limit: int = SHOWN_TEXT) -> str:
    """Printed text as a terminal would leave it: no colour codes, a ``\\r``
    rewrites its line; only the last *limit* characters."""
    text = _ANSI.sub("", text)
    if "\r" in text:
        text = "\n".join(
            next((seg for seg in reversed(line.split("\r")) if seg), "") for line in text.split("\n")
        )
    if len(text) > limit:
        cut = text[-limit:]
        cut = cut[cut.find("\n") + 1 :] if "\n" in cut[:200] else cut
        hidden = text[: len(text) - len(cut)].count("\n") + 1
        text = f"[… {hidden} earlier lines not shown: nbsteps.step(...).stdout has them]\n" + cut
    return text


def _pre(text: str, cls: str, style: str = "") -> str:
    return (
        f'<pre class="{cls}" style="margin:2px 0;padding:2px 4px;white-space:pre-wrap;'
        f'font-size:12px;{style}">{html.escape(text)}</pre>'
    )


def display_html(item: dict) -> str:
    """One captured display as HTML: its own HTML, an image, or its text."""
    data = item.get("data", {}) if isinstance(item, dict) else {}
    if isinstance(data.get("text/html"), str):
        return f'<div class="nbsteps-display">{data["text/html"]}</div>'
    for mime in _IMAGES:
        if isinstance(data.get(mime), str):
            src = "".join(data[mime].split())
            return (
                f'<div class="nbsteps-display"><img class="nbsteps-figure" alt="figure" '
                f'src="data:{mime};base64,{html.escape(src, quote=True)}"></div>'
            )
    if isinstance(data.get("image/svg+xml"), str):
        import base64

        src = base64.b64encode(data["image/svg+xml"].encode("utf-8")).decode("ascii")
        return (
            '<div class="nbsteps-display"><img class="nbsteps-figure" alt="figure" '
            f'src="data:image/svg+xml;base64,{src}"></div>'
        )
    text = next(
        (data[m] for m in ("text/markdown", "text/latex", "text/plain") if isinstance(data.get(m), str)), ""
    )
    return _pre(text, "nbsteps-display") if text else ""


def step_bundle(
    ctx,
    name: str,
    *,
    output=None,
    result: dict | None = None,
    traceback: bool = True,
    status: "tuple[str, str] | None" = None,
    record=None,
) -> dict:
    """The mime bundle of *name*'s cell. *output* overrides the record's
    captured output (the live output of a running step); *result* is the
    result's mime bundle to show (None: not shown); *traceback* shows a
    failed step's traceback; *status* overrides the (colour key, line);
    *record* the plan's record of the step."""
    rec = record if record is not None else ctx.records.get(name)
    items = tuple(output if output is not None else (rec.output if rec is not None else ()))
    key, line = status if status is not None else (_key(ctx, name, rec), status_line(ctx, name, rec))
    parts = [
        f'<div class="nbsteps-status nbsteps-{key}" style="font-family:monospace;font-size:12px;'
        f"padding:1px 6px;border-left:4px solid {COLOURS.get(key, '#bbbbbb')};"
        f'background-color:#f7f7f7">{html.escape(line)}</div>'
    ]
    plain = [line]
    for kind, payload in items:
        if kind in ("stdout", "stderr"):
            text = clean_text(str(payload))
            plain.append(text.rstrip("\n"))
            style = "background-color:#fdecea" if kind == "stderr" else ""
            parts.append(_pre(text.rstrip("\n"), f"nbsteps-{kind}", style))
        elif kind == "display":
            parts.append(display_html(payload))
            text = (payload.get("data", {}) if isinstance(payload, dict) else {}).get("text/plain")
            if isinstance(text, str):
                plain.append(text)
    if result:
        parts.append(display_html({"data": result}).replace("nbsteps-display", "nbsteps-result", 1))
        if isinstance(result.get("text/plain"), str):
            plain.append(result["text/plain"])
    if traceback and rec is not None and rec.status == FAILED and rec.traceback:
        tb = clean_text(rec.traceback)
        parts.append(_pre(tb.rstrip("\n"), "nbsteps-traceback", "background-color:#fdecea"))
        plain.append(tb.rstrip("\n"))
    return {
        "text/html": f'<div class="nbsteps-step-output" data-step="{html.escape(name, quote=True)}">'
        f"{''.join(parts)}</div>",
        "text/plain": "\n".join(p for p in plain if p),
    }


# -- one output per item, as Run All shows them ---------------------------------------
def item_bundles(items, result: dict | None = None, traceback: str | None = None) -> list[tuple[dict, dict]]:
    """What Run All would show below a cell, one ``(data, metadata)`` output
    per item: printed text (consecutive writes are one output, as Jupyter
    merges a stream), each display as it was (a figure keeps its
    ``image/png``), the result where the items have it (before the figures
    left open at the end, as a notebook shows ``Out``), else *result* after
    them, then the traceback."""
    out: list[tuple[dict, dict]] = []
    for kind, payload in items or ():
        if kind == "stdout":
            out.append(({"text/plain": clean_text(str(payload)).rstrip("\n")}, {}))
        elif kind == "stderr":
            text = clean_text(str(payload)).rstrip("\n")
            out.append(
                (
                    {
                        "text/plain": text,
                        "text/html": _pre(text, "nbsteps-stderr", "background-color:#fdecea"),
                    },
                    {},
                )
            )
        elif kind in ("display", "result") and isinstance(payload, dict):
            out.append((dict(payload.get("data") or {}), dict(payload.get("metadata") or {})))
    if result and not any(kind == "result" for kind, _ in items or ()):
        out.append((dict(result), {}))
    if traceback:
        tb = clean_text(traceback).rstrip("\n")
        out.append(
            ({"text/plain": tb, "text/html": _pre(tb, "nbsteps-traceback", "background-color:#fdecea")}, {})
        )
    return out


#: what an unused output slot of a step cell holds (renders as nothing)
EMPTY = {"text/plain": ""}


def fit_slots(bundles: list[tuple[dict, dict]], n: int) -> list[tuple[dict, dict]]:
    """*bundles* in exactly *n* slots: unused slots empty; when there are more
    outputs than slots, the last slot shows the rest together (as HTML)."""
    if n <= 0:
        return []
    if len(bundles) <= n:
        return list(bundles) + [(dict(EMPTY), {})] * (n - len(bundles))
    head, tail = list(bundles[: n - 1]), bundles[n - 1 :]
    merged = {
        "text/html": "".join(display_html({"data": data}) for data, _ in tail),
        "text/plain": "\n".join(
            data.get("text/plain", "") for data, _ in tail if isinstance(data.get("text/plain"), str)
        ),
    }
    return head + [(merged, {})]


#: output slots a step cell reserves when it only registers its step: at least, at most
MIN_SLOTS, MAX_SLOTS = 2, 40
_SHOWS = re.compile(
    r"\b(print|display|show|savefig|figure|subplots?|subplot_mosaic|plot\w*|imshow|matshow|"
    r"scatter|hist\w*|barh?|pcolormesh|contourf?|fill_between|errorbar|boxplot|violinplot|pie|"
    r"stem|step|heatmap|\w+plot|describe|summary|head|tail)\s*\("
)
_LOOP = re.compile(r"^\s*(for|while)\b|\bfor\b.+\bin\b", re.M)


def reserve(source: str, known: int = 0, has_result: bool = False) -> int:
    """How many output slots a step cell reserves when it only registers its
    step (plan mode): its outputs arrive later, through display ids, and a
    cell cannot add outputs after it ran. *known*: outputs of an earlier run
    of the step. A guess from the calls that show things (more in a loop)
    and the result, plus one spare (a library's warning); a step that shows
    more than that has the rest shown together in the last slot."""
    calls = len(_SHOWS.findall(source or ""))
    guess = calls * (4 if _LOOP.search(source or "") else 1) + bool(has_result) + 1
    return max(MIN_SLOTS, min(MAX_SLOTS, max(guess, known + 1)))
