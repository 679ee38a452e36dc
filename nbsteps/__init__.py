"""nbsteps: a Jupyter notebook as a reliable multi-step workflow.

``%load_ext nbsteps`` registers the ``%%step``/``%steps`` magics; ``nbsteps.Plan``
is the same engine for plain Python. Heavy modules (pandas, ipywidgets,
graphviz, dask) are imported only when used.
"""

from __future__ import annotations

from nbsteps.errors import (
    AmbiguousDependencyError,
    CycleError,
    NbstepsError,
    StepDefinitionError,
    StepsFailed,
    UnknownStepError,
)
from nbsteps.ipython.session import current, step
from nbsteps.plan import Plan

__version__ = "0.1.0"

__all__ = [
    "Plan",
    "analyse",
    "current",
    "step",
    "results",
    "graph",
    "NbstepsError",
    "StepsFailed",
    "CycleError",
    "UnknownStepError",
    "AmbiguousDependencyError",
    "StepDefinitionError",
    "load_ipython_extension",
]


def analyse(cell_source: str):
    """What nbsteps sees in a cell's raw text, IPython syntax included: sets
    ``.inputs``, ``.outputs``, ``.mutated``, ``.state`` (shared process state
    touched), ``.effects`` (of it, changed), and ``.warnings``."""
    from nbsteps.model.analysis import analyse as _analyse

    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:  # plain Python then
        return _analyse(cell_source)
    return _analyse(cell_source, TransformerManager().transform_cell)


def results():
    """The notebook plan's results table (pandas DataFrame)."""
    return current().results()


def graph():
    """The notebook plan's dependency graph (graphviz Digraph)."""
    return current().graph()


def load_ipython_extension(ip):
    from nbsteps.ipython.magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip):
    from nbsteps.ipython.magics import unload_ipython_extension as unload

    unload(ip)
