"""The kernel side of nbsteps' JupyterLab extension (``labextension/``).

``%load_ext nbsteps`` registers the comm target ``nbsteps``. Every tab of a
notebook that has the extension opens a comm to it when it connects to the
kernel (a reloaded page, a second tab, a reopened notebook: each its own
comm); loading the extension also opens one from the kernel, for the tabs
that were already connected. Comm messages travel on the kernel's IOPub
channel, which every connected tab reads, and the extension takes any message
marked ``"nbsteps": 1`` whichever comm it came on: so the kernel sends each
message once, on one of the comms, whatever the number of tabs:

- ``{"type": "state", "full": true, "cells": {CELL_ID: STATE}, "unbound": {STEP: STATE}}``
  when it opens: every step's state, keyed by the id of the ``%%step`` cell
  that registered it (``unbound``: steps registered without a cell id, e.g.
  by ``Plan.add`` in code; the frontend matches those by the cell's source);
- the same with ``"full": false`` and only what changed, after the executor's
  events of a step (:mod:`nbsteps.run.events`; what changes within
  :data:`INTERVAL` goes together) and after each cell (a cell registers a
  step, or an edit upstream makes steps stale);
- ``{"type": "panel", "html": ...}``: the plan's views (progress, graph,
  timeline, table: :func:`nbsteps.views.static.static_bundle`, its timeline as
  rows for the sidebar's width, :func:`nbsteps.views.timeline.timeline_rows_html`; and each
  step's log, :func:`nbsteps.views.step_log.step_log_html`) when a comm asks
  (``{"type": "panel"}``) and, for the comms that asked once, when a run
  ends or a cell changed the plan (at most every :data:`PANEL_INTERVAL`
  seconds during a run).

Every message carries ``nbsteps`` (:data:`PROTOCOL`), ``now`` (below) and
``kernel``: the kernel process, the ``session`` of its Jupyter message
headers (a restarted kernel is another process, with another session). Every
state message, full or not, carries ``seq``: 1, 2, ... in the order the
process sends them (on IOPub, the order every tab reads them in). A tab
applies a delta only on top of the state it follows (same ``kernel``, the
previous ``seq``); a tab that misses one, or holds no full state of that
process (a late tab, a dropped message), asks for the whole state again:
a comm it opens (``{"type": "state"}`` as its data) or ``{"type": "state"}``
on its comm. So what a badge shows never depends on when a tab read what.

A kernel runs one cell at a time, so a tab that opens its comm while a cell
runs (a page reloaded mid-plan) is answered when the cell ends (a comm
message can be answered at once: JupyterLab sends those on a subshell, a
thread of its own, hence the lock around what is sent). Meanwhile, every
:data:`PULSE` seconds of a run, the whole state goes out on a comm (opened for
it if there is none), which the new tab reads off IOPub.

A STATE is ``step``, ``status`` (pending, running, retrying, completed,
failed, blocked, cancelled, or ``waiting`` for confirmation), ``started`` and
``finished`` (epoch seconds), ``duration`` (seconds), ``origin`` (executed,
kept, restored: :mod:`nbsteps.model.status`), ``stale`` with ``stale_reason``,
``attempts``, ``error`` and ``line`` (the status line the cell shows,
:func:`nbsteps.views.step_view.status_line`). Messages carry the kernel's
clock (``now``), so a running step's elapsed time is right in any tab.

Nothing here changes what a cell shows: without the extension, the saved
outputs are the same.
"""

from __future__ import annotations

import html
import threading
import time
import uuid

from nbsteps import config
from nbsteps.ipython import session
from nbsteps.ipython.ticker import call_later
from nbsteps.model.status import PENDING, RETRYING, RUNNING
from nbsteps.run import events as ev

TARGET = "nbsteps"
#: shortest gap between two state messages during a run (seconds)
INTERVAL = 0.25
#: shortest gap between two panel updates during a run (seconds)
PANEL_INTERVAL = 1.0
#: during a run, the whole state is sent this often (seconds; see the module doc)
PULSE = 2.0
#: the protocol's version, in every message (the extension reads messages on any comm marked so);
#: 2: ``kernel`` in every message and ``seq`` in every state message
PROTOCOL = 2
_STEP_EVENTS = frozenset(
    {ev.CONFIRMING, ev.CONFIRMED, ev.STARTED, ev.RETRYING, ev.COMPLETED, ev.FAILED, ev.BLOCKED, ev.CANCELLED}
)


def step_state(ctx, name: str) -> dict:
    """What a badge shows of step *name* (see the module doc); the records' stale flags as they are."""
    from nbsteps.views.step_view import stale_reason, status_line

    rec = ctx.records[name]
    status = str(rec.status)
    if rec.status == PENDING and rec.confirming:
        status = "waiting"
    stale = bool(rec.stale)
    try:
        line = status_line(ctx, name)
    except Exception:  # pragma: no cover - a badge must not break a run
        line = ""
    return {
        "step": name,
        "status": status,
        "started": rec.started if rec.status != PENDING else None,
        "finished": rec.finished if rec.status not in (PENDING, RUNNING) else None,
        "duration": rec.duration,
        "origin": rec.origin,
        "stale": stale,
        "stale_reason": stale_reason(ctx, name) if stale else "",
        "attempts": rec.attempts,
        "error": rec.error_text,
        "confirming": rec.confirming,
        "line": line,
    }


def panel_html(ctx) -> str:
    """The side panel: the plan's lasting picture and every step's log."""
    from nbsteps.views.static import static_bundle
    from nbsteps.views.step_log import step_log_html

    names = ctx.order()
    if not names:
        return '<div class="nbsteps-view">nbsteps: no steps registered yet (use %%step NAME in a cell).</div>'
    picture = static_bundle(ctx, png=False, timeline="rows")["text/html"]
    logs = "".join(
        f'<details class="nbsteps-panel-log" data-step="{html.escape(n, quote=True)}">'
        f"<summary>{html.escape(n)}</summary>{step_log_html(ctx, n)}</details>"
        for n in names
    )
    return f'{picture}<div class="nbsteps-panel-logs"><b>step logs</b>{logs}</div>'


class LabState:
    """The comms of the open tabs and the cells of the steps (one per shell)."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.comms: list = []
        self.panel_comms: set = set()  # ids of comms that asked for the panel
        self.cells: dict[str, str] = {}  # step -> id of the cell that registered it
        self.cell_id: str | None = None  # the running cell's id (pre_run_cell)
        self.sent: dict[str, dict] = {}  # step -> state last sent
        self.panel_sent = 0.0
        self.panel_dirty = False
        self.messages = 0  # comm messages sent (measured in tests and docs)
        #: the kernel process, in every message (see the module doc): the session of its messages
        self.kernel_id = _kernel_session(shell)
        self.seq = 0  # state messages sent (the last one's ``seq``)
        #: the pending pulse and flush (nbsteps.ipython.ticker.Call: one thread for every delayed
        #: call, not a thread started per run and per step, as threading.Timer did)
        self._pulse = None
        self._flush_timer = None
        self._flushed = 0.0
        self._ctx = None
        self._dirty: set[str] = set()
        self._dirty_all = False
        self._running_ctx = None
        self._lock = threading.RLock()
        #: step -> (key, state) of its last :func:`step_state`: after each cell every step's state
        #: is compared with what was sent, and most steps did not change
        #: (:func:`nbsteps.views.step_view.status_key`: everything a state reads of a step not stale)
        self._states: dict[str, tuple] = {}
        #: step -> (status key, the state in ``sent``) when the state sent last was made with that key
        self._sent_keys: dict[str, tuple] = {}
        #: after a cell only the steps whose records changed since the last pass are looked at
        #: (``RunContext.changes_since``), with those sent without a key (stale: their reason reads
        #: other steps and values) and those whose cell changed (``_noted``)
        self._mark = None
        self._keyless: set[str] = set()
        self._noted: set[str] = set()

    # -- IPython hooks -------------------------------------------------------
    def pre_run_cell(self, info) -> None:
        self.cell_id = getattr(info, "cell_id", None) or None

    def post_run_cell(self, result=None) -> None:
        if not self.comms:
            return
        plan = self._plan()
        session.refresh_after_cell(plan, result)  # once per cell: the step cells' refresh uses it too
        with self._lock:
            self.send_changes(plan.context)
            if self.panel_dirty:
                self.send_panel()

    def note_cell(self, name: str) -> None:
        """The running cell registered step *name* (called by ``%%step``)."""
        cid = self.cell_id
        if not cid:
            return
        for other, c in list(self.cells.items()):
            if c == cid and other != name:  # the cell now registers another name
                del self.cells[other]
                self._noted.add(other)
        self.cells[name] = cid
        self._noted.add(name)
        self.sent.pop(name, None)  # its next state is news (maybe to another cell)

    # -- the executor's events -------------------------------------------------
    def __call__(self, event) -> None:
        if not self.comms:
            return
        if event.kind in (ev.PLANNED, ev.STARTED, ev.CONFIRMING):
            self._start_pulse(event.context)
        if event.kind in _STEP_EVENTS and event.step:
            self._news(event.context, event.step, later=event.kind == ev.STARTED)
        elif event.kind == ev.FINISHED:
            self._news(event.context, None)

    def _news(self, ctx, name: "str | None", later: bool = False) -> None:
        """Step *name* (None: any step) changed: sent now, or with what else changes
        within :data:`INTERVAL` (a thousand fast runs in one cell cost a few messages).
        *later*: a step started: said :data:`INTERVAL` from now at the earliest, so that a
        step ending before that (most cells run by hand) costs one message, its end, sent
        after its cell, not two (a badge does not flash "running" for a few milliseconds)."""
        with self._lock:
            self._ctx = ctx
            if name is None:
                self._dirty_all = True
            else:
                self._dirty.add(name)
            self.panel_dirty = True
            if self._flush_timer is not None:
                return
            wait = INTERVAL - (time.monotonic() - self._flushed)
            if later:
                wait = max(wait, INTERVAL)
            if wait <= 0:
                self._flush()
            else:
                self._flush_timer = call_later(wait, self._flush)

    def _flush(self) -> None:
        with self._lock:
            self._flush_timer, self._flushed = None, time.monotonic()
            ctx, names = self._ctx, None if self._dirty_all else sorted(self._dirty)
            self._dirty, self._dirty_all = set(), False
            if ctx is None or not self.comms:
                return
            try:
                self.send_changes(ctx, names=names)
                if self.panel_comms and time.monotonic() - self.panel_sent >= PANEL_INTERVAL:
                    self.send_panel(ctx)
            except Exception:  # pragma: no cover - a badge must not break a run
                pass

    # -- the pulse: tabs that connected during a run ------------------------------
    def _start_pulse(self, ctx) -> None:
        with self._lock:
            self._running_ctx = ctx
            if self._pulse is None:
                self._arm()

    def _arm(self) -> None:
        self._pulse = call_later(PULSE, self._beat)

    def _beat(self) -> None:
        with self._lock:
            ctx = self._running_ctx
            if ctx is None or not any(
                r.status in (RUNNING, RETRYING) or r.confirming for r in list(ctx.records.values())
            ):  # the run is over (or was interrupted before its end): the next start re-arms it
                self._pulse = None
                return
            try:
                if self.comms:
                    self._send(self.comms[0], {"type": "state", "full": True, **self.snapshot(ctx)})
                elif self.kernel_comms:
                    self.opened(self.kernel_comms())
            except Exception:  # pragma: no cover - a badge must not break a run
                pass
            self._arm()

    #: opens a comm from the kernel (set by :func:`install` in a kernel)
    kernel_comms = None

    # -- messages --------------------------------------------------------------
    def snapshot(self, ctx, names=None) -> dict:
        cells: dict = {}
        unbound: dict = {}
        for name in names if names is not None else ctx.order():
            if name not in ctx.records or name not in ctx.steps:
                continue
            state = self._state(ctx, name)
            cid = self.cells.get(name)
            state["cell_id"] = cid
            (cells if cid else unbound)[cid or name] = state
        return {"cells": cells, "unbound": unbound}

    def _state(self, ctx, name: str, key=False) -> dict:
        """:func:`step_state` of *name* (a copy of the last one when its key is the same;
        *key*: its :func:`~nbsteps.views.step_view.status_key` if known)."""
        from nbsteps.views.step_view import same_status, status_key

        if key is False:
            key = status_key(ctx, name, ctx.records[name])
        last = self._states.get(name)
        if last is not None and same_status(last[0], key):
            return dict(last[1])
        state = step_state(ctx, name)
        if key is None:
            self._states.pop(name, None)
        else:
            self._states[name] = (key, state)
        return dict(state)

    def send_changes(self, ctx, names=None) -> None:
        from nbsteps.views.step_view import same_status, status_key

        changed_cells: dict = {}
        changed_unbound: dict = {}
        records, steps, sent_keys = ctx.records, ctx.steps, self._sent_keys
        if names is None:  # after a cell: the steps that can have changed since the last pass
            changed, self._mark = ctx.changes_since(self._mark)
            if changed is not None:
                names = sorted(changed | self._keyless | self._noted)
            self._noted = set()
        for name in names if names is not None else ctx.order():
            rec = records.get(name)
            if rec is None or name not in steps:
                continue
            sent = self.sent.get(name)
            cid = self.cells.get(name)
            key = status_key(ctx, name, rec)
            last = sent_keys.get(name)
            if (
                sent is not None
                and last is not None
                and last[1] is sent
                and sent["cell_id"] == cid
                and same_status(last[0], key)
            ):
                continue  # the state sent last is this one (what a state reads is in its key)
            state = self._state(ctx, name, key)
            state["cell_id"] = cid
            if sent != state:
                (changed_cells if cid else changed_unbound)[cid or name] = state
                sent = self.sent[name] = state
            if key is None:
                sent_keys.pop(name, None)
                self._keyless.add(name)
            else:
                sent_keys[name] = (key, sent)
                self._keyless.discard(name)
        if not changed_cells and not changed_unbound:
            return
        self.panel_dirty = True
        self._send_all(
            {"type": "state", "full": False, "cells": changed_cells, "unbound": changed_unbound},
        )

    def send_full(self, comm) -> None:
        with self._lock:  # a comm message can be answered on a subshell's thread
            ctx = self._plan().context
            snap = self.snapshot(ctx)
            for state in [*snap["cells"].values(), *snap["unbound"].values()]:
                self.sent[state["step"]] = state  # every tab reads it (IOPub): no delta repeats it
            self._send(comm, {"type": "state", "full": True, "order": ctx.order(), **snap})

    def send_panel(self, ctx=None, comms=None) -> None:
        targets = comms if comms is not None else [c for c in self.comms if c.comm_id in self.panel_comms]
        if not targets:
            return
        with self._lock:
            ctx = ctx if ctx is not None else self._plan().context
            try:
                body = panel_html(ctx)
            except Exception as exc:  # pragma: no cover - the panel must not break a run
                body = f"<pre>{html.escape(repr(exc))}</pre>"
            self.panel_sent, self.panel_dirty = time.monotonic(), False
            self._send_all({"type": "panel", "html": body}, targets)

    def _send_all(self, msg: dict, comms=None) -> None:
        """Send *msg* once, on the first of *comms* (default: all) that takes it:
        every tab reads it off IOPub (see the module doc)."""
        for comm in list(comms if comms is not None else self.comms):
            if self._send(comm, msg):
                return

    def _send(self, comm, msg: dict) -> bool:
        with self._lock:  # seq in the order the messages go out (the ticker's thread sends too)
            msg["now"], msg["nbsteps"], msg["kernel"] = time.time(), PROTOCOL, self.kernel_id
            if msg.get("type") == "state" and "seq" not in msg:  # the same seq on another comm
                self.seq += 1
                msg["seq"] = self.seq
            try:
                comm.send(msg)
            except Exception:  # a closed or broken comm: forget it (a tab that missed it asks again)
                self._forget(comm)
                return False
            self.messages += 1
            return True

    # -- comms -------------------------------------------------------------------
    def opened(self, comm, open_msg=None) -> None:
        """A tab (or the kernel itself) opened a comm: send it the whole state."""
        if comm in self.comms:
            return
        self.comms.append(comm)
        comm.on_msg(lambda msg, comm=comm: self.received(comm, msg))
        comm.on_close(lambda msg, comm=comm: self._forget(comm))
        self._ensure_listener()
        self.send_full(comm)

    def received(self, comm, msg) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        kind = data.get("type")
        if kind == "panel":
            self.panel_comms.add(comm.comm_id)
            self.send_panel(comms=[comm])
        elif kind == "state":
            self.send_full(comm)

    def _forget(self, comm) -> None:
        if comm in self.comms:
            self.comms.remove(comm)
        self.panel_comms.discard(getattr(comm, "comm_id", None))

    def _plan(self):
        plan = session.current()
        self._ensure_listener(plan)
        return plan

    def _ensure_listener(self, plan=None) -> None:
        plan = plan if plan is not None else session.current()
        if self not in plan.listeners:
            plan.listeners.append(self)
            self.sent.clear()
            self._mark = None  # every step's state is news: the next pass looks at all


_states: dict[int, LabState] = {}


def _kernel_session(shell) -> str:
    """The session of the kernel's messages (what a tab sees in their headers); a random id
    outside a kernel."""
    session = getattr(getattr(shell, "kernel", None), "session", None)
    return str(getattr(session, "session", "") or uuid.uuid4().hex)


def state_of(shell) -> "LabState | None":
    return _states.get(id(shell))


def note_cell(shell, name: str) -> None:
    """``%%step`` registered step *name* from the running cell."""
    lab = _states.get(id(shell))
    if lab is not None:
        lab.note_cell(name)


def install(shell) -> "LabState | None":
    """Register the comm target and the cell hooks on *shell* (once); in a
    kernel, open a comm to the tabs already connected. None outside a kernel."""
    lab = _states.get(id(shell))
    if lab is not None:
        return lab
    lab = LabState(shell)
    _states[id(shell)] = lab
    shell.events.register("pre_run_cell", lab.pre_run_cell)
    shell.events.register("post_run_cell", lab.post_run_cell)
    if getattr(shell, "kernel", None) is None:
        return lab
    try:
        from comm import create_comm, get_comm_manager
    except ImportError:  # pragma: no cover - ipykernel older than 6.22
        return lab
    get_comm_manager().register_target(TARGET, lab.opened)
    lab.kernel_comms = lambda: create_comm(target_name=TARGET, data={"type": "hello", "nbsteps": PROTOCOL})
    if config.headless():  # nbsteps run: no tab to tell (a tab that connects opens its own comm)
        lab.kernel_comms = None
        return lab
    try:  # the tabs connected before %load_ext nbsteps learn of it now
        lab.opened(lab.kernel_comms())
    except Exception:  # pragma: no cover - no frontend
        pass
    return lab
