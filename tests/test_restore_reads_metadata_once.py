"""A new kernel restoring a notebook verifies each checkpoint's signed metadata once
(issue 26, target 2): registering a cell, the run's preview and the restore itself all
read the step's checkpoint, and the later reads are served by the store's cache of
verified metadata (nbsteps.stores.meta_cache) while the file is unchanged; a file
changed on disk is verified again (tests/test_store_meta_cache.py). Real IPython shells
in two real processes, a real directory store."""

from __future__ import annotations

import time

from conftest import shell_on_store

CELLS = [
    "%%step load\nrows = [1, 2, 3]\nprint('loaded', len(rows))",
    "%%step total\ntotal = sum(rows)\ntotal",
    "%%step grow\nrows.append(total)",  # shared state: the step below depends on it
    "%%step last\nlast = rows[-1] * 10\nprint(last)",
]

REPORT = """
store = plan.store
out["verified"] = store.reader.metas.reads
out["kept"] = store.reader.metas.hits
out["how"] = {name: plan.records[name].origin for name in ("load", "total", "grow", "last")}
assert ip.run_cell("_values = [total, list(rows), last]").success  # (restored values are read when used)
out["values"] = ip.user_ns["_values"]
"""


def test_a_restore_verifies_each_checkpoint_s_metadata_once(tmp_path, tmp_key):
    store = tmp_path / "store"
    first = shell_on_store(store, CELLS, tmp_path, REPORT)
    assert first["values"] == [6, [1, 2, 3, 6], 60]
    assert set(first["how"].values()) == {"executed"}
    time.sleep(0.3)  # past the window in which the cache compares a file's bytes (RACY_NS)
    again = shell_on_store(store, CELLS, tmp_path, REPORT)
    assert again["values"] == first["values"]  # the same values, ...
    assert set(again["how"].values()) == {"restored"}  # ... every one restored
    # four checkpoints: each verified once, and read again from the cache (at registration,
    # then by the restore; a preview of a run on shared state reads it a third time)
    assert again["verified"] == 4
    assert again["kept"] >= 4
