"""Reading the notebook a command is given: one line naming the file and the
problem (a :class:`~nbsteps.errors.UsageError`, exit 2) for anything unusable."""

from __future__ import annotations

import json
import os

from nbsteps.errors import UsageError


def _load_notebook(path: str):
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory, not a notebook")
    try:  # cheap checks first: importing nbformat takes a while
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"{path} is not a Jupyter notebook (not JSON: {' '.join(str(exc).split())[:80]})"
        ) from None
    except RecursionError:
        raise UsageError(f"{path} is not a Jupyter notebook (its JSON nests too deep to read)") from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise UsageError(f"{path} is not a Jupyter notebook (no 'cells' and 'nbformat' fields)")
    problem = _structure_problem(data)
    if problem:
        raise UsageError(
            f"{path} is not a valid Jupyter notebook ({problem}); fix it in Jupyter or a text editor"
        )
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except Exception as exc:
        reason = " ".join(str(exc).split())[:120]
        raise UsageError(f"{path} is not a Jupyter notebook ({type(exc).__name__}: {reason})") from None
    if "cells" not in nb:
        raise UsageError(f"{path} is not a Jupyter notebook (no cells)")
    return nb


def _structure_problem(data: dict) -> str:
    """What makes the notebook unusable (the fields nbsteps and nbclient read), or ''."""
    meta = data.get("metadata", {})
    if not isinstance(meta, dict):
        return f"'metadata' is a {type(meta).__name__}, not an object"
    spec = meta.get("kernelspec")
    if spec is not None and not (isinstance(spec, dict) and isinstance(spec.get("name", ""), str)):
        return "metadata.kernelspec is not an object with a kernel name"
    cells = data["cells"]
    if not isinstance(cells, list):
        return f"'cells' is a {type(cells).__name__}, not a list"
    if not isinstance(data["nbformat"], int) or data["nbformat"] < 4:
        return (
            "" if isinstance(data["nbformat"], int) else f"'nbformat' is {data['nbformat']!r}, not a number"
        )
    for i, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            return f"cell {i} is a {type(cell).__name__}, not an object"
        kind = cell.get("cell_type")
        if kind not in ("code", "markdown", "raw"):
            return f"cell {i} has cell_type {kind!r}: expected 'code', 'markdown' or 'raw'"
        source = cell.get("source", "")
        if not isinstance(source, str) and not (
            isinstance(source, list) and all(isinstance(line, str) for line in source)
        ):
            return f"cell {i}'s source is {type(source).__name__} {str(source)[:40]!r}, not text"
        if kind == "code" and not isinstance(cell.get("outputs", []), list):
            return f"cell {i}'s outputs are not a list"
    return ""
