"""``%%step`` cells in plan mode in a real kernel (nbclient), against plain cells.

    python bench/kernel_cells.py [--cells 150] [--repeat 2]

Each registration shows its cell's status line and reserves output slots
(display ids, see ``nbsteps/ipython/cells.py``); with
``NBSTEPS_DISPLAY_UPDATES=0`` (what nbval gets) it prints one line instead.
Prints ms per cell for both, and for the same bodies as plain cells (the
round trip through the kernel, which dominates), with the outputs per cell.
"""

from __future__ import annotations

import argparse
import time


def run(n: int, updates: str) -> tuple[float, float, float]:
    import nbformat
    from nbclient import NotebookClient

    setup = (
        "import os\nos.environ['NBSTEPS_DISPLAY_UPDATES'] = '" + updates + "'\n"
        "get_ipython().run_line_magic('load_ext', 'nbsteps')\n"
        "get_ipython().run_line_magic('steps', 'mode plan')"
    )
    bodies = [f"v{i} = {i}" + (f" + v{i - 1}" if i else "") for i in range(n)]
    cells = [setup] + [f"%%step s{i}\n{b}" for i, b in enumerate(bodies)] + bodies
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, kernel_name="python3", timeout=120)
    with client.setup_kernel():
        client.execute_cell(nb.cells[0], 0)
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            client.execute_cell(nb.cells[i], i)
        t1 = time.perf_counter()
        for i in range(n + 1, 2 * n + 1):
            client.execute_cell(nb.cells[i], i)
        t2 = time.perf_counter()
    outputs = sum(len(c.outputs) for c in nb.cells[1 : n + 1]) / n
    return (t1 - t0) / n * 1e3, (t2 - t1) / n * 1e3, outputs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cells", type=int, default=150)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    for _ in range(args.repeat):
        for updates in ("1", "0"):
            step, plain, outs = run(args.cells, updates)
            print(
                f"display updates {'on ' if updates == '1' else 'off'}: "
                f"%%step (plan mode) {step:.2f} ms/cell, "
                f"plain cell {plain:.2f} ms/cell, outputs per %%step cell {outs:.1f}"
            )


if __name__ == "__main__":
    main()
