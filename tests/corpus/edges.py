#!/usr/bin/env python
"""What the dependency rules cost on the corpus: every notebook's cells
registered as steps (nothing runs), edges counted by kind (inferred from names,
``state`` and ``order`` from shared process state, explicit), and the
parallelism left: the widest level and the levels (the longest chain of
steps), against what the inferred edges alone would allow.

    python tests/corpus/edges.py          # a table per notebook and the totals
"""

from __future__ import annotations

import collections
import importlib.util
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

import nbsteps  # noqa: E402
from nbsteps.model.graphs import levels, width  # noqa: E402

_spec = importlib.util.spec_from_file_location("nbsteps_corpus_harness", HERE / "harness.py")
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)


def measure(cells: list[str]) -> dict:
    from IPython.core.inputtransformer2 import TransformerManager

    python = TransformerManager().transform_cell  # IPython syntax (%matplotlib, !ls), as the magic sees it
    plan = nbsteps.Plan()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, body in enumerate(cells, 1):
            plan.add_cell(f"cell{i}", python(body))
    kinds = collections.Counter(kind for _, _, kind in plan.edges())
    order = plan.order()

    def shape(keep) -> tuple[int, int]:
        deps = {s: [u for u, k in plan.dependencies(s).items() if keep(k)] for s in order}
        ups = deps.__getitem__
        lv = levels(order, ups)
        return width(lv), (max(lv.values()) + 1 if lv else 0)

    return {
        "steps": len(cells),
        "kinds": kinds,
        "all": shape(lambda k: True),
        "names_only": shape(lambda k: k not in ("state", "order")),
    }


def main() -> int:
    manifest = harness.load_manifest()
    roots = harness.ensure_sources(manifest)
    total = collections.Counter()
    print("| notebook | steps | inferred | state | order | widest level (names only) | levels (names only) |")
    print("|---|---|---|---|---|---|---|")
    for entry in manifest["notebooks"]:
        m = measure(harness.notebook_cells(entry, roots))
        k = m["kinds"]
        total.update(k)
        total["steps"] += m["steps"]
        print(
            f"| `{entry['id']}` | {m['steps']} | {k['inferred']} | {k['state']} | {k['order']} | "
            f"{m['all'][0]} ({m['names_only'][0]}) | {m['all'][1]} ({m['names_only'][1]}) |"
        )
    extra = total["state"] + total["order"]
    print(
        f"\nAll: {total['steps']} steps, {total['inferred']} inferred edges, {total['state']} state and "
        f"{total['order']} order edges from shared process state (+{extra}, "
        f"{100 * extra / max(1, total['inferred']):.1f} % of the inferred ones)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
