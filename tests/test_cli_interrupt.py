"""``nbsteps run`` never loses a Ctrl-C. A kernel ignores SIGINT between two
cells, so an interrupt that arrives as one cell ends and the next begins used
to be lost, and the next cell (a 20 s step) ran to its end. The driver now
interrupts again while the cell still runs; here the step itself swallows the
first interrupt, which the driver sees the same way."""

import signal
import subprocess
import sys
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

pytestmark = pytest.mark.kernel

STUBBORN = """%%step stubborn
import pathlib, time
pathlib.Path('started').touch()
try:
    time.sleep(120)
except KeyboardInterrupt:
    pathlib.Path('first-interrupt-lost').touch()
time.sleep(120)
done = True"""


def test_an_interrupt_the_kernel_missed_is_sent_again(tmp_path):
    nb = new_notebook(
        cells=[new_code_cell(s) for s in ("%load_ext nbsteps", "%%step quick\nq = 1", STUBBORN)],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    path = tmp_path / "stubborn.ipynb"
    nbformat.write(nb, path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbsteps", "run", str(path), "--results", str(tmp_path / "r.csv")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=100)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (tmp_path / "first-interrupt-lost").exists()  # the first interrupt was swallowed
    assert "did not respond" not in out + err, out + err
    assert proc.returncode == 1, out + err
    assert "stubborn cancelled (interrupted)" in out, out + err
    assert "quick" in (tmp_path / "r.csv").read_text()
