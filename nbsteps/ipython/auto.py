"""Plain code cells as steps: ``%steps auto`` in a kernel, and the names that
``nbsteps run`` / ``convert`` / ``status`` give the cells of a notebook
without ``%%step`` cells ("zero edits").

A plain cell's step is named by a first-line comment ``# step: NAME [options]``
(the options of ``%%step``: ``--retry 2 --timeout 30``...), else ``cell-ID``
where ID is the cell's id (nbformat 4.5 and later; the first 8 characters,
longer when two cells share them), so inserting or moving a cell renames no
other step. A notebook saved without cell ids (nbformat 4.4 and older) has its
cells named by position, ``cell-N`` (the N-th code cell): inserting a cell then
renames those after it. Cells that are empty, only comments, only line magics
or shell commands (``%load_ext``, ``%matplotlib``, ``!pip``), or start with a
cell magic whose body is not Python run in the notebook's namespace
(``%%bash``, ``%%html``, ``%%writefile``) are not steps. A cell magic that runs
its body as a cell (``%%capture``, ``%%time``, ``%%timeit``, ``%%prun``: IPython
hands the body to the shell's ``run_cell`` or ``transform_cell``, see
:func:`runs_python`), and a line magic that runs its argument so (``%time x =
f()``), make a step, as a ``%%step`` cell with that code does: in
Run All such a cell reads the values above it and binds names for the cells
below, which a plain cell, run while the steps are registered and before any
of them ran, could not do.

``%steps auto`` registers a transformer that runs before IPython's own: it
turns a plain cell into ``run_step(SOURCE)``, which runs it as ``%%step`` would
(``shell.run_cell_magic``, what IPython makes of a ``%%step`` cell) and returns
the step's result as the cell's ``Out``; the name is computed when that code
runs, after ``pre_run_cell`` has seen the cell id the frontend sent
(JupyterLab and Notebook send one; without it the step is named after the
execution count, ``cell-N``).
"""

from __future__ import annotations

import functools
import inspect
import re
import threading

#: ``# step: NAME [options]`` on the first non-blank line of a cell
STEP_COMMENT = re.compile(r"^\s*#\s*step\s*:\s*(?P<header>\S.*?)\s*$")
_VALID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_SHORT_ID = 8
#: code nbsteps itself runs in the kernel (``nbsteps run``'s questions): never a step
_OWN = "__import__('nbsteps."


def first_line(source: str) -> str:
    return next((ln for ln in source.splitlines() if ln.strip()), "")


def step_comment(source: str) -> "str | None":
    """``NAME [options]`` of a first-line ``# step:`` comment, else None."""
    m = STEP_COMMENT.match(first_line(source))
    return m.group("header") if m else None


def is_step_cell(source: str) -> bool:
    """Whether a plain code cell becomes a step (see module doc)."""
    lines = [ln.strip() for ln in source.splitlines() if ln.strip()]
    if not lines:
        return False
    if lines[0].startswith("%%"):
        return runs_python(_magic_name(lines[0][2:]), "cell")
    if step_comment(source) is not None:
        return True
    return any(
        not ln.startswith(("#", "%", "!"))
        or (ln.startswith("%") and runs_python(_magic_name(ln[1:]), "line"))
        for ln in lines
    )


def _magic_name(text: str) -> str:
    words = text.split()
    return words[0] if words else ""


@functools.lru_cache(maxsize=None)
def runs_python(magic: str, kind: str = "cell") -> bool:
    """Whether IPython's magic *magic* (*kind* ``"cell"`` or ``"line"``) runs Python code of
    the cell in the user namespace, as Run All runs a cell: a cell magic whose implementation
    hands its body to the shell's ``run_cell`` or ``transform_cell`` (``%%capture``, ``%%time``,
    ``%%timeit``, ``%%prun``); a line magic that hands its argument to ``transform_cell``
    (``%time x = f()``, ``%timeit``, ``%prun``; not ``%rerun`` or ``%edit``, which run the
    history or a file). Decided from IPython's own magic classes, not from a list of names;
    a magic IPython does not define (an extension's) is not known here: False."""
    if not magic or magic == "step" or kind not in ("cell", "line"):
        return False
    try:
        import IPython.core.magics as builtin
    except ImportError:  # pragma: no cover - nbsteps needs IPython
        return False
    for attr in dir(builtin):  # (the module may import its classes lazily: not vars())
        cls = getattr(builtin, attr, None)
        table = getattr(cls, "magics", None) if isinstance(cls, type) else None
        method = table.get(kind, {}).get(magic) if isinstance(table, dict) else None
        if method is None:
            continue
        func = inspect.unwrap(getattr(cls, method, None) or (lambda: None))
        code = getattr(func, "__code__", None)
        return code is not None and bool(_code_names(code) & _RUNS_CODE[kind])
    return False


#: the shell methods through which a magic runs its body (a cell magic) or its argument (a line
#: magic) as a cell: IPython's transformer, and for a cell magic ``run_cell``
_RUNS_CODE = {"cell": frozenset({"run_cell", "transform_cell"}), "line": frozenset({"transform_cell"})}


def _code_names(code) -> set:
    """The attribute and global names *code* and the functions nested in it use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, type(code)):
            names |= _code_names(const)
    return names


def is_marked_step(source: str) -> bool:
    """A ``%%step`` cell."""
    return first_line(source).lstrip().startswith("%%step")


def id_name(cell_id: str) -> str:
    """``cell-`` and the first characters of *cell_id* usable in a step name."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "", cell_id or "")
    return f"cell-{safe[:_SHORT_ID]}" if safe else ""


def plain_headers(cells) -> tuple[dict[int, str], bool]:
    """``{index: 'NAME [options]'}`` for the cells of a notebook that become
    steps in a zero-edit run (*cells*: nbformat cells), and whether the names
    come from cell ids (False: the notebook has none, positions are used)."""
    code = [(i, c) for i, c in enumerate(cells) if c.get("cell_type") == "code"]
    with_ids = all(c.get("id") for _, c in code) and bool(code)
    headers: dict[int, str] = {}
    taken: set[str] = set()
    for _, c in code:
        header = step_comment(_text(c.get("source", "")))
        if header is not None:
            taken.add(header.split()[0])
    for n, (i, c) in enumerate(code, 1):
        source = _text(c.get("source", ""))
        if not is_step_cell(source):
            continue
        header = step_comment(source)
        if header is None:
            header = _unique(_id_name_of(c, n, with_ids, code), taken)
            taken.add(header)
        headers[i] = header
    return headers, with_ids


def _id_name_of(cell, n: int, with_ids: bool, code) -> str:
    if not with_ids:
        return f"cell-{n}"
    cid = re.sub(r"[^A-Za-z0-9_-]", "", str(cell.get("id")))
    length = _SHORT_ID
    others = [re.sub(r"[^A-Za-z0-9_-]", "", str(c.get("id"))) for _, c in code if c is not cell]
    while length < len(cid) and any(o[:length] == cid[:length] for o in others):
        length += 4
    return f"cell-{cid[:length]}" if cid else f"cell-{n}"


def _unique(name: str, taken: set) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}-{k}" in taken:
        k += 1
    return f"{name}-{k}"


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def valid_name(name: str) -> bool:
    return bool(_VALID.fullmatch(name))


# -- %steps auto in a kernel ------------------------------------------------------------

_state = threading.local()


class Auto:
    """The hooks of ``%steps auto`` on one shell."""

    def __init__(self, shell) -> None:
        self.shell = shell
        self.cell_id: "str | None" = None
        self.count = 0
        self.warned = False

    def pre_run_cell(self, info) -> None:
        self.cell_id = getattr(info, "cell_id", None)
        self.count = getattr(self.shell, "execution_count", 0)

    def transform(self, lines: list[str]) -> list[str]:
        source = "".join(lines)
        if getattr(_state, "inside", False) or not is_step_cell(source) or source.startswith(_OWN):
            return lines
        from nbsteps.run.attempt.capture import namespace

        if namespace() is not None:  # a step's own code runs a cell (``%%capture``'s body, on a worker)
            return lines
        return [f"__import__('nbsteps.ipython.auto', fromlist=['_']).run_step({source!r})\n"]

    def header(self, source: str) -> str:
        found = step_comment(source)
        if found is not None:
            return found
        if self.cell_id:
            return id_name(self.cell_id)
        if not self.warned:
            self.warned = True
            print(
                "nbsteps: this frontend sends no cell ids: auto steps are named after the execution "
                "count (cell-N); make '# step: NAME' a cell's first line for a name that lasts"
            )
        return f"cell-{self.count}"


_auto: "Auto | None" = None


def run_step(source: str):
    """(run by a transformed cell) The cell as ``%%step HEADER``; returns the step's result."""
    auto = _auto
    shell = auto.shell if auto is not None else None
    if shell is None:  # pragma: no cover - switched off mid-cell
        from IPython import get_ipython

        shell = get_ipython()
    header = auto.header(source) if auto is not None else "cell"
    _state.inside = True
    try:
        return shell.run_cell_magic("step", header, source)
    finally:
        _state.inside = False


def enable(shell) -> bool:
    """Make every following plain code cell a step; False if it already was."""
    global _auto
    if _auto is not None and _auto.shell is shell:
        return False
    disable(shell)
    _auto = Auto(shell)
    shell.events.register("pre_run_cell", _auto.pre_run_cell)
    shell.input_transformers_cleanup.append(_transform)
    return True


def disable(shell) -> bool:
    """Back to plain cells; False if auto mode was off."""
    global _auto
    if _auto is None:
        return False
    try:
        _auto.shell.events.unregister("pre_run_cell", _auto.pre_run_cell)
    except ValueError:  # pragma: no cover
        pass
    if _transform in _auto.shell.input_transformers_cleanup:
        _auto.shell.input_transformers_cleanup.remove(_transform)
    _auto = None
    return True


def enabled() -> bool:
    return _auto is not None


def _transform(lines: list[str]) -> list[str]:
    return _auto.transform(lines) if _auto is not None else lines
