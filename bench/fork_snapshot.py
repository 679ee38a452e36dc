"""What taking a checkpoint's pickling off the kernel's thread with ``fork()`` would cost
(issue 26, target 1), against pickling on the thread as ``DiskStore.put`` does today.

    python bench/fork_snapshot.py                    # 3 values x 3 process sizes, 5 rounds
    python bench/fork_snapshot.py --rss 0,4000 --repeat 9

A put pickles the step's values on the kernel's thread (``nbsteps.stores.pickling.dump``) so
that what it writes is the value as the step left it; only the commit (fsyncs, renames) runs
on the committer thread. A thread cannot take the pickling over: it runs Python for every
object whose class pickles itself in Python (a figure's artists and transforms), so it would
hold the GIL against the next cell, and the next cell may change the value while it is being
read. A forked child has the parent's memory as it was at ``fork()`` (copy on write) and its
own GIL: it can pickle while the next cell runs on the other core. What the parent pays is
``fork()`` itself (the page tables, growing with the process's size) and, afterwards, a copy
of each page it writes while the child lives.

For each value (a 2x2 matplotlib figure with two 256-bin histograms and an image, as
``ski_thresholding_guide``'s cells keep; a 200,000 x 8 DataFrame; a fitted scikit-learn
random forest) and each extra resident size (``--rss``, MB of a NumPy array held alive):
the kernel thread's CPU for ``pickling.dump`` to memory (median of ``--repeat``), and for
``fork()`` returning in the parent (wall and CPU), and the wall time until the child had
pickled the value and exited. Nothing here is used by nbsteps: it is the measurement behind
the closing note's "what is left" for target 1.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def _values() -> dict:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    image = (rng.random((512, 512)) * 255).astype("uint8")
    fig, ax = plt.subplots(2, 2, figsize=(10, 10))
    ax[0, 0].imshow(image, cmap=plt.cm.gray)
    ax[0, 1].hist(image.ravel(), bins=256)
    ax[1, 0].imshow(image > 128, cmap=plt.cm.gray)
    ax[1, 1].hist(image.ravel(), bins=256)
    ax[1, 1].axvline(128, color="r")
    values = {"figure (2x2, 2 histograms)": {"fig": fig, "ax": ax}}
    values["DataFrame 200,000 x 8"] = pd.DataFrame(rng.random((200_000, 8)), columns=list("abcdefgh"))
    try:
        from sklearn.ensemble import RandomForestClassifier

        X = rng.random((2_000, 10))
        y = (X[:, 0] > 0.5).astype(int)
        forest = RandomForestClassifier(n_estimators=100, random_state=0)
        values["random forest (100 trees)"] = forest.fit(X, y)
    except ImportError:  # pragma: no cover - scikit-learn is in the corpus extra
        pass
    return values


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _sync(value, dump) -> float:
    c0 = time.thread_time()
    dump(value, io.BytesIO())
    return (time.thread_time() - c0) * 1000


def _forked(value, dump) -> tuple[float, float, float]:
    w0, c0 = time.perf_counter(), time.thread_time()
    pid = os.fork()
    if pid == 0:  # the child: pickle, then leave without running anything of the parent's
        try:
            dump(value, io.BytesIO())
        finally:
            os._exit(0)
    parent_wall, parent_cpu = (time.perf_counter() - w0) * 1000, (time.thread_time() - c0) * 1000
    os.waitpid(pid, 0)
    return parent_wall, parent_cpu, (time.perf_counter() - w0) * 1000


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rss", default="0,500,2000", help="extra resident MB, comma-separated")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    if not hasattr(os, "fork"):
        print("no fork() on this platform")
        return 0
    from nbsteps.stores import pickling

    values = _values()
    print(f"load {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; medians of {args.repeat}")
    print("| value | process MB | pickle on the thread, CPU ms | fork: parent wall / CPU ms | child ms |")
    print("|---|---|---|---|---|")
    import numpy as np

    for extra in [int(x) for x in args.rss.split(",")]:
        ballast = np.ones(extra * 2**20 // 8) if extra else None  # noqa: F841 - held resident
        for label, value in values.items():
            sync = [_sync(value, pickling.dump) for _ in range(args.repeat)]
            forked = [_forked(value, pickling.dump) for _ in range(args.repeat)]
            pw, pc, child = (statistics.median(x) for x in zip(*forked, strict=True))
            print(
                f"| {label} | {_rss_mb():.0f} | {statistics.median(sync):.1f} | "
                f"{pw:.2f} / {pc:.2f} | {child:.0f} |"
            )
        del ballast
    print(f"load {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
