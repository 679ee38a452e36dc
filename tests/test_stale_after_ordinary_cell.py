"""The stale flags after each cell pass only over the steps that can have changed
(``RunContext.changes_since``, ``refresh_stale``): an ordinary cell that changes a value a
step reads from the namespace, or a file a step read, still makes that step and the steps
below it stale at the next refresh, though no record changed (real InteractiveShell)."""

from conftest import run_ok

import nbsteps


def stale(shell, capsys) -> dict:
    """The stale flags ``%steps status`` shows (it refreshes them first)."""
    capsys.readouterr()
    run_ok(shell, "%steps status")
    out = capsys.readouterr().out
    return {
        line.split(":")[0].strip(): "[stale]" in line
        for line in out.splitlines()
        if line.startswith("  ") and ":" in line
    }


def test_a_value_an_ordinary_cell_changes_makes_its_reader_and_the_step_below_stale(shell, capsys):
    run_ok(shell, "rate = 2")
    run_ok(shell, "%%step a\nx = 10 * rate")
    run_ok(shell, "%%step b\ny = x + 1")
    run_ok(shell, "%%step c\nz = 5")
    assert stale(shell, capsys) == {"a": False, "b": False, "c": False}
    run_ok(shell, "%%step d\nw = z + 1")  # a record changes: the next refresh is not a full one
    assert stale(shell, capsys) == {"a": False, "b": False, "c": False, "d": False}
    run_ok(shell, "rate = 3")  # nbsteps does not know of it
    assert stale(shell, capsys) == {"a": True, "b": True, "c": False, "d": False}
    assert stale(shell, capsys) == {"a": True, "b": True, "c": False, "d": False}  # and stays so
    run_ok(shell, "rate = 2")  # back as it ran: up to date again
    assert stale(shell, capsys) == {"a": False, "b": False, "c": False, "d": False}
    run_ok(shell, "rate = 4")
    run_ok(shell, "%%step b\ny = x + 1")  # running b first runs a again
    plan = nbsteps.current()
    assert shell.user_ns["y"] == 41 and plan["a"].ok
    assert stale(shell, capsys) == {"a": False, "b": False, "c": False, "d": False}


def test_a_file_a_step_read_changing_makes_it_and_the_step_below_stale(shell, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.txt").write_text("1 2 3")
    # (no builtin named: a step reading names from outside is checked after every cell anyway)
    run_ok(shell, "%%step load\nimport pathlib\nnums = pathlib.Path('data.txt').read_text().split()")
    run_ok(shell, "%%step total\ntotal = sum(int(v) for v in nums)")
    run_ok(shell, "%%step other\nq = 1")
    assert stale(shell, capsys) == {"load": False, "total": False, "other": False}
    run_ok(shell, "%%step more\nr = q + 1")
    assert stale(shell, capsys) == {"load": False, "total": False, "other": False, "more": False}
    run_ok(shell, "with open('data.txt', 'w') as fh:\n    fh.write('1 2 3 4')")  # an ordinary cell
    assert stale(shell, capsys) == {"load": True, "total": True, "other": False, "more": False}
    run_ok(shell, "%%step total\ntotal = sum(int(v) for v in nums)")
    assert shell.user_ns["total"] == 10
    assert stale(shell, capsys) == {"load": False, "total": False, "other": False, "more": False}
