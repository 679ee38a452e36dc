"""Which listeners and outputs show a run, by frontend.

- Terminal IPython, plain Python: the text reporter only; what steps print is
  echoed line by line.
- A Jupyter kernel (ZMQ shell): ``%steps run`` shows the text lines and, while
  the run is live, the live widget (:mod:`nbsteps.views.live`); when it
  finishes the widget is closed and its output replaced (same display id) by
  the static picture (:mod:`nbsteps.views.static`), which is what a saved
  notebook keeps. Each ``%%step`` cell shows its own step's output
  (:mod:`nbsteps.ipython.cells`).
- Where earlier outputs cannot be updated (clients that execute with
  ``store_history=False``, such as nbval, or ``NBSTEPS_DISPLAY_UPDATES=0``):
  no widget and no display updates; the static picture is displayed once at
  the end. ``nbsteps run`` (``NBSTEPS_HEADLESS=1``) and ``NBSTEPS_WIDGETS=0``:
  no widget, the static picture at the end.
- ``%steps show``: the static picture (the live widget of the run, if one is
  live), refreshed by every later run of the plan.
"""

from __future__ import annotations

import threading

from nbsteps import config
from nbsteps.views.text import TextReporter

_get_ipython = None  # IPython's get_ipython, imported once (``from IPython import``: ~4 us a call)


def _shell():
    global _get_ipython
    if _get_ipython is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover
            return None
        _get_ipython = get_ipython
    return _get_ipython()


def in_kernel() -> bool:
    """True in a Jupyter kernel (ZMQ shell)."""
    ip = _shell()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _request_stores_history() -> bool:
    """Whether the execute request being served asked to store history:
    notebook frontends and nbclient do; nbval (which ignores display
    updates) does not."""
    ip = _shell()
    try:
        parent = ip.kernel.get_parent()
        return bool(parent.get("content", {}).get("store_history", True))
    except Exception:
        return True


def updates_supported() -> bool:
    """Can this frontend update an earlier output (``update_display_data``)?"""
    if not in_kernel():
        return False
    explicit = config.display_updates()
    if explicit is not None:
        return explicit
    return _request_stores_history()


def widgets_supported() -> bool:
    """True in a Jupyter kernel with ipywidgets that can update displays,
    unless ``NBSTEPS_WIDGETS=0`` or ``NBSTEPS_HEADLESS=1`` (set by ``nbsteps
    run``: nobody watches widgets there)."""
    if config.widgets() is False or config.headless():
        return False
    if not updates_supported():
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def _display(obj, **kw):
    from IPython.display import display

    return display(obj, **kw)


class Bundle:
    """A mime bundle, shown as it is by IPython's display()."""

    def __init__(self, bundle: dict) -> None:
        self.bundle = bundle

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        return self.bundle


def _trait(obj, name: str):
    """``getattr(obj, name)`` for a traitlets attribute, from where traitlets keeps its value
    once it is set or first read (the attribute's descriptor costs ~1 us; a display checks ~25)."""
    values = getattr(obj, "_trait_values", None)
    if values is not None and name in values:
        return values[name]
    return getattr(obj, name)


def _formats_as_is(shell, data: dict) -> bool:
    """Whether IPython's formatters make exactly *data* (and no metadata) of ``Bundle(data)``:
    it has ``text/plain`` (else the plain formatter adds the Bundle's repr), the mime-bundle
    formatter is on, and no formatter has a printer for ``Bundle`` or ``object`` (it would be
    used instead of the bundle's own formats)."""
    if "text/plain" not in data:
        return False
    formatter = getattr(shell, "display_formatter", None)
    if formatter is None:
        return False
    bundles = _trait(formatter, "mimebundle_formatter")
    if not _trait(bundles, "enabled"):
        return False
    for f in (
        _trait(formatter, "ipython_display_formatter"),
        bundles,
        *_trait(formatter, "formatters").values(),
    ):
        # (each formatter's two tables read as _trait reads them, without a call each: ~11 formatters)
        values = getattr(f, "_trait_values", None)
        if values is None:  # pragma: no cover - not a traitlets formatter
            values = {}
        printers = values["type_printers"] if "type_printers" in values else f.type_printers
        if Bundle in printers or object in printers:
            return False
        deferred = values["deferred_printers"] if "deferred_printers" in values else f.deferred_printers
        if deferred and (("builtins", "object") in deferred or (Bundle.__module__, "Bundle") in deferred):
            return False
    return True


def publish(
    data: dict, metadata: "dict | None" = None, display_id: "str | None" = None, update: bool = False
) -> None:
    """``display(Bundle(data), metadata=..., display_id=..., update=...)``: the same message,
    without running IPython's ~10 formatters over a bundle that is already made (each looks
    up a ``_repr_*_`` the Bundle does not have: ~0.1 ms of a step cell's ~2 displays) where
    they would give *data* back as it is (:func:`_formats_as_is`); else through them. The
    bundle goes to the shell's display publisher as ``display(data, raw=True)`` hands it
    (``publish_display_data``), without those two calls in between (~7 us a display)."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell._instance  # (what InteractiveShell.instance() returns once initialized)
    if shell is None or not isinstance(shell, InteractiveShell) or not _formats_as_is(shell, data):
        from IPython.display import display

        kw = {"update": True} if update else {}
        display(Bundle(data), metadata=metadata or None, display_id=display_id, **kw)
        return
    kw = {"transient": {"display_id": display_id}} if display_id else {}
    if update:
        if not display_id:
            raise TypeError("display_id required for update_display")
        kw["update"] = True
    shell.display_pub.publish(data=data, metadata=metadata or {}, **kw)


class StaticAtEnd:
    """A run listener displaying the static picture when the run finishes
    (frontends without live widgets). Its graph is laid out by ``dot`` on a thread of its
    own while the steps run (:func:`nbsteps.views.graph_live.lay_out`), as the live view does."""

    def __init__(self, plan) -> None:
        self.plan = plan
        self._laying_out: "threading.Thread | None" = None

    def _lay_out(self) -> None:
        from nbsteps.views.graph_live import lay_out

        try:
            lay_out(self.plan.context)
        except Exception:  # e.g. no `dot`: the picture says so
            pass

    def __call__(self, e) -> None:
        if e.context is not self.plan.context:
            return
        if e.kind == "planned":
            thread = threading.Thread(target=self._lay_out, name="nbsteps-layout", daemon=True)
            thread.start()
            self._laying_out = thread
        elif e.kind == "finished":
            thread, self._laying_out = self._laying_out, None
            if thread is not None:
                thread.join()
            _display(Bundle(self.plan.static_picture(e.steps or None, summary=e.summary)))


def run_listeners(plan, quiet: bool = False, omit: str | None = None) -> list:
    """Listeners for a run started by the magics: the text reporter (without
    the line of step *omit*, whose cell shows it), plus, for non-quiet runs in
    a kernel, the live view (then the static picture) or the static picture.

    In a kernel the reporter's lines are not flushed one by one: the kernel's
    stdout sends what was written every 0.2 s, before any display message
    and at the end of the cell, so the lines arrive in the same order,
    together (one message for many steps' lines instead of one a line)."""
    kernel = in_kernel()
    listeners: list = [TextReporter(quiet=quiet, omit=omit, flush=not kernel)]
    if quiet or not kernel:
        return listeners
    if widgets_supported():
        try:
            from nbsteps.views.live import LiveView

            view = LiveView(plan.context, refresh=plan.refresh_stale)
            view.display(draw=False)  # draws on the timer thread: the run starts at once
        except Exception as exc:  # a display problem must never stop a run
            import warnings

            warnings.warn(
                f"nbsteps: live view unavailable ({exc!r}); text progress only.", RuntimeWarning, stacklevel=1
            )
        else:
            listeners.append(view)
            return listeners
    listeners.append(StaticAtEnd(plan))
    return listeners


class ShowDisplays:
    """The outputs of ``%steps show`` of a plan (registered once in
    ``plan.listeners``): each is refreshed with the static picture when a run
    of the plan finishes; a show during a live run gets a live view too."""

    def __init__(self, plan) -> None:
        self.plan = plan
        self.handles: list = []
        self.views: list = []
        self.live = False
        self._lock = threading.Lock()

    def __call__(self, e) -> None:
        if e.kind == "planned":
            self.live = True
        with self._lock:
            views = list(self.views)
        for view in views:
            view(e)
        if e.kind != "finished":
            return
        self.live = False
        with self._lock:
            self.views = [v for v in self.views if not v.closed]
            handles = list(self.handles)
        if not handles:
            return
        bundle = Bundle(self.plan.static_picture())
        for handle in handles:
            try:
                handle.update(bundle)
            except Exception:  # pragma: no cover - a display problem must not break a run
                pass

    def show(self) -> None:
        if self.live and widgets_supported():
            from nbsteps.views.live import LiveView

            view = LiveView(self.plan.context, refresh=self.plan.refresh_stale)
            view.joining(self.plan.order())
            with self._lock:
                self.views.append(view)
            view.display(draw=True)
            return
        handle = _display(Bundle(self.plan.static_picture()), display_id=True)
        if handle is not None and updates_supported():
            with self._lock:
                self.handles = (self.handles + [handle])[-20:]


def show(plan) -> None:
    """``%steps show``: the plan's static picture (graph, progress, table),
    refreshed by later runs. Outside a kernel: the status text."""
    if not in_kernel():
        from nbsteps.ipython.session import status_text

        print(status_text(plan))
        print(
            "nbsteps: the picture of the plan needs a Jupyter notebook; "
            "%steps graph --output plan.svg writes the graph."
        )
        return None
    shows = next((x for x in plan.listeners if isinstance(x, ShowDisplays) and x.plan is plan), None)
    if shows is None:
        shows = ShowDisplays(plan)
        plan.listeners.append(shows)
    shows.show()
    return None
