"""Durable checkpoints across real kernels (nbclient): a new kernel resumes
from the store directory and executes nothing that is up to date."""

import pytest
from conftest import cell_text, execute_notebook

pytestmark = pytest.mark.kernel

COUNTED = (
    "%%step expensive\n"
    "import pathlib\n"
    "log = pathlib.Path('executions.txt')\n"
    "log.write_text((log.read_text() if log.exists() else '') + 'x')\n"
    "import pandas as pd\n"
    "frame = pd.DataFrame({'v': range(5)})\n"
    "settings = {'alpha': 0.5}\n"
    "print('computed', len(frame), 'rows')\n"
    "len(frame)"
)
USE = "%%step use\ntotal = int(frame['v'].sum() * settings['alpha'])\ntotal"


def test_new_kernel_resumes_from_store(tmp_path, kernel_name, monkeypatch, tmp_key):
    store = tmp_path / "store"
    monkeypatch.setenv("NBSTEPS_STORE", str(store))
    cells = ["%load_ext nbsteps", COUNTED, USE]
    first = execute_notebook(cells, kernel_name, tmp_path)
    assert "expensive completed" in cell_text(first.cells[1])
    assert (tmp_path / "executions.txt").read_text() == "x"
    second = execute_notebook(cells, kernel_name, tmp_path)  # a fresh kernel: the restart
    # the cell of a step that needed `expensive` upstream still says it completed in this kernel
    assert "expensive completed" in cell_text(first.cells[1])
    assert "expensive restored from its checkpoint" in cell_text(second.cells[1])
    assert "use restored from its checkpoint" in cell_text(second.cells[2])
    assert "5" in cell_text(second.cells[2])  # the result is shown again
    # and so is what it printed: kept, signed, in the store's checkpoint
    assert "computed 5 rows" in cell_text(first.cells[1]) and "computed 5 rows" in cell_text(second.cells[1])
    assert (tmp_path / "executions.txt").read_text() == "x"  # not executed again


def test_failing_cell_stops_nbclient_like_any_error(tmp_path, kernel_name):
    from nbclient.exceptions import CellExecutionError

    cells = ["%load_ext nbsteps", "%%step boom\nvalue = 1 / 0", "after = 1"]
    with pytest.raises(CellExecutionError) as e:
        execute_notebook(cells, kernel_name, tmp_path)
    text = str(e.value)
    assert "StepsFailed" in text and "boom failed: ZeroDivisionError" in text
    assert "executor.py" not in text and "magics.py" not in text


def test_store_magic_unpicklable_value_warns_and_run_continues(shell, tmp_path, tmp_key, capsys):
    from conftest import run_ok

    run_ok(shell, f"%steps store {tmp_path / 'st'}")
    run_ok(shell, "%%step locky\nimport threading\nlock = threading.Lock()\nn = 1")
    out = capsys.readouterr().out
    assert "locky" in out and "lock" in out and "memory" in out.lower()
    run_ok(shell, "%%step uses\nm = n + 1")
    assert shell.user_ns["m"] == 2
    run_ok(shell, "%steps reset")
    assert not any((tmp_path / "st").rglob("*.json"))
