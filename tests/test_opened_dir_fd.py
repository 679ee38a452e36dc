"""nbsteps' own file work while a step runs is not the step's (nbsteps.run.attempt.opened).

The directory store opens everything relative to a directory descriptor (``dir_fd=``: no
symbolic link on the way is followed); the ``open`` audit event carries the name but not the
descriptor. Those names were taken as relative to the working directory, so a step whose attempt
read a checkpoint (a lazily restored value, a pin) recorded ``<cwd>/.pins`` and
``<cwd>/<pid>-<hex>`` as files it read (found by the corpus: pandas' IO guide, resumed).
"""

from __future__ import annotations

import os

from nbsteps.run.attempt import opened
from nbsteps.stores.fs import open_dir


def test_a_store_open_relative_to_a_directory_descriptor_is_not_a_read_of_the_step(tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    (store / ".pins").mkdir()
    (tmp_path / "data.csv").write_text("a\n1\n")
    monkeypatch.chdir(tmp_path)
    root = os.open(store, os.O_RDONLY)
    try:
        with opened.recording() as rec:
            os.close(open_dir(".pins", root, store / ".pins"))  # what the store does
            with open("data.csv") as f:  # what the step does
                f.read()
    finally:
        os.close(root)
    assert list(rec.inputs()) == [str(tmp_path / "data.csv")]
