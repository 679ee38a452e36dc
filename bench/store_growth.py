"""How a directory store grows while a middle cell is edited (issue 26, target 4):
three steps, a big upstream frame that never changes, a middle cell edited and re-run
ten times, a last cell after it; the store's size after every cycle against one full
set of checkpoints.

    python bench/store_growth.py                 # 100 MB upstream, 10 cycles
    python bench/store_growth.py --size 20MB --cycles 3

Two middle cells are measured: one that holds the upstream frame (in a dict and under
another name: written as references, stored once) and one that derives a small
summary from it (what really changes each cycle).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIDDLES = {
    "holds the frame": "k = {k}\nbundle = {{'data': df, 'k': k}}\nsame = df",
    "derives a summary": "k = {k}\nsummary = df['a'].iloc[::1000] * k",
}
LAST = {
    "holds the frame": "total = bundle['k'] + len(same)",
    "derives a summary": "total = float(summary.sum())",
}


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts)


def main(argv: "list[str] | None" = None) -> int:
    import nbsteps
    from nbsteps.formatting import fmt_bytes, parse_size

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="100MB", help="bytes of the upstream frame (default 100MB)")
    ap.add_argument("--cycles", type=int, default=10)
    args = ap.parse_args(argv)
    rows = parse_size(args.size) // 8
    big = f"import numpy as np\nimport pandas as pd\ndf = pd.DataFrame({{'a': np.arange({rows}.0)}})"
    for what, middle in MIDDLES.items():
        tmp = Path(tempfile.mkdtemp(prefix="nbsteps-growth-"))
        try:
            plan = nbsteps.Plan(store=tmp / "store")
            plan.add_cell("big", big)
            plan.add_cell("middle", middle.format(k=0))
            plan.add_cell("last", LAST[what])
            plan.run()
            one = _bytes(tmp / "store")
            for k in range(1, args.cycles + 1):
                plan.add_cell("middle", middle.format(k=k))
                executed = plan.run().executed
                assert executed == ["middle", "last"], executed
            after = _bytes(tmp / "store")
            print(
                f"middle {what}: one full set {fmt_bytes(one)}, after {args.cycles} edit-and-rerun cycles "
                f"{fmt_bytes(after)} = {after / one:.3f}x"
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
