"""Child process of the ``checkpoint`` workload (see ``nbsteps_side.checkpoint``).

    python -m bench.checkpoint_child plain|memory NBYTES TMPDIR
    python -m bench.checkpoint_child disk NBYTES TMPDIR REPEAT

Prints one JSON object. Runs in a fresh interpreter so that peak RSS (VmHWM,
reset through /proc/self/clear_refs where the kernel allows it) measures this
workload only.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import sys
import time

NCOLS = 8


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def make_frame(nbytes: int):
    """~nbytes of float64 in one 2-D block (no transient copy while building)."""
    import numpy as np
    import pandas as pd

    rows = max(1, nbytes // (8 * NCOLS))
    arr = np.empty((NCOLS, rows))  # the block layout pandas uses: one row per column
    np.random.default_rng(0).random(out=arr)
    return pd.DataFrame(arr.T, columns=[f"c{i}" for i in range(NCOLS)], copy=False)


def _frame_bytes(df) -> int:
    return int(df.memory_usage(index=False).sum())


def _rss_run(fn) -> dict:
    gc.collect()
    reset = _reset_peak()
    base = _status("VmRSS")
    peak0 = _status("VmHWM")
    t0 = time.perf_counter()
    value = fn()
    dt = time.perf_counter() - t0
    peak = _status("VmHWM")
    growth = peak - (base if reset else max(base, 0))
    return {
        "s": dt,
        "rss_growth": growth,
        "rss_base": base,
        "peak_before": peak0,
        "peak": peak,
        "peak_reset": reset,
        "value": value,
    }


def plain(nbytes: int) -> dict:
    import numpy  # noqa: F401  (imports are not the workload)
    import pandas  # noqa: F401

    r = _rss_run(lambda: make_frame(nbytes))
    r["frame_bytes"] = _frame_bytes(r.pop("value"))
    return r


def memory(nbytes: int) -> dict:
    import numpy  # noqa: F401
    import pandas  # noqa: F401

    import nbsteps

    plan = nbsteps.Plan()

    @plan.step("big")
    def big():
        return make_frame(nbytes)

    def run():
        s = plan.run()
        assert s.ok, s.text
        return plan["big"].result

    r = _rss_run(run)
    df = r.pop("value")
    r["frame_bytes"] = _frame_bytes(df)
    r["step_s"] = plan["big"].duration
    # the checkpoint holds the very object the step returned
    cp = plan.store.get("big")
    r["same_object"] = cp.result is df and cp.outputs["big"] is df
    return r


def _fsync_save(path: str, arr) -> None:
    import numpy as np

    with open(path, "wb") as f:
        np.save(f, arr)
        f.flush()
        os.fsync(f.fileno())


def _med(xs):
    return statistics.median(xs)


def disk(nbytes: int, tmp: str, repeat: int) -> dict:
    import numpy as np
    import pandas  # noqa: F401  (imports are not the workload)

    import nbsteps
    from nbsteps.stores import Checkpoint

    try:
        from nbsteps.stores.disk import DiskStore
    except ImportError:
        return {"skipped": "nbsteps.stores.disk not available"}

    out: dict = {}
    df = make_frame(nbytes)
    out["frame_bytes"] = size = _frame_bytes(df)
    arr = df.to_numpy()
    out["numpy_view"] = bool(np.shares_memory(arr, df["c0"].to_numpy()))

    # numpy.save and DiskStore.put of the same bytes, alternated (the disk of a
    # shared machine changes speed from one second to the next: each put is
    # compared with the save just before it). Each put is a new checkpoint
    # (another fingerprint), as numpy.save writes a new file: replacing a
    # checkpoint would also time the removal of the old files.
    raw = os.path.join(tmp, "raw.npy")
    saves, saves_nosync, loads = [], [], []
    store = DiskStore(os.path.join(tmp, "direct"))
    puts, gets, pair_ratios = [], [], []
    for i in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        _fsync_save(raw, arr)
        saves.append(time.perf_counter() - t0)
        os.unlink(raw)
        fp = f"{i:032x}"
        cp = Checkpoint("big", fp, {"big": df}, None, False)
        gc.collect()
        t0 = time.perf_counter()
        store.put(cp)
        puts.append(time.perf_counter() - t0)
        pair_ratios.append(saves[-1] / puts[-1])
        gc.collect()
        t0 = time.perf_counter()
        np.save(raw, arr)
        saves_nosync.append(time.perf_counter() - t0)
        gc.collect()
        t0 = time.perf_counter()
        back = np.load(raw)
        loads.append(time.perf_counter() - t0)
        del back
        os.unlink(raw)
        gc.collect()
        t0 = time.perf_counter()
        got = store.get("big", fp)
        gets.append(time.perf_counter() - t0)
        assert got is not None and got.outputs["big"].shape == df.shape
        del got
    out["numpy_save_fsync_s"] = _med(saves)
    out["numpy_save_s"] = _med(saves_nosync)
    out["numpy_load_s"] = _med(loads)
    out["write_vs_numpy_fsync_pairs"] = pair_ratios
    out["write_vs_numpy_fsync_pair_median"] = _med(pair_ratios)
    out["save_runs"], out["put_runs"] = saves, puts
    out["store_put_s"] = _med(puts)
    out["store_files"] = sorted(os.listdir(os.path.join(tmp, "direct", "big")))[:4]
    out["store_get_s"] = _med(gets)
    shutil_rm(os.path.join(tmp, "direct"))

    # through a plan: a function step (its result is also its output)
    def big():
        return make_frame(nbytes)

    runs, writes, restores, computes = [], [], [], []
    for i in range(repeat):
        d = os.path.join(tmp, f"plan{i}")
        plan = nbsteps.Plan(store=d)
        plan.step("big")(big)
        gc.collect()
        t0 = time.perf_counter()
        s = plan.run()
        run_s = time.perf_counter() - t0
        assert s.ok, s.text
        runs.append(run_s)
        computes.append(plan["big"].duration)
        writes.append(run_s - plan["big"].duration)
        del plan, s
        fresh = nbsteps.Plan(store=d)  # a new session on the same directory
        fresh.step("big")(big)
        gc.collect()
        t0 = time.perf_counter()
        s = fresh.run()
        restores.append(time.perf_counter() - t0)
        assert s.ok and fresh["big"].cached, s.text
        del fresh, s
        shutil_rm(d)
    out["plan_run_s"] = _med(runs)
    out["plan_write_s"] = _med(writes)
    out["plan_restore_s"] = _med(restores)
    out["recompute_s"] = _med(computes)  # the step's own run time
    mb = size / 1e6
    out["numpy_save_fsync_MBps"] = mb / out["numpy_save_fsync_s"]
    out["numpy_save_MBps"] = mb / out["numpy_save_s"]
    out["numpy_load_MBps"] = mb / out["numpy_load_s"]
    out["store_write_MBps"] = mb / out["store_put_s"]
    out["store_read_MBps"] = mb / out["store_get_s"]
    out["plan_write_MBps"] = mb / out["plan_write_s"]
    out["write_vs_numpy_fsync"] = out["numpy_save_fsync_s"] / out["store_put_s"]
    out["write_vs_numpy"] = out["numpy_save_s"] / out["store_put_s"]
    out["restore_vs_recompute"] = out["plan_restore_s"] / out["recompute_s"]
    return out


def shutil_rm(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str]) -> int:
    mode, nbytes, tmp = argv[0], int(argv[1]), argv[2]
    if mode == "plain":
        r = plain(nbytes)
    elif mode == "memory":
        r = memory(nbytes)
    elif mode == "disk":
        r = disk(nbytes, tmp, int(argv[3]) if len(argv) > 3 else 1)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
