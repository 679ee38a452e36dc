"""Plan mode's kernel CPU on a corpus notebook, in parts (issue 26, target 0).

    python bench/plan_parts.py --only sm_ols [--rounds 4] [--variants plain,plan,plan-nolive,plan-quiet]

Each variant in a fresh kernel (``harness.Kernel``, as ``bench/corpus.py``: one thread for
BLAS/OpenMP), the notebook's libraries imported untimed first (``--no-libs``: not), then the
kernel's CPU seconds (``time.process_time`` in the kernel: every thread, not ``dot``'s child
processes) over the timed part, alternated in rounds:

- ``plain``: the cells, as Run All;
- ``plan``: ``%steps mode plan``, the step cells registered (``reg``), then ``%steps run
  --workers 4`` (``run``);
- ``plan-nolive``: the same without the live view (``widgets_supported`` made False: the static
  picture at the end only, as frontends without widgets get);
- ``plan-quiet``: the same without any picture (the text reporter only, as ``quiet``);
- ``plan-w1``: ``--workers 1`` (what running steps on parallel threads costs);
- ``plan-pre``: ``ipywidgets``, ``graphviz`` and the live view's module imported untimed first.

A variant containing ``parts`` also reports the live view's and the picture's functions: calls,
thread CPU, process CPU, child CPU (``dot``), wall (seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "corpus"))
sys.path.insert(0, str(ROOT / "bench"))

import corpus  # noqa: E402
import harness  # noqa: E402

#: what the notebooks of a corpus source import (by the id's prefix), untimed
LIBS = {
    "sm": "import statsmodels.api, statsmodels.formula.api, numpy, pandas, scipy.stats, matplotlib.pyplot",
    "sk": "import sklearn.cluster, sklearn.datasets, numpy, matplotlib.pyplot",
    "ski": "import skimage, skimage.filters, skimage.data, numpy, matplotlib.pyplot",
    "sym": "import sympy",
    "mpl": "import numpy, matplotlib.pyplot",
    "pd": "import numpy, pandas",
}

PRE = "import ipywidgets, graphviz, nbsteps.views.live"
NO_LIVE = "import nbsteps.ipython.display as _d; _d.widgets_supported = lambda: False"
QUIET = (
    "import nbsteps.ipython.display as _d; _rl = _d.run_listeners; "
    "_d.run_listeners = lambda p, quiet=False, omit=None: _rl(p, True, omit)"
)
PARTS = """
import time as _t, os as _os, nbsteps.views.static as _st, nbsteps.views.graph as _g
import nbsteps.views.graph_live as _gl, nbsteps.ipython.display as _dd, nbsteps.views.live as _lv
_S = {}
def _wrap(obj, name, key):
    f = getattr(obj, name)
    def g(*a, **k):
        t, p, o, w = _t.thread_time(), _t.process_time(), _os.times(), _t.perf_counter()
        try:
            return f(*a, **k)
        finally:
            o2 = _os.times()
            kids = o2.children_user + o2.children_system - o.children_user - o.children_system
            n, c, pp, ch, ww = _S.get(key, (0, 0, 0, 0, 0))
            _S[key] = (n + 1, round(c + _t.thread_time() - t, 4), round(pp + _t.process_time() - p, 4),
                       round(ch + kids, 3), round(ww + _t.perf_counter() - w, 4))
    setattr(obj, name, g)
_wrap(_st, 'static_bundle', 'static_bundle'); _wrap(_g, 'render', 'render (png)')
_wrap(_gl, 'lay_out', 'lay_out')
_wrap(_dd.StaticAtEnd, '__call__', 'StaticAtEnd'); _wrap(_lv.LiveView, '__init__', 'LiveView.__init__')
_wrap(_lv.LiveView, 'draw', 'LiveView.draw'); _wrap(_lv.LiveView, 'finish', 'LiveView.finish')
"""


def one(entry: dict, cells: list[str], variant: str, libs: bool) -> dict:
    cwd = Path(tempfile.mkdtemp())
    harness.write_files(cwd, entry.get("files") or {})
    out: dict = {"nb": entry["id"], "v": variant, "load": round(os.getloadavg()[0], 2)}
    with harness.Kernel(cwd) as k:
        if libs and entry["id"].split("_")[0] in LIBS:
            corpus._untimed(k, [LIBS[entry["id"].split("_")[0]]])
        if not variant.startswith("plan"):
            if "pre" in variant:
                corpus._untimed(k, [PRE])
            c0 = corpus._kernel_cpu(k)
            corpus._timed_cells(k, cells)
            out["cpu"] = round(corpus._kernel_cpu(k) - c0, 3)
            return out
        setup = ["%load_ext nbsteps", "%steps mode plan"]
        setup += [PRE] if "pre" in variant else []
        setup += [NO_LIVE] if "nolive" in variant else []
        setup += [QUIET] if "quiet" in variant else []
        setup += [PARTS] if "parts" in variant else []
        corpus._untimed(k, setup)
        c0 = corpus._kernel_cpu(k)
        corpus._timed_cells(k, harness.step_cells(cells))
        c1 = corpus._kernel_cpu(k)
        corpus._timed_cells(k, ["%steps run --workers " + ("1" if "w1" in variant else "4")])
        c2 = corpus._kernel_cpu(k)
        out.update(reg=round(c1 - c0, 3), run=round(c2 - c1, 3), cpu=round(c2 - c0, 3))
        if "parts" in variant:
            cell = k.run("print(repr(_S))")
            out["parts"] = "".join(o.get("text", "") for o in cell.get("outputs", [])).strip()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", required=True, help="corpus notebook ids, comma-separated")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--variants", default="plain,plan,plan-nolive,plan-quiet")
    ap.add_argument("--no-libs", action="store_true", help="do not import the notebook's libraries first")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nbsteps-plan-parts-"))
    harness.write_kernelspec(tmp)
    os.environ.update(harness.kernel_env(tmp))
    manifest = harness.load_manifest()
    roots = harness.ensure_sources(manifest)
    results = []
    for nb in a.only.split(","):
        entry = next(e for e in manifest["notebooks"] if e["id"] == nb)
        cells = harness.notebook_cells(entry, roots)
        for _ in range(a.rounds):
            for variant in a.variants.split(","):
                while os.path.exists("/tmp/QUIET"):  # a quiet window of the machine's benchmarks
                    time.sleep(30)
                results.append(one(entry, cells, variant, not a.no_libs))
                print(json.dumps(results[-1]), flush=True)
    print("\nmedians (kernel CPU s; reg / run for plan mode):")
    for nb in a.only.split(","):
        for variant in a.variants.split(","):
            rows = [r for r in results if r["nb"] == nb and r["v"] == variant]
            line = f"  {nb:28} {variant:14} {statistics.median(r['cpu'] for r in rows):.3f}"
            if "reg" in rows[0]:
                line += f"  (reg {statistics.median(r['reg'] for r in rows):.3f}"
                line += f", run {statistics.median(r['run'] for r in rows):.3f})"
            print(line)


if __name__ == "__main__":
    main()
