"""The analysis of every code cell of the corpus notebooks, compared between two trees, and its time.

    python -m bench.analysis_same --against DIR [--repeat 3]

Each tree runs in a child interpreter (``PYTHONPATH`` puts its ``nbsteps`` first): IPython's input
transformer turns each cell into Python (as ``%%step`` does), ``analyse_cell`` analyses it, and
every field of the :class:`~nbsteps.model.analysis.CellAnalysis` is written out (code objects by
their ``code_digest`` and their bytes, so a change in what is compiled shows). The parent compares
the two lists field by field and prints any difference (exit status 1), then the CPU time per cell
of each tree (median of the repeats). The corpus sources are read as ``tests/corpus/harness.py``
reads them (downloaded once into its cache); the cells of the test snippets in
``tests/test_analysis_corpus.py`` are added.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def corpus_cells() -> list[tuple[str, str]]:
    sys.path.insert(0, str(ROOT / "tests" / "corpus"))
    sys.path.insert(0, str(ROOT / "tests"))
    import harness
    from IPython.core.inputtransformer2 import TransformerManager

    manifest = harness.load_manifest()
    roots = harness.ensure_sources(manifest)
    transform = TransformerManager().transform_cell
    cells = []
    for entry in manifest["notebooks"]:
        for i, cell in enumerate(harness.notebook_cells(entry, roots), 1):
            cells.append((f"{entry['id']}:{i}", transform(cell)))
    import test_analysis_corpus as snippets

    for case in snippets.CASES:
        cells.append((f"snippet:{case[0]}", case[1]))
    return cells


def child(repeat: int) -> None:
    import ast

    from nbsteps.errors import StepDefinitionError
    from nbsteps.model.analysis import CellAnalysis, analyse_cell
    from nbsteps.model.fingerprint import code_digest

    cells = corpus_cells()

    def plain(v):
        if isinstance(v, (frozenset, set)):
            return sorted(plain(x) for x in v)
        if isinstance(v, (tuple, list)):
            return [plain(x) for x in v]
        if isinstance(v, type(compile("", "", "exec"))):
            return [code_digest(v), v.co_code.hex(), repr(v.co_names)]
        return v

    out = []
    for key, source in cells:
        try:
            r = analyse_cell(key, source)
        except StepDefinitionError as exc:
            out.append([key, "error", str(exc)])
            continue
        out.append([key, {f: plain(getattr(r, f)) for f in CellAnalysis.__dataclass_fields__}])
    times = []
    ok = [source for key, source in cells if out and _parses(ast, source)]
    for r in range(repeat):
        t0 = time.process_time()
        for i, source in enumerate(ok):
            analyse_cell(f"t{r}_{i}", source)  # a name of its own: not an analysis kept from before
        times.append((time.process_time() - t0) / len(ok))
    json.dump({"cells": out, "times": times, "n": len(ok)}, sys.stdout)


def _parses(ast, source: str) -> bool:
    try:
        ast.parse(source)
    except SyntaxError:
        return False
    return True


def run(tree: str, repeat: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([tree, str(ROOT)]), PYTHONHASHSEED="0")
    p = subprocess.run(
        [sys.executable, "-m", "bench.analysis_same", "--child", "--repeat", str(repeat)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if p.returncode:
        raise SystemExit(f"{tree}: {p.stderr[-3000:]}")
    return json.loads(p.stdout)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", help="the other tree (a directory holding nbsteps/)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", action="store_true")
    args = ap.parse_args(argv)
    if args.child:
        child(args.repeat)
        return 0
    mine, other = run(str(ROOT), args.repeat), run(args.against, args.repeat)
    diffs = 0
    for (k1, a), (k2, b) in zip(mine["cells"], other["cells"], strict=True):
        assert k1 == k2
        if a != b:
            diffs += 1
            fields = [f for f in a if a[f] != b[f]] if isinstance(a, dict) and isinstance(b, dict) else "all"
            print(f"DIFFERENT {k1}: {fields}")
            if diffs < 5 and isinstance(a, dict) and isinstance(b, dict):
                for f in fields:
                    print(f"  {f}: this tree {a[f]!r}\n  {' ' * len(f)}  other     {b[f]!r}")
    n = len(mine["cells"])
    print(f"{n} cells, {diffs} with a different analysis")
    for label, r in (("this tree", mine), (args.against, other)):
        per_cell, runs = statistics.median(r["times"]) * 1e6, len(r["times"])
        print(f"{label}: {per_cell:.1f} us per cell (CPU, median of {runs}; {r['n']} cells parsed)")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
