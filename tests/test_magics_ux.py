"""What a newcomer meets in the magics (a real IPython InteractiveShell):
completion, help with user-facing names, clear messages for a bad step name,
line numbers counted from the %%step line, no jumping counters, readable
results (summaries, times, attempts of restored steps)."""

from __future__ import annotations

import datetime as dt

from conftest import run_err, run_ok
from IPython.core.error import UsageError

import nbsteps
from nbsteps.errors import UnknownStepError


def completions(shell, line: str) -> list[str]:
    text = "" if line.endswith(" ") else line.split()[-1]
    return shell.complete(text, line)[1]


def test_tab_completion_of_subcommands_options_and_step_names(shell):
    run_ok(shell, "%%step load --define\nx = 1")
    run_ok(shell, "%%step clean --define\ny = x")
    assert completions(shell, "%steps ru") == ["run"]
    assert {"plan", "run", "show", "status", "results", "graph", "reset"} <= set(
        completions(shell, "%steps ")
    )
    assert completions(shell, "%steps run ") == ["load", "clean"]
    assert completions(shell, "%steps run cl") == ["clean"]
    assert completions(shell, "%steps reset load ") == ["clean"]  # not twice
    assert completions(shell, "%steps run --force lo") == ["load"]
    assert "--fail-fast" in completions(shell, "%steps run --fa")
    assert completions(shell, "%steps run --backend ") == ["threads", "dask"]
    assert completions(shell, "%steps mode ") == ["interactive", "plan"]
    assert completions(shell, "%steps graph --format ") == ["svg", "png", "dot"]
    assert completions(shell, "%%step report --after ") == ["load", "clean"]
    assert "--retry" in completions(shell, "%%step report --re")


def test_help_uses_the_names_users_type(shell):
    from nbsteps.ipython.magics import StepMagics

    doc = StepMagics.steps.__doc__
    assert "%run_args" not in doc and "plan_args" not in doc and "graph_args" not in doc
    assert "%steps run [--workers WORKERS]" in doc and "%steps plan" in doc and "%steps graph" in doc
    err = run_err(shell, "%steps run --frobnicate")
    assert "%steps run" in str(err) and "run_args" not in str(err)


def test_bad_step_names_say_what_to_do(shell):
    err = run_err(shell, "%%step bad name\nx = 1")
    assert isinstance(err, UsageError)
    assert "one step name" in str(err) and "no spaces" in str(err) and "%%step bad_name" in str(err)
    err = run_err(shell, "%%step\nx = 1")
    assert isinstance(err, UsageError) and "needs a step name" in str(err)
    err = run_err(shell, "%%step --retry 2\nx = 1")
    assert isinstance(err, UsageError) and "needs a step name" in str(err)


def test_unknown_target_raises_before_anything_runs(shell, capsys):
    run_ok(shell, "%%step a --define\nx = 1")
    err = run_err(shell, "%steps run nosuchstep")
    assert isinstance(err, UnknownStepError) and "nosuchstep" in str(err)
    assert "running" not in capsys.readouterr().out  # nothing started, nothing drawn
    assert nbsteps.step("a").status == "pending"
    assert isinstance(run_err(shell, "%steps run --force nosuchstep"), UnknownStepError)


def test_error_lines_count_from_the_step_line(shell):
    err = run_err(shell, "%%step boom\nx = 1\ny = 2\nraise ValueError('third line of the body')")
    assert err is not None
    tb = nbsteps.step("boom").traceback
    assert '"<step boom>", line 4' in tb, tb  # the %%step line is line 1, as the editor counts


def test_interactive_cells_have_no_jumping_counters(shell, capsys):
    run_ok(shell, "%%step a --define\nx = 1")
    run_ok(shell, "%%step b --define\ny = x")
    run_ok(shell, "%%step c --define\nz = y")
    run_ok(shell, "%%step d\nw = z")  # runs a, b and c first
    out = capsys.readouterr().out
    assert "d completed" in out and "[" not in out, out


def test_results_are_readable(shell):
    run_ok(
        shell,
        "%%step stats\nimport numpy as np\nimport pandas as pd\n"
        "frame = pd.DataFrame(np.zeros((1000, 5)), columns=list('abcde'))\nnp.float64(16880.9)",
    )
    run_ok(shell, "%%step table\nframe2 = frame.copy()\nframe2")
    df = nbsteps.results()
    row = df.set_index("step")
    assert row.loc["stats", "result"] == "16880.9"
    assert row.loc["table", "result"].startswith("DataFrame 1000×5 (a, b, c, d, …)")
    started = row.loc["stats", "started"]
    assert started.microsecond == 0 and abs(started - dt.datetime.now()) < dt.timedelta(minutes=5)
    html = nbsteps.current().results().to_html()  # the DataFrame, as %steps results shows it
    assert "e-0" not in html  # no durations as 9e-06
    from nbsteps.views.table import html_table

    table = html_table(nbsteps.current())
    assert "<th>duration</th>" in table and " ms</td>" in table


def test_restored_rows_keep_the_attempts_of_the_run_that_made_them(shell):
    run_ok(shell, "counter = []")
    run_ok(
        shell,
        "%%step flaky --retry 2 --retry-delay 0.01\nimport builtins\n"
        "builtins.__dict__.setdefault('_nbsteps_tries', []).append(1)\n"
        "if len(builtins._nbsteps_tries) < 2:\n    raise ConnectionError('once')\nv = 1",
    )
    assert nbsteps.step("flaky").attempts == 2
    run_ok(shell, "%steps run")  # restored from its checkpoint
    rec = nbsteps.step("flaky")
    assert rec.cached and rec.attempts == 2
    assert nbsteps.results().set_index("step").loc["flaky", "attempts"] == 2
    import builtins

    del builtins._nbsteps_tries


def test_restored_wording_says_from_where(shell, capsys):
    run_ok(shell, "%%step a\nx = 1")
    capsys.readouterr()
    run_ok(shell, "%steps run")
    out = capsys.readouterr().out
    # its values are in this kernel: not restored from anywhere
    # (issue: "3 restored (cached)" with no word of where)
    assert "a kept: up to date, already in this kernel" in out
    assert "1 of 1 steps completed (1 kept in this kernel)" in out
