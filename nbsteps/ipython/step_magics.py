"""IPython magics used inside a step's code keep to the step's namespace.

A step runs in a private namespace, in parallel with other steps. Most magics
a cell can use inside a step read the names they need from the caller's scope;
``%timeit`` does more: to time a line it copies the caller's local names
*into the user namespace* (``user_ns.update(local_ns)``) and, when it is done,
puts back the values that were there before. Two steps timing in parallel, or
a step timing while another publishes, put stale values back into the
notebook namespace (``sm_stl_decomposition`` of the corpus ended with an
earlier cell's ``fig``), and the step's own names leak into the notebook.

:func:`isolate` wraps the ``timeit`` and ``prun`` magics (``%prun`` runs its
statement in the user namespace: from a step it neither saw the step's names nor
kept its bindings in the step): called from a running step (a
capture is active in its thread), it runs on a view of the shell whose user
namespace is the step's own, so nothing outside the step changes; anywhere
else it is IPython's own, unchanged.
"""
from __future__ import annotations

import inspect

from nbsteps.run import capture

#: magics that write the caller's names into the user namespace (timeit) or run
#: their statement in it (prun: ``%prun x = f(data)`` reads and binds there)
ISOLATED = ("timeit", "prun")


class _StepShell:
    """The shell as a magic called from a step sees it: the step's namespace
    is its user namespace; everything else is the shell's."""

    def __init__(self, shell, ns: dict) -> None:
        self._shell = shell
        self.user_ns = ns

    def __getattr__(self, name):
        return getattr(self._shell, name)


class _StepMagics:
    def __init__(self, magics, ns: dict) -> None:
        self._magics = magics
        self.shell = _StepShell(magics.shell, ns)

    def __getattr__(self, name):
        return getattr(self._magics, name)


def _isolated(original):
    magics, func = original.__self__, original.__func__
    scoped = "local_ns" in inspect.signature(func).parameters

    def magic(line="", cell=None, local_ns=None):
        if capture.active() is None or local_ns is None:
            return original(line, cell, local_ns=local_ns) if scoped else original(line, cell)
        step_magics = _StepMagics(magics, local_ns)
        return func(step_magics, line, cell, None) if scoped else func(step_magics, line, cell)

    magic.needs_local_scope = True
    magic.nbsteps_isolated = True
    magic.__doc__ = original.__doc__
    return magic


def isolate(ip) -> None:
    """Wrap the magics of :data:`ISOLATED` (once)."""
    manager = ip.magics_manager
    table = manager.magics
    find = getattr(manager, "find", None)  # IPython 9: resolves a lazily declared magic (imports it)
    for kind in ("line", "cell"):
        for name in ISOLATED:
            try:
                fn = find(kind, name) if find is not None else table[kind].get(name)
            except Exception:  # a broken declaration fails where it is used, as without nbsteps
                continue
            if fn is None or getattr(fn, "nbsteps_isolated", False) or not hasattr(fn, "__func__"):
                continue
            table[kind][name] = _isolated(fn)
