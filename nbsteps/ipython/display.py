"""Which listeners show a run, by frontend: text lines everywhere; the live
widget (:mod:`nbsteps.widget`) only where a notebook kernel can render widgets.

- Terminal IPython, plain Python, ``nbsteps run`` (``NBSTEPS_HEADLESS=1``),
  ``NBSTEPS_WIDGETS=0``: the text reporter only.
- A Jupyter kernel (ZMQ shell) with ipywidgets: ``%steps run`` shows the text
  lines *and* a live view of the run. Quiet runs (a ``%%step`` cell run
  interactively) print only their text line: a widget under every cell would
  be noise. nbclient also runs a ZMQ kernel: ``nbsteps run`` marks its kernel
  headless (no widgets); other nbclient uses (``jupyter nbconvert --execute``,
  tests) get the view, whose output also has ``text/plain`` and ``text/html``
  fallbacks, next to the text reporter's lines and summary.
- ``%steps show``: the live view bound to the plan; it is registered in
  ``plan.listeners`` (once per plan), so it keeps updating during later runs.
"""
from __future__ import annotations


from nbsteps import config
from nbsteps.views.text import TextReporter


def widgets_supported() -> bool:
    """True in a Jupyter kernel (ZMQ shell) with ipywidgets installed, unless
    ``NBSTEPS_WIDGETS=0`` or ``NBSTEPS_HEADLESS=1`` (set by ``nbsteps run``:
    nobody watches widgets there, its log gets the text lines only)."""
    if config.widgets() is False or config.headless():
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    ip = get_ipython()
    if ip is None or type(ip).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def run_listeners(plan, quiet: bool = False) -> list:
    """Listeners for a run started by the magics: the text reporter, plus (in
    a widget-capable kernel, for non-quiet runs) a live view displayed now."""
    listeners: list = [TextReporter(quiet=quiet)]
    if quiet or not widgets_supported():
        return listeners
    try:
        from nbsteps.views.live import LiveView

        view = LiveView(plan)
        view.display(draw=False)  # draws on the timer thread: the run starts at once
    except Exception as exc:  # a display problem must never stop a run
        import warnings

        warnings.warn(f"nbsteps: live view unavailable ({exc!r}); text progress only.", RuntimeWarning)
        return listeners
    listeners.append(view)
    return listeners


def live_view(plan):
    """The live view registered on *plan* (created and registered if none)."""
    from nbsteps.views.live import LiveView

    for listener in plan.listeners:
        if isinstance(listener, LiveView) and not listener.closed and listener.plan is plan:
            return listener
    view = LiveView(plan)
    plan.listeners.append(view)
    return view


def show(plan):
    """``%steps show``: display the plan's live view (graph, progress, table),
    which keeps updating during later runs. Without widgets: the status text."""
    if not widgets_supported():
        from nbsteps.ipython.session import status_text

        print(status_text(plan))
        print("nbsteps: the live view needs a Jupyter notebook with ipywidgets; "
              "%steps graph --output plan.svg writes the graph.")
        return None
    view = live_view(plan)
    view.display(draw=True)
    return None
