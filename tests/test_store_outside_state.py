"""Checkpoints hold what a value is, or nothing (issue 21, defects 6 and 7).

- A step that finishes while a parallel step is still importing pandas for the
  first time keeps its checkpoint: the store never looks into a module that is
  still being imported (real kernels, real pandas held half imported by a tiny
  package it imports, real directory store, a restart).
- A value whose state is outside the process (an open file, a socket, a
  connection, a lock) is not written to the store as a look-alike (cloudpickle
  makes an open text file an ``io.StringIO`` of its content): it stays in memory
  with one warning naming the step and the name, and a new kernel runs the step
  again.
"""

import io
import json
import multiprocessing
import socket
import sys
import tempfile
import threading
import time

import pytest
from conftest import cell_text, execute_notebook, run_ok

pytestmark = pytest.mark.usefixtures("nothing_outside_the_store_changes")

# -- 6: a module that another step is still importing ---------------------------

# Imported by pandas while it initializes (pandas.core.nanops asks for the optional
# bottleneck): while this runs, sys.modules["pandas"] is half initialized, without
# DataFrame. It says so, waits for the test's step to release it, and then fails like
# an absent optional dependency, so pandas goes on without it.
FAKE_BOTTLENECK = """
import json, os, sys, time
_pd = sys.modules.get("pandas")
_seen = {{
    "pandas_initializing": getattr(getattr(_pd, "__spec__", None), "_initializing", False) is True,
    "pandas_has_DataFrame": hasattr(_pd, "DataFrame"),
}}
with open({started!r} + ".tmp", "w") as f:
    json.dump(_seen, f)
os.replace({started!r} + ".tmp", {started!r})
_deadline = time.monotonic() + 60
while not os.path.exists({release!r}) and time.monotonic() < _deadline:
    time.sleep(0.02)
raise ImportError("not the real bottleneck: this package only holds pandas' import open")
"""


def _parallel_import_notebook(tmp_path):
    pkgs = tmp_path / "pkgs"
    (pkgs / "bottleneck").mkdir(parents=True)
    started, release = str(tmp_path / "bottleneck-started"), str(tmp_path / "release")
    (pkgs / "bottleneck" / "__init__.py").write_text(FAKE_BOTTLENECK.format(started=started, release=release))
    return [
        "%load_ext nbsteps\n%steps mode plan",
        f"import sys\nsys.path.insert(0, {str(pkgs)!r})\n"
        "assert 'pandas' not in sys.modules and 'bottleneck' not in sys.modules",
        "%%step importer\nimport pandas as pd\nrows = len(pd.DataFrame({'a': [1, 2]}))",
        # finishes (and is checkpointed) while `importer` is inside pandas' import
        "%%step early\n"
        "import os, time\n"
        "deadline = time.monotonic() + 60\n"
        f"while not os.path.exists({started!r}):\n"
        "    assert time.monotonic() < deadline, 'pandas never imported bottleneck'\n"
        "    time.sleep(0.02)\n"
        f"counted = open({str(tmp_path / 'early-runs')!r}, 'a').write('x')\n"
        "settings = {'alpha': 0.5, 'names': ['a', 'b']}",
        # starts once `early` is completed, i.e. checkpointed: then pandas may finish
        f"%%step release --after early\nreleased = open({release!r}, 'w').close()",
        "%steps run --workers 2",
        "print('rows', rows, 'settings', settings)",
    ]


@pytest.mark.kernel
def test_step_finishing_while_pandas_is_half_imported_keeps_its_checkpoint(
    tmp_path, kernel_name, monkeypatch, tmp_key
):
    monkeypatch.setenv("NBSTEPS_STORE", str(tmp_path / "store"))
    cells = _parallel_import_notebook(tmp_path)
    first = execute_notebook(cells, kernel_name, tmp_path, timeout=180)
    # the situation really happened: pandas was half imported while `early` completed
    seen = json.loads((tmp_path / "bottleneck-started").read_text())
    assert seen == {"pandas_initializing": True, "pandas_has_DataFrame": False}
    out = cell_text(first.cells[5])
    assert "early completed" in out and "importer completed" in out and "release completed" in out, out
    assert "kept in memory" not in out and "could not save" not in out, out
    assert "Traceback" not in out and "pickling.py" not in out and "encoding.py" not in out
    assert "rows 2 settings {'alpha': 0.5, 'names': ['a', 'b']}" in cell_text(first.cells[6])
    assert (tmp_path / "early-runs").read_text() == "x"

    # a restart: `early` comes back from the directory store, it is not run again
    second = execute_notebook(cells, kernel_name, tmp_path, timeout=180)
    out = cell_text(second.cells[5])
    assert "early restored from its checkpoint" in out or "restored from the checkpoint" in out, out
    assert "kept in memory" not in out, out
    assert (tmp_path / "early-runs").read_text() == "x"  # not executed again
    assert "rows 2 settings {'alpha': 0.5, 'names': ['a', 'b']}" in cell_text(second.cells[6])


def test_a_module_being_imported_is_not_looked_into(tmp_path, monkeypatch):
    """``pickling.imported`` gives a module only once its import is complete
    (a real import, slow on another thread)."""
    from nbsteps.stores import pickling

    pkg = tmp_path / "halfway_pkg"
    pkg.mkdir()
    go = tmp_path / "go"
    (pkg / "__init__.py").write_text(
        "import os, time\nfirst = 1\n"
        f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.01)\n"
        "second = 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    thread = threading.Thread(target=__import__, args=("halfway_pkg",))
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while getattr(sys.modules.get("halfway_pkg"), "first", None) != 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert pickling.initializing(sys.modules["halfway_pkg"])
        assert pickling.imported("halfway_pkg") is None
    finally:
        go.touch()
        thread.join(30)
    try:
        module = pickling.imported("halfway_pkg")
        assert module is sys.modules["halfway_pkg"] and module.second == 2
        assert not pickling.initializing(module)
    finally:
        sys.modules.pop("halfway_pkg", None)


# -- 7: values whose state is outside the process --------------------------------

OPEN_FILE_STEP = (
    "%%step openf\n"
    "import pathlib\n"
    "runs = pathlib.Path('openf-runs.txt')\n"
    "runs.write_text((runs.read_text() if runs.exists() else '') + 'x')\n"
    "fh = open('data.txt')\n"
    "head = fh.readline().strip()"
)
SHOW = "print('fh is', type(fh).__name__, fh.name, 'summary', head + '|' + fh.read().strip())"

WARNING = "cannot be pickled"


def _warnings(text):
    return [line for line in text.splitlines() if WARNING in line]


@pytest.mark.kernel
def test_open_file_stays_in_memory_with_one_warning_and_reruns_after_restart(
    tmp_path, kernel_name, monkeypatch, tmp_key
):
    monkeypatch.setenv("NBSTEPS_STORE", str(tmp_path / "store"))
    (tmp_path / "data.txt").write_text("first\nline two\n")
    cells = ["%load_ext nbsteps", OPEN_FILE_STEP, SHOW]
    first = execute_notebook(cells, kernel_name, tmp_path)
    text = "".join(cell_text(c) for c in first.cells)
    warned = _warnings(text)
    assert len(warned) == 1, text
    assert "'openf'" in warned[0] and "'fh'" in warned[0] and "data.txt" in warned[0], warned
    assert "memory" in warned[0] and "restart" in warned[0], warned
    assert "'head'" not in warned[0] and "'runs'" not in warned[0]  # only the open file is named
    assert "Traceback" not in text and "pickling.py" not in text
    assert "fh is TextIOWrapper" in cell_text(first.cells[2]) and "summary first|line two" in cell_text(
        first.cells[2]
    )
    assert (tmp_path / "openf-runs.txt").read_text() == "x"

    # the file changes, the kernel restarts: the step opens it again, no StringIO of old content
    (tmp_path / "data.txt").write_text("second\nother line\n")
    second = execute_notebook(cells, kernel_name, tmp_path)
    text = "".join(cell_text(c) for c in second.cells)
    assert "openf restored" not in text, text
    assert "openf completed" in cell_text(second.cells[1]), text
    assert (tmp_path / "openf-runs.txt").read_text() == "xx"  # it ran again
    assert "fh is TextIOWrapper" in cell_text(second.cells[2]), text
    assert "summary second|other line" in cell_text(second.cells[2]), text
    warned = _warnings(text)
    assert len(warned) == 1 and "'openf'" in warned[0] and "'fh'" in warned[0], text


def test_open_file_in_a_shell_then_a_new_shell_on_the_same_store(
    shell, tmp_path, tmp_key, capsys, monkeypatch
):
    """The same with real IPython shells: a new plan on the same directory store
    (what a restarted kernel sees) runs the step again."""
    from nbsteps.ipython import session

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("first\nline two\n")
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    run_ok(shell, OPEN_FILE_STEP)
    out = capsys.readouterr()
    warned = _warnings(out.out + out.err)
    assert len(warned) == 1 and "'openf'" in warned[0] and "'fh'" in warned[0], out
    assert isinstance(shell.user_ns["fh"], io.TextIOWrapper)
    shell.user_ns["fh"].close()

    # "restart": a new plan, an empty namespace, the same store
    shell.reset(new_session=False)
    session._plan = None
    session.set_mode("interactive")
    session.bind(shell)
    (tmp_path / "data.txt").write_text("second\nother line\n")
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    run_ok(shell, OPEN_FILE_STEP)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "openf restored" not in text and "openf completed" in text, text
    assert (tmp_path / "openf-runs.txt").read_text() == "xx"
    assert isinstance(shell.user_ns["fh"], io.TextIOWrapper) and shell.user_ns["head"] == "second"
    assert len(_warnings(text)) == 1
    shell.user_ns["fh"].close()


def _handles(tmp_path):
    """Real objects whose state is outside the process, by name."""
    path = tmp_path / "data.txt"
    path.write_text("content\n")
    a, b = multiprocessing.Pipe()
    listener = socket.socket()
    made = {
        "text": open(path),
        "text_rw": open(path, "r+"),
        "binary": open(path, "rb"),
        "raw": open(path, "rb", buffering=0),
        "named_temp": tempfile.NamedTemporaryFile("w+", dir=tmp_path),
        "sock": listener,
        "pipe_end": a,
        "lock": threading.Lock(),
        "rlock": threading.RLock(),
        "event": threading.Event(),
    }
    return made, [b]


def test_values_held_outside_the_process_are_not_checkpointed(tmp_path, tmp_key):
    """Each, alone or inside a container, is refused by the store (kept in
    memory, named in the warning); plain values of the same step are written."""
    import sqlite3

    from nbsteps.model.checkpoint import Checkpoint
    from nbsteps.stores.disk import DiskStore

    made, keep = _handles(tmp_path)
    made["sqlite"] = sqlite3.connect(":memory:")
    try:
        for name, value in made.items():
            store = DiskStore(tmp_path / "store")
            said = []
            store.warn = lambda step, message, said=said: said.append((step, message))
            store.put(Checkpoint(f"s-{name}", "fp", {name: value, "nested": {"k": [value]}, "plain": [1, 2]}))
            assert len(said) == 1, (name, said)
            step, message = said[0]
            assert step == f"s-{name}" and f"'{name}'" in message and "'nested'" in message, message
            assert "'plain'" not in message and "memory" in message, message
            again = DiskStore(tmp_path / "store")  # a new process sees no checkpoint of the step
            assert again.get(f"s-{name}", "fp") is None, name
            if not isinstance(value, sqlite3.Connection):  # sqlite3 refuses pickling itself
                assert "a checkpoint cannot hold it" in message, message
            if name.startswith("text"):
                assert "data.txt" in message and "file descriptor" in message, message
    finally:
        for value in list(made.values()) + keep:
            close = getattr(value, "close", None)
            if close is not None:
                close()


def test_in_memory_streams_and_paths_are_still_checkpointed(tmp_path, tmp_key):
    """Values that only look like files keep being written and come back equal."""
    import pathlib

    from nbsteps.model.checkpoint import Checkpoint
    from nbsteps.stores.disk import DiskStore

    spooled = tempfile.SpooledTemporaryFile(max_size=1000)
    spooled.write(b"spooled bytes")
    outputs = {
        "sio": io.StringIO("text"),
        "bio": io.BytesIO(b"bytes"),
        "path": pathlib.Path(tmp_path),
        "spooled": spooled,
    }
    store = DiskStore(tmp_path / "store")
    said = []
    store.warn = lambda step, message: said.append(message)
    store.put(Checkpoint("streams", "fp", outputs))
    assert said == []
    assert spooled._rolled is False  # not moved to disk by being looked at
    cp = DiskStore(tmp_path / "store").get("streams", "fp")
    assert cp.outputs["sio"].getvalue() == "text" and cp.outputs["bio"].getvalue() == b"bytes"
    assert cp.outputs["path"] == pathlib.Path(tmp_path)
    back = cp.outputs["spooled"]
    back.seek(0)
    assert back.read() == b"spooled bytes"
    spooled.close()
