"""Names a cell binds to one object graph (SPEC 1, "Mutation").

``fig, ax = plt.subplots()`` binds two names to objects that hold each other:
a later cell that changes ``ax`` (``ax.plot(...)``) changes what ``fig``
shows, in Run All. A step works on private copies of what it changes, so it
must copy such names together (one deep copy: ``ax.figure is fig`` still
holds) and write them all as new versions, or a cell below that shows ``fig``
would see the figure without the new line.

Which names are bound together, from the cell's top-level statements:

- one assignment with several names (``fig, ax = ...``, ``a = b = ...``),
  except a literal tuple or list of distinct values (``x, y = 1, 2``);
- a plain alias (``b = a``);
- an object taken from another that keeps it (``ax = fig.add_subplot(...)``,
  ``fig = ax.figure``, ``ax2 = ax.twinx()``: :data:`LINKING`).
"""

from __future__ import annotations

import ast

#: methods and attributes whose value belongs to (and refers back to) the object they are taken from
LINKING = frozenset(
    {
        "add_subplot",
        "add_axes",
        "subplots",
        "subplot_mosaic",
        "gca",
        "gcf",
        "twinx",
        "twiny",
        "inset_axes",
        "get_figure",
        "get_axes",
        "figure",
        "axes",
        "ax",
        "fig",
        "subfigures",
        "add_subfigure",
    }
)


def _names(target) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _names(elt)]
    if isinstance(target, ast.Starred):
        return _names(target.value)
    return []


def _source_name(value) -> str | None:
    """``a`` for ``a``, ``a.figure``, ``a.add_subplot(...)``."""
    if isinstance(value, ast.Name):
        return value.id
    if isinstance(value, ast.Call):
        value = value.func
    if isinstance(value, ast.Attribute) and value.attr in LINKING and isinstance(value.value, ast.Name):
        return value.value.id
    return None


def alias_groups(body: list, outputs, imported=()) -> tuple[frozenset, ...]:
    """The groups (two names or more) of *outputs* that *body* binds to one
    object graph; *imported*: the names it binds by imports (``plt`` of
    ``fig, ax = plt.subplots()`` is not bound to them)."""
    outputs = set(outputs).difference(imported)
    if len(outputs) < 2:  # a group has two names or more
        return ()
    parent: dict[str, str] = {}

    def find(n: str) -> str:
        while parent.setdefault(n, n) != n:
            n = parent[n]
        return n

    def join(names) -> None:
        names = [n for n in names if n in outputs]
        for a, b in zip(names, names[1:], strict=False):
            parent[find(a)] = find(b)

    for stmt in body:
        if type(stmt) is not ast.Assign:
            continue
        targets = stmt.targets
        if len(targets) == 1 and type(targets[0]) is ast.Name:  # one name: only an alias may join it
            names = [targets[0].id]
        else:
            names = [n for t in targets for n in _names(t)]
            literal = isinstance(stmt.value, (ast.Tuple, ast.List)) and len(targets) == 1
            if len(names) > 1 and not literal:
                join(names)
        src = _source_name(stmt.value)
        if src is not None:
            join(names + [src])
    groups: dict[str, set] = {}
    for n in list(parent):
        groups.setdefault(find(n), set()).add(n)
    return tuple(frozenset(g) for g in groups.values() if len(g) > 1)
