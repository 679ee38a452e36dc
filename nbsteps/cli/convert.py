"""``nbsteps convert NOTEBOOK.ipynb -o OUT.ipynb``: write the ``%%step`` headers.

Each plain code cell that ``nbsteps run`` would make a step gets a first line
``%%step NAME [options]``: the name and options of its ``# step:`` comment
(the comment stays), else the main name the cell assigns (the last name it
writes that is not an import: ``df = pd.read_csv(...)`` is step ``df``; a cell
of imports only is ``imports``), else its zero-edit name (``cell-ID``); names
are made unique (``df-2``). A first cell ``%load_ext nbsteps`` is inserted when
no cell loads nbsteps. Everything else is kept as it was: the other cells'
JSON is identical, and a converted cell differs only by its first line.
``--check`` prints the names and writes nothing.
"""

from __future__ import annotations

import ast
import json
import os
import re

from nbsteps.cli.cells import notebook_steps, python_source, source_of
from nbsteps.cli.driver import say
from nbsteps.errors import UsageError
from nbsteps.ipython.auto import id_name, step_comment, valid_name

_LOAD = re.compile(r"^\s*%load_ext\s+nbsteps\s*$", re.MULTILINE)


def _top_level(body: str) -> tuple[set, list]:
    """(names imported, names bound by the top-level statements in source order)."""
    try:
        tree = ast.parse(python_source(body))
    except SyntaxError:
        return set(), []
    imported, bound = set(), []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.append(node.name)
        else:
            targets = getattr(node, "targets", None) or [getattr(node, "target", None)]
            for t in targets:
                bound += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)] if t is not None else []
    return imported, bound


def main_name(body: str) -> "str | None":
    """The last name *body* binds at top level that is a step output and not an
    import, 'imports' for a cell of imports only, else None."""
    from nbsteps import analyse

    try:
        outputs = set(analyse(body).outputs)
    except Exception:  # a cell that does not parse: named by its id
        return None
    imported, bound = _top_level(body)
    names = [
        n for n in bound if n in outputs and n not in imported and not n.startswith("_") and valid_name(n)
    ]
    if names:
        return names[-1]
    rest = sorted(n for n in outputs - imported if not n.startswith("_") and valid_name(n))
    if rest:
        return rest[-1]
    return "imports" if outputs and outputs <= imported else None


def _names(data: dict) -> dict[int, str]:
    """{cell index: %%step header} for the plain cells of the notebook JSON *data*."""
    steps, zero, _ = notebook_steps(data["cells"])
    if not zero:
        raise UsageError("the notebook already has %%step cells: nothing to convert")
    comments = {s.index: step_comment(s.body) for s in steps}
    taken = {h.split()[0] for h in comments.values() if h}
    headers = {}
    for s in steps:
        if comments[s.index]:
            headers[s.index] = comments[s.index]
            continue
        base = main_name(s.body) or s.name or id_name(str(data["cells"][s.index].get("id", "")))
        name, k = base, 2
        while name in taken:
            name, k = f"{base}-{k}", k + 1
        taken.add(name)
        headers[s.index] = name
    return headers


def _with_header(source, header: str):
    line = f"%%step {header}\n"
    if isinstance(source, list):
        return [line, *source]
    return line + source


def convert_command(args) -> int:
    from nbsteps.cli.notebook import _load_notebook

    _load_notebook(args.notebook)  # the same checks (and one-line errors) as nbsteps run
    if not args.check and not args.output:
        raise UsageError("convert needs -o OUT.ipynb (or --check to only print the names)")
    with open(args.notebook, encoding="utf-8") as f:
        text = f.read()
    data = json.loads(text)
    headers = _names(data)
    cells = data["cells"]
    loads = any(c.get("cell_type") == "code" and _LOAD.search(source_of(c)) for c in cells)
    if args.check:
        for i, header in headers.items():
            first = next((ln.strip() for ln in source_of(cells[i]).splitlines() if ln.strip()), "")
            say(f"cell {i + 1}: %%step {header}    ({first[:60]})")
        if not loads:
            say("a first cell %load_ext nbsteps would be added")
        return 0
    for i, header in headers.items():
        cells[i]["source"] = _with_header(cells[i].get("source", ""), header)
    if not loads:
        cells.insert(0, _load_cell(data))
    out = os.path.abspath(args.output)
    from nbsteps.files import atomic_write

    with atomic_write(out, "w") as f:
        f.write(json.dumps(data, sort_keys=True, indent=_indent(text), ensure_ascii=False) + "\n")
    added = "" if loads else " and %load_ext nbsteps"
    say(f"nbsteps: wrote {args.output}: {len(headers)} %%step cells{added}")
    return 0


def _load_cell(data: dict) -> dict:
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": []}
    cell["source"] = ["%load_ext nbsteps"]
    if (data.get("nbformat"), data.get("nbformat_minor", 0)) >= (4, 5):
        import uuid

        taken = {c.get("id") for c in data["cells"]}
        cid = uuid.uuid4().hex[:8]
        while cid in taken:  # pragma: no cover
            cid = uuid.uuid4().hex[:8]
        cell["id"] = cid
    return cell


def _indent(text: str) -> int:
    """The indent of the notebook's JSON (Jupyter writes 1)."""
    m = re.search(r"\n( +)\"", text)
    return len(m.group(1)) if m else 1
