"""``nbsteps run NOTEBOOK.ipynb``: run a notebook's plan headless (and the
other commands: ``status``, ``convert``, ``install-kernel-ext``, in their modules).

A notebook without ``%%step`` cells runs with each plain code cell as a step
(zero edits, see :mod:`nbsteps.ipython.auto` for the names): the kernel is sent
each such cell as ``%%step NAME`` and its source in plan mode, the plan runs,
and each cell of the executed notebook keeps its own source and shows what its
step printed, displayed and returned (``Runner._zero_edit_cells``).

The notebook is executed cell by cell in a real kernel (nbclient), as Run All
would: its ``%%step`` cells run as they come (interactive mode) or register
steps that its own ``%steps run`` runs (plan mode). Steps that are registered
but were never run when the last cell is done are run by one extra cell,
``%steps run`` with the command line's options, appended to the executed
notebook (tagged ``nbsteps-cli``). Progress lines and summaries are streamed
from the kernel as the steps finish. Then, in the same kernel and even when a
cell failed or the run was interrupted (``--timeout``, Ctrl-C), the results
table and the graph are exported and the executed notebook is written.

Options reach the kernel as environment variables, which the magics use as
defaults (an explicit option in the notebook's own ``%steps run`` wins):
``NBSTEPS_YES``, ``NBSTEPS_STORE``, ``NBSTEPS_WORKERS``, ``NBSTEPS_BACKEND``,
``NBSTEPS_ADDRESS``; ``NBSTEPS_HEADLESS=1`` says nobody is watching widgets.

Exit status: 0 when every step completed (and no cell failed), 1 when a step
failed, was blocked or cancelled, a cell failed or the run was interrupted,
2 for bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time

from nbsteps.cli.driver import GRAPH_SUFFIXES, Runner, say
from nbsteps.cli.notebook import _load_notebook, _structure_problem  # noqa: F401 (named by docs)
from nbsteps.errors import UsageError
from nbsteps.views.table import EXPORT_SUFFIXES as RESULT_SUFFIXES


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block, exit 2
        raise UsageError(f"{message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from nbsteps import __version__

    parser = _Parser(
        prog="nbsteps",
        description="Run a Jupyter notebook's plan of %%step cells headless (nbclient), "
        "locally or on a dask cluster.",
    )
    parser.add_argument("--version", action="version", version=f"nbsteps {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="execute a notebook and run its plan",
        description="Execute NOTEBOOK in a fresh kernel, run its plan, stream progress, write the "
        "executed notebook, the results table and the graph. Exit status: 0 every step "
        "completed, 1 a step failed, was blocked or cancelled (or a cell failed, or the run "
        "was interrupted), 2 bad usage.",
        epilog="--workers, --backend, --address, --yes and --store reach the kernel as the "
        "environment variables NBSTEPS_WORKERS, NBSTEPS_BACKEND, NBSTEPS_ADDRESS, NBSTEPS_YES "
        "and NBSTEPS_STORE: defaults for the notebook's own %steps run (its explicit options win).",
    )
    run.add_argument("notebook", metavar="NOTEBOOK.ipynb", help="the notebook to run")
    run.add_argument(
        "-o",
        "--output",
        metavar="OUT.ipynb",
        help="write the executed notebook here (also when a step fails)",
    )
    run.add_argument("--results", metavar="FILE", help="write the results table: .csv .json .parquet .html")
    run.add_argument("--graph", metavar="FILE", help="write the dependency graph: .svg .png .dot")
    run.add_argument("--workers", type=_positive_int, metavar="N", help="parallel workers")
    run.add_argument("--backend", choices=["threads", "dask"], help="where steps run (default: threads)")
    run.add_argument("--address", metavar="ADDR", help="dask scheduler address (implies --backend dask)")
    run.add_argument("--yes", action="store_true", help="approve every --confirm step")
    run.add_argument("--store", metavar="DIR", help="checkpoint directory: a later run resumes from it")
    run.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="S",
        help="interrupt the whole run after S seconds (outputs are still written)",
    )
    run.add_argument("--kernel", metavar="NAME", help="kernel to use (default: the notebook's kernelspec)")
    _more_commands(sub)
    return parser


def _more_commands(sub) -> None:
    status = sub.add_parser(
        "status",
        help="which steps are done, stale (why), failed or never run, without running anything",
        description="Without a kernel: which steps of NOTEBOOK a run with --store DIR would restore "
        "(done) and which it would execute (stale and why, failed, never run; unknown: depends on "
        "values only the kernel knows). Exit status: 0 every step done, 1 otherwise, 2 bad usage.",
    )
    status.add_argument("notebook", metavar="NOTEBOOK.ipynb")
    status.add_argument("--store", metavar="DIR", help="the checkpoint directory of the runs")
    status.add_argument("--json", action="store_true", help="one JSON document on stdout")
    convert = sub.add_parser(
        "convert",
        help="write %%%%step headers into a notebook without them",
        description="Give each plain code cell a %%%%step header (name from a '# step: NAME' comment, "
        "else the main name the cell assigns); everything else is kept as it was.",
    )
    convert.add_argument("notebook", metavar="NOTEBOOK.ipynb")
    convert.add_argument("-o", "--output", metavar="OUT.ipynb", help="the converted notebook")
    convert.add_argument("--check", action="store_true", help="print the names, write nothing")
    ext = sub.add_parser(
        "install-kernel-ext",
        help="load nbsteps in every IPython kernel (profile config)",
        description="Add (or with --uninstall remove) the line that loads nbsteps in every kernel "
        "to $IPYTHONDIR/profile_NAME/ipython_config.py; the rest of the file is kept byte for byte.",
    )
    ext.add_argument("--profile", default="default", metavar="NAME", help="IPython profile (default)")
    ext.add_argument("--uninstall", action="store_true", help="remove what install-kernel-ext added")


def _check(args) -> None:
    if args.address and args.backend == "threads":
        raise UsageError("--address needs --backend dask")
    if args.address:
        args.backend = "dask"
    if args.results and os.path.splitext(args.results)[1].lower() not in RESULT_SUFFIXES:
        raise UsageError(f"--results {args.results}: use a .csv, .json, .parquet or .html file name")
    if args.graph and os.path.splitext(args.graph)[1].lower() not in GRAPH_SUFFIXES:
        raise UsageError(f"--graph {args.graph}: use a .svg, .png or .dot file name")
    for attr in ("output", "results", "graph", "store"):
        value = getattr(args, attr)
        if value:
            setattr(args, attr, os.path.abspath(value))


def _fast_nbformat_import() -> None:
    """nbformat imports jsonschema, whose optional IRI format checker
    (rfc3987_syntax) builds a grammar at import time: ~2 s of every run for a
    check notebooks never need. This command's own process does without it."""
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)


def _dispatch(args) -> int:
    _fast_nbformat_import()
    if args.command == "status":
        from nbsteps.cli.status import status_command

        return status_command(args)
    if args.command == "convert":
        from nbsteps.cli.convert import convert_command

        return convert_command(args)
    if args.command == "install-kernel-ext":
        from nbsteps.cli.kernel_ext import kernel_ext_command

        return kernel_ext_command(args)
    return run_command(args)


def run_command(args) -> int:
    _fast_nbformat_import()
    path = os.path.abspath(args.notebook)
    nb = _load_notebook(args.notebook)
    _check(args)
    t0 = time.perf_counter()
    runner = Runner(args, nb, path)
    say(f"nbsteps: running {args.notebook}" + (f" on {args.backend}" if args.backend else ""))
    try:
        asyncio.run(runner.run())
    except Exception as exc:  # the kernel could not start, or nbclient failed
        name = type(exc).__name__
        if name == "NoSuchKernel":
            raise UsageError(f"no such kernel: {exc}") from None
        runner.kernel_lost = f"{name}: {' '.join(str(exc).split())[:200]}"
    finally:
        if args.output:
            import nbformat

            from nbsteps.files import atomic_write

            # all at once: an interrupt, a kill or a full disk leaves the previous file as it was
            with atomic_write(args.output, "w") as f:
                nbformat.write(nb, f)
            say(f"nbsteps: wrote {_rel(args.output)}")
    report = runner.report
    if report and args.store:
        from nbsteps.cli.status import write_last_run

        write_last_run(args.store, path, report)
    if report:
        for f in report["wrote"]:
            say(f"nbsteps: wrote {_rel(f)}")
        for e in report["errors"]:
            say(f"nbsteps: {e}", err=True)
    wall = time.perf_counter() - t0
    if runner.kernel_lost:
        say(f"nbsteps: {runner.kernel_lost}; no results could be collected ({wall:.1f} s)", err=True)
        return 1
    if report is None:
        return 1
    ok = report["ok"] and not runner.cell_error and not runner.stop_reason and not report["errors"]
    why = ""
    if runner.stop_reason == "timeout":
        why = f" Stopped by --timeout {args.timeout:g}."
    elif runner.stop_reason and "Interrupted" not in report["summary"]:
        why = " Interrupted."
    elif runner.cell_error and report["ok"]:
        why = f" {runner.cell_error} failed."
    say(f"nbsteps: {'OK' if ok else 'FAILED'}: {report['summary']}{why} ({wall:.1f} s)")
    return 0 if ok else 1


def _rel(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive
        return path
    return rel if not rel.startswith("..") else path


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError):  # pragma: no cover
            pass
    parser = build_parser()
    old_term = _exit_on_sigterm()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return _dispatch(args)
    except UsageError as exc:
        say(f"nbsteps: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        say("nbsteps: interrupted", err=True)
        return 1
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _exit_on_sigterm():
    """``kill`` ends the command the way Ctrl-C does, through every ``finally``: the
    kernel is shut down and a file being written is left as it was (its temporary
    removed), instead of the process vanishing mid-write. Returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigterm(signum, frame):
        # the same path as Ctrl-C: the run's own handler (interrupt the kernel) while it
        # runs, and blocks that defer Ctrl-C (a temporary file being named) defer it too
        signal.raise_signal(signal.SIGINT)

    return signal.signal(signal.SIGTERM, on_sigterm)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
