#!/usr/bin/env python
"""Keep the teaching notebooks' text (notebooks/*.md) and their executed copies
(notebooks/*.ipynb) in step.

Each teaching notebook is a jupytext pair: the MyST markdown file is the source
(edit it in Jupyter, where jupytext opens it as a notebook, or in any editor),
and the .ipynb beside it is generated from it and committed with its outputs
(graph pictures, tables, each step's output) so that GitHub and nbviewer show them.

    python scripts/notebooks.py sync              # rebuild and execute every .ipynb from its .md
    python scripts/notebooks.py sync 03 05        # only these
    python scripts/notebooks.py sync --no-execute # rebuild the cells only, without outputs
    python scripts/notebooks.py check             # exit 1 if a pair's cells differ

`sync` executes each notebook in a fresh python3 kernel (nbclient) from the
notebooks/ directory, with this interpreter's bin directory first on PATH (so
`!nbsteps` in a notebook is this environment's); no widget state is stored (runs leave static
pictures, not widgets). In the outputs, the paths of this virtualenv and
of this checkout are replaced by <venv> and <nbsteps>.
Cell ids of unchanged cells are kept, so a re-sync's diff shows what changed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
FORMATS = "ipynb,md:myst"
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
FIX = "python scripts/notebooks.py sync"


def pairs(keys: list[str] | None = None) -> list[Path]:
    """The .md sources of the paired notebooks in notebooks/ (those with a
    jupytext header), optionally only those whose name starts with one of keys."""
    found = sorted(p for p in NOTEBOOKS.glob("*.md") if "jupytext" in jupytext.read(p).metadata)
    if keys:
        found = [p for p in found if any(p.name.startswith(k) for k in keys)]
        if not found:
            raise SystemExit(
                f"no paired notebook matches {keys}; choose from {', '.join(p.stem for p in pairs())}"
            )
    return found


def sources(nb) -> list:
    """What must agree between the two files of a pair: each cell's type, source and tags."""
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def build(md: Path) -> nbformat.NotebookNode:
    """The notebook the .md describes, without outputs, reusing the cell ids of
    the committed .ipynb's cells with the same type and source."""
    nb = jupytext.read(md)
    formats = nb.metadata.get("jupytext", {}).get("formats", FORMATS)
    nb.metadata["jupytext"] = {"formats": formats}
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    old = md.with_suffix(".ipynb")
    if old.exists():
        ids: dict = {}
        for cell in nbformat.read(old, as_version=4).cells:
            if "id" in cell:
                ids.setdefault((cell.cell_type, cell.source), []).append(cell.id)
        taken = set()
        for cell in nb.cells:
            reuse = [i for i in ids.get((cell.cell_type, cell.source), []) if i not in taken]
            if reuse:
                cell.id = reuse[0]
            taken.add(cell.id)
    return nb


def execute(nb, timeout: int = 300) -> float:
    from nbclient import NotebookClient

    # the kernel inherits this environment: this interpreter's scripts first on
    # PATH, no nbsteps settings from the shell that runs the script, and a fixed
    # hash seed so that orders that come from sets are the same at every sync
    for key in [k for k in os.environ if k.startswith("NBSTEPS_")]:
        del os.environ[key]
    bindir = os.path.dirname(sys.executable)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    os.environ["PYTHONHASHSEED"] = "0"
    start = time.perf_counter()
    NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=KERNELSPEC["name"],
        store_widget_state=False,
        record_timing=False,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    return time.perf_counter() - start


def scrub(nb) -> None:
    """Replace this machine's paths in the outputs (a traceback names files in
    the virtualenv, which may sit inside the checkout) with fixed placeholders."""
    swaps = sorted({(sys.prefix, "<venv>"), (str(ROOT), "<nbsteps>")}, key=lambda s: -len(s[0]))

    def clean(value, html: bool = False):
        if isinstance(value, str):
            for old, new in swaps:  # in HTML the placeholder must be text, not a tag
                value = value.replace(old, new.replace("<", "&lt;").replace(">", "&gt;") if html else new)
            return value
        if isinstance(value, list):
            return [clean(v, html) for v in value]
        if isinstance(value, dict):
            return {k: clean(v, html or k == "text/html") for k, v in value.items()}
        return value

    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [nbformat.from_dict(clean(out)) for out in cell.outputs]


def sync(keys: list[str], run: bool = True) -> int:
    total = time.perf_counter()
    for md in pairs(keys):
        nb = build(md)
        if run:
            print(f"{md.stem}: executed in {execute(nb):.1f} s", flush=True)
            scrub(nb)
        nbformat.validate(nb)
        nbformat.write(nb, md.with_suffix(".ipynb"))
    if run:
        print(f"all done in {time.perf_counter() - total:.1f} s")
    return 0


def differences() -> list[str]:
    """One message per pair whose files disagree, or whose other half is missing."""
    problems = []
    mds = pairs()
    for md in mds:
        ipynb = md.with_suffix(".ipynb")
        rel = md.relative_to(ROOT)
        if not ipynb.exists():
            problems.append(f"{rel}: no {ipynb.name} beside it; run: {FIX} {md.stem[:2]}")
            continue
        text, executed = sources(jupytext.read(md)), sources(nbformat.read(ipynb, as_version=4))
        if text == executed:
            continue
        at = next(
            (i for i, (a, b) in enumerate(zip(text, executed, strict=False)) if a != b),
            min(len(text), len(executed)),
        )
        where = (
            f"cell {at + 1} differs"
            if at < min(len(text), len(executed))
            else f"{len(text)} cells in the .md, {len(executed)} in the .ipynb"
        )
        problems.append(
            f"{rel} and {ipynb.name} differ ({where}).\n"
            f"  Edited the .md? Regenerate the .ipynb: {FIX} {md.stem[:2]}\n"
            f"  Edited the .ipynb without jupytext? Carry the change to the .md first: "
            f"jupytext --to md:myst {ipynb.relative_to(ROOT)}, then: {FIX} {md.stem[:2]}"
        )
    paired = {md.with_suffix(".ipynb") for md in mds}
    for ipynb in sorted(NOTEBOOKS.glob("*.ipynb")):
        meta = nbformat.read(ipynb, as_version=4).metadata
        if ipynb not in paired and "md" in meta.get("jupytext", {}).get("formats", ""):
            problems.append(
                f"{ipynb.relative_to(ROOT)} is paired with a .md that is missing; "
                f"write it: jupytext --to md:myst {ipynb.relative_to(ROOT)}"
            )
    return problems


def check() -> int:
    problems = differences()
    for problem in problems:
        print(problem)
    if not problems:
        print(f"{len(pairs())} notebooks: every .md and .ipynb have the same cells")
    return 1 if problems else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_sync = sub.add_parser("sync", help="regenerate each .ipynb from its .md and execute it")
    p_sync.add_argument("only", nargs="*", help="notebook name prefixes (01, 02, ...); default: all")
    p_sync.add_argument("--no-execute", action="store_true", help="write the cells without outputs")
    sub.add_parser("check", help="exit 1 if a .md and its .ipynb have different cells")
    args = parser.parse_args(argv)
    if args.command == "sync":
        return sync(args.only, run=not args.no_execute)
    return check()


if __name__ == "__main__":
    sys.exit(main())
