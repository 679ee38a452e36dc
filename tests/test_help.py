"""Issue 25 item 6, help that helps: Tab completion in a real kernel, "did you
mean" for misspelt step names, subcommands and options, usage lines that name
the magic as it is typed, and an honest resume hint from ``nbsteps run``."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest
from IPython.core.error import UsageError

from nbsteps.cli.driver import Runner
from nbsteps.errors import NbstepsError, StepsFailed


def _define(shell, *names):
    for name in names:
        shell.run_cell_magic("step", f"{name} --define", f"{name}_value = 1\n")


# -- Tab completion through a real kernel's complete_request ------------------------------
def test_kernel_completion_offers_only_what_fits(kernel_name, tmp_path):
    from tests.live_kernel import LiveKernel

    with LiveKernel(kernel_name, tmp_path) as k:
        k.run("%load_ext nbsteps")
        k.run("%%step evaluate --define\nx = 1\n")
        k.run("%%step train --define\ny = x + 1\n")

        def matches(code):
            reply = k.kc.complete(code, len(code), reply=True, timeout=60)
            return reply["content"]["matches"]

        from nbsteps.ipython.options import SUBCOMMANDS

        assert matches("%steps ") == list(SUBCOMMANDS)  # no 'and', 'if', '%alias', files
        assert matches("%steps r") == ["run", "results", "reset", "remove"]
        run_options = matches("%steps run --")
        assert "--fail-fast" in run_options and "--allow-failures" in run_options
        assert all(m.startswith("--") for m in run_options) and "--AbstractSet" not in run_options
        assert matches("%steps run --f") == ["--fail-fast", "--force", "--force-all"]
        assert matches("%steps plan --") == ["--force", "--force-all"]
        assert matches("%steps graph --") == ["--format", "--output"]
        assert matches("%steps store --") == ["--max-size"]
        assert "--AbstractSet" not in matches("%steps status --")
        assert "abs" not in matches("%steps status --")
        assert matches("%steps run ") == ["evaluate", "train"]
        assert matches("%steps run e") == ["evaluate"]
        assert matches("%steps run --force ") == ["evaluate", "train"]
        assert matches("%steps reset ") == ["evaluate", "train"]
        assert matches("%steps run --backend ") == ["threads", "dask"]
        assert matches("x = 1\n%steps pl") == ["plan"]
        cell = matches("%%step foo --")
        assert "--retry" in cell and "--force" in cell and "--AbstractSet" not in cell
        assert all(m.startswith("--") for m in cell)
        assert matches("%%step foo --after ") == ["evaluate", "train"]
        assert matches("pri") == ["print"]  # Python code completes as before


# -- did you mean -------------------------------------------------------------------------
def test_misspelt_step_name_gets_the_closest(shell):
    _define(shell, "evaluate", "train")
    with pytest.raises(NbstepsError, match=r"did you mean 'evaluate'\?"):
        shell.run_line_magic("steps", "run evalute")
    with pytest.raises(NbstepsError, match=r"did you mean 'evaluate'\?"):
        shell.run_line_magic("steps", "run --force evalute")
    with pytest.raises(NbstepsError, match=r"did you mean 'train'\?"):
        shell.run_line_magic("steps", "reset trian")


def test_misspelt_subcommand_gets_the_closest(shell):
    with pytest.raises(NbstepsError, match=r"did you mean 'status'\?"):
        shell.run_line_magic("steps", "stauts")


@pytest.mark.parametrize(
    "line, close",
    [
        ("run --fail-fats", "--fail-fast"),
        ("run --wrokers 2", "--workers"),
        ("plan --froce-all", "--force-all"),
        ("graph --formt svg", "--format"),
        ("store --max-sise 2GB", "--max-size"),
    ],
)
def test_misspelt_steps_option_gets_the_closest(shell, line, close):
    with pytest.raises(UsageError, match=rf"did you mean '{close}'\?"):
        shell.run_line_magic("steps", line)


@pytest.mark.parametrize("cmd", ["status", "results", "show", "reset", "remove", "undo", "load", "export"])
def test_an_option_to_a_subcommand_without_options_is_an_error(shell, cmd):
    _define(shell, "evaluate")
    with pytest.raises(UsageError, match=rf"%steps {cmd} takes no options, got --retries"):
        shell.run_line_magic("steps", f"{cmd} evaluate --retries")


def test_misspelt_step_option_gets_the_closest(shell):
    with pytest.raises(UsageError, match=r"%%step: .*--retries.*did you mean '--retry'\?"):
        shell.run_cell_magic("step", "a --retries 3", "x = 1\n")
    with pytest.raises(UsageError, match=r"did you mean '--timeout'\?"):
        shell.run_cell_magic("step", "a --timout 3", "x = 1\n")


# -- usage lines --------------------------------------------------------------------------
def test_step_help_names_the_cell_magic():
    from nbsteps.ipython.magics import StepMagics

    doc = StepMagics.step.__doc__
    assert "%%step [-h]" in doc or "%%step name" in doc or "%%step [" in doc
    assert "\n  %step " not in doc


def test_cli_run_help_names_the_line_magic():
    out = subprocess.run(
        [sys.executable, "-m", "nbsteps", "run", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "%steps run" in text and "%%steps" not in text


# -- the CLI's resume hint ----------------------------------------------------------------
def _hint(store):
    return Runner._hint(SimpleNamespace(args=SimpleNamespace(notebook="my nb.ipynb", store=store)))


def test_resume_hint_with_and_without_a_store(shell):
    from nbsteps.ipython import session

    session.current().resume_hint = _hint("ck dir")
    with pytest.raises(StepsFailed) as err:
        shell.run_cell_magic("step", "bad", "1 / 0\n")
    assert "Fix bad and run nbsteps run 'my nb.ipynb' --store 'ck dir' to resume." in str(err.value)

    session.current().resume_hint = _hint(None)  # without a store: a store makes the next run resume
    with pytest.raises(StepsFailed) as err:
        shell.run_cell_magic("step", "bad", "1 / 0\n")
    text = str(err.value)
    assert "to resume" not in text
    assert "run nbsteps run 'my nb.ipynb' again (it starts over: with --store DIR" in text
    assert "the next run resumes)" in text
