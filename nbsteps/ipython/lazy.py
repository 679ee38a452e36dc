"""Values restored from a directory store are read when a cell uses them.

A step restored from a directory checkpoint does not read its values (see
:mod:`nbsteps.run.deferred`): a re-run of an unchanged notebook in a new
kernel reads metadata only. In IPython the plan keeps such names out of the
namespace until a cell needs them: before every cell runs, the names the cell
mentions (and the global names used by the notebook functions and classes it
mentions, followed transitively) that are still deferred are read and
published. ``%%step`` cells are left alone: a step that executes reads what it
needs through its upstream records. ``%steps load`` (``plan.load()``) reads
everything that is left.

Not seen by this: code that looks names up by string (``globals()["df"]``,
``eval``), and tools that list the namespace (``%who``, variable inspectors)
before anything used the name.
"""

from __future__ import annotations

import re
import types

from nbsteps.model.fingerprint import global_names, is_notebook_defined
from nbsteps.run.attempt import capture

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOAD_LINE = re.compile(r"\s*%steps\s+load\b[^\n]*\s*")


def names_used(cell: str, namespace: dict) -> set:
    """Identifiers in *cell* and, through the notebook-defined functions and
    classes it names, the global names their code uses (transitively)."""
    names = set(_IDENT.findall(cell))
    todo = list(names)
    seen: set = set()
    while todo:
        obj = namespace.get(todo.pop())
        if not isinstance(obj, (types.FunctionType, type)) or id(obj) in seen or not is_notebook_defined(obj):
            continue
        seen.add(id(obj))
        codes = (
            [obj.__code__]
            if isinstance(obj, types.FunctionType)
            else [getattr(getattr(v, "__func__", v), "__code__", None) for v in vars(obj).values()]
        )
        for code in codes:
            if code is None:
                continue
            for name in global_names(code):
                if name not in names:
                    names.add(name)
                    todo.append(name)
    return names


def before_cell_hook(current):
    """A ``pre_run_cell`` callback reading the deferred names a cell uses;
    *current* returns the session's plan (or None)."""

    def before_cell(info=None) -> None:
        plan = current()
        if plan is None or not plan.deferred or capture.active() is not None:
            return  # (a cell run by a step's code, %%capture's body: the step's inputs are read already)
        cell = getattr(info, "raw_cell", None) or ""
        if cell.lstrip().startswith("%%step") or _LOAD_LINE.fullmatch(cell):
            return  # (%steps load NAME reads what it names itself, after checking every name)
        wanted = names_used(cell, plan.namespace) & set(plan.deferred.pending)
        if wanted:
            plan.load(sorted(wanted))

    return before_cell
