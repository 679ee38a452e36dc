"""The magics in a real IPython InteractiveShell (cells run with run_cell)."""

import os
import re
import signal
import threading
import time

from conftest import run_err, run_ok

import nbsteps
from nbsteps.errors import CycleError, StepDefinitionError, StepsFailed, UnknownStepError
from nbsteps.ipython import session


def test_interactive_cells_run_and_show_result(shell, capsys):
    assert run_ok(shell, "%%step load\ndata = [3, 1, 2]\nlen(data)") == 3
    assert "load completed" in capsys.readouterr().out
    assert shell.user_ns["data"] == [3, 1, 2]
    assert run_ok(shell, "%%step clean\nclean_data = sorted(data)\nclean_data") == [1, 2, 3]
    assert session.current().dependencies("clean") == {"load": "inferred"}
    assert nbsteps.step("clean").ok and nbsteps.step("clean").outputs == {"clean_data": [1, 2, 3]}


def test_running_a_step_first_runs_missing_upstream(shell):
    run_ok(shell, "%%step a --define\nx = 2")
    run_ok(shell, "%%step b --define\ny = x * 10")
    assert "y" not in shell.user_ns
    assert run_ok(shell, "%%step c\nz = y + 1\nz") == 21
    assert [session.current()[n].status for n in "abc"] == ["completed"] * 3


def test_plan_mode_and_steps_run(shell, capsys):
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%%step b\ny = x + 1")
    out = capsys.readouterr().out
    assert "registered step b (needs a; writes y)" in out
    assert "x" not in shell.user_ns
    run_ok(shell, "%steps run")
    out = capsys.readouterr().out
    assert "2 of 2 steps completed" in out
    assert shell.user_ns["y"] == 2
    run_ok(shell, "%steps run")
    assert "2 of 2 steps completed (2 kept in this kernel)" in capsys.readouterr().out


def test_failing_step_ends_cell_with_short_error_and_user_traceback(shell, capsys):
    run_ok(shell, "%%step ok\nbase = 10")
    err = run_err(shell, "%%step boom\npartial = 1\nvalue = base / 0")
    assert isinstance(err, StepsFailed)
    out = capsys.readouterr()
    text = out.out + out.err
    assert "ZeroDivisionError" in text
    # the user's own frame, named as IPython names any cell's code (its code is compiled under the
    # name IPython gives the cell: tests/test_step_code_names.py); the step's record says <step boom>
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)  # (IPython colours the frame's name)
    assert "Cell In[" in plain and "value = base / 0" in plain
    assert (
        "StepsFailed: 1 of 2 steps completed (1 kept in this kernel); boom failed: ZeroDivisionError" in text
    )
    assert "executor.py" not in text and "runtime.py" not in text and "magics.py" not in text
    # a failed step publishes nothing
    assert "partial" not in shell.user_ns and "value" not in shell.user_ns


def test_steps_run_allow_failures_reports_without_raising(shell, capsys):
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step bad\nq = 1 / 0")
    run_ok(shell, "%%step good\nw = 1")
    err = run_err(shell, "%steps run")
    assert isinstance(err, StepsFailed)
    run_ok(shell, "%steps run --allow-failures")
    assert "bad failed: ZeroDivisionError" in capsys.readouterr().out


def test_bad_input_gets_clear_errors_and_loses_nothing(shell, capsys):
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%%step b\ny = x + 1")
    # syntax error: named step and line (counted from the %%step line), previous definition kept
    err = run_err(shell, "%%step b\ny = (x +")
    assert isinstance(err, StepDefinitionError) and "'b'" in str(err) and "line 2" in str(err)
    assert session.current().steps["b"].source.strip() == "y = x + 1"
    # cycle: named, rejected, previous definition kept
    err = run_err(shell, "%%step a --after b\nx = 1")
    assert isinstance(err, CycleError) and "a -> b -> a" in str(err)
    assert session.current().steps["a"].after == ()
    # unknown step
    err = run_err(shell, "%%step c --after nowhere\nz = 1")
    assert isinstance(err, UnknownStepError) and "nowhere" in str(err)
    err = run_err(shell, "%steps run nowhere")
    assert isinstance(err, UnknownStepError)
    # unknown option and subcommand
    from IPython.core.error import UsageError

    assert isinstance(run_err(shell, "%%step d --frobnicate\nz = 1"), UsageError)
    assert isinstance(run_err(shell, "%steps run --frobnicate"), UsageError)
    assert "unknown subcommand" in str(run_err(shell, "%steps fly"))
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text  # one-line errors, no nbsteps frames
    # everything still works
    run_ok(shell, "%steps run")
    assert shell.user_ns["y"] == 2


def test_cell_reading_only_outside_names(shell):
    run_ok(shell, "factor = 3\nitems = [1, 2]")
    assert run_ok(shell, "%%step scale\nscaled = [i * factor for i in items]\nscaled") == [3, 6]
    assert session.current().dependencies("scale") == {}


def test_mutation_works_on_a_copy_and_rerun_is_idempotent(shell):
    run_ok(shell, "%%step load\nimport pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})")
    run_ok(shell, "%%step enrich\ndf['z'] = df['a'] * 2\nlist(df.columns)")
    plan = session.current()
    assert list(plan["load"].outputs["df"].columns) == ["a"]  # upstream checkpoint untouched
    assert list(shell.user_ns["df"].columns) == ["a", "z"]
    assert plan.dependencies("enrich") == {"load": "inferred"}
    run_ok(shell, "%steps run --force enrich")
    run_ok(shell, "%steps run --force enrich")
    assert list(shell.user_ns["df"].columns) == ["a", "z"]  # never added twice
    run_ok(shell, "%%step report\nn_cols = len(df.columns)")
    assert plan.dependencies("report") == {"enrich": "inferred"}  # the last writer
    assert shell.user_ns["n_cols"] == 2


def test_several_writers_bind_to_the_nearest_above(shell):
    """Notebook order, as Run All: a read binds to the nearest writer above it."""
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step left\nv = 1")
    run_ok(shell, "%%step right\nv = 2")
    run_ok(shell, "%%step reader\nw = v")
    run_ok(shell, "%steps run")
    assert shell.user_ns["w"] == 2 and nbsteps.current().dependencies("reader") == {"right": "inferred"}


def test_editing_a_cell_makes_it_and_downstream_stale_only(shell, capsys):
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%%step b\ny = x + 1")
    run_ok(shell, "%%step c\nz = y + 1")
    run_ok(shell, "%%step other\nq = 5")
    run_ok(shell, "%steps run")
    capsys.readouterr()
    run_ok(shell, "%%step b\ny = x + 100")
    run_ok(shell, "%steps plan")
    out = capsys.readouterr().out
    assert "a (cached)" in out and "other (cached)" in out
    assert "b (run: code changed" in out and "c (run: upstream b will run" in out
    run_ok(shell, "%steps run")
    plan = session.current()
    assert [plan[n].cached for n in ["a", "b", "c", "other"]] == [True, False, False, True]
    assert shell.user_ns["z"] == 102


def test_helper_and_parameter_changes_make_steps_stale(shell, capsys):
    run_ok(shell, "def inner(v):\n    return v + 1\ndef helper(v):\n    return inner(v) * 2\nrate = 0.5")
    run_ok(shell, "%%step use\nout = helper(3) * rate")
    run_ok(shell, "%%step unrelated\nk = 1")
    assert shell.user_ns["out"] == 4.0
    run_ok(shell, "def inner(v):\n    return v + 2")  # transitively used helper edited
    run_ok(shell, "%steps plan")
    out = capsys.readouterr().out
    assert "use (run: helper helper changed" in out and "unrelated (cached)" in out
    run_ok(shell, "%steps run")
    assert shell.user_ns["out"] == 5.0
    run_ok(shell, "rate = 1.0")
    run_ok(shell, "%steps plan")
    assert "use (run: parameter rate changed" in capsys.readouterr().out


def test_status_results_export_reset_remove(shell, capsys, tmp_path):
    run_ok(shell, "%%step a\nx = 1\nx")
    run_ok(shell, "%%step b\ny = x + 1")
    run_ok(shell, "%steps status")
    out = capsys.readouterr().out
    assert "a: completed" in out and "b: completed" in out
    df = run_ok(shell, "%steps results")
    assert list(df["step"]) == ["a", "b"] and df.loc[0, "result"] == "1"
    assert nbsteps.results().equals(df) or list(nbsteps.results()["step"]) == ["a", "b"]
    path = tmp_path / "r.json"
    run_ok(shell, f"%steps export {path}")
    assert path.exists()
    run_ok(shell, "%steps reset a")
    assert "reset a, b" in capsys.readouterr().out
    assert session.current()["b"].status == "pending"
    run_ok(shell, "%steps remove b")
    assert "b" not in session.current()
    err = run_err(shell, "%steps remove b")
    assert isinstance(err, UnknownStepError)


def test_retry_timeout_and_optional_options(shell):
    # each attempt starts from the same inputs (a mutated input is copied per attempt),
    # so count attempts through an outside side effect
    run_ok(shell, "import itertools\ncounter = itertools.count(1)")
    run_ok(
        shell,
        "%%step flaky --retry 2 --retry-delay 0.01 --retry-on ConnectionError\n"
        "if next(counter) < 2:\n    raise ConnectionError('x')\nfine = True",
    )
    assert session.current()["flaky"].attempts == 2
    err = run_err(shell, "%%step slow --timeout 0.2\nimport time\ntime.sleep(1)\nlate = 1")
    assert "timed out" in str(err)
    run_ok(shell, "%%step nice --optional\nextra = 1 / 0")
    assert session.current()["nice"].status == "failed"
    run_ok(shell, "import nbsteps")
    assert (
        run_ok(shell, "%%step uses_nice\nr = extra if nbsteps.step('nice').ok else 'fallback'\nr")
        == "fallback"
    )


def test_confirm_without_stdin_is_cancelled_with_hint(shell, capsys):
    err = run_err(shell, "%%step deploy --confirm 'Push to prod?'\npushed = True")
    assert "cancelled" in str(err) and "--yes" in str(err)
    run_ok(shell, "%steps run --yes")
    assert shell.user_ns["pushed"] is True


def test_undo_magic(shell, capsys):
    run_ok(shell, "log = []\ndef note(m):\n    log.append(m)")
    run_ok(shell, "%%step create\nnote('created')\nmade = 1")
    run_ok(shell, "%%undo create\nnote('deleted')")
    run_ok(shell, "%%step use\nused = made + 1")
    run_ok(shell, "%steps undo create")
    assert shell.user_ns["log"] == ["created", "deleted"]
    assert session.current()["create"].status == "pending"
    assert session.current()["use"].status == "pending"


def test_interrupt_during_steps_run(shell, capsys):
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%%step b\nimport time\ntime.sleep(5)\ny = x")
    run_ok(shell, "%%step c\nimport time\ntime.sleep(5)\nz = x")
    run_ok(shell, "%%step d\nw = y + z")
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t = time.perf_counter()
    err = run_err(shell, "%steps run")
    assert time.perf_counter() - t < 3.0  # promptly
    assert isinstance(err, StepsFailed) and "Interrupted" in str(err)
    plan = session.current()
    assert [plan[n].status for n in "abcd"] == ["completed", "cancelled", "cancelled", "cancelled"]
    assert "y" not in shell.user_ns and shell.user_ns["x"] == 1
    assert plan.store.get("a") is not None


def test_help_is_available(shell, capsys):
    run_ok(shell, "%steps")
    out = capsys.readouterr().out
    assert "%steps run" in out and "%steps plan" in out
    from nbsteps.ipython.magics import StepMagics

    assert "--retry" in StepMagics.step.__doc__ and "--after" in StepMagics.step.__doc__


def test_package_level_helpers_stay_functions(shell):
    """nbsteps.step/results/graph are functions even after every submodule loaded."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules(nbsteps.__path__):
        if mod.name not in ("dask_backend", "cli", "__main__"):
            importlib.import_module(f"nbsteps.{mod.name}")
    assert callable(nbsteps.step) and callable(nbsteps.results) and callable(nbsteps.graph)
    run_ok(shell, "%%step a\nx = 1")
    assert nbsteps.step("a").ok
    assert list(nbsteps.results()["step"]) == ["a"]


def test_stale_flag_in_results_after_upstream_edit(shell):
    run_ok(shell, "%%step a\nx = 1")
    run_ok(shell, "%%step b\ny = x + 1")
    run_ok(shell, "%%step c\nq = 3")
    run_ok(shell, "%%step a\nx = 2")  # re-runs a only; b is now stale
    df = run_ok(shell, "%steps results").set_index("step")
    assert df.loc["b", "stale"] and not df.loc["a", "stale"] and not df.loc["c", "stale"]
    run_ok(shell, "%steps run")
    assert not run_ok(shell, "%steps results")["stale"].any()
    assert shell.user_ns["y"] == 3


def test_confirm_text_is_unquoted(shell, capsys):
    run_ok(shell, "%steps mode plan")
    run_ok(shell, '%%step deploy --confirm "Write to the DB?"\nwritten = True')
    assert session.current().steps["deploy"].confirm == "Write to the DB?"
    run_ok(shell, "%steps plan")
    assert "asks: 'Write to the DB?'" in capsys.readouterr().out


def test_step_line_expands_variables_as_ipython_does(shell):
    # IPython expands $name and {expr} in a cell magic's line; %%step does it itself
    # (only when the line has $, { or }), with the same names and the same escapes
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "part = 'load'\nk = 3")
    run_ok(shell, "%%step s_$part\na = 1")
    run_ok(shell, "%%step t{k * 2} --after s_load\nb = 2")
    run_ok(shell, '%%step plain --confirm "cost {part}, $$5"\nc = 3')
    run_ok(shell, "%%step odd --confirm '{part} }'\nd = 4")  # the formatter fails: left as it is
    steps = session.current().steps
    assert {"s_load", "t6", "plain", "odd"} <= set(steps)
    assert session.current().dependencies("t6") == {"s_load": "explicit"}
    assert steps["plain"].confirm == "cost load, $5"
    assert steps["odd"].confirm == "{part} }"


def test_a_cell_run_again_unchanged_keeps_its_links_and_a_changed_one_is_resolved_again(shell, capsys):
    run_ok(shell, "%%step k_src\nk = 3")
    run_ok(shell, "%%step helper\ndef f():\n    return k * 2")
    use = "%%step use\nv = f()\nv"
    assert run_ok(shell, use) == 6
    plan = session.current()
    links = plan.dependencies("use")
    assert links.keys() == {"k_src", "helper"}  # k: read by the function it calls
    capsys.readouterr()
    assert run_ok(shell, use) == 6  # the same cell again: kept, same links
    assert "use kept" in capsys.readouterr().out
    assert plan.dependencies("use") == links
    run_ok(shell, "%%step k_below\nk = 100")  # Run All: f() in `use` still sees the k above it
    assert run_ok(shell, "%%step use --force\nv = f()\nv") == 6  # registered alike, executed
    run_ok(shell, "%%step k_src\nk = 4")
    assert run_ok(shell, use) == 8
    assert "use completed" in capsys.readouterr().out
    # names bound together with one it changes (``alias`` of ``d``): written with it, also when
    # the same cell is registered again
    run_ok(shell, "%%step make\nd = {}\nalias = d")
    fill = "%%step fill --force\nd['k'] = 1"
    run_ok(shell, fill)
    first = capsys.readouterr().out
    assert "fill completed" in first and "alias" in first.split("→")[-1]
    run_ok(shell, fill)
    assert capsys.readouterr().out.split("→")[-1] == first.split("→")[-1]
    assert run_ok(shell, "%%step check\nsame = alias is d and alias == {'k': 1}\nsame") is True
    # the same code with another option is another registration: the graph follows it
    run_ok(shell, "%%step other\nw = 1")
    run_ok(shell, "%%step other --after use\nw = 1")
    assert plan.dependencies("other") == {"use": "explicit"}
    run_ok(shell, "%%step other\nw = 1")
    assert plan.dependencies("other") == {}


def test_a_name_alone_gets_what_argparse_makes_of_it(shell):
    # the usual line skips shlex and argparse: the same namespace, the same default objects
    from IPython.core.magic_arguments import parse_argstring

    from nbsteps.ipython.magics import _parse_step_line

    magic = shell.magics_manager.registry["StepMagics"].step
    for line in ("load", " clean_2 ", "a-b", "_x"):
        fast, full = _parse_step_line(magic, line), parse_argstring(magic, line)
        assert vars(fast) == vars(full)
        assert all(getattr(fast, k) is getattr(full, k) for k in vars(full) if k != "name")
    assert _parse_step_line(magic, "load --retry 2").retry == 2  # options: parsed


def test_names_used_only_in_strings_resolve_in_user_namespace(shell):
    run_ok(shell, "import pandas as pd\nLIMIT = 2\nframe = pd.DataFrame({'v': [1, 2, 3]})")
    assert run_ok(shell, "%%step q\nsmall = frame.query('v <= @LIMIT')\nlen(small)") == 2


def test_plan_says_failed_last_run_and_code_changed_since(shell, capsys):
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step bad\nv = 1 / 0")
    run_ok(shell, "%steps run --allow-failures")
    run_ok(shell, "%steps plan")
    assert "bad (run: failed last run" in capsys.readouterr().out
    run_ok(shell, "%%step bad\nv = 1")
    run_ok(shell, "%steps plan")
    assert "bad (run: code changed since it failed" in capsys.readouterr().out


def test_step_after_failed_optional_is_not_stale(shell):
    run_ok(shell, "%steps mode plan")
    run_ok(shell, "%%step extra --optional\nbonus = 1 / 0")
    run_ok(shell, "%%step main --after extra\nout = 1")
    run_ok(shell, "%steps run")
    df = run_ok(shell, "%steps results").set_index("step")
    assert df.loc["main", "status"] == "completed" and not df.loc["main", "stale"]


def test_ipython_syntax_inside_a_step(shell, capsys):
    assert run_ok(shell, "%%step timed\nvals = !echo hi\n%time sum(range(10))\nlen(vals)") == 1
    assert list(shell.user_ns["vals"]) == ["hi"]
    assert "Wall time" in capsys.readouterr().out


def test_bad_paths_give_one_line_errors(shell, capsys):
    from nbsteps.errors import NbstepsError

    run_ok(shell, "%%step a\nx = 1")
    for cmd in [
        "%steps export /proc/no-such-dir/x.csv",
        "%steps graph --output /proc/no-such-dir/g.svg",
        "%steps store /proc/no-such-dir/store",
    ]:
        err = run_err(shell, cmd)
        assert isinstance(err, NbstepsError) and "/proc/no-such-dir" in str(err), cmd
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
