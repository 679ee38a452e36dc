"""Each ``%%step`` cell's output area belongs to its step (SPEC 4).

When a ``%%step`` cell runs it displays its step's output (status line, what
the step printed and displayed, see :mod:`nbsteps.views.step_view`) under a
display id of its own. :class:`StepCells` keeps those outputs current:

- as a listener of the notebook's plan (``plan.listeners``): when the step
  starts, retries, completes, fails or is restored, whichever cell started
  the run (``%steps run``, or another cell that needs it upstream);
- as the capture frontend (:func:`nbsteps.run.attempt.capture.set_frontend`): output
  that a running step prints or displays reaches its cell while it runs
  (throttled), and is not echoed into the running cell.

Updates go through ``update_display_data``; where a frontend cannot take them
(see :func:`nbsteps.ipython.display.updates_supported`) a step cell shows its
output once, when it ends, and other steps' output is echoed where it runs.
A cell's own ``Out`` shows its result, and its error shows its traceback: the
display leaves those out while they are the ones the cell shows.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import uuid
from typing import Callable

from nbsteps.ipython.display import publish
from nbsteps.ipython.hooks import unflushed, unsent_text
from nbsteps.ipython.lazy import UnreadResult, unread_result
from nbsteps.model.status import BLOCKED, CANCELLED, COMPLETED, EXECUTED, FAILED, KEPT
from nbsteps.run import events as ev
from nbsteps.run.attempt import capture
from nbsteps.views.step_view import (
    EMPTY,
    fit_slots,
    item_bundles,
    reserve,
    same_status,
    status_key,
    step_bundle,
)

#: display ids of the step cells: one random prefix a process, then a count (unique as a uuid4
#: each, without the 16 random bytes each cell asked the OS for)
_ID_PREFIX = uuid.uuid4().hex
_ids = itertools.count()

#: shortest gap between two live updates of one cell (seconds)
INTERVAL = 0.25
_STEP_EVENTS = (
    ev.CONFIRMING,
    ev.CONFIRMED,
    ev.STARTED,
    ev.RETRYING,
    ev.COMPLETED,
    ev.FAILED,
    ev.BLOCKED,
    ev.CANCELLED,
)


def for_plan(shell, plan) -> "StepCells":
    """The StepCells of *plan* (created and registered on first use), made
    the capture frontend."""
    cells = next((x for x in plan.listeners if isinstance(x, StepCells)), None)
    if cells is None:
        cells = StepCells(shell, plan)
        plan.listeners.append(cells)
    capture.set_frontend(cells)
    return cells


_SETTLED = (COMPLETED, FAILED, BLOCKED, CANCELLED)


def _marker(rec):
    """What a cell's own Out / error shows of a record."""
    return (str(rec.status), rec.token, id(rec.error)) if rec is not None else None


class _Shown:
    """Everything a completed run shows below its cell (printed text, displays, figures, the
    result's formats) and its digest, made when first asked for: two runs with the same digest
    look the same. Most cells never compare theirs (a run of the step from another cell does),
    and a figure's digest reads its whole image (~0.1 ms)."""

    __slots__ = ("_parts", "_digest")

    def __init__(self, parts: tuple) -> None:
        self._parts = parts
        self._digest: "str | None" = None

    def digest(self) -> str:
        parts = self._parts
        if parts is None:
            return self._digest  # type: ignore[return-value]
        digest = hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
        self._digest = digest  # (before the parts go: another thread reading them None finds it)
        self._parts = None
        return digest


def _shows(rec, result: "Callable[[], dict | None]") -> "_Shown | None":
    """What a completed run shows below its cell (:class:`_Shown`), None for a run that did not
    complete. The result's formats are the display its run took (in ``rec.output``) where there
    is one: *result()* formats the value now only when there is none."""
    if rec is None or not rec.ok:
        return None
    output = list(rec.output or ())
    shown = None if any(kind == "result" for kind, _ in output) else result()
    return _Shown((output, shown))


def _stored_result(rec) -> "dict | None":
    """The display of *rec*'s result taken when its step ran (``("result", {...})`` in its
    output: where a frontend formatted it), or None."""
    return next((p for kind, p in rec.output or () if kind == "result" and isinstance(p, dict)), None)


def replay(items, show, update=None) -> None:
    """Show captured output again as the running cell's own outputs: text on
    the streams, each display as it was (a figure as its image) through
    *show(item)*; the step's updates of displays it did not show (another cell's,
    by display id) through *update(item)*."""
    import sys

    for kind, payload in items or ():
        if kind in ("stdout", "stderr"):
            stream = getattr(sys, kind)
            stream.write(str(payload))
            stream.flush()
        elif kind == "display" and isinstance(payload, dict):
            show(payload)
        elif kind == "update" and isinstance(payload, dict) and update is not None:
            update(payload)


def _split_at_result(items) -> tuple[list, dict | None, list]:
    """(items before the result, the result's display, items after it)."""
    items = list(items or ())
    at = next((i for i, (kind, _) in enumerate(items) if kind == "result"), None)
    if at is None:
        return items, None, []
    return items[:at], items[at][1], items[at + 1 :]


def _hook_cell(shell, cells) -> None:
    """The displayhook shows a step's result as it was when the step ended;
    ``post_run_cell`` shows the figures it left open after it."""
    hook = shell.displayhook
    if not getattr(hook, "_nbsteps_preformat", False):
        compute = hook.compute_format_data

        def compute_format_data(result):
            current = getattr(hook, "_nbsteps_cells", None)
            shown = current.preformatted(result) if current is not None else None
            return shown if shown is not None else compute(result)

        hook.compute_format_data = compute_format_data
        hook._nbsteps_preformat = True
    previous = getattr(hook, "_nbsteps_cells", None)
    if previous is not None:
        for event, callback in (
            ("pre_run_cell", previous.before_cell),
            ("post_run_cell", previous.after_cell),
        ):
            try:
                shell.events.unregister(event, callback)
            except ValueError:
                pass
    hook._nbsteps_cells = cells
    shell.events.register("pre_run_cell", cells.before_cell)
    shell.events.register("post_run_cell", cells.after_cell)


class StepCells:
    """The display ids of the ``%%step`` cells of *plan*, kept current."""

    def __init__(self, shell, plan) -> None:
        self.shell = shell
        self.plan = plan
        self.ids: dict[str, str] = {}  # step -> display id of its cell's status line
        self.slots: dict[str, list[str]] = {}  # step -> display ids of its cell's output slots (plan mode)
        self._story: dict = {}  # step -> marker of the run whose output the cell itself shows
        self._story_shows: dict = {}  # step -> what that run showed (_shows)
        self.own: str | None = None  # the step whose cell is running it now
        self.updates = False  # whether this frontend takes display updates
        self._shown_by_cell: dict = {}  # step -> marker of what its Out/error shows
        self._sent: dict[str, int] = {}
        #: step -> (token, origin) of the execution or restore its cell showed
        self._executed: dict[str, tuple] = {}
        self._live: dict = {}  # step -> its running capture
        self._dirty: set[str] = set()
        self._lock = threading.RLock()
        self._timer = None  # the pending redraw (nbsteps.ipython.ticker.Call)
        self._late: list = []  # (step, figure) its cell's own run left open: shown after its Out
        self._own_shown: dict[str, list[str]] = {}  # step -> display ids of what its cell's own run showed
        #: a display id a step's code gave (``display(obj, display_id=...)``) -> the display ids of
        #: the outputs showing it (:meth:`echo_display`), which its updates update (:meth:`update_display`)
        self._by_display_id: dict[str, list[str]] = {}
        #: in output slots (plan mode), a display with an id shows the last display or update of
        #: that id, by the order of the steps (Run All's order, whichever ran last): id -> (the
        #: step's place in the plan, the display); id -> the steps whose output displays it
        self._latest: dict[str, tuple[int, dict]] = {}
        self._holders: dict[str, set] = {}
        self._preformatted = None  # (result, its display taken when the step ended)
        self._drawn: dict = {}  # step -> what its status line showed when flush last drew it (_status_only)
        self._in_cell = False  # a cell of the notebook is running (its post_run_cell will follow)
        self._refresh_pending = False  # a run ended in the running cell: refresh_all after it
        #: a refresh looks at the cells whose records changed since the last one
        #: (``RunContext.changes_since``) and those :meth:`flush` does not skip (``_always``)
        self._mark = None
        self._always: set[str] = set()
        _hook_cell(shell, self)

    # -- the capture frontend -------------------------------------------------
    def claims(self, name: str) -> bool:
        """Does a cell show this step's output through display updates (then it
        is not echoed)? The step of the running cell is not claimed: its output
        is echoed into its own cell as the cell's own outputs, as Run All shows
        them (streams, figures as ``image/png``)."""
        return name != self.own and self.updates and name in self.ids

    def changed(self, name: str, cap) -> None:
        if not self.updates or name not in self.ids:
            return
        with self._lock:
            self._live[name] = cap
            self._dirty.add(name)
            self._schedule()

    def echo_display(self, item: dict, owner: "str | None" = None) -> None:
        """A display of a step that no cell shows: into the running cell. A
        display that belongs to the step of the running cell (*owner*, by
        default the cell's own step) gets a display id, so that a later run
        of that step from another cell can take it away again."""
        owner = owner or self.own
        display_id = None
        if owner is not None and self.updates and owner in self.ids:
            display_id = f"{self.ids[owner]}-own{len(self._own_shown.setdefault(owner, []))}"
            self._own_shown[owner].append(display_id)
        user_id = item.get("display_id")
        if user_id is not None and self.updates:
            # a display with an id shows in every output with that id, as a notebook does it
            self.update_display(item, user_id)
            display_id = display_id or user_id
        publish(item.get("data", {}), metadata=item.get("metadata"), display_id=display_id)
        if user_id is not None and display_id is not None:
            self._by_display_id.setdefault(user_id, []).append(display_id)

    def update_display(self, item: dict, user_id: str, step: "str | None" = None) -> None:
        """A step updated the displays with the display id *user_id* (``update_display``, a
        ``DisplayHandle``): every output showing one (:meth:`echo_display`), in whichever
        cell, shows *item* now."""
        if not self.updates:
            return
        with unflushed():  # updates of earlier outputs: no need to flush the streams first
            for shown in self._by_display_id.get(user_id, ()):
                publish(item.get("data", {}), metadata=item.get("metadata"), display_id=shown, update=True)
        if step is not None and self.slots:
            with self._lock:
                redraw = self._note_ids(step, (("update", item),))
                if redraw:
                    self._dirty.update(redraw)
                    self._schedule()

    def _note_ids(self, name: str, items) -> set:
        """Note the displays and updates with an id in *items* (step *name*'s output): the
        steps with output slots that show an older display of such an id, to draw again."""
        redraw: set = set()
        order = None
        for kind, payload in items or ():
            if kind not in ("display", "update") or not isinstance(payload, dict):
                continue
            user_id = payload.get("display_id")
            if user_id is None:
                continue
            if order is None:
                order = next((i for i, n in enumerate(self.plan.steps) if n == name), -1)
            if kind == "display":
                self._holders.setdefault(user_id, set()).add(name)
            latest = self._latest.get(user_id)
            if latest is None or (order >= latest[0] and latest[1] != payload):
                self._latest[user_id] = (order, payload)
                redraw.update(n for n in self._holders.get(user_id, ()) if n != name and n in self.slots)
        return redraw

    def _with_latest(self, items):
        """*items* with each display that has an id showing the last one of that id (:meth:`_note_ids`)."""
        latest = self._latest
        if not latest or not items:
            return items
        return [
            (kind, latest[p["display_id"]][1])
            if kind == "display" and isinstance(p, dict) and p.get("display_id") in latest
            else (kind, p)
            for kind, p in items
        ]

    def echo_clear(self, name: str) -> None:
        """``clear_output()`` in the step of the running cell: the cell's outputs are cleared, as
        Run All clears them; its status line is shown again (first, as before)."""
        if name != self.own or not self.updates or name not in self.ids:
            return
        self.shell.display_pub.clear_output(wait=False)
        gone = set(self._own_shown.pop(name, ()))
        for user_id, shown in list(self._by_display_id.items()):
            kept = [d for d in shown if d not in gone]
            if kept:
                self._by_display_id[user_id] = kept
            else:
                del self._by_display_id[user_id]
        bundle = self.bundle(name)
        self._sent[name] = hash(bundle["text/html"])
        self._drawn.pop(name, None)
        publish(bundle, display_id=self.ids[name])

    def echo_late(self, item: dict) -> None:
        """A figure a step left open: while a cell runs its own step, it is
        shown after the cell's ``Out`` (as Run All's inline backend does),
        else now."""
        if self.own is not None:
            with self._lock:
                self._late.append((self.own, item))
        else:
            self.echo_display(item)

    def format_result(self, value) -> tuple[dict, dict]:
        """A step's result as the cell's ``Out`` would show it now."""
        return self.shell.display_formatter.format(value)

    def shows_stored_result(self, rec) -> bool:
        """Whether the cell of *rec*'s step shows its result from the display its run took
        (then a restored result need not be read for the cell: see :meth:`out_value`)."""
        return rec is not None and rec.ok and _stored_result(rec) is not None

    def out_value(self, rec):
        """What the cell of *rec*'s step returns as its ``Out``: its result, or, restored
        and not read yet, the placeholder :meth:`finish_own` made for it
        (:class:`~nbsteps.ipython.lazy.UnreadResult`)."""
        pending = self._preformatted
        if (
            not rec.result_loaded
            and pending is not None
            and isinstance(pending[0], UnreadResult)
            and pending[0].step == rec.name
        ):
            return pending[0]
        return rec.result

    def preformatted(self, result) -> "tuple[dict, dict] | None":
        """The display of *result* taken when its step ended, once (the
        displayhook shows the cell's ``Out`` with it)."""
        pending, self._preformatted = self._preformatted, None
        if pending is not None and pending[0] is result:
            return pending[1]
        return None

    def before_cell(self, *args) -> None:
        """Before a cell (``pre_run_cell``): runs that end in it are refreshed after it."""
        if capture.active() is None:
            self._in_cell = True

    def after_cell(self, result=None) -> None:
        """After a cell (``post_run_cell``): the figures its step left open, then, if a run
        ended in it, every step cell's status (:meth:`refresh_all`). Not after a cell that a
        step's code runs (``%%capture``'s body): the notebook's cell is still running."""
        if capture.active() is not None:
            return
        self._in_cell = False
        self._preformatted = None
        with self._lock:
            late, self._late = self._late, []
        for owner, item in late:
            self.echo_display(item, owner)
        if self._refresh_pending:
            self._refresh_pending = False
            self._refresh_cells(result)

    # -- the listener ---------------------------------------------------------------
    def __call__(self, e: ev.Event) -> None:
        if e.context is not self.plan.context:
            return
        if e.kind in _STEP_EVENTS and e.step in self.ids:
            with self._lock:
                if e.kind != ev.STARTED:
                    self._live.pop(e.step, None)
                self._dirty.add(e.step)
                if e.kind == ev.STARTED:
                    self._schedule()
                else:
                    self._cancel()
            if e.kind != ev.STARTED:
                self.flush()
        elif e.kind == ev.FINISHED:
            self.refresh_all()
        elif e.kind == ev.WARNING and not self.plan.context.run_listeners:
            # outside a run (a restored value or Out read when a cell names it) no reporter listens
            import sys

            print(f"nbsteps: {e.message}", file=sys.stderr)

    # -- showing ------------------------------------------------------------------------
    def _record(self, name: str):
        rec = self.plan.records.get(name)
        if rec is not None and rec.ok and rec.token is not None:
            shown = self._executed.get(name)
            if shown is not None and shown[0] == rec.token and rec.origin != EXECUTED:
                if rec.origin != shown[1]:  # kept or restored since, the values this cell showed: its story
                    rec = rec.snapshot()
                    rec.origin = shown[1]
            elif rec.origin != KEPT:
                self._executed[name] = (rec.token, rec.origin)
        return rec

    def _result(self, rec) -> dict | None:
        if rec is None or not rec.ok or not rec.has_result:
            return None
        if not rec.result_loaded and (stored := _stored_result(rec)) is not None:
            return stored.get("data") or None  # restored, not read: the display its run took
        if rec.result is None:
            return None
        try:
            result, _ = self.format_result(rec.result)
        except Exception:  # pragma: no cover - a repr that fails must not break the display
            result = {"text/plain": f"<{type(rec.result).__name__}>"}
        return result

    def bundle(self, name: str, output=None) -> dict:
        """The status output of *name*'s cell. A cell with output slots shows
        only the status line there; a cell that shows its step's output itself
        (its own run) too, as long as that is the execution it showed; else
        (re-run from another cell since) the status output shows it all."""
        rec = self._record(name)
        if (
            name in self.slots
            or name == self.own
            or (rec is not None and self._story.get(name) == _marker(rec))
        ):
            return step_bundle(self.plan.context, name, output=(), result=None, traceback=False, record=rec)
        cell_shows = rec is not None and self._shown_by_cell.get(name) == _marker(rec)
        result = None if cell_shows else self._result(rec)
        return step_bundle(
            self.plan.context, name, output=output, result=result, traceback=not cell_shows, record=rec
        )

    def slot_bundles(self, name: str, output=None) -> list[tuple[dict, dict]]:
        """What fills the output slots of *name*'s cell: its output, result
        and traceback, one output each, as Run All shows them."""
        from nbsteps.model.status import FAILED

        rec = self._record(name)
        items = output if output is not None else (rec.output if rec is not None else ())
        tb = rec.traceback if rec is not None and rec.status == FAILED and output is None else None
        has_shown = any(kind == "result" for kind, _ in items or ())
        result = self._result(rec) if output is None and not has_shown else None
        items = self._with_latest(items)
        return fit_slots(item_bundles(items, result, tb), len(self.slots.get(name, ())))

    def open(self, name: str, own: bool) -> bool:
        """The cell of step *name* is running: give it an output area of its
        own, with a display id (where updates are possible; returns whether it
        did). *own*: the cell runs the step now: what the step shows becomes
        the cell's own outputs. Else (it only registers the step) the cell
        reserves output slots, filled when the step runs or is restored."""
        from nbsteps.ipython.display import updates_supported

        self.updates = updates_supported()
        with self._lock:
            self._live.pop(name, None)
            self._dirty.discard(name)
            for slot in self.slots.pop(name, ()):  # the cell's earlier outputs are gone
                self._sent.pop(slot, None)
        self._shown_by_cell.pop(name, None)
        self._story.pop(name, None)
        if own:  # a new run of the cell: if its step is restored, it says so
            self._executed.pop(name, None)
            self._own_shown.pop(name, None)
        if not self.updates:
            self.ids.pop(name, None)
            return False
        display_id = f"nbsteps-step-{_ID_PREFIX}{next(_ids):x}"
        self.ids[name] = display_id
        if own:
            bundle = step_bundle(
                self.plan.context, name, output=(), traceback=False, status=("running", f"▶ {name} starting…")
            )
        else:
            rec, step = self.plan.records.get(name), self.plan.steps[name]
            known = len(rec.output) + bool(rec.has_result) if rec is not None and rec.token is not None else 0
            has_result = bool(step.analysis is not None and step.analysis.has_result)
            self.slots[name] = [f"{display_id}-{i}" for i in range(reserve(step.source, known, has_result))]
            bundle = self.bundle(name)
        self._sent[name] = hash(bundle["text/html"])
        import sys

        if unsent_text(sys.stdout) or unsent_text(sys.stderr):  # what the cell printed comes first
            publish(bundle, display_id=display_id)
        else:  # nothing to flush: one message, once per cell (no flood for the flush to hold back)
            with unflushed():
                publish(bundle, display_id=display_id)
        if not own:  # (a cell running its step has no slots: nothing to fill)
            slots = zip(self.slots[name], self.slot_bundles(name), strict=True)
            with unflushed():  # the status line flushed what the cell printed before it: the slots follow it
                for slot, (data, meta) in slots:
                    self._sent[slot] = hash(repr(data))
                    publish(data, metadata=meta, display_id=slot)
        return True

    def finish_own(self, name: str) -> None:
        """The cell's own run of *name* is over: its Out (or error) shows the
        result (or the traceback); what the step printed and displayed is
        already the cell's own output (echoed while it ran), or, when it was
        restored from a checkpoint, is shown again now, as it was."""
        rec = self.plan.records.get(name)
        self._shown_by_cell[name] = _marker(rec)
        self.own = None
        if name not in self.plan.steps:
            return
        if rec is not None and rec.ok:
            before, shown, after = _split_at_result(rec.output)
            if rec.cached:
                replay(
                    before,
                    lambda item: self.echo_display(item, name),
                    lambda item: self.update_display(item, item.get("display_id"), name),
                )
                with self._lock:
                    self._late.extend(
                        (name, p) for kind, p in after if kind == "display" and isinstance(p, dict)
                    )
            if shown is not None and rec.has_result:
                # restored and not read yet: Out holds a placeholder read when a cell names it (lazy)
                value = rec.result if rec.result_loaded else unread_result(self.plan, name, rec)
                self._preformatted = (value, (shown.get("data") or {}, shown.get("metadata") or {}))
        self._story[name] = _marker(rec)
        self._story_shows[name] = _shows(rec, lambda: self._result(rec))
        if self.updates and name in self.ids:
            with self._lock:
                self._dirty.add(name)
            self.flush()
        else:
            publish(self.bundle(name))

    def _update(self, name: str, bundle: dict, output=None) -> None:
        key = hash(bundle["text/html"])
        display_id = self.ids.get(name)
        if display_id is None:
            return
        if self._sent.get(name) != key:
            self._sent[name] = key
            publish(bundle, display_id=display_id, update=True)
        rec = self._record(name)
        if (
            name in self._own_shown
            and name != self.own
            and rec is not None
            and rec.status in _SETTLED
            and self._story.get(name) != _marker(rec)
        ):
            # run again from another cell: the status output shows that run; what the cell's own run
            # displayed (its figures) is taken away (its printed text stays: streams cannot be updated).
            # Not while it runs: a replay (shared state) keeps its token, and what it shows stays.
            for shown in self._own_shown.pop(name):
                publish(dict(EMPTY), display_id=shown, update=True)
        # not strict: open() on the kernel's thread may replace the slots while a flush draws them
        slots = self.slots.get(name, ())
        if not slots:  # (a cell running its own step has none: nothing to draw there)
            return
        for slot, (data, meta) in zip(slots, self.slot_bundles(name, output), strict=False):
            key = hash(repr(data))
            if self._sent.get(slot) != key:
                self._sent[slot] = key
                publish(data, metadata=meta, display_id=slot, update=True)

    def _same_story(self, name: str, rec, marker) -> None:
        """Step *name* ran again from another cell (an observed write recomputing the version
        above it, a replay, ``%steps run``) and shows exactly what its cell shows: the cell
        keeps its own outputs, as Run All's (that run becomes the cell's story). *rec*: its
        :meth:`_record`, *marker* the :func:`_marker` of it."""
        if rec is None or name == self.own or rec.status not in _SETTLED:
            return
        shows = self._story_shows.get(name)
        if shows is None or self._story.get(name) == marker:
            return
        now = _shows(rec, lambda: self._result(rec))
        if now is not None and shows.digest() == now.digest():
            self._story[name] = marker

    def flush(self) -> None:
        """Send the pending updates now (on the calling thread)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            live = dict(self._live)
            if self.updates and self.slots:  # a display id shown in slots: the last display of it
                for name in [n for n in dirty if n in self.slots]:
                    cap = live.get(name)
                    rec = self.plan.records.get(name) if cap is None else None
                    items = cap.output if cap is not None else (rec.output if rec is not None else ())
                    dirty.update(self._note_ids(name, items))
        if not self.updates:
            return
        for name in sorted(dirty):
            try:
                cap = live.get(name)
                output = cap.output if cap is not None else None
                rec = self._record(name)
                marker = _marker(rec)
                self._same_story(name, rec, marker)
                key = self._status_only(name, rec, marker) if output is None else None
                drawn = self._drawn.get(name)
                if (
                    key is not None
                    and drawn is not None
                    and drawn[0] == key[0]
                    and same_status(drawn[1], key[1])
                ):
                    continue  # it shows its status line only, and the line is the one it shows
                bundle = self.bundle(name, output=output)
                with unflushed():  # updates of earlier outputs: no need to flush the streams first
                    self._update(name, bundle, output)
                if key is None:
                    self._drawn.pop(name, None)
                    self._always.add(name)
                else:
                    self._drawn[name] = key
                    self._always.discard(name)
            except Exception:  # pragma: no cover - a display problem must not break a run
                pass

    def _status_only(self, name: str, rec, marker) -> "tuple | None":
        """(display id, :func:`~nbsteps.views.step_view.status_key`) of *name*'s cell when what
        :meth:`flush` sends it is its status line alone (no output slots, and either running
        its own step, settled, or showing this record's run itself), else None. After
        each run every step cell is refreshed (:meth:`refresh_all`): most of them only
        redraw a status line that did not change. *rec*, *marker*: as for :meth:`_same_story`."""
        if name in self.slots or name not in self.ids or rec is None:
            return None
        if name == self.own:
            # its own run shows the status line alone (bundle): once settled, the line that
            # finish_own's flush would draw again, unless the record changes meanwhile
            if rec.status not in _SETTLED:
                return None
        elif self._story.get(name) != marker:
            return None
        key = status_key(self.plan.context, name, rec)
        return None if key is None else (self.ids[name], key)

    def refresh_all(self) -> None:
        """After a run: every cell shows its step as it is now (stale flags
        refreshed: a cell whose upstream changed says so). A run that ends in a
        running cell is refreshed after that cell (:meth:`after_cell`): the stale
        flags are refreshed once per cell, for these lines and the JupyterLab badges
        (:func:`~nbsteps.ipython.session.refresh_after_cell`), and several runs in
        one cell are refreshed once."""
        with self._lock:
            self._cancel()
            self._live.clear()
        if self._in_cell:
            self._refresh_pending = True
            return
        self._refresh_cells(None)

    def _refresh_cells(self, result) -> None:
        if not self.updates or not self.ids:
            with self._lock:
                self._dirty.clear()
            self._mark = None
            return
        try:
            from nbsteps.ipython.session import refresh_after_cell

            refresh_after_cell(self.plan, result)
        except Exception:  # pragma: no cover
            pass
        # every cell whose line can differ from the one it shows: its record changed (the stale
        # flags just refreshed too), or flush draws it whatever its key (stale, slots, ...)
        changed, self._mark = self.plan.context.changes_since(self._mark)
        with self._lock:
            if changed is None:
                self._dirty.update(self.ids)
            else:
                ids = self.ids
                self._dirty.update(n for n in changed | self._always if n in ids)
        self.flush()

    # -- the timer -------------------------------------------------------------------------
    def _schedule(self) -> None:
        if self._timer is not None:
            return
        from nbsteps.ipython.ticker import call_later

        self._timer = call_later(INTERVAL, capture.outside, self._on_timer)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        self.flush()
