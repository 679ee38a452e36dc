"""Which listeners show a run, by frontend: text lines everywhere; the live
widget (nbsteps.widget) only where a notebook frontend can render widgets."""
from __future__ import annotations

from .reporter import TextReporter


def widgets_supported() -> bool:
    """True in a Jupyter kernel (ZMQ shell) with ipywidgets installed."""
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
    return [TextReporter(quiet=quiet)]


def show(plan):
    from .errors import NbstepsError

    raise NbstepsError("%steps show needs the widget view, which is not available yet.")
