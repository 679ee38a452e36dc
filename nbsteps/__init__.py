"""nbsteps: a Jupyter notebook as a reliable multi-step workflow.

``%load_ext nbsteps`` registers the ``%%step``/``%steps`` magics; ``nbsteps.Plan``
is the same engine for plain Python. Heavy modules (pandas, ipywidgets,
graphviz, dask) are imported only when used.
"""
from __future__ import annotations

from .errors import (
    AmbiguousDependencyError, CycleError, NbstepsError, StepDefinitionError, StepsFailed, UnknownStepError,
)
from .analysis import analyse
from .plan import Plan
from .session import current, step

__version__ = "0.1.0"

__all__ = [
    "Plan", "analyse", "current", "step", "results", "graph", "NbstepsError", "StepsFailed", "CycleError",
    "UnknownStepError", "AmbiguousDependencyError", "StepDefinitionError", "load_ipython_extension",
]


def results():
    """The notebook plan's results table (pandas DataFrame)."""
    return current().results()


def graph():
    """The notebook plan's dependency graph (graphviz Digraph)."""
    return current().graph()


def load_ipython_extension(ip):
    from .magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip):
    from .magics import unload_ipython_extension as unload

    unload(ip)
