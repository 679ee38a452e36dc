"""``nbsteps run NOTEBOOK.ipynb``: run a notebook's plan headless.

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
import json
import os
import re
import signal
import sys
import time

MARK = "@@nbsteps-cli@@"
RESULT_SUFFIXES = (".csv", ".json", ".parquet", ".html", ".htm")
GRAPH_SUFFIXES = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}
CLI_TAG = "nbsteps-cli"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class UsageError(Exception):
    """Bad usage: a one-line message and exit status 2."""


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
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog="nbsteps",
        description="Run a Jupyter notebook's plan of %%step cells headless (nbclient), "
                    "locally or on a dask cluster.",
    )
    parser.add_argument("--version", action="version", version=f"nbsteps {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser(
        "run", help="execute a notebook and run its plan",
        description="Execute NOTEBOOK in a fresh kernel, run its plan, stream progress, write the "
                    "executed notebook, the results table and the graph. Exit status: 0 every step "
                    "completed, 1 a step failed, was blocked or cancelled (or a cell failed, or the run "
                    "was interrupted), 2 bad usage.",
        epilog="--workers, --backend, --address, --yes and --store reach the kernel as the "
               "environment variables NBSTEPS_WORKERS, NBSTEPS_BACKEND, NBSTEPS_ADDRESS, NBSTEPS_YES "
               "and NBSTEPS_STORE: defaults for the notebook's own %%steps run (its explicit options win).",
    )
    run.add_argument("notebook", metavar="NOTEBOOK.ipynb", help="the notebook to run")
    run.add_argument("-o", "--output", metavar="OUT.ipynb",
                     help="write the executed notebook here (also when a step fails)")
    run.add_argument("--results", metavar="FILE", help="write the results table: .csv .json .parquet .html")
    run.add_argument("--graph", metavar="FILE", help="write the dependency graph: .svg .png .dot")
    run.add_argument("--workers", type=_positive_int, metavar="N", help="parallel workers")
    run.add_argument("--backend", choices=["threads", "dask"], help="where steps run (default: threads)")
    run.add_argument("--address", metavar="ADDR", help="dask scheduler address (implies --backend dask)")
    run.add_argument("--yes", action="store_true", help="approve every --confirm step")
    run.add_argument("--store", metavar="DIR", help="checkpoint directory: a later run resumes from it")
    run.add_argument("--timeout", type=_positive_float, metavar="S",
                     help="interrupt the whole run after S seconds (outputs are still written)")
    run.add_argument("--kernel", metavar="NAME", help="kernel to use (default: the notebook's kernelspec)")
    return parser


# -- in the kernel ----------------------------------------------------------------
def _kernel_plan():
    """The plan to report: the session's, else the only Plan in the user namespace."""
    from . import session
    from .plan import Plan

    plan = session.current()
    if plan.steps:
        return plan
    found = [v for k, v in list(plan.namespace.items()) if isinstance(v, Plan) and v.steps and not k.startswith("_")]
    unique = list({id(p): p for p in found}.values())
    return unique[0] if len(unique) == 1 else plan


def kernel_pending() -> None:
    """(kernel side) Print which registered steps never ran, and whether the magics are loaded."""
    plan = _kernel_plan()
    from IPython import get_ipython

    ip = get_ipython()
    magics = bool(ip and "steps" in ip.magics_manager.magics.get("line", {}))
    from . import session

    pending = [s for s in plan.order() if plan.records[s].status == "pending"] if plan is session.current() else []
    print(MARK + json.dumps({"pending": pending, "magics": magics}))


def kernel_collect(results=None, graph=None, graph_format=None, hint="nbsteps run", interrupted=False) -> None:
    """(kernel side) Export the results table and the graph, then print the
    state of every step as one JSON line for the command line."""
    from .step import COMPLETED, FAILED
    from .summary import RunSummary

    plan = _kernel_plan()
    out = {"steps": {}, "wrote": [], "errors": [], "summary": "", "ok": True, "n": len(plan.steps)}
    if results:
        try:
            out["wrote"].append(plan.export(results))
        except Exception as exc:
            out["errors"].append(f"could not write the results to {results}: {type(exc).__name__}: {exc}")
    if graph:
        try:
            from .graphview import graph_command

            graph_command(plan, graph_format, graph)
            if not os.path.exists(graph):
                raise RuntimeError("no file was written")
            out["wrote"].append(graph)
        except Exception as exc:
            out["errors"].append(f"could not write the graph to {graph}: {type(exc).__name__}: {exc}")
    names = plan.order()
    summary = RunSummary(steps=names, records=plan.records, interrupted=bool(interrupted), resume_hint=hint)
    summary.optional_steps = frozenset(s for s in names if plan.steps[s].optional)
    for s in names:
        r = plan.records[s]
        out["steps"][s] = {"status": r.status, "cached": bool(r.cached), "error": r.error_text}
    out["ok"] = all(
        plan.records[s].status == COMPLETED or (plan.records[s].status == FAILED and plan.steps[s].optional)
        for s in names
    )
    out["summary"] = summary.text if names else "the notebook registered no steps."
    print(MARK + json.dumps(out))


# -- in the command line --------------------------------------------------------------
def _say(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    print(text, file=stream, flush=True)


def _cell_label(index: int, cell) -> str:
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    if len(first) > 60:
        first = first[:59] + "…"
    return f"cell {index + 1} ({first})" if first else f"cell {index + 1}"


def _error_text(cell) -> str:
    for out in reversed(cell.get("outputs", [])):
        if out.get("output_type") == "error":
            tb = "\n".join(out.get("traceback") or []) or f"{out.get('ename')}: {out.get('evalue')}"
            return _ANSI.sub("", tb).rstrip()
    return ""


def _parse_mark(cell) -> dict | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            for line in out.get("text", "").splitlines():
                if line.startswith(MARK):
                    return json.loads(line[len(MARK):])
    return None


class Runner:
    """Executes one notebook and collects its plan's results (see module doc)."""

    def __init__(self, args, nb, path: str) -> None:
        self.args = args
        self.nb = nb
        self.path = path
        self.stop_reason = ""  # "timeout" | "interrupted" once the run is being stopped
        self.cell_error = ""  # label of the cell that failed
        self.kernel_lost = ""
        self.current = ""  # label of the cell being executed
        self.report: dict | None = None
        self._stop = None

    # -- the kernel --------------------------------------------------------------
    def _env(self) -> dict:
        a = self.args
        env = dict(os.environ)
        env["NBSTEPS_HEADLESS"] = "1"
        env["NBSTEPS_RESUME_HINT"] = self._hint()
        if a.yes:
            env["NBSTEPS_YES"] = "1"
        if a.store:
            env["NBSTEPS_STORE"] = a.store
        if a.workers:
            env["NBSTEPS_WORKERS"] = str(a.workers)
        if a.backend:
            env["NBSTEPS_BACKEND"] = a.backend
        if a.address:
            env["NBSTEPS_ADDRESS"] = a.address
        return env

    def _client(self):
        from nbclient import NotebookClient

        class StreamingClient(NotebookClient):
            echo = True

            def process_message(self, msg, cell, cell_index):
                if self.echo and msg["msg_type"] == "stream":
                    content = msg["content"]
                    stream = sys.stderr if content.get("name") == "stderr" else sys.stdout
                    stream.write(content.get("text", ""))
                    stream.flush()
                return super().process_message(msg, cell, cell_index)

        kw = {"kernel_name": self.args.kernel} if self.args.kernel else {}
        return StreamingClient(
            self.nb, timeout=None, allow_errors=False, record_timing=True, coalesce_streams=True,
            resources={"metadata": {"path": os.path.dirname(self.path)}}, **kw,
        )

    async def _execute(self, client, cell, index: int, count: int | None = None):
        from nbclient.exceptions import CellExecutionError

        try:
            await client.async_execute_cell(cell, index, execution_count=count)
        except CellExecutionError:
            return False
        return True

    async def _hidden(self, client, code: str, timeout: float = 120.0) -> dict | None:
        """Run *code* in the kernel without adding it to the notebook; return its MARK payload."""
        import nbformat

        cell = nbformat.v4.new_code_cell(code)
        self.nb.cells.append(cell)
        client.echo = False
        try:
            await asyncio.wait_for(client.async_execute_cell(cell, len(self.nb.cells) - 1, store_history=False),
                                   timeout)
        except Exception as exc:
            text = _error_text(cell) or f"{type(exc).__name__}: {exc}"
            _say(f"nbsteps: the kernel could not report on its plan: {text.splitlines()[-1] if text else ''}",
                 err=True)
            return None
        finally:
            client.echo = True
            self.nb.cells.remove(cell)
        return _parse_mark(cell)

    async def _cells(self, client) -> None:
        """Execute the notebook's cells in order, stopping at the first failing one."""
        count = 0
        for index, cell in enumerate(list(self.nb.cells)):
            if self.stop_reason:
                return
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            count += 1
            self.current = _cell_label(index, cell)
            if not await self._execute(client, cell, index, count):
                self._report_cell_error(index, cell)
                return
        if self.stop_reason:
            return
        # steps registered but never run (plan mode without %steps run): run them
        state = await self._hidden(client, "__import__('nbsteps.cli', fromlist=['_']).kernel_pending()")
        if state and state.get("pending") and state.get("magics"):
            import nbformat

            a = self.args
            opts = "".join(
                f" --{k} {_quote(str(v))}"
                for k, v in (("workers", a.workers), ("backend", a.backend), ("address", a.address)) if v
            ) + (" --yes" if a.yes else "")
            cell = nbformat.v4.new_code_cell(f"%steps run{opts}")
            cell.metadata["tags"] = [CLI_TAG]
            self.nb.cells.append(cell)
            index = len(self.nb.cells) - 1
            _say(f"nbsteps: {len(state['pending'])} step(s) registered but not run: appending `{cell.source}`")
            self.current = _cell_label(index, cell)
            if not await self._execute(client, cell, index, count + 1):
                self._report_cell_error(index, cell)

    def _report_cell_error(self, index: int, cell) -> None:
        self.cell_error = _cell_label(index, cell)
        if self.stop_reason:
            return  # the interrupt's own error: the summary says it
        text = _error_text(cell)
        _say(f"nbsteps: {self.cell_error} failed:", err=True)
        if text:
            _say("\n".join("  " + ln for ln in text.splitlines()), err=True)

    def request_stop(self, reason: str) -> None:
        if self._stop is not None and not self.stop_reason:
            self.stop_reason = reason
            self._stop.set()

    async def run(self) -> None:
        from nbclient.exceptions import DeadKernelError

        a = self.args
        client = self._client()
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        sigint = 0
        main = None

        def on_sigint():
            nonlocal sigint
            sigint += 1
            if sigint == 1:
                _say("\nnbsteps: interrupted: stopping the run (Ctrl-C again to abandon it)", err=True)
                self.request_stop("interrupted")
            elif main is not None:
                main.cancel()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not the main thread / Windows
            pass
        client.km = client.create_kernel_manager()
        if getattr(client.km, "ipykernel", False):  # its startup warnings are noise on a terminal
            client.extra_arguments = [*client.extra_arguments, "--IPKernelApp.log_level=ERROR"]
        try:
            await client.async_start_new_kernel(env=self._env(), cwd=os.path.dirname(self.path))
            await client.async_start_new_kernel_client()
            msg_id = await _maybe_await(client.kc.kernel_info())
            info = await client.async_wait_for_reply(msg_id)
            if info and "language_info" in info["content"]:
                self.nb.metadata["language_info"] = info["content"]["language_info"]
            main = asyncio.ensure_future(self._cells(client))
            waits = {main, asyncio.ensure_future(self._stop.wait())}
            timer = None
            if a.timeout:
                timer = asyncio.ensure_future(asyncio.sleep(a.timeout))
                waits.add(timer)
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if main not in done:
                if timer is not None and timer in done:
                    self.stop_reason = "timeout"
                    _say(f"nbsteps: timeout: the run took more than {a.timeout:g} s; interrupting the kernel",
                         err=True)
                await _maybe_await(client.km.interrupt_kernel())
                try:
                    await asyncio.wait_for(asyncio.shield(main), 30)
                except asyncio.TimeoutError:
                    main.cancel()
                    self.kernel_lost = "the kernel did not respond to the interrupt"
                except asyncio.CancelledError:
                    self.kernel_lost = "abandoned"
            for w in waits:
                if not w.done():
                    w.cancel()
            if main.done() and not main.cancelled() and main.exception() is not None:
                raise main.exception()
            if not self.kernel_lost:
                graph_fmt = GRAPH_SUFFIXES.get(os.path.splitext(a.graph)[1].lower()) if a.graph else None
                code = (
                    "__import__('nbsteps.cli', fromlist=['_']).kernel_collect("
                    f"results={a.results!r}, graph={a.graph!r}, graph_format={graph_fmt!r}, "
                    f"hint={self._hint()!r}, interrupted={bool(self.stop_reason)!r})"
                )
                self.report = await self._hidden(client, code)
            client.set_widgets_metadata()
        except DeadKernelError:
            self.kernel_lost = f"the kernel died while running {self.current}" if self.current else "the kernel died"
        except asyncio.CancelledError:
            self.kernel_lost = "abandoned"
        finally:
            try:
                loop.remove_signal_handler(signal.SIGINT)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                pass
            try:
                await client._async_cleanup_kernel()
            except Exception:  # pragma: no cover - the kernel is gone anyway
                pass

    def _hint(self) -> str:
        a = self.args
        parts = ["nbsteps run", _quote(a.notebook)]
        if a.store:
            parts.append(f"--store {_quote(a.store)}")
        return " ".join(parts)


async def _maybe_await(value):
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _load_notebook(path: str):
    if not os.path.exists(path):
        raise UsageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory, not a notebook")
    try:  # cheap checks first: importing nbformat takes a while
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not a Jupyter notebook (not JSON: {' '.join(str(exc).split())[:80]})") from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise UsageError(f"{path} is not a Jupyter notebook (no 'cells' and 'nbformat' fields)")
    import nbformat

    try:
        nb = nbformat.read(path, as_version=4)
    except PermissionError:
        raise UsageError(f"{path}: permission denied") from None
    except Exception as exc:
        reason = " ".join(str(exc).split())[:120]
        raise UsageError(f"{path} is not a Jupyter notebook ({type(exc).__name__}: {reason})") from None
    if "cells" not in nb:
        raise UsageError(f"{path} is not a Jupyter notebook (no cells)")
    return nb


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


def run_command(args) -> int:
    _fast_nbformat_import()
    path = os.path.abspath(args.notebook)
    nb = _load_notebook(args.notebook)
    _check(args)
    t0 = time.perf_counter()
    runner = Runner(args, nb, path)
    _say(f"nbsteps: running {args.notebook}" + (f" on {args.backend}" if args.backend else ""))
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

            parent = os.path.dirname(args.output)
            if parent:
                os.makedirs(parent, exist_ok=True)
            nbformat.write(nb, args.output)
            _say(f"nbsteps: wrote {_rel(args.output)}")
    report = runner.report
    if report:
        for f in report["wrote"]:
            _say(f"nbsteps: wrote {_rel(f)}")
        for e in report["errors"]:
            _say(f"nbsteps: {e}", err=True)
    wall = time.perf_counter() - t0
    if runner.kernel_lost:
        _say(f"nbsteps: {runner.kernel_lost}; no results could be collected ({wall:.1f} s)", err=True)
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
    _say(f"nbsteps: {'OK' if ok else 'FAILED'}: {report['summary']}{why} ({wall:.1f} s)")
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
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return run_command(args)
    except UsageError as exc:
        _say(f"nbsteps: error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        _say("nbsteps: interrupted", err=True)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
