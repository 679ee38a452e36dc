"""The command-line side of ``nbsteps run``: executes the notebook in a real
kernel through nbclient, streams progress, stops on ``--timeout`` or Ctrl-C
(interrupting the kernel through its manager), and asks the kernel for its
plan's report (see :mod:`nbsteps.cli.report`).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys

from nbsteps.cli.report import REPORT_MIME

GRAPH_SUFFIXES = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}
CLI_TAG = "nbsteps-cli"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def say(text: str, err: bool = False) -> None:
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


def read_report(cell) -> dict | None:
    """The kernel's answer (see :mod:`nbsteps.cli.report`) among *cell*'s outputs."""
    for out in cell.get("outputs", []):
        if out.get("output_type") in ("display_data", "execute_result"):
            data = out.get("data", {}).get(REPORT_MIME)
            if data is not None:
                return json.loads(data) if isinstance(data, str) else dict(data)
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
        # zero edits: no %%step cell, so each plain code cell is a step ({cell index: '%%step' line})
        from nbsteps.ipython.auto import is_marked_step, plain_headers

        marked = any(c.cell_type == "code" and is_marked_step(c.source) for c in nb.cells)
        self.headers, self.with_ids = ({}, True) if marked else plain_headers(nb.cells)

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
            self.nb,
            timeout=None,
            allow_errors=False,
            record_timing=True,
            coalesce_streams=True,
            resources={"metadata": {"path": os.path.dirname(self.path)}},
            **kw,
        )

    async def _execute(self, client, cell, index: int, count: int | None = None):
        from nbclient.exceptions import CellExecutionError

        try:
            await client.async_execute_cell(cell, index, execution_count=count)
        except CellExecutionError:
            return False
        return True

    async def _hidden(
        self, client, code: str, timeout: "float | None" = 120.0, echo: bool = False
    ) -> dict | None:
        """Run *code* in the kernel without adding it to the notebook; return its report."""
        import nbformat

        cell = nbformat.v4.new_code_cell(code)
        self.nb.cells.append(cell)
        client.echo = echo
        try:
            await asyncio.wait_for(
                client.async_execute_cell(cell, len(self.nb.cells) - 1, store_history=False), timeout
            )
        except Exception as exc:
            text = _error_text(cell) or f"{type(exc).__name__}: {exc}"
            say(
                f"nbsteps: the kernel could not report on its plan: {text.splitlines()[-1] if text else ''}",
                err=True,
            )
            return None
        finally:
            client.echo = True
            self.nb.cells.remove(cell)
        return read_report(cell)

    async def _cells(self, client) -> None:
        """Execute the notebook's cells in order, stopping at the first failing one."""
        if self.headers:
            return await self._zero_edit_cells(client)
        count = await self._each_cell(client)
        if count is None:
            return
        # steps registered but never run (plan mode without %steps run): run them
        state = await self._hidden(
            client, "__import__('nbsteps.cli.report', fromlist=['_']).kernel_pending()"
        )
        if state and state.get("pending") and state.get("magics"):
            import nbformat

            cell = nbformat.v4.new_code_cell(f"%steps run{self._run_options()}")
            cell.metadata["tags"] = [CLI_TAG]
            self.nb.cells.append(cell)
            index = len(self.nb.cells) - 1
            say(f"nbsteps: {len(state['pending'])} step(s) registered but not run: appending `{cell.source}`")
            self.current = _cell_label(index, cell)
            if not await self._execute(client, cell, index, count + 1):
                self._report_cell_error(index, cell)

    async def _zero_edit_cells(self, client) -> None:
        """A notebook without ``%%step`` cells: each plain code cell is registered as a
        step (the kernel is sent ``%%step NAME`` and the cell's source; the notebook
        keeps its own source), then the plan runs with the command line's options and
        each cell's outputs become what its step printed, showed and returned. A cell
        that is not a step (a shell command, ``%%bash``) runs at its place: the steps
        registered above it run first, so it sees their values and files as in Run All."""
        names = ", ".join(h.split()[0] for h in list(self.headers.values())[:4])
        more = ", ..." if len(self.headers) > 4 else ""
        say(f"nbsteps: no %%step cells: each code cell is a step ({len(self.headers)}: {names}{more})")
        if not self.with_ids:
            say(
                f"nbsteps: {self.args.notebook} has no cell ids (nbformat "
                f"{self.nb.nbformat}.{self.nb.nbformat_minor}): steps are named by position (cell-N), so "
                "inserting a cell renames the steps after it; saving it with Jupyter gives cells ids"
            )
        await self._hidden(
            client,
            "__import__('IPython').get_ipython().run_line_magic('load_ext', 'nbsteps'); "
            "__import__('nbsteps.ipython.session', fromlist=['_']).set_mode('plan')",
        )

        waiting: list[str] = []  # steps registered since the plan last ran

        def registered(index: int, source: str) -> str:
            if index not in self.headers:
                return source
            waiting.append(self.headers[index].split()[0])
            return f"%%step {self.headers[index]}\n{source}"

        async def before(index: int, cell) -> None:
            # a plain cell (a shell command, `%%bash`, a line magic) runs at its place, as in Run
            # All: after the steps above it ran and published their values, which it may read
            if index in self.headers or not waiting:
                return
            say(
                f"nbsteps: {_cell_label(index, cell)} is not a step: "
                f"the {len(waiting)} step(s) above it run first"
            )
            waiting.clear()
            label, self.current = self.current, "the plan's run"
            await self._run_plan(client)
            self.current = label

        if await self._each_cell(client, registered, before) is None:
            return
        self.current = "the plan's run"
        await self._run_plan(client)

    async def _run_plan(self, client) -> None:
        await self._hidden(
            client, f"%steps run --allow-failures{self._run_options()}", timeout=None, echo=True
        )

    async def _each_cell(self, client, sent=None, before=None) -> "int | None":
        """Execute the non-empty code cells in order (*sent(index, source)*: what the
        kernel is sent for a cell; the notebook keeps its own source; *before(index,
        cell)*: awaited first): how many ran, or None when one failed (reported) or the
        run was asked to stop."""
        count = 0
        for index, cell in enumerate(list(self.nb.cells)):
            if self.stop_reason:
                return None
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            count += 1
            self.current = _cell_label(index, cell)
            if before is not None:
                await before(index, cell)
                if self.stop_reason:
                    return None
            source = cell.source
            if sent is not None:
                cell.source = sent(index, source)
            try:
                ok = await self._execute(client, cell, index, count)
            finally:
                cell.source = source
            if not ok:
                self._report_cell_error(index, cell)
                return None
        return None if self.stop_reason else count

    def _run_options(self) -> str:
        """The command line's run options, as ``%steps run`` takes them."""
        a = self.args
        return "".join(
            f" --{k} {_quote(str(v))}"
            for k, v in (("workers", a.workers), ("backend", a.backend), ("address", a.address))
            if v
        ) + (" --yes" if a.yes else "")

    async def _place_outputs(self, client) -> None:
        """Zero edits: each step's cell shows what Run All would have shown."""
        import nbformat

        where = {h.split()[0]: i for i, h in self.headers.items()}
        code = f"__import__('nbsteps.cli.report', fromlist=['_']).kernel_outputs({list(where)!r})"
        found = await self._hidden(client, code)
        for name, outputs in (found or {}).items():
            if outputs is None or name not in where:
                continue
            cell = self.nb.cells[where[name]]
            for out in outputs:
                if out["output_type"] == "execute_result":
                    out["execution_count"] = cell.get("execution_count")
            cell.outputs = [nbformat.from_dict(o) for o in outputs]

    def _report_cell_error(self, index: int, cell) -> None:
        self.cell_error = _cell_label(index, cell)
        if self.stop_reason:
            return  # the interrupt's own error: the summary says it
        text = _error_text(cell)
        say(f"nbsteps: {self.cell_error} failed:", err=True)
        if text:
            say("\n".join("  " + ln for ln in text.splitlines()), err=True)

    def request_stop(self, reason: str) -> None:
        if self._stop is not None and not self.stop_reason:
            self.stop_reason = reason
            self._stop.set()

    async def run(self) -> None:
        from nbclient.exceptions import DeadKernelError

        client = self._client()
        self._stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        sigint = 0
        main = None

        def on_sigint():
            nonlocal sigint
            sigint += 1
            if sigint == 1:
                say("\nnbsteps: interrupted: stopping the run (Ctrl-C again to abandon it)", err=True)
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
            await self._start_kernel(client)
            main = asyncio.ensure_future(self._cells(client))
            await self._wait_for(client, main)
            if not self.kernel_lost:
                self.report = await self._collect(client)
                if self.headers:
                    await self._place_outputs(client)
            client.set_widgets_metadata()
        except DeadKernelError:
            self.kernel_lost = (
                f"the kernel died while running {self.current}" if self.current else "the kernel died"
            )
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

    async def _start_kernel(self, client) -> None:
        """Start the kernel and its client; the notebook takes the kernel's language_info."""
        await client.async_start_new_kernel(env=self._env(), cwd=os.path.dirname(self.path))
        await client.async_start_new_kernel_client()
        msg_id = await _maybe_await(client.kc.kernel_info())
        info = await client.async_wait_for_reply(msg_id)
        if info and "language_info" in info["content"]:
            self.nb.metadata["language_info"] = info["content"]["language_info"]

    async def _wait_for(self, client, main) -> None:
        """Wait until the cells (*main*) end, a stop is requested or the timeout
        passes; the kernel is interrupted unless the cells ended. Raises what the
        cells raised."""
        a = self.args
        waits = {main, asyncio.ensure_future(self._stop.wait())}
        timer = None
        if a.timeout:
            timer = asyncio.ensure_future(asyncio.sleep(a.timeout))
            waits.add(timer)
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if main not in done:
            if timer is not None and timer in done:
                self.stop_reason = "timeout"
                say(
                    f"nbsteps: timeout: the run took more than {a.timeout:g} s; interrupting the kernel",
                    err=True,
                )
            await self._interrupt(client, main)
        for w in waits:
            if not w.done():
                w.cancel()
        if main.done() and not main.cancelled() and main.exception() is not None:
            raise main.exception()

    async def _collect(self, client) -> "dict | None":
        """What the kernel reports at the end (results, graph, summary), asked in a hidden cell."""
        a = self.args
        graph_fmt = GRAPH_SUFFIXES.get(os.path.splitext(a.graph)[1].lower()) if a.graph else None
        code = (
            "__import__('nbsteps.cli.report', fromlist=['_']).kernel_collect("
            f"results={a.results!r}, graph={a.graph!r}, graph_format={graph_fmt!r}, "
            f"hint={self._hint()!r}, interrupted={bool(self.stop_reason)!r})"
        )
        return await self._hidden(client, code)

    async def _interrupt(self, client, main, patience: float = 30.0, every: float = 3.0) -> None:
        """Interrupt the kernel until the cell stops. A kernel ignores SIGINT
        between two cells (and user code may swallow one): an interrupt sent
        then would be lost and the next cell run to its end, so it is sent
        again every few seconds while the cell runs, for *patience* seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + patience
        while True:
            await _maybe_await(client.km.interrupt_kernel())
            try:
                await asyncio.wait_for(asyncio.shield(main), max(0.1, min(every, deadline - loop.time())))
                return
            except asyncio.TimeoutError:
                if loop.time() < deadline:
                    continue
                main.cancel()
                self.kernel_lost = "the kernel did not respond to the interrupt"
                return
            except asyncio.CancelledError:
                self.kernel_lost = "abandoned"
                return

    def _hint(self) -> str:
        a = self.args
        parts = ["nbsteps run", _quote(a.notebook)]
        if a.store:
            parts.append(f"--store {_quote(a.store)}")
            return " ".join(parts)
        # without a store nothing outlives the kernel: the next run starts over (summary._resume)
        note = "it starts over: with --store DIR a run keeps its completed steps and the next run resumes"
        return f"{' '.join(parts)}; {note}"


async def _maybe_await(value):
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
