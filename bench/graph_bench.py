"""Graph and live-view costs at 200 steps.

    python bench/graph_bench.py            # graph build + dot render to SVG, live recolouring
    python bench/graph_bench.py --kernel   # also: a 200-step no-op run in a real kernel,
                                           # with and without the live widget

Prints milliseconds (median of --repeat runs). The plan is a random DAG of
200 cell steps (1-3 upstream each among the previous 15, some --after edges),
with one failing step so that every status colour and shape is drawn.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nbsteps  # noqa: E402
import nbsteps.views.graph as G  # noqa: E402
import nbsteps.views.graph_live as GL  # noqa: E402


def random_plan(n: int = 200, seed: int = 7, fail: int | None = 100) -> nbsteps.Plan:
    rng = random.Random(seed)
    plan = nbsteps.Plan()
    for i in range(n):
        ups = rng.sample(range(max(0, i - 15), i), k=min(i, rng.choice([0, 1, 1, 2, 2, 3]))) if i else []
        src = f"x{i} = " + (" + ".join(f"x{u}" for u in ups) if ups else "1") + "\n"
        if i == fail:
            src = "raise ValueError('boom')\n" + src
        plan.add_cell(f"s{i:03d}", src, after=[f"s{i - 1:03d}"] if i % 17 == 5 else [])
    return plan


def ms(samples) -> str:
    return f"{statistics.median(samples) * 1000:.0f} ms (min {min(samples) * 1000:.0f})"


def bench_graph(n: int, repeat: int) -> dict:
    plan = random_plan(n)
    plan.run()
    build, render, total = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        graph = G.plan_graph(plan.context)
        t1 = time.perf_counter()
        svg = G.render(graph, "svg")
        t2 = time.perf_counter()
        build.append(t1 - t0)
        render.append(t2 - t1)
        total.append(t2 - t0)
    layout, recolour = [], []
    for _ in range(repeat):
        GL._templates.clear()
        t0 = time.perf_counter()
        GL.live_svg(plan.context)  # a new layout
        t1 = time.perf_counter()
        GL.live_svg(plan.context)  # recoloured
        t2 = time.perf_counter()
        layout.append(t1 - t0)
        recolour.append(t2 - t1)
    print(
        f"graph_{n}: build {ms(build)} + dot render to SVG {ms(render)} = {ms(total)}; "
        f"SVG {len(svg) // 1024} KB"
    )
    print(f"live_{n}: first layout {ms(layout)}; recolour of an existing layout {ms(recolour)}")
    return {
        "build_ms": statistics.median(build) * 1000,
        "render_ms": statistics.median(render) * 1000,
        "total_ms": statistics.median(total) * 1000,
        "live_layout_ms": statistics.median(layout) * 1000,
        "live_recolour_ms": statistics.median(recolour) * 1000,
    }


KERNEL_CELL = textwrap.dedent(r"""
    import os, statistics, time, json
    import nbsteps
    from nbsteps.ipython.display import run_listeners
    plan = nbsteps.current()
    for i in range({n}):
        plan.add_cell(f"s{{i:03d}}", f"v{{i}} = {{i}}" + (f" + v{{i-1}}" if i % 3 else "") + "\n")
    def timed(widgets):
        os.environ["NBSTEPS_WIDGETS"] = "1" if widgets else "0"
        t0 = time.perf_counter()
        listeners = run_listeners(plan)   # what %steps run does
        plan.run(force_all=True, listeners=listeners)
        dt = time.perf_counter() - t0
        view = listeners[1] if widgets else None
        return dt, (view.draws, view.draw_seconds) if view else None
    first = timed(True)
    plain, live, draws = [], [], []
    for _ in range({repeat}):
        plain.append(timed(False)[0])
        dt, d = timed(True)
        live.append(dt)
        draws.append(d)
    print("RESULT", json.dumps({{"first_with_widget_s": first[0], "without_s": plain, "with_s": live,
                                "draws": draws}}))
""")


def bench_kernel(n: int, repeat: int) -> dict:
    import nbformat
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "kernels" / "nbsteps-bench"
        spec.mkdir(parents=True)
        (spec / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "nbsteps bench",
                    "language": "python",
                }
            )
        )
        os.environ["JUPYTER_PATH"] = tmp
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell("%load_ext nbsteps"),
            nbformat.v4.new_code_cell(KERNEL_CELL.format(n=n, repeat=repeat)),
        ]
        NotebookClient(
            nb,
            kernel_name="nbsteps-bench",
            timeout=600,
            store_widget_state=True,
            resources={"metadata": {"path": tmp}},
        ).execute()
    text = "".join(o.get("text", "") for o in nb.cells[1].outputs if o.output_type == "stream")
    result = json.loads(next(line for line in text.splitlines() if line.startswith("RESULT"))[7:])
    without, with_ = statistics.median(result["without_s"]), statistics.median(result["with_s"])
    draws = result["draws"]
    print(
        f"kernel run of {n} no-op steps (%steps run --force-all path, text reporter on): "
        f"without widget {without * 1000:.0f} ms, with widget {with_ * 1000:.0f} ms "
        f"(overhead {(with_ - without) * 1000:+.0f} ms); first run with widget (new layout) "
        f"{result['first_with_widget_s'] * 1000:.0f} ms; drawings per run "
        f"{[d[0] for d in draws]}, {statistics.median(d[1] for d in draws) * 1000:.0f} ms drawing per run"
    )
    return {
        "without_ms": without * 1000,
        "with_ms": with_ * 1000,
        "overhead_ms": (with_ - without) * 1000,
        "first_with_widget_ms": result["first_with_widget_s"] * 1000,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--kernel", action="store_true", help="also time a run in a real kernel with/without widget"
    )
    ap.add_argument("--json", help="write the numbers to this file")
    a = ap.parse_args(argv)
    out = {"graph": bench_graph(a.steps, a.repeat)}
    if a.kernel:
        out["kernel"] = bench_kernel(a.steps, a.repeat)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
