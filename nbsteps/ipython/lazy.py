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

The result a restored ``%%step`` cell shows as ``Out`` is read the same way
(:class:`UnreadResult`): the cell shows the display taken when the step ran
(what Run All showed), and ``Out[n]``, ``_n``, ``_``, ``__``, ``___`` hold a
placeholder until a cell names one of them (``Out`` or ``_oh``: every one);
then each is the value itself, the same object as the step's output it is
(``Out[n] is x``). ``%steps load`` reads them all.

The same hook settles the replays of process state a run left pending
(``plan.settle()``, :func:`settles_before`): a notebook resumed from its store
executes nothing while its restored ``%%step`` cells run, and the first other
cell sees the rcParams, styles and options Run All leaves.
"""

from __future__ import annotations

import ast
import re
import types
import weakref
from typing import Any, Callable

from nbsteps import config
from nbsteps.errors import CheckpointUnavailable
from nbsteps.model.fingerprint import global_names, is_notebook_defined
from nbsteps.run.attempt import capture

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOAD_LINE = re.compile(r"\s*%steps\s+load\b[^\n]*\s*")
#: a cell of one ``%steps`` command that only prints what nbsteps knows: no replay before it
_TELLS_ONLY = re.compile(r"\s*%steps\s+(?:status|plan|why|mode)\b[^\n]*\s*")
#: the names under which IPython keeps a cell's Out
_OUT_NAME = re.compile(r"_{1,3}|_[0-9]+|Out|_oh")
_UNDERS = ("_", "__", "___")


def names_used(cell: str, namespace: dict, skip: "set | frozenset" = frozenset()) -> set:
    """Identifiers in *cell* (but those in *skip*) and, through the notebook-defined
    functions and classes it names, the global names their code uses (transitively)."""
    names = set(_IDENT.findall(cell)) - skip
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


def assigned_only(cell: str) -> set:
    """The names *cell* only assigns: every time one appears in its text it is a plain
    name bound by an assignment or a loop (``_ = plt.title(...)``), never read, deleted,
    augmented (``_ += 1``), declared ``global``, imported as, nor in a string or a
    comment. A cell that is not Python once its ``%%`` line is dropped (other magics,
    ``!ls``) assigns none. Conservative: a name bound twice and read once is read."""
    body = cell.split("\n", 1)[1] if cell.lstrip().startswith("%%") and "\n" in cell else cell
    try:
        tree = ast.parse(body)
    except (SyntaxError, ValueError):
        return set()
    stores: dict = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            stores[node.id] = stores.get(node.id, 0) + 1
        elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
            stores[node.target.id] = -1  # (reads it first)
    if not stores:
        return set()
    seen: dict = {}
    for n in _IDENT.findall(cell):
        if n in stores:
            seen[n] = seen.get(n, 0) + 1
    return {n for n, k in stores.items() if seen.get(n) == k}


class UnreadResult:
    """The result of a ``%%step`` cell whose step was restored from a directory
    store, not read yet: what the cell's ``Out[n]``, ``_n`` (and ``_``, ``__``,
    ``___`` while they point at it) hold until a cell names one of them
    (:func:`bind_results`, called before each cell). The cell has shown the
    result's display taken when the step ran, as Run All shows it; reading the
    value (unpickling it, which may import the libraries its objects come from:
    Matplotlib's pyplot for an artist) waits until someone uses it."""

    __slots__ = ("step", "_read", "__weakref__")

    def __init__(self, step: str, read: Callable[[], Any]) -> None:
        self.step = step
        self._read = read

    def read(self) -> Any:
        return self._read()

    def __repr__(self) -> str:
        return f"<result of step {self.step!r}, restored and not read yet: a cell that names it reads it>"


#: the UnreadResults IPython may still hold (Out, _n, _): dropped when bound or forgotten
_unbound: "weakref.WeakSet[UnreadResult]" = weakref.WeakSet()


def unread_result(plan, name: str, rec) -> UnreadResult:
    """What a restored cell of step *name* (record *rec*, its result not read)
    returns as its ``Out``: a placeholder reading the result of the checkpoint the
    cell restored when first used. A result that cannot be read any more (its
    file removed or damaged since, its class renamed) is reported as a lost value
    is, and the step executes again then, as in Run All: Out is its new result."""
    outputs = rec.outputs  # (the checkpoint this cell restored, even if the step runs again later)
    token = rec.token

    def read() -> Any:
        try:
            return outputs.result()
        except CheckpointUnavailable as exc:
            now = plan.records.get(name)
            if now is not None and now.ok and now.has_result and now.token == token:
                # the same version, executed again since (a replay for shared state keeps its token,
                # and its put replaced the files this cell restored): its result is this one
                try:
                    return now.result
                except CheckpointUnavailable:
                    pass
            plan.lost(exc)  # warns; the step (or the upstream one whose value it holds) executes again
        plan.run([name])  # (outside the handler: a failure of the step is not chained to the lost value)
        now = plan.records[name]
        return now.result if now.ok and now.has_result else None

    out = UnreadResult(name, read)
    _unbound.add(out)
    return out


def bind_results(shell, names: "set | None" = None) -> int:
    """Read the :class:`UnreadResult` that *names* (``_``, ``__``, ``___``, ``_N``;
    ``Out`` or ``_oh``: all; None: all) point at, and put each value where IPython
    keeps the placeholder: the user namespace and its hidden copy (so the
    displayhook still sees ``_`` as its own, not as assigned by the user), ``Out``,
    the displayhook's own ``_``, ``__``, ``___``, the last execution result.
    Returns how many were read."""
    if not _unbound:
        return 0
    ns = shell.user_ns
    oh = ns.get("_oh")
    oh = oh if isinstance(oh, dict) else {}
    if names is None or "Out" in names or "_oh" in names:
        found = [*oh.values(), *(ns.get(u) for u in _UNDERS)]
    else:
        found = [ns.get(n) for n in names if _OUT_NAME.fullmatch(n)]
    wanted = {id(v): v for v in found if isinstance(v, UnreadResult)}
    if not wanted:
        return 0
    values = {}
    for key, unread in wanted.items():
        values[key] = unread.read()
        _unbound.discard(unread)

    def swap(container, key) -> None:
        v = container.get(key)
        if isinstance(v, UnreadResult) and id(v) in values:
            container[key] = values[id(v)]

    hidden, hook = getattr(shell, "user_ns_hidden", {}), getattr(shell, "displayhook", None)
    for u in _UNDERS:
        swap(ns, u)
        swap(hidden, u)
        v = getattr(hook, u, None)
        if isinstance(v, UnreadResult) and id(v) in values:
            setattr(hook, u, values[id(v)])
    for n, v in list(oh.items()):
        if isinstance(v, UnreadResult) and id(v) in values:
            oh[n] = values[id(v)]
            swap(ns, f"_{n}")
            swap(hidden, f"_{n}")
    last = getattr(shell, "last_execution_result", None)
    if isinstance(getattr(last, "result", None), UnreadResult) and id(last.result) in values:
        last.result = values[id(last.result)]
    return len(values)


def settles_before(cell: str, info=None) -> bool:
    """Whether the replays a run left pending (``plan.settle()``: the process state Run All
    leaves, see :mod:`nbsteps.run.decide.replay`) are executed before *cell* runs: before any
    cell but a ``%%step`` cell (a restored one must not execute them, or Run All of a notebook
    resumed from its store would; one that executes settles them in its run) and but the
    requests ``nbsteps run`` makes of the kernel after the notebook (not stored in history), and
    but a cell that only asks nbsteps what it knows (``%steps status``, ``plan``, ``why``,
    ``mode``: text that reads no process state), so that ``%steps status`` lists them pending."""
    if cell.lstrip().startswith("%%step") or _TELLS_ONLY.fullmatch(cell):
        return False
    return getattr(info, "store_history", True) or not config.headless()


def before_cell_hook(current, shell=None):
    """A ``pre_run_cell`` callback reading the deferred names a cell uses, and the
    restored results it names (``Out[3]``, ``_``); *current* returns the session's
    plan (or None), *shell* is IPython's (default: the running one)."""

    def before_cell(info=None) -> None:
        plan = current()
        if plan is None or capture.active() is not None:
            return  # (a cell run by a step's code, %%capture's body: the step's inputs are read already)
        cell = getattr(info, "raw_cell", None) or ""
        if plan.pending_replays and settles_before(cell, info):
            plan.settle()
        if not (plan.deferred or _unbound):
            return
        used = None
        if _unbound:  # Out[3], _: the results of restored cells it names
            used = names_used(cell, plan.namespace)
            outs = {n for n in used if _OUT_NAME.fullmatch(n)}
            skip = outs & assigned_only(cell) if outs else outs
            if skip:
                # (`_ = plt.title(...)`: a name the cell only binds does not need the result it
                # held; one a notebook function it names reads is still read)
                outs = {n for n in names_used(cell, plan.namespace, skip) if _OUT_NAME.fullmatch(n)}
            if outs:
                ip = shell
                if ip is None:
                    from IPython import get_ipython

                    ip = get_ipython()
                if ip is not None:
                    bind_results(ip, outs)
        if not plan.deferred:
            return
        if cell.lstrip().startswith("%%step") or _LOAD_LINE.fullmatch(cell):
            return  # (%steps load NAME reads what it names itself, after checking every name)
        wanted = (used if used is not None else names_used(cell, plan.namespace)) & set(plan.deferred.pending)
        if wanted:
            plan.load(sorted(wanted))

    return before_cell
