"""The names IPython's magics bind and read in the namespace, for the analysis
of a cell (:class:`nbsteps.model.analysis.CellWalker`).

A magic called from a step runs on the step's namespace (see
:mod:`nbsteps.ipython.step_magics`); what it binds there is the step's output,
as a cell's own assignments are, and what it reads there is its input:

- ``%run script.py`` copies the names the script binds at its top level into
  the namespace; ``%run -i script.py`` runs the script in it (its reads are the
  cell's too). The script is read when the cell is analysed; one that cannot
  be read (or ``-m``, ``.ipy``) gets a warning;
- ``%store x`` reads ``x`` (and writes IPython's database: state
  ``ipython:store``); ``%store -r x`` binds ``x`` (and reads the database);
- ``%%capture out`` binds ``out`` (after its body ran).
"""

from __future__ import annotations

import ast
import os
import shlex
import warnings

from nbsteps.model.rules import _EXPAND_RE
from nbsteps.model.scopes import collect

#: options of %run that take a value
_RUN_VALUES = set("NbDlsTm")


def _parse_file(path: str):
    """The AST of the Python file *path*, or None (unreadable, not Python)."""
    try:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None


def _run_arguments(line: str) -> tuple[set, str | None]:
    """(%run's options, the script) of a ``%run`` line."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    opts: set = set()
    it = iter(words)
    for word in it:
        if not (word.startswith("-") and len(word) > 1):
            return opts, word
        for i, opt in enumerate(word[1:]):
            opts.add(opt)
            if opt in _RUN_VALUES:
                if i == len(word) - 2:
                    next(it, None)  # the value is the next word
                break
    return opts, None


def run_script(walker, line: str) -> None:
    opts, script = _run_arguments(line)
    path = script if script and not _EXPAND_RE.search(script) else None
    if path is not None and not os.path.isfile(path) and os.path.isfile(path + ".py"):
        path += ".py"  # as %run finds it
    tree = None
    if path is not None and "m" not in opts and path.endswith(".py"):
        walker.label("file:" + os.path.normpath(path))
        tree = _parse_file(path)
    if tree is None:
        what = f"-m {script}" if "m" in opts else (script or "")
        walker.warnings.append(
            f"%run {what}: nbsteps cannot list the names the script binds (it cannot read it "
            f"when the step is registered); a step reading them should name this one with "
            f"--after."
        )
        return
    if "i" in opts:  # runs in the namespace: reads and binds there, as the cell's own code
        walker.visit_all(tree.body)
        return
    names, _, _ = collect(tree.body)
    for name in sorted(names):
        walker.store(name)


def store_magic(walker, line: str) -> None:
    words = line.split()
    flags = "".join(w[1:] for w in words if w.startswith("-"))
    names = [w for w in words if not w.startswith(("-", ">"))]
    if "r" in flags:
        walker.label("ipython:store")
        if not names:
            walker.warnings.append(
                "%store -r: nbsteps cannot list the names it restores; name them: %store -r NAME ..."
            )
        for name in names:
            if name.isidentifier():
                walker.store(name)
        return
    walker.label("ipython:store", True)
    if "d" in flags or "z" in flags:
        return
    if ">" in line and names:  # %store x > file: x is an expression, the file is written
        try:
            walker.visit_all([ast.parse(names[0], mode="eval").body])
        except (SyntaxError, ValueError):
            pass
        target = line.partition(">")[2].lstrip(">").strip()
        if target:
            walker.label("file:" + os.path.normpath(os.path.expanduser(target)), True)
        return
    for name in names:
        if name.isidentifier():
            walker.load(name)


def capture_magic(walker, line: str) -> None:
    names = [w for w in line.split() if not w.startswith("-")]
    if names and names[0].isidentifier():
        walker.store(names[0])
