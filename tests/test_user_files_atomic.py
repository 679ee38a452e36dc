"""Every file nbsteps writes outside its store is written all at once or not at
all (issue 21, defect 1): ``nbsteps run -o`` interrupted while it writes the
executed notebook used to leave the file truncated, and with ``-o`` naming the
input notebook the user's notebook was gone.

The processes, signals, files, links and the full disk (a real tmpfs) are real.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_raw_cell

from nbsteps.files import atomic_write, write_bytes

pytestmark = pytest.mark.usefixtures("nothing_outside_the_store_changes")

KERNELSPEC = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _listing(folder) -> dict:
    """name -> (size, sha256) of every file under *folder*: a byte snapshot."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            p = os.path.join(root, name)
            if os.path.islink(p):
                out[os.path.relpath(p, folder)] = ("link", os.readlink(p))
            else:
                out[os.path.relpath(p, folder)] = (os.path.getsize(p), _sha(p))
    return out


# -- the defect: a real `nbsteps run -o` process, a 200 MB notebook, SIGINT while it writes --------


def _big_notebook(path, megabytes: int = 200) -> None:
    text = "nbsteps keeps this line\n" * (megabytes * 1024 * 1024 // 24)
    nb = new_notebook(
        cells=[new_code_cell("%load_ext nbsteps"), new_code_cell("%%step one\nx = 1"), new_raw_cell(text)],
        metadata=KERNELSPEC,
    )
    nbformat.write(nb, path)


@pytest.mark.kernel
@pytest.mark.timeout(600)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_interrupting_run_o_while_it_writes_the_input_notebook_keeps_it_whole(tmp_path, sig):
    nb_path = tmp_path / "analysis.ipynb"
    _big_notebook(nb_path)
    before = nb_path.stat()
    digest = _sha(nb_path)
    assert before.st_size > 200 * 1000 * 1000
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbsteps", "run", str(nb_path), "-o", str(nb_path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sent = False
    try:
        deadline = time.monotonic() + 400
        # the moment the output starts growing: the target changes, or a new file appears beside it
        while proc.poll() is None and time.monotonic() < deadline:
            names = set(os.listdir(tmp_path)) - {"analysis.ipynb"}
            st = nb_path.stat() if nb_path.exists() else None
            if (
                names
                or st is None
                or (st.st_size, st.st_mtime_ns, st.st_ino)
                != (before.st_size, before.st_mtime_ns, before.st_ino)
            ):
                proc.send_signal(sig)
                sent = True
                break
            time.sleep(0.001)
        out, err = proc.communicate(timeout=200)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sent, (out, err)
    # nothing half-written: the previous content, byte for byte, or the whole executed notebook
    if _sha(nb_path) != digest:
        data = json.loads(nb_path.read_bytes())
        assert data["cells"][1]["outputs"] is not None and len(data["cells"][2]["source"]) > 200 * 1000 * 1000
        assert nb_path.read_bytes().endswith(b"}\n")
    assert os.listdir(tmp_path) == ["analysis.ipynb"], "the temporary file was left behind"
    assert "Traceback" not in err, err


@pytest.mark.kernel
def test_run_o_keeps_the_notebook_mode_and_writes_through_a_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    nb_path = real / "nb.ipynb"
    nbformat.write(
        new_notebook(
            cells=[new_code_cell("%load_ext nbsteps"), new_code_cell("%%step one\nx = 41 + 1\nx")],
            metadata=KERNELSPEC,
        ),
        nb_path,
    )
    os.chmod(nb_path, 0o640)
    link = tmp_path / "link.ipynb"
    link.symlink_to(nb_path)
    proc = subprocess.run(
        [sys.executable, "-m", "nbsteps", "run", str(link), "-o", str(link)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(nb_path)  # the link is kept
    assert oct(nb_path.stat().st_mode & 0o777) == oct(0o640)  # so are the permission bits
    executed = nbformat.read(nb_path, as_version=4)
    assert any("42" in json.dumps(o) for o in executed.cells[1].outputs)
    assert sorted(os.listdir(real)) == ["nb.ipynb"]


# -- the mechanism, on real files ------------------------------------------------------------------


def test_a_failure_while_writing_leaves_the_previous_content_and_no_temporary(tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("old,content\n")
    snapshot = _listing(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(target, "w") as f:
            f.write("new," * 100_000)
            raise KeyboardInterrupt  # as a Ctrl-C in the middle of the write
    assert _listing(tmp_path) == snapshot
    with pytest.raises(ValueError):
        with atomic_write(target, "wb") as f:
            f.write(b"partial")
            raise ValueError("the code producing the content failed")
    assert _listing(tmp_path) == snapshot
    write_bytes(target, b"new\n")
    assert target.read_bytes() == b"new\n"
    assert os.listdir(tmp_path) == ["results.csv"]


def test_a_new_file_gets_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "graph.svg", b"<svg/>")
    finally:
        os.umask(old)
    assert (tmp_path / "graph.svg").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


@pytest.fixture
def full_disk(tmp_path):
    """A real 256 KiB tmpfs (needs root: CI runs as root)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_keeps_the_previous_file(full_disk):
    target = full_disk / "results.json"
    target.write_text('{"previous": true}\n')
    snapshot = _listing(full_disk)
    with pytest.raises(OSError) as info:
        write_bytes(target, b"x" * (1024 * 1024))  # 1 MiB on a 256 KiB disk
    assert info.value.errno == 28  # ENOSPC
    assert _listing(full_disk) == snapshot


def _fill(folder, leave: int) -> None:
    """Fill the file system of *folder* until about *leave* bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(os.path.join(folder, "filler"), "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def test_steps_export_and_graph_on_a_full_disk_keep_the_previous_files(full_disk, shell):
    """The user-facing writers in a real IPython shell: a clear error naming the file, old files whole."""
    from conftest import run_err, run_ok

    run_ok(shell, "%%step wide\nblob = 'y' * 10\nblob")
    for name in ("r.html", "r.csv", "g.svg", "g.dot"):
        (full_disk / name).write_text(f"previous {name}\n")
    _fill(full_disk, leave=0)
    snapshot = _listing(full_disk)
    for cell in (
        f"%steps export {full_disk / 'r.html'}",
        f"%steps export {full_disk / 'r.csv'}",
        f"%steps graph --output {full_disk / 'g.svg'}",
        f"%steps graph --output {full_disk / 'g.dot'}",
    ):
        err = run_err(shell, cell)
        assert type(err).__name__ == "NbstepsError", (cell, err)
        assert "No space left on device" in str(err) and str(full_disk) in str(err), str(err)
        assert _listing(full_disk) == snapshot, cell
