"""What a step prints and displays, captured per step (SPEC 3 and 4).

Every attempt runs inside a :class:`Capture` (see :func:`nbsteps.run.attempt.task.run_task`):

- ``sys.stdout`` and ``sys.stderr`` are replaced, once, by routers that send a
  write to the capture active *in the writing thread's context* (a
  ``contextvars.ContextVar``), or to the stream they wrap when none is active.
  Steps running in parallel threads therefore never mix their output.
- Rich displays reach the active capture through :meth:`Capture.display`; the
  notebook frontend (``nbsteps.ipython``) routes IPython's display publisher
  there. This module never imports IPython.
- matplotlib: while a capture is active, pyplot's figure registry
  (``Gcf.figs``) is the capture's own, so each step's ``plt.plot`` draws on its
  own figures, also with parallel steps. When the step ends, its open figures
  are rendered to PNG (plain data, never a live pyplot object) and closed, so
  they do not pop up in the next cell. A figure that is the step's result is
  closed but not captured (the result shows it), except in a notebook, which
  shows such a figure twice (``Out``, then the inline backend's own display).

The captured output is a tuple of ``(kind, payload)`` items in the order they
happened: ``("stdout", text)``, ``("stderr", text)`` or
``("display", {"data": {mime: str}, "metadata": {...}})``, and, where a
frontend formats results, ``("result", {"data": ..., "metadata": ...})`` (the
result's display, taken before the figures left open are drawn: they follow
it). Jupyter's display ids (``display(obj, display_id=...)``, ``update_display``,
``DisplayHandle.update``), as Run All's frontend applies them: a display with an id
also carries it (``"display_id"`` in its payload); a display or an update with an id
changes the step's earlier displays with that id in place, and every display with that id
the frontend shows elsewhere (another cell's: :meth:`Capture.display`); an update of an
id the step never displayed is kept as ``("update", {"data", "metadata", "display_id"})``,
so showing the step's output again (a restored step) updates that other cell again.
``clear_output()`` forgets what the step showed (an update of another cell's display
stays: it is not this cell's), ``clear_output(wait=True)`` when the next output comes,
as a notebook does. It is picklable and
JSON-like, travels back from dask workers, and is kept on the record and in the
checkpoint.

A frontend that shows each step's output in a place of its own (the notebook:
the step's cell) registers itself with :func:`set_frontend`; a step it does not
claim has its output *echoed* as well, whole lines at a time, to the streams
that were there (plain Python, terminal IPython, a ``Plan`` of the Python API).
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import sys
import threading
from collections import OrderedDict
from typing import Any, Callable

from nbsteps.run.attempt import figures

#: text kept per stream and attempt; beyond it the output is cut with a note
MAX_TEXT = 4_000_000

_active: contextvars.ContextVar["Capture | None"] = contextvars.ContextVar("nbsteps_capture", default=None)
_namespace: contextvars.ContextVar["dict | None"] = contextvars.ContextVar("nbsteps_namespace", default=None)
_install_lock = threading.Lock()
_PYLAB_HELPERS = figures._PatchOnImport.NAME
_frontend: Any = None


def active() -> "Capture | None":
    """The capture of the step running in this thread (None outside steps)."""
    return _active.get()


def namespace() -> "dict | None":
    """The namespace of the step whose code runs in this thread's context
    (None outside a step's code). A frontend resolves its user namespace to it
    (``nbsteps.ipython.step_magics``): what IPython's magics read and write
    there stays in the step, as in an ordinary cell."""
    return _namespace.get()


@contextlib.contextmanager
def running_in(ns: dict):
    """While the block runs in this context, :func:`namespace` is *ns*."""
    token = _namespace.set(ns)
    try:
        yield ns
    finally:
        _namespace.reset(token)


def redirect(sink) -> contextvars.Token:
    """From here on, in this context, what the running step prints and displays goes to *sink*
    (an object with ``write(kind, text)``, ``display(data, metadata, display_id, update)``,
    ``clear(wait)`` and the ``figs`` of the step's capture): a capture inside the step's code
    (IPython's ``%%capture``, ``nbsteps.ipython.hooks``), for that step only. :func:`restore`
    ends it."""
    return _active.set(sink)


def restore(token: contextvars.Token) -> None:
    """End a :func:`redirect`: the step's own capture again."""
    _active.reset(token)


def set_frontend(frontend) -> None:
    """Register the frontend that shows step output itself: an object with
    ``claims(name) -> bool`` (no echo for that step) and ``changed(name,
    capture)`` (called, from the step's thread, after new output arrived).
    ``None`` unregisters."""
    global _frontend
    _frontend = frontend


def outside(func: Callable, *args):
    """Call *func* with no capture (and no step namespace) active (timers started from a step's
    thread must not inherit its capture), in a copy of the current context:
    the user's context variables (numpy's print options) stay as they are."""
    return contextvars.copy_context().run(_uncaptured, func, args)


def _uncaptured(func: Callable, args: tuple):
    _active.set(None)
    _namespace.set(None)
    return func(*args)


# -- the stream routers ---------------------------------------------------------
class _Router:
    """Stands in for ``sys.stdout`` / ``sys.stderr``: a write goes to the
    capture active in this context, else to the wrapped stream. Everything
    else (encoding, fileno, isatty, ...) is the wrapped stream's."""

    def __init__(self, kind: str, stream) -> None:
        self._nbsteps_kind = kind
        self._nbsteps_stream = stream

    def write(self, text) -> int:
        cap = _active.get()
        if cap is None:
            return self._nbsteps_stream.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        cap.write(self._nbsteps_kind, text)
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _active.get() is None:
            self._nbsteps_stream.flush()

    def __getattr__(self, name):
        return getattr(self._nbsteps_stream, name)

    def __repr__(self) -> str:
        return f"<nbsteps router for {self._nbsteps_stream!r}>"


def install() -> None:
    """Put the routers in place (again, if someone replaced sys.stdout since)."""
    if type(sys.stdout) is _Router and type(sys.stderr) is _Router:  # in place (every attempt asks)
        return
    for kind in ("stdout", "stderr"):
        stream = getattr(sys, kind)
        if stream is None or isinstance(stream, _Router):
            continue
        with _install_lock:
            stream = getattr(sys, kind)
            if stream is not None and not isinstance(stream, _Router):
                setattr(sys, kind, _Router(kind, stream))


def _step_figures():
    """The figure registry of the step running in this context (None outside steps)."""
    cap = _active.get()
    return cap.figs if cap is not None else None


def _real(kind: str):
    stream = getattr(sys, kind)
    return stream._nbsteps_stream if isinstance(stream, _Router) else stream


def json_bundle(data: dict) -> dict:
    """A display's mime bundle as plain JSON-like data (bytes as base64 text)."""
    out = {}
    for mime, value in (data or {}).items():
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = base64.b64encode(bytes(value)).decode("ascii")
        elif not isinstance(value, (str, dict, list, int, float, bool, type(None))):
            value = str(value)
        out[str(mime)] = value
    return out


def last_by_display_id(outputs) -> dict:
    """The last display or update of each display id in *outputs* (steps' captured outputs, in
    Run All's order): what every output with that id shows at the end, as a notebook applies
    them (a later cell's update changes an earlier cell's display)."""
    latest: dict = {}
    for items in outputs:
        for kind, payload in items or ():
            if kind in ("display", "update") and isinstance(payload, dict):
                display_id = payload.get("display_id")
                if display_id is not None:
                    latest[display_id] = payload
    return latest


# -- the capture ----------------------------------------------------------------------
class Capture:
    """The output of one attempt of step *name* (a context manager)."""

    def __init__(self, name: str, echo: bool | None = None, quiet: bool = False, enter: bool = False) -> None:
        """*quiet*: kept, neither echoed nor told to a frontend. *enter*: active from here on,
        as after ``__enter__`` (an attempt's capture: :func:`nbsteps.run.attempt.task._captured`,
        which ends it with :meth:`end`)."""
        self.name = name
        front = _frontend
        if quiet:
            echo = False
        if echo is None:
            try:
                echo = front is None or not front.claims(name)
            except Exception:
                echo = True
        self.echo = echo
        self.frontend = None if echo or quiet else front  # told about new output
        if front is None:  # plain Python: nothing shows displays or formats results
            self._shower = self._late_shower = self._formatter = None
        else:
            self._shower = getattr(front, "echo_display", None) if echo else None  # shows unclaimed displays
            self._late_shower = getattr(front, "echo_late", None) if echo else None  # figures left open
            # the result's mime bundle (a notebook's Out)
            self._formatter = getattr(front, "format_result", None)
        # display ids: the frontend updates the displays with an id wherever it shows them
        # (another step's cell too); clear_output() of an echoed step clears the running cell
        self._updater = getattr(front, "update_display", None) if front is not None and not quiet else None
        self._clearer = getattr(front, "echo_clear", None) if front is not None and echo else None
        self._clear_next = False  # clear_output(wait=True): clear when the next output comes
        self.items: list[list] = []
        self.figs: "OrderedDict | None" = None
        self._sizes = {"stdout": 0, "stderr": 0}
        self._partial = {"stdout": "", "stderr": ""}
        self._lock = threading.Lock()
        self._token = None
        if enter:  # what __enter__ does, written out (no Python call when all is in place already)
            if type(sys.stdout) is not _Router or type(sys.stderr) is not _Router:
                install()
            helpers = sys.modules.get(_PYLAB_HELPERS)  # pyplot's registry: patched, or patched on import?
            if helpers is None:
                placed = figures._hook_installed
            else:
                placed = isinstance(helpers.Gcf.figs, figures._Figures)
            if not placed or figures._owner is not _step_figures:
                figures.watch(_step_figures)
            self.figs = OrderedDict()
            self._token = _active.set(self)

    # -- receiving ------------------------------------------------------------
    def write(self, kind: str, text: str) -> None:
        if not text:
            return
        if self._clear_next:
            self._clear()
        with self._lock:
            size = self._sizes[kind]
            if size >= MAX_TEXT:
                return
            if size + len(text) > MAX_TEXT:
                text = text[: MAX_TEXT - size] + f"\n[nbsteps: {kind} cut at {MAX_TEXT:,} characters]\n"
            self._sizes[kind] = size + len(text)
            last = self.items[-1] if self.items else None
            if last is not None and last[0] == kind:
                last[1] += text
            else:
                self.items.append([kind, text])
            if self.echo:
                pending = self._partial[kind] + text
                cut = pending.rfind("\n") + 1
                self._partial[kind] = pending[cut:]
                if cut:
                    self._echo(kind, pending[:cut])
        self._changed()

    def display(
        self, data: dict, metadata: dict | None = None, display_id: str | None = None, update: bool = False
    ) -> None:
        """A rich display (a mime bundle) from the step. With a *display_id*, as a notebook
        applies it: the step's earlier displays with that id show this one too, and so do
        those the frontend shows elsewhere (another cell's); *update* adds no display of
        its own (an update of an id the step never displayed is kept, to be applied again
        where the step's output is shown again)."""
        item = {"data": json_bundle(data), "metadata": dict(metadata or {})}
        if display_id is not None:
            display_id = str(display_id)
            item["display_id"] = display_id
        if self._clear_next and not update:  # an update is no output of its own: the clear still waits
            self._clear()
        with self._lock:
            own = False
            if display_id is not None:
                for entry in self.items:
                    if entry[0] in ("display", "update") and entry[2] == display_id:
                        entry[1] = item
                        own = own or entry[0] == "display"
            if not update:
                self.items.append(["display", item, display_id])
            elif not own and not any(e[0] == "update" and e[2] == display_id for e in self.items):
                self.items.append(["update", item, display_id])
        if self.echo and not update:
            self._echo_display(item)  # (the frontend updates the id's displays elsewhere too)
        elif display_id is not None and self._updater is not None:
            try:
                outside(self._updater, item, display_id, self.name)
            except Exception:  # pragma: no cover - a display problem must not fail the step
                pass
        self._changed()

    def _echo_display(self, item: dict, late: bool = False) -> None:
        """An unclaimed step's display: shown by the frontend where the run is
        (outside this capture), else its text printed. *late*: a figure left
        open at the end (a notebook shows it after the cell's ``Out``). Text
        printed before it without a newline is echoed first (Run All shows it first)."""
        self._echo_partial()
        shower = (self._late_shower or self._shower) if late else self._shower
        if shower is not None:
            try:
                outside(shower, item)
                return
            except Exception:  # pragma: no cover
                pass
        text = item["data"].get("text/plain")
        if isinstance(text, str):
            self._echo("stdout", text + "\n")

    def _echo_partial(self) -> None:
        """Echo the text printed without a newline yet (before a display or a clear)."""
        if not self.echo or not (self._partial["stdout"] or self._partial["stderr"]):
            return
        with self._lock:
            rest = [(k, t) for k, t in self._partial.items() if t]
            self._partial = {"stdout": "", "stderr": ""}
        for kind, text in rest:
            self._echo(kind, text)

    def clear(self, wait: bool = False) -> None:
        """``clear_output()`` from the step: forget what it showed so far (not its updates of
        other cells' displays), and, echoed, clear the running cell. *wait*: when the next
        output comes (a step that shows nothing after it keeps what it showed, as a cell does)."""
        if wait:
            self._clear_next = True
            return
        self._clear()

    def _clear(self) -> None:
        self._clear_next = False
        self._echo_partial()
        with self._lock:
            self.items[:] = [entry for entry in self.items if entry[0] == "update"]
        if self._clearer is not None:
            try:
                outside(self._clearer, self.name)
            except Exception:  # pragma: no cover - a display problem must not fail the step
                pass
        self._changed()

    def _echo(self, kind: str, text: str) -> None:
        try:
            stream = _real(kind)
            if stream is not None:
                stream.write(text)
                stream.flush()
        except Exception:  # pragma: no cover - a broken terminal must not fail the step
            pass

    def _changed(self) -> None:
        front = self.frontend
        if front is not None:
            try:
                front.changed(self.name, self)
            except Exception:  # pragma: no cover - a display problem must not fail the step
                pass

    @property
    def output(self) -> tuple:
        """The items so far, as plain data (see the module docstring)."""
        with self._lock:
            return tuple([(entry[0], entry[1]) for entry in self.items]) if self.items else ()

    # -- the context --------------------------------------------------------------
    def __enter__(self) -> "Capture":
        install()
        figures.watch(_step_figures)
        self.figs = OrderedDict()  # this step's pyplot figures (once matplotlib is loaded)
        self._token = _active.set(self)
        return self

    def finish(self, result: Any = None) -> None:
        """Keep the result's mime bundle as it is now (``("result", {...})``,
        where a frontend formats results: drawing a figure can change the
        repr of its artists, and a notebook shows ``Out`` before it draws the
        figures); render the step's open figures (not *result*) and close
        them; flush the echo. Called by the task before the capture ends, when there is
        something to do (a result and a formatter, figures, a partial line echoed: the
        task reads these attributes itself, :func:`nbsteps.run.attempt.task._captured`)."""
        if result is not None and self._formatter is not None:
            if self._clear_next:  # the cell's Out is its next output
                self._clear()
            try:
                data, metadata = outside(self._formatter, result)
                with self._lock:
                    self.items.append(
                        ["result", {"data": json_bundle(data), "metadata": dict(metadata or {})}, None]
                    )
            except Exception:  # pragma: no cover - a repr that fails is the display's problem, not the step's
                pass
        managers = list(self.figs.values()) if self.figs else ()
        if managers:
            import matplotlib.pyplot as plt  # already loaded: it made these figures

            for manager in managers:
                fig = manager.canvas.figure
                try:
                    # a notebook shows a pyplot figure that is the cell's Out twice (Out, then the inline
                    # backend's flush at the end of the cell): so does its step cell; elsewhere, once
                    if fig is not result or self._formatter is not None:
                        bundle = figures.figure_bundle(fig)
                        with self._lock:
                            self.items.append(["display", bundle, None])
                        if self.echo and self._shower is not None:  # a terminal gets no "<Figure ...>" line
                            self._echo_display(bundle, late=True)
                except Exception as exc:  # a figure that cannot be drawn: say so, go on
                    self.write("stderr", f"nbsteps: could not draw a figure of step {self.name!r}: {exc!r}\n")
                finally:
                    plt.close(fig)
            self._changed()
        if self.echo and (self._partial["stdout"] or self._partial["stderr"]):
            with self._lock:
                rest = [(k, t) for k, t in self._partial.items() if t]
                self._partial = {"stdout": "", "stderr": ""}
            for kind, text in rest:
                self._echo(kind, text)

    def __exit__(self, *exc) -> None:
        self.end()

    def end(self) -> None:
        """No longer active (what ``__exit__`` does)."""
        if self._token is not None:
            _active.reset(self._token)
            self._token = None
        self.figs = None
