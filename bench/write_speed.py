"""Disk write of a checkpoint against ``numpy.save`` + fsync of the same array
(issue 26, target 5: ≥ 0.8×), for each signature algorithm, in one run.

    python bench/write_speed.py                   # 256 MB, 5 rounds, a directory under /tmp (the disk)
    python bench/write_speed.py --size 1GB --repeat 7 --dir /dev/shm   # tmpfs: no I/O, only CPU

Each round writes, in alternating order, the same float64 array with
``numpy.save`` (+ ``fsync``, as the store does) and as a checkpoint with
``DiskStore.put`` (a NumPy array: pickled, protocol 5; the same bytes as a
one-column-per-row DataFrame: Arrow IPC), once signed with keyed BLAKE3 (what
nbsteps writes now) and once with HMAC-SHA256 (what it wrote before). Each put
is compared with the save just before or after it (the mean of the two
neighbours): the ratio is ``save time / put time`` (1.0: as fast as
``numpy.save``). The load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _fsync_save(path: str, arr) -> None:
    import numpy as np

    with open(path, "wb") as f:
        np.save(f, arr)
        f.flush()
        os.fsync(f.fileno())


def _timed(fn, *args) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main(argv: "list[str] | None" = None) -> int:
    from nbsteps.formatting import parse_size

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="256MB", help="bytes of the array (default 256MB)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--dir", default=None, help="where to write (default: a new directory under /tmp)")
    ap.add_argument("--quick", action="store_true", help="16 MB, 2 rounds")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.repeat = "16MB", 2

    import numpy as np
    import pandas as pd

    from nbsteps.model.checkpoint import Checkpoint
    from nbsteps.stores import signing
    from nbsteps.stores.disk import DiskStore

    nbytes = parse_size(args.size)
    cols = 8
    arr = np.random.default_rng(0).random((cols, max(1, nbytes // (8 * cols))))
    frame = pd.DataFrame(arr.T, columns=[f"c{i}" for i in range(cols)], copy=False)
    base = Path(tempfile.mkdtemp(prefix="nbsteps-write-", dir=args.dir))
    key = b"k" * 32
    algorithms = (
        [signing.BLAKE3, signing.HMAC_SHA256]
        if signing.preferred() == signing.BLAKE3
        else [signing.HMAC_SHA256]
    )
    load0 = os.getloadavg()
    print(
        f"write speed: {arr.nbytes / 1e6:.0f} MB float64, {args.repeat} rounds, in {base} "
        f"(load {load0[0]:.2f}, {os.cpu_count()} CPUs)",
        flush=True,
    )
    results: dict = {}
    try:
        for r in range(args.repeat):
            for algorithm in algorithms if r % 2 == 0 else reversed(algorithms):
                signing._PREFERRED = algorithm  # what new files are signed with (this run only)
                for kind, value in (("array", arr), ("frame", frame)):
                    store = DiskStore(base / f"{algorithm}-{kind}-{r}", key=key, max_size=None)
                    raw = str(base / "raw.npy")
                    save_before = _timed(_fsync_save, raw, arr)
                    os.unlink(raw)
                    cp = Checkpoint("big", f"{r:032x}", {"value": value}, None, False)
                    put = _timed(store.put, cp)
                    save_after = _timed(_fsync_save, raw, arr)
                    os.unlink(raw)
                    shutil.rmtree(store.directory)
                    ratio = (save_before + save_after) / 2 / put
                    results.setdefault((algorithm, kind), []).append((ratio, put, save_before, save_after))
    finally:
        signing._PREFERRED = None
        shutil.rmtree(base, ignore_errors=True)
    load1 = os.getloadavg()
    print(
        f"{'signature':<12} {'value':<6} {'put / numpy.save+fsync (median, min-max)':<44} put MB/s  save MB/s"
    )
    for (algorithm, kind), rows in results.items():
        ratios = [x[0] for x in rows]
        put = statistics.median(x[1] for x in rows)
        save = statistics.median((x[2] + x[3]) / 2 for x in rows)
        spread = f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        speeds = f"{arr.nbytes / put / 1e6:7.0f}  {arr.nbytes / save / 1e6:8.0f}"
        print(f"{algorithm:<12} {kind:<6} {spread:<44} {speeds}")
    print(f"load average {load0[0]:.2f} -> {load1[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
