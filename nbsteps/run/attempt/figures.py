"""Each step's pyplot figures are its own (see :mod:`nbsteps.run.attempt.capture`).

pyplot keeps its figures in one registry, ``matplotlib._pylab_helpers.Gcf.figs``.
It is replaced, once, by a stand-in that is the running step's own registry
inside a step and the shared one elsewhere, so parallel steps never draw on
each other's figures and a step's figures never reach the notebook's. If
pyplot is not loaded yet, a meta path hook patches the registry when it is
imported (by a step, or by two at once). matplotlib is never imported here.
A figure becomes plain data with :func:`figure_bundle` (PNG, as the inline
backend draws it).
"""

from __future__ import annotations

import base64
import io
import sys
import threading
from collections import OrderedDict
from typing import Callable

_install_lock = threading.Lock()
#: one drawing or formatting at a time: matplotlib's tight bounding box is not thread-safe, nor are the
#: display formatters libraries register (SymPy's LaTeX to PNG through mathtext's parser); Run All makes
#: them all on one thread (held by nbsteps.ipython.hooks around IPython's formatting too)
drawing = threading.RLock()
_owner: "Callable[[], OrderedDict | None] | None" = None


class _Figures:
    """Stands in for ``matplotlib._pylab_helpers.Gcf.figs``: the running
    step's own figure managers inside a step, the shared ones elsewhere."""

    def __init__(self, shared: "OrderedDict") -> None:
        self.shared = shared

    def _now(self) -> "OrderedDict":
        mine = _owner() if _owner is not None else None
        return mine if mine is not None else self.shared

    def get(self, *a):
        return self._now().get(*a)

    def pop(self, *a):
        return self._now().pop(*a)

    def keys(self):
        return self._now().keys()

    def values(self):
        return self._now().values()

    def items(self):
        return self._now().items()

    def clear(self):
        self._now().clear()

    def move_to_end(self, *a, **k):
        self._now().move_to_end(*a, **k)

    def setdefault(self, *a):
        return self._now().setdefault(*a)

    def copy(self):
        return self._now().copy()

    def __contains__(self, key):
        return key in self._now()

    def __len__(self):
        return len(self._now())

    def __bool__(self):
        return bool(self._now())

    def __iter__(self):
        return iter(self._now())

    def __reversed__(self):
        return reversed(self._now())

    def __getitem__(self, key):
        return self._now()[key]

    def __setitem__(self, key, value):
        self._now()[key] = value

    def __delitem__(self, key):
        del self._now()[key]

    def __repr__(self) -> str:
        return repr(self._now())


def _patch(helpers) -> None:
    gcf = helpers.Gcf
    if not isinstance(gcf.figs, _Figures):
        gcf.figs = _Figures(gcf.figs)


class _PatchOnImport:
    """A meta path finder that gives ``matplotlib._pylab_helpers`` the
    per-capture figure registry as soon as it is imported (even by a step,
    even by two steps at once); matplotlib itself is never imported here."""

    NAME = "matplotlib._pylab_helpers"

    def find_spec(self, fullname, path, target=None):
        if fullname != self.NAME:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


class _PatchingLoader:
    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _patch(module)

    def __getattr__(self, name):
        return getattr(self.loader, name)


_hook_installed = False


def watch(owner: Callable[[], "OrderedDict | None"]) -> None:
    """Per-step figures: *owner()* is the registry of the step running in the
    calling context (None outside steps). Patch pyplot's registry now, or
    when it is imported."""
    global _hook_installed, _owner
    _owner = owner
    helpers = sys.modules.get(_PatchOnImport.NAME)
    if helpers is not None:
        if not isinstance(helpers.Gcf.figs, _Figures):
            with _install_lock:
                _patch(helpers)
        return
    if not _hook_installed:
        with _install_lock:
            if not _hook_installed:
                sys.meta_path.insert(0, _PatchOnImport())
                _hook_installed = True


def figure_bundle(fig) -> dict:
    """A figure as a display item: PNG and text, drawn as the inline backend draws it (IPython's
    ``pylabtools.print_figure``: at the figure's own ``dpi``, not ``savefig.dpi``, which styles such as
    ``classic`` set apart; tight bounding box; the figure's face and edge colours). An empty figure
    (no axes, no lines: ``plt.figure()`` before a plot that makes its own) is only its text, as the
    inline backend shows it: ``print_figure`` draws nothing for it."""
    width, height = fig.get_size_inches() * fig.dpi
    text = f"<Figure size {width:g}x{height:g} with {len(fig.axes)} Axes>"
    if not fig.axes and not fig.lines:
        return {"data": {"text/plain": text}, "metadata": {}}
    buf = io.BytesIO()
    with drawing:
        fig.savefig(
            buf,
            format="png",
            dpi=fig.dpi,
            bbox_inches="tight",
            facecolor=fig.get_facecolor(),
            edgecolor=fig.get_edgecolor(),
        )
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    return {
        "data": {"image/png": png, "text/plain": text},
        "metadata": {},
    }
