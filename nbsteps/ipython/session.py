"""The notebook's plan: ``nbsteps.current()`` and friends.

One plan per process. With IPython it publishes into the shell's user
namespace and summaries say ``%steps run``; without, it is a plain Plan.
"""

from __future__ import annotations

import weakref

from nbsteps import config
from nbsteps.formatting import fmt_seconds
from nbsteps.model.status import COMPLETED
from nbsteps.plan import Plan

_plan: Plan | None = None
_mode = "interactive"


def current() -> Plan:
    """The notebook's plan (created on first use)."""
    global _plan
    if _plan is None:
        _plan = Plan()
        try:
            from IPython import get_ipython  # only if IPython is already running
        except ImportError:  # pragma: no cover
            return _plan
        ip = get_ipython()
        if ip is not None:
            bind(ip)
    return _plan


def bind(ip) -> Plan:
    """Publish into *ip*'s user namespace; summaries suggest %steps run.
    Values restored from a directory store are read when a cell uses them
    (see :mod:`nbsteps.ipython.lazy`)."""
    global _plan
    if _plan is None:
        _plan = Plan(namespace=ip.user_ns)
    _plan.namespace = ip.user_ns
    _plan.resume_hint = config.resume_hint("%steps run")
    _plan.lazy_publish = True
    _plan.lazy_settle = True  # replays for the state a run ends with wait for a cell (ipython.lazy)
    _plan.background_commits = True  # checkpoints are made durable while the next cells run
    _watch_cells(ip)
    return _plan


_watched: set = set()


def _watch_cells(ip) -> None:
    """Register (once per shell) the hook that reads deferred values a cell uses."""
    if id(ip) in _watched:
        return
    from nbsteps.ipython.lazy import before_cell_hook

    ip.events.register("pre_run_cell", before_cell_hook(lambda: _plan))
    _watched.add(id(ip))


def new_plan(**kw) -> Plan:
    """Replace the notebook's plan with an empty one (tests, fresh starts)."""
    global _plan, _mode
    old = _plan
    _plan, _mode = None, "interactive"
    if old is not None and old.deferred:  # what the old plan restored stays usable
        old.load()
    plan = current()
    if kw.get("store") is not None:
        plan.store = kw["store"]
    return plan


#: (the cell's ExecutionResult, the plan) of the last :func:`refresh_after_cell`, weakly held
_refreshed: tuple = (lambda: None, lambda: None)


def refresh_after_cell(plan: Plan, result=None) -> None:
    """``plan.refresh_stale()`` after a cell (``post_run_cell``), once per cell: the
    JupyterLab badges (:mod:`nbsteps.ipython.lab`) and the step cells
    (:mod:`nbsteps.ipython.cells`) both draw the stale flags after a cell, one hook after
    the other with nothing run between them. *result*: the cell's ``ExecutionResult``
    (None: refresh anyway)."""
    global _refreshed
    cell, done = _refreshed
    if result is not None and cell() is result and done() is plan:
        return
    plan.refresh_stale()
    try:
        _refreshed = (
            (weakref.ref(result), weakref.ref(plan)) if result is not None else (lambda: None, lambda: None)
        )
    except TypeError:  # pragma: no cover - a result that cannot be weakly referenced
        _refreshed = (lambda: None, lambda: None)


def mode() -> str:
    return _mode


def set_mode(mode: str) -> None:
    global _mode
    _mode = mode


def step(name: str):
    """``nbsteps.step(name)``: the record of a step of the notebook's plan."""
    return current()[name]


def status_text(plan: Plan) -> str:
    if not plan.steps:
        return "nbsteps: no steps registered yet (use %%step NAME in a cell)."
    lines = []
    plan.refresh_stale()
    for name in plan.order():
        r = plan.records[name]
        flags = "".join(f" [{f}]" for f, on in ((r.origin, r.cached), ("stale", r.stale)) if on)
        dur = f" {fmt_seconds(r.duration)}" if r.duration is not None and r.ok else ""
        err = f" — {r.error_text}" if r.error_text else ""
        tries = f" ({r.attempts} attempts)" if r.attempts > 1 else ""
        lines.append(f"  {name}: {r.status}{flags}{dur}{tries}{err}")
    head = f"nbsteps: {len(plan.steps)} steps, store {plan.store.describe()}"
    tail = f"last run: {plan.last_summary.text}" if plan.last_summary else "not run yet"
    return "\n".join([head, *lines, tail, *pending_replays_text(plan)])


def pending_replays_text(plan: Plan) -> list[str]:
    """The line saying which restored steps will be replayed for the process state Run All
    leaves (``plan.pending_replays``, settled before the next cell that is not a ``%%step``
    cell: :mod:`nbsteps.ipython.lazy`), or no line. Listed: those still completed as restored
    (a step edited, reset or failed since is left to its own run)."""
    pending = plan.pending_replays
    if not pending:
        return []
    records = plan.records
    names = [
        s
        for s in plan.order()
        if s in pending and records.get(s) is not None and records[s].status == COMPLETED
    ]
    if not names:
        return []
    which = ", ".join(f"{s} ({', '.join(pending[s])})" if pending[s] else s for s in names)
    n = len(names)
    return [
        f"pending: {n} restored step{'s' if n != 1 else ''} will be replayed for the process state "
        f"Run All leaves, before the next cell that is not a %%step cell: {which}"
    ]
