"""Files are inputs and outputs, observed (issue 23, cases 1 and 2; SPEC 1 "Files").

A file a step reads (through any library: the ``open`` audit event) joins its
checkpoint with a fingerprint: a changed file makes the step stale, the plan says
so and running the cell executes it, in this shell, in a new shell resumed from a
directory store, in a real kernel and with ``nbsteps run --store``. Writing or
appending is a change of the file, not a read. Every check compares with plain
IPython (the cells without ``%%step``, run in order).
"""

import os
import subprocess
import sys
import time

import nbformat
import pandas as pd
import pytest
from conftest import cell_text, execute_notebook, run_ok, run_steps
from nbformat.v4 import new_code_cell, new_notebook

import nbsteps
from nbsteps.ipython import session

SALES = "region,amount\nnorth,10\nsouth,20\neast,30\n"
MORE = "west,40\n"

LOAD = "%%step load\nimport pandas as pd\ndf = pd.read_csv('sales.csv')\nlen(df)"
TOTAL = "%%step total\ntotal = int(df['amount'].sum())\ntotal"
OTHER = "%%step other\nsquares = [i * i for i in range(5)]\nsum(squares)"
CELLS = [LOAD, TOTAL, OTHER]


def plain(shell, cells) -> dict:
    """What plain IPython gives: the cells without their ``%%step`` line, run in
    order in a fresh namespace (IPython's own transformations)."""
    ns: dict = {}
    for cell in cells:
        lines = cell.splitlines()
        body = "\n".join(lines[1:]) if lines[0].startswith("%%step") else cell
        exec(compile(shell.transform_cell(body), "<cell>", "exec"), ns)
    return ns


def executed(shell) -> list:
    """The steps the last run executed (not restored, not kept)."""
    return sorted(nbsteps.current().last_summary.completed_order)


def fresh_plan(shell):
    """A new plan in the same shell: what a new kernel starts with."""
    session._plan = None
    session.set_mode("interactive")
    session.bind(shell)


# -- case 1: a changed data file ------------------------------------------------------------------
def test_rerunning_the_cell_after_its_file_changed_executes_it(shell, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sales.csv").write_text(SALES)
    for cell in CELLS:
        run_ok(shell, cell)
    plan = nbsteps.current()
    assert shell.user_ns["total"] == plain(shell, CELLS)["total"] == 60
    assert list(plan["load"].files) == [str(tmp_path / "sales.csv")]
    assert plan.plan().to_run == []

    with open("sales.csv", "a") as fh:
        fh.write(MORE)
    preview = plan.plan()
    assert preview.to_run == ["load", "total"]
    assert preview.reason("load") == "file sales.csv changed"
    capsys.readouterr()
    run_ok(shell, "%steps plan")
    assert "load (run: file sales.csv changed" in capsys.readouterr().out
    plan.refresh_stale()  # what views show between runs
    assert plan["load"].stale and plan["total"].stale and not plan["other"].stale

    run_ok(shell, LOAD)  # running the cell executes it: the new row is there
    assert executed(shell) == ["load"] and plan["load"].reason == "file sales.csv changed"
    expected = plain(shell, CELLS)
    assert plan["load"].outputs["df"].equals(expected["df"]) and len(expected["df"]) == 4
    run_ok(shell, TOTAL)
    assert shell.user_ns["total"] == expected["total"] == 100
    assert shell.user_ns["df"].equals(expected["df"])
    run_ok(shell, LOAD)  # unchanged now: not executed again
    assert executed(shell) == []


def test_running_a_cell_below_reads_the_changed_file_above(shell, tmp_path, monkeypatch):
    """Running a step brings its upstream up to date: the step that reads the
    changed file runs first, even when the cell run is the one below it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sales.csv").write_text(SALES)
    for cell in CELLS:
        run_ok(shell, cell)
    (tmp_path / "sales.csv").write_text(SALES + MORE)
    run_ok(shell, TOTAL)
    assert executed(shell) == ["load", "total"]
    assert shell.user_ns["total"] == plain(shell, CELLS)["total"] == 100


def test_plan_mode_with_four_workers_runs_only_the_reader_and_its_downstream(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sales.csv").write_text(SALES)
    run_ok(shell, "%steps mode plan")
    for cell in CELLS:
        run_ok(shell, cell)
    run_ok(shell, "%steps run --workers 4")
    assert executed(shell) == ["load", "other", "total"]
    (tmp_path / "sales.csv").write_text(SALES + MORE)
    assert nbsteps.current().plan().to_run == ["load", "total"]
    run_ok(shell, "%steps run --workers 4")
    assert executed(shell) == ["load", "total"]
    expected = plain(shell, CELLS)
    for name in ("df", "total", "squares"):
        assert repr(shell.user_ns[name]) == repr(expected[name])


def test_resumed_from_a_directory_store_in_a_new_shell(shell, tmp_path, monkeypatch, tmp_key):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sales.csv").write_text(SALES)
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    for cell in CELLS:
        run_ok(shell, cell)
    fresh_plan(shell)  # the same file: everything restored
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    run_ok(shell, "%steps mode plan")
    for cell in CELLS:
        run_ok(shell, cell)
    run_ok(shell, "%steps run --workers 4")
    assert executed(shell) == []
    assert not any(str(tmp_path / "store") in p for p in nbsteps.current()["load"].files)

    (tmp_path / "sales.csv").write_text(SALES + MORE)  # the next day's file, a new kernel
    fresh_plan(shell)
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    run_ok(shell, "%steps mode plan")
    for cell in CELLS:
        run_ok(shell, cell)
    assert nbsteps.current().plan().reason("load") == "file sales.csv changed"
    run_ok(shell, "%steps run --workers 4")
    assert executed(shell) == ["load", "total"]
    assert shell.user_ns["total"] == plain(shell, CELLS)["total"] == 100


READERS = {
    "pandas": ("import pandas as pd\nvalue = pd.read_csv('data.txt', header=None).to_numpy().tolist()"),
    "loadtxt": "import numpy as np\nvalue = np.loadtxt('data.txt', delimiter=',').tolist()",
    "open": "value = open('data.txt').read()",
    "pathlib": "from pathlib import Path\nvalue = Path('data.txt').read_text()",
    "with": "with open('data.txt') as fh:\n    value = fh.readlines()",
    "variable path": "name = 'da' + 'ta.txt'\nvalue = open(name).read()",  # no literal: observed only
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_any_library_reading_the_file_makes_it_an_input(shell, tmp_path, monkeypatch, reader, mode):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("1,2\n3,4\n")
    cells = [f"%%step read\n{READERS[reader]}", "%%step after\nsize = len(value)"]
    run_steps(shell, cells, mode)
    (tmp_path / "data.txt").write_text("1,2\n3,4\n5,6\n")
    if mode == "plan":
        run_ok(shell, "%steps run --workers 4")
    else:
        for cell in cells:
            run_ok(shell, cell)
    expected = plain(shell, cells)
    assert repr(shell.user_ns["value"]) == repr(expected["value"])
    assert shell.user_ns["size"] == expected["size"]
    assert list(nbsteps.current()["read"].files) == [str(tmp_path / "data.txt")]


def test_parquet_read_in_c_is_known_by_its_literal_path(shell, tmp_path, monkeypatch):
    """pyarrow opens the file in C++ (no audit event): the literal path the analysis
    saw given to the reader is the hint."""
    pytest.importorskip("pyarrow")
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"a": [1, 2]}).to_parquet("t.parquet")
    cell = "%%step read\nimport pandas as pd\nt = pd.read_parquet('t.parquet')\nrows = len(t)"
    run_ok(shell, cell)
    pd.DataFrame({"a": [1, 2, 3]}).to_parquet("t.parquet")
    run_ok(shell, cell)
    assert shell.user_ns["rows"] == plain(shell, [cell])["rows"] == 3
    assert list(nbsteps.current()["read"].files) == [str(tmp_path / "t.parquet")]


# -- case 2: appending is not reading -------------------------------------------------------------
APPENDERS = [f"%%step s{i}\nwith open('log.txt', 'a') as fh:\n    fh.write('{i}\\n')" for i in (1, 2, 3)]
EDITED = "%%step s1\nwith open('log.txt', 'a') as fh:\n    fh.write('1 edited\\n')"


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_editing_the_first_appender_reruns_only_it(shell, tmp_path, monkeypatch, mode):
    monkeypatch.chdir(tmp_path)
    run_steps(shell, APPENDERS, mode)
    plan = nbsteps.current()
    assert plan.dependencies("s2") == {"s1": "order"}  # notebook order kept, nothing stale through it
    run_ok(shell, EDITED)
    assert plan.plan().to_run == (["s1"] if mode == "plan" else [])
    run_ok(shell, "%steps run --workers 4")
    assert plan.plan().to_run == []
    assert not plan["s3"].stale
    # plain IPython: the three cells, then the edited one run again
    os.rename("log.txt", "nbsteps-log.txt")
    plain(shell, [*APPENDERS, EDITED])
    assert (tmp_path / "nbsteps-log.txt").read_text() == (tmp_path / "log.txt").read_text()
    assert (tmp_path / "log.txt").read_text() == "1\n2\n3\n1 edited\n"
    assert not plan["s1"].files  # opened to append: not a read


def test_editing_the_last_appender_replays_nothing_above(shell, tmp_path, monkeypatch):
    """A file outlives the process: the writers above an executing appender are not
    replayed (that would append their lines twice)."""
    monkeypatch.chdir(tmp_path)
    for cell in APPENDERS:
        run_ok(shell, cell)
    last = "%%step s3\nwith open('log.txt', 'a') as fh:\n    fh.write('3 edited\\n')"
    run_ok(shell, last)
    assert executed(shell) == ["s3"]
    os.rename("log.txt", "nbsteps-log.txt")
    plain(shell, [*APPENDERS, last])
    assert (tmp_path / "nbsteps-log.txt").read_text() == (tmp_path / "log.txt").read_text()


WRITE = "%%step write\nimport pandas as pd\npd.DataFrame({'v': [1, 2]}).to_csv('mid.csv', index=False)"
READ = "%%step read\nimport pandas as pd\nback = pd.read_csv('mid.csv')\nn = int(back['v'].sum())"


def test_a_file_written_above_and_read_below(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_ok(shell, "%steps mode plan")
    for cell in (WRITE, READ):
        run_ok(shell, cell)
    plan = nbsteps.current()
    assert plan.dependencies("read") == {"write": "state"}  # order kept, stale with it
    run_ok(shell, "%steps run --workers 4")
    assert shell.user_ns["n"] == 3
    assert not plan["write"].files  # it wrote the file: not its input
    assert list(plan["read"].files) == [str(tmp_path / "mid.csv")]
    edited = WRITE.replace("[1, 2]", "[1, 2, 3]")
    run_ok(shell, edited)
    assert plan.plan().to_run == ["write", "read"]
    run_ok(shell, "%steps run --workers 4")
    assert executed(shell) == ["read", "write"]
    assert shell.user_ns["n"] == plain(shell, [edited, READ])["n"] == 6
    # changed by someone else: only the reader runs again, and reads what is there
    pd.DataFrame({"v": [10]}).to_csv(tmp_path / "mid.csv", index=False)
    assert plan.plan().to_run == ["read"]
    run_ok(shell, "%steps run --workers 4")
    assert executed(shell) == ["read"] and shell.user_ns["n"] == 10


@pytest.mark.parametrize(
    "write,read",
    [
        ("df.to_orc('t.orc')", "back = pd.read_orc('t.orc')"),  # pandas' IO guide (corpus pd_io_binary)
        ("df.to_stata('t.dta', write_index=False)", "back = pd.read_stata('t.dta')"),
    ],
)
def test_pandas_orc_and_stata_writers_come_before_their_readers(shell, tmp_path, monkeypatch, write, read):
    """In plan mode the order comes from the analysis, before anything runs: ``to_orc`` and
    ``to_stata`` were no file writers and ``.orc``/``.dta`` did not look like data files, so
    nothing ordered the reader after the writer (it could run first and find no file)."""
    if "orc" in write:
        pytest.importorskip("pyarrow.orc")
    monkeypatch.chdir(tmp_path)
    run_ok(shell, "%steps mode plan")
    cells = [
        "%%step make\nimport pandas as pd\ndf = pd.DataFrame({'v': [1, 2, 3]})",
        f"%%step write\n{write}",
        f"%%step read\n{read}\nn = int(back['v'].sum())",
    ]
    for cell in cells:
        run_ok(shell, cell)
    assert nbsteps.current().dependencies("read").get("write") == "state"
    run_ok(shell, "%steps run --workers 4")
    assert shell.user_ns["n"] == plain(shell, cells)["n"] == 6


def test_what_a_step_writes_first_imports_or_the_store_holds_is_no_input(
    shell, tmp_path, monkeypatch, tmp_key
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "config.txt").write_text("3")
    (tmp_path / "lib" / "settings_mod.py").write_text(
        "import os\nwith open(os.path.join(os.path.dirname(__file__), 'config.txt')) as fh:\n"
        "    SCALE = int(fh.read())\n"
    )
    (tmp_path / "data.txt").write_text("5")
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    run_ok(shell, "%%step base\nbase = [1, 2, 3]")
    cell = (
        "%%step work\n"
        "import tempfile, os\n"
        "import settings_mod\n"  # its first import reads config.txt: the import's, not the step's
        "with open('scratch.txt', 'w') as fh:\n    fh.write('x')\n"
        "scratch = open('scratch.txt').read()\n"  # written first by the step itself
        "status = open('/proc/self/status').read() if os.path.exists('/proc/self/status') else ''\n"
        "os.listdir('.')\n"
        "value = int(open('data.txt').read()) * settings_mod.SCALE + len(base)"
    )
    run_ok(shell, cell)
    assert list(nbsteps.current()["work"].files) == [str(tmp_path / "data.txt")]
    assert shell.user_ns["value"] == 18


def test_large_files_are_known_by_size_and_modification_time(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NBSTEPS_FILE_DIGEST_MAX", "1KB")
    big, small = tmp_path / "big.bin", tmp_path / "small.txt"
    big.write_bytes(b"x" * 5000)
    small.write_text("abc")
    run_ok(shell, "%%step read\nsizes = (len(open('big.bin', 'rb').read()), open('small.txt').read())")
    files = nbsteps.current()["read"].files
    assert files[str(big)].startswith("stat:5000:") and files[str(small)].startswith("blake2b:")
    # the same bytes again: the small file is known by its content, nothing to do
    small.write_text("abc")
    os.utime(small, ns=(time.time_ns() + 10**9,) * 2)
    assert nbsteps.current().plan().to_run == []
    # the big one, touched: its modification time is all that is looked at
    os.utime(big, ns=(time.time_ns() + 2 * 10**9,) * 2)
    assert nbsteps.current().plan().reason("read") == "file big.bin changed"


# -- a real kernel and nbsteps run --------------------------------------------------------------
@pytest.mark.kernel
def test_real_kernel_rerun_cell_sees_the_new_row(tmp_path, kernel_name):
    (tmp_path / "sales.csv").write_text(SALES)
    grow = f"with open('sales.csv', 'a') as fh:\n    fh.write({MORE!r})"
    cells = ["%load_ext nbsteps", LOAD, grow, "%steps plan", LOAD]
    nb = execute_notebook(cells, kernel_name, tmp_path)
    (tmp_path / "sales.csv").write_text(SALES)
    bare = [c.split("\n", 1)[1] if c.startswith("%%step") else c for c in cells]
    ref = execute_notebook(["", bare[1], bare[2], "", bare[4]], kernel_name, tmp_path)
    assert "file sales.csv changed" in cell_text(nb.cells[3])
    assert result_of(nb.cells[4]) == result_of(ref.cells[4]) == "4"
    assert "load completed" in cell_text(nb.cells[4])


def result_of(cell) -> str:
    """The cell's ``Out[n]``."""
    return "".join(o["data"]["text/plain"] for o in cell["outputs"] if o["output_type"] == "execute_result")


def _write_nb(path, cells):
    nb = new_notebook(
        cells=[new_code_cell(s) for s in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, path)
    return path


@pytest.mark.kernel
def test_nbsteps_run_with_a_store_on_the_next_days_file(tmp_path, tmp_key, kernel_name):
    (tmp_path / "sales.csv").write_text(SALES)
    nb = _write_nb(tmp_path / "report.ipynb", ["%load_ext nbsteps", *CELLS])

    def run():
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "nbsteps",
                "run",
                nb,
                "--store",
                "store",
                "--results",
                "r.csv",
                "-o",
                "out.ipynb",
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        table = pd.read_csv(tmp_path / "r.csv").set_index("step")
        return table, nbformat.read(tmp_path / "out.ipynb", as_version=4)

    _, out = run()
    assert [cell_text(out.cells[i]).count("restored") for i in (1, 2, 3)] == [0, 0, 0]
    (tmp_path / "sales.csv").write_text(SALES + MORE)
    table, out = run()
    assert "load completed" in cell_text(out.cells[1]) and "total completed" in cell_text(out.cells[2])
    assert "other restored" in cell_text(out.cells[3]) and table.loc["other", "cached"]
    # plain Run All on the new file
    ref = execute_notebook(["", *(c.split("\n", 1)[1] for c in CELLS)], kernel_name, tmp_path)
    for i in (1, 2, 3):
        assert result_of(out.cells[i]) == result_of(ref.cells[i])
    assert result_of(ref.cells[2]) == "100"


# -- what the hook costs ----------------------------------------------------------------------------
def test_a_step_opening_10000_files_records_each_once(shell, tmp_path, monkeypatch):
    """A step opening 10,000 files records each of them, and none has changed after
    it ran. What watching opens costs is measured in ``bench/file_opens.py``, not here."""
    from nbsteps.model import file_inputs

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(10_000):
        (folder / f"{i}.txt").write_text(str(i))
    run_ok(shell, "%%step many\n" + MANY_OPENS)
    rec = nbsteps.current()["many"]
    assert len(rec.files) == 10_000 and shell.user_ns["total"] == sum(range(10_000))
    assert file_inputs.changed(rec.files) == []


MANY_OPENS = (
    "total = 0\nfor i in range(10_000):\n"
    "    with open(f'many/{i}.txt') as fh:\n        total += int(fh.read())"
)


# -- a file read above and written below: changed after the reader read it, as in Run All --------
READ_FIRST = "%%step first\nwith open('f.txt') as fh:\n    first = fh.read()"
OVERWRITE = "%%step overwrite\nwith open('f.txt', 'w') as fh:\n    fh.write('two')"
SHOUT = "%%step shout\nshout = first.upper()"


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_a_file_overwritten_below_its_reader_leaves_the_reader_up_to_date(shell, tmp_path, monkeypatch, mode):
    """The step below wrote the file after the reader read it (its fingerprint is what the writer
    left): the reader is not stale and is not run again, so ``shout`` is what Run All gives; a
    change made by anyone else still makes the reader stale."""
    monkeypatch.chdir(tmp_path)
    cells = [READ_FIRST, OVERWRITE, SHOUT]
    (tmp_path / "f.txt").write_text("one")
    expected = plain(shell, cells)["shout"]
    (tmp_path / "f.txt").write_text("one")
    run_steps(shell, cells, mode)
    assert shell.user_ns["shout"] == expected == "ONE"
    plan = nbsteps.current()
    assert list(plan["overwrite"].wrote) == [str(tmp_path / "f.txt")]
    assert plan.plan().to_run == []  # nothing is stale: the file is what `overwrite` made of it
    run_ok(shell, SHOUT)  # interactive and plan: running the cell below reads nothing again
    run_ok(shell, "%steps run --workers 4")
    assert shell.user_ns["shout"] == "ONE" and "first" not in executed(shell)
    (tmp_path / "f.txt").write_text("three")  # changed by someone else: the reader is stale
    assert plan.plan().to_run[0] == "first" and plan.plan().reason("first") == "file f.txt changed"


SQLITE = [
    "%%step connect\nimport sqlite3\ncon = sqlite3.connect('t.db')\ncur = con.cursor()",
    "%%step create\ncur.execute('CREATE TABLE movie(title, year)')",
    "%%step insert\ncur.execute(\"INSERT INTO movie VALUES ('Holy Grail', 1975)\")\ncon.commit()",
    "%%step count\nn = cur.execute('SELECT count(*) FROM movie').fetchone()[0]",
]


def test_a_database_written_in_c_by_the_steps_below_keeps_the_connecting_step(shell, tmp_path, monkeypatch):
    """SQLite writes its file in C (no ``open`` event): a file of the plan that changes while a
    step runs is that step's write, so the step that connected (its literal path made the file its
    input) is not stale after the steps below wrote the database; running them did not connect
    again and create the table twice ("table movie already exists", Python's sqlite3 tutorial)."""
    monkeypatch.chdir(tmp_path)
    for cell in SQLITE:
        run_ok(shell, cell)
    assert shell.user_ns["n"] == 1
    plan = nbsteps.current()
    assert str(tmp_path / "t.db") in plan["create"].wrote and str(tmp_path / "t.db") in plan["insert"].wrote
    assert plan.plan().to_run == []
    run_ok(shell, SQLITE[3] + " * 1")  # edited: it runs alone, on the same connection
    assert executed(shell) == ["count"] and shell.user_ns["n"] == 1


def test_a_file_a_step_read_and_another_process_changed_is_the_writers_write(shell, tmp_path, monkeypatch):
    """The files the plan's steps read are fingerprinted around every attempt: one that
    changed although the step never opened it (C code, another process) is its write.
    Which files follow the records across runs: a file no step reads any more is not
    watched, and is again once a step reads it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sales.csv").write_text(SALES)
    path = str(tmp_path / "sales.csv")
    append = (
        "%%step append --force\nimport subprocess\n"
        "done = subprocess.run(['sh', '-c', 'echo west,40 >> sales.csv'], check=True).returncode\n"
    )
    run_ok(shell, LOAD)
    plan = nbsteps.current()
    run_ok(shell, append)
    assert list(plan["append"].wrote) == [path]
    plan.remove("load")
    run_ok(shell, append)
    assert plan["append"].wrote == {}
    run_ok(shell, LOAD)
    run_ok(shell, append)
    assert list(plan["append"].wrote) == [path]
    plan.reset("load")  # its checkpoint dropped: it read nothing now
    run_ok(shell, append)
    assert plan["append"].wrote == {}
