"""``nbsteps run``: real kernels (nbclient) started by the command in a subprocess."""

import json
import signal
import subprocess
import sys
import time

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbsteps.cli import main

pytestmark = pytest.mark.kernel

CMD = [sys.executable, "-m", "nbsteps"]


def write_nb(path, *sources):
    nb = new_notebook(
        cells=[new_code_cell(s) for s in sources],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, path)
    return path


def nbsteps(*args, cwd=None, timeout=120):
    return subprocess.run([*CMD, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def assert_no_traceback(proc):
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


GOOD = (
    "%load_ext nbsteps",
    "factor = 3",
    "%%step load\ndata = list(range(10))\nlen(data)",
    "%%step double\ndoubled = [x * factor for x in data]\nsum(doubled)",
    "%%step count\nn = len(data)\nn",
)


# -- bad usage: exit 2, one line, no traceback ------------------------------------
def test_missing_file_is_usage_error(tmp_path):
    proc = nbsteps("run", tmp_path / "nope.ipynb")
    assert proc.returncode == 2
    assert_no_traceback(proc)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope.ipynb: no such file" in lines[0]


def test_not_a_notebook_is_usage_error(tmp_path):
    bad = tmp_path / "bad.ipynb"
    bad.write_text("this is not json")
    proc = nbsteps("run", bad)
    assert proc.returncode == 2
    assert_no_traceback(proc)
    assert "is not a Jupyter notebook" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    (tmp_path / "data.json").write_text('{"a": 1}')
    assert main(["run", str(tmp_path / "data.json")]) == 2


def test_unknown_option_and_bad_values_are_usage_errors(tmp_path, capsys):
    nb = write_nb(tmp_path / "nb.ipynb", "1")
    proc = nbsteps("run", nb, "--frobnicate")
    assert proc.returncode == 2
    assert_no_traceback(proc)
    assert "unrecognized arguments: --frobnicate" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    for argv in (
        ["run", str(nb), "--workers", "0"],
        ["run", str(nb), "--results", "r.txt"],
        ["run", str(nb), "--graph", "g.jpg"],
        ["run", str(nb), "--backend", "mpi"],
        ["run", str(nb), "--backend", "threads", "--address", "tcp://x:1"],
        ["run"],
        ["launch", "x"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("nbsteps: error:") and "Traceback" not in err, argv


def test_help(tmp_path):
    proc = subprocess.run([*CMD, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "run" in proc.stdout
    proc = subprocess.run([*CMD, "run", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for opt in (
        "-o",
        "--results",
        "--graph",
        "--workers",
        "--backend",
        "--address",
        "--yes",
        "--store",
        "--timeout",
    ):
        assert opt in proc.stdout
    assert subprocess.run([*CMD], capture_output=True, text=True).returncode == 2


# -- real runs ---------------------------------------------------------------------
@pytest.mark.kernel
def test_good_notebook_exits_0_and_writes_everything(tmp_path):
    nb = write_nb(tmp_path / "good.ipynb", *GOOD)
    out = tmp_path / "out" / "executed.ipynb"
    proc = nbsteps(
        "run",
        nb,
        "-o",
        out,
        "--results",
        tmp_path / "out" / "results.csv",
        "--graph",
        tmp_path / "out" / "graph.svg",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: 3 of 3 steps completed" in proc.stdout
    assert "double completed" in proc.stdout  # the kernel's progress lines are streamed
    executed = nbformat.read(out, as_version=4)
    assert executed.cells[3].outputs and executed.cells[3].execution_count == 4
    assert any(o.get("data", {}).get("text/plain") == "135" for o in executed.cells[3].outputs)
    assert executed.metadata.language_info.name == "python"
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(df.step) == ["load", "double", "count"] and set(df.status) == {"completed"}
    assert (tmp_path / "out" / "graph.svg").read_text().lstrip().startswith("<?xml")
    proc = nbsteps("run", nb, "--results", tmp_path / "results.json")
    assert proc.returncode == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["step"] for r in rows] == ["load", "double", "count"]


@pytest.mark.kernel
def test_failing_step_exits_1_and_still_writes_results(tmp_path):
    nb = write_nb(
        tmp_path / "bad.ipynb",
        "%load_ext nbsteps",
        "%steps mode plan",
        "%%step fetch\nraise ConnectionError('service down')",
        "%%step other\nfine = 1",
        "%%step report --after fetch other\nr = fine + 1",
        "%steps run",
        "print('after the failing cell')",
    )
    out = tmp_path / "executed.ipynb"
    proc = nbsteps("run", nb, "-o", out, "--results", tmp_path / "results.csv")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "fetch failed" in proc.stdout and "FAILED: 1 of 3 steps completed" in proc.stdout
    assert "ConnectionError: service down" in proc.stderr  # the user's traceback of the failing cell
    df = pd.read_csv(tmp_path / "results.csv").set_index("step")
    assert df.loc["fetch", "status"] == "failed" and "service down" in df.loc["fetch", "error"]
    assert df.loc["other", "status"] == "completed" and df.loc["report", "status"] == "blocked"
    executed = nbformat.read(out, as_version=4)
    assert any(o.output_type == "error" for o in executed.cells[5].outputs)
    assert not executed.cells[6].outputs  # execution stopped at the failing cell


@pytest.mark.kernel
def test_plan_without_run_is_run_by_an_appended_cell_and_progress_streams(tmp_path):
    """Registered steps that the notebook never runs are run by `%steps run`;
    progress lines reach the terminal while the run goes on, not at the end."""
    nb = write_nb(
        tmp_path / "plan.ipynb",
        "%load_ext nbsteps\n%steps mode plan",
        "%%step quick\nq = 1",
        "%%step slow\nimport time\ntime.sleep(2.5)\ns = q + 1",
    )
    out = tmp_path / "executed.ipynb"
    proc = subprocess.Popen(
        [*CMD, "run", str(nb), "-o", str(out), "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    seen = {}
    for line in proc.stdout:
        seen.setdefault(
            "quick" if "quick completed" in line else "slow" if "slow completed" in line else line,
            time.monotonic(),
        )
    proc.wait(timeout=60)
    end = time.monotonic()
    assert proc.returncode == 0, proc.stderr.read()
    assert end - seen["quick"] > 2.0, "progress was not streamed while the run went on"
    assert "slow" in seen
    executed = nbformat.read(out, as_version=4)
    last = executed.cells[-1]
    assert last.source == "%steps run --workers 2" and "nbsteps-cli" in last.metadata.tags
    assert "2 of 2 steps completed" in "".join(o.get("text", "") for o in last.outputs)


@pytest.mark.kernel
def test_timeout_interrupts_and_still_writes_outputs(tmp_path):
    nb = write_nb(
        tmp_path / "slow.ipynb",
        "%load_ext nbsteps",
        "%%step quick\nq = 1",
        "%%step forever\nimport time\ntime.sleep(120)",
        "print('never')",
    )
    t0 = time.monotonic()
    proc = nbsteps("run", nb, "-o", tmp_path / "out.ipynb", "--results", tmp_path / "r.csv", "--timeout", "4")
    assert time.monotonic() - t0 < 40
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "timeout" in proc.stderr and "Stopped by --timeout 4" in proc.stdout
    df = pd.read_csv(tmp_path / "r.csv").set_index("step")
    assert df.loc["quick", "status"] == "completed" and df.loc["forever", "status"] == "cancelled"
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert not executed.cells[3].outputs


@pytest.mark.kernel
def test_cell_error_outside_steps_exits_1(tmp_path):
    nb = write_nb(tmp_path / "err.ipynb", "%load_ext nbsteps", "%%step a\nx = 1", "1 / 0")
    proc = nbsteps("run", nb, "--results", tmp_path / "r.csv")
    assert proc.returncode == 1
    assert "cell 3 (1 / 0) failed" in proc.stderr and "ZeroDivisionError" in proc.stderr
    assert "1 of 1 steps completed. cell 3 (1 / 0) failed." in proc.stdout
    assert pd.read_csv(tmp_path / "r.csv").status.tolist() == ["completed"]


@pytest.mark.kernel
def test_yes_and_store(tmp_path, tmp_key):
    """--yes approves --confirm steps; --store keeps checkpoints so a second run resumes."""
    nb = write_nb(
        tmp_path / "confirm.ipynb",
        "%load_ext nbsteps\n%steps mode plan",
        "%%step prepare\nitems = [1, 2, 3]",
        "%%step publish --confirm 'Publish the items?'\npublished = sum(items)\npublished",
        "%steps run",
    )
    proc = nbsteps("run", nb, "--results", tmp_path / "r.csv", "--store", tmp_path / "ckpt")
    assert proc.returncode == 1
    assert "publish cancelled" in proc.stdout and "--yes" in proc.stdout
    assert pd.read_csv(tmp_path / "r.csv").set_index("step").loc["publish", "status"] == "cancelled"
    proc = nbsteps("run", nb, "--results", tmp_path / "r.csv", "--store", tmp_path / "ckpt", "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    df = pd.read_csv(tmp_path / "r.csv", dtype={"result": str}).set_index("step")
    assert df.loc["prepare", "cached"] and not df.loc["publish", "cached"]  # resumed from the store
    assert df.loc["publish", "result"] == "6"


@pytest.mark.kernel
def test_ctrl_c_stops_the_run_and_still_writes_outputs(tmp_path):
    nb = write_nb(
        tmp_path / "slow.ipynb",
        "%load_ext nbsteps",
        "%%step quick\nq = 1",
        "%%step forever\nimport time\ntime.sleep(120)",
    )
    proc = subprocess.Popen(
        [*CMD, "run", str(nb), "-o", str(tmp_path / "out.ipynb"), "--results", str(tmp_path / "r.csv")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stdout:
        if "quick completed" in line:
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, out + err
    assert "interrupted" in err and "Traceback" not in err
    assert "forever cancelled (interrupted)" in out
    df = pd.read_csv(tmp_path / "r.csv").set_index("step")
    assert list(df.status) == ["completed", "cancelled"]
    assert (tmp_path / "out.ipynb").exists()


@pytest.mark.kernel
def test_kernel_death_is_reported(tmp_path):
    nb = write_nb(tmp_path / "die.ipynb", "%load_ext nbsteps", "%%step a\nq = 1", "import os\nos._exit(3)")
    proc = nbsteps("run", nb, "-o", tmp_path / "out.ipynb")
    assert proc.returncode == 1
    assert "the kernel died while running cell 3 (import os)" in proc.stderr
    assert "Traceback" not in proc.stderr and (tmp_path / "out.ipynb").exists()
