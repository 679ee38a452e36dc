"""The ``%%step``, ``%%undo`` and ``%steps`` magics: thin wrappers that parse
options with ``magic_arguments`` and call the Python API of the notebook's plan.

A failing step or an unfinished run ends the cell with a short
:class:`~nbsteps.errors.StepsFailed` whose message is the summary, preceded by
the user's own traceback; nbsteps' frames are never shown for a user mistake.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys

from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from nbsteps import config
from nbsteps.errors import CheckpointUnavailable, NbstepsError, StepsFailed, StepsInterrupted, did_you_mean
from nbsteps.formatting import safe_str
from nbsteps.interrupts import deferred_interrupts
from nbsteps.ipython import lab, session
from nbsteps.ipython.guards import checked, one_line_interrupts
from nbsteps.ipython.options import (
    OPTION_PARSERS,
    SUBCOMMANDS,
    graph_args,
    plan_args,
    run_args,
    store_args,
)
from nbsteps.model.status import COMPLETED
from nbsteps.model.step import check_retry, check_retry_delay, check_timeout
from nbsteps.run import events as ev
from nbsteps.views.step_view import status_line


def _prompt(step: str, text: str) -> bool:
    answer = input(f"nbsteps: step {step!r} asks: {text} Run it? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _load_lazy_magics(shell) -> None:
    """Import the magics IPython declares lazily (``%timeit`` & co.) before
    steps run on worker threads: IPython's lazy loading is not thread-safe (a
    second thread asking meanwhile finds "registered as lazy ... did not
    provide"). Extensions declared lazily still load on first use."""
    manager = getattr(shell, "magics_manager", None)
    load = getattr(manager, "load_all_lazy_magics", None)
    if load is None:
        return
    # once per set of declared magics (walking them all costs ~0.3 ms, on every cell)
    key = (len(manager.lazy_magics), *(len(m) for m in manager.magics.values()))
    if getattr(manager, "_nbsteps_lazy_loaded", None) == key:
        return
    try:
        load()
    except Exception:  # a broken declaration fails where it is used, as without nbsteps
        return
    manager._nbsteps_lazy_loaded = (len(manager.lazy_magics), *(len(m) for m in manager.magics.values()))


def _magics_before_threads(shell, plan):
    """A run listener: when the run is planned (on the calling thread, before any step
    starts), IPython's lazily declared magics are imported (:func:`_load_lazy_magics`)
    if a step may run on another thread: more than one worker, another backend than
    threads, or a step with a timeout (it runs on a thread of its own). A run whose steps
    all run on the calling thread (a lone cell's step, a restore: nothing executes) does
    not import them: 30-160 ms once per kernel, IPython importing ~100 magics."""

    def listener(e) -> None:
        if e.kind != ev.PLANNED:
            return
        info = e.info or {}
        if (
            (info.get("workers") or 1) > 1
            or info.get("backend", "threads") != "threads"
            or any(getattr(plan.steps.get(s), "timeout", None) for s in e.steps)
        ):
            _load_lazy_magics(shell)

    return listener


def _run_options(workers=None, backend=None, address=None) -> dict:
    """Explicit options win; else NBSTEPS_WORKERS / NBSTEPS_BACKEND /
    NBSTEPS_ADDRESS (what `nbsteps run` sets for its kernel)."""
    if workers is None:
        workers = config.workers()
    return {
        "workers": workers,
        "backend": backend or config.backend() or "threads",
        "address": _session_object(address or config.address()),
    }


def _session_object(address):
    """``--address NAME``: the Client (or cluster) held in the notebook under NAME."""
    if isinstance(address, str) and address.isidentifier():
        ns = session.current().namespace
        if address not in ns:
            raise NbstepsError(
                f"--address {address!r}: no such variable in the session; give a scheduler address "
                f"(tcp://host:8786) or the name of a distributed.Client."
            )
        return ns[address]
    return address


_IPYTHON_SYNTAX = re.compile(r"^\s*(%|!|\?|>>>)|\?\s*$|=\s*[%!]", re.MULTILINE)


def _python_source(shell, cell: str) -> str:
    """The cell as Python: IPython's transformers only when the cell uses
    IPython syntax (magics, shell escapes, help, prompts), else as is. A
    blank first line stands for the ``%%`` line, so line numbers in
    tracebacks and syntax errors count from the top of the cell (compiled
    code, and so fingerprints, ignore line numbers)."""
    if not cell or cell.isspace():  # (not cell.strip(), without the copy)
        return "\npass\n"
    if "%" not in cell and "!" not in cell and "?" not in cell and ">>>" not in cell:
        return "\n" + cell  # (none of the characters _IPYTHON_SYNTAX needs: most cells, without the regex)
    return "\n" + (shell.transform_cell(cell) if _IPYTHON_SYNTAX.search(cell) else cell)


def code_name(shell, cell: str) -> "str | None":
    """The file name IPython's compiler gives the cell's code when it runs as a plain cell, as in
    Run All (ipykernel: ``/tmp/ipykernel_<pid>/<hash of the cell's text>.py``; IPython:
    ``<ipython-input-N-<hash>>``), numbered as IPython numbers a cell's: code that keys on the
    file its code comes from (joblib names a function's cache folder after it, ``inspect``,
    warnings, tracebacks) sees what Run All gives it. *cell* is the ``%%step`` cell's body. None
    without a shell whose compiler names cells (the step's code is then ``<step NAME>``)."""
    compiler = getattr(shell, "compile", None)
    name_of = getattr(compiler, "get_code_name", None)
    if name_of is None:
        return None
    raw, number = _raw_body(shell, cell)
    try:
        name = name_of(raw, cell, number)
    except Exception:  # a compiler of another signature: the step's own name
        return None
    if not isinstance(name, str) or not name:
        return None
    numbers = getattr(compiler, "_filename_map", None)
    if isinstance(numbers, dict):  # IPython's tracebacks show "Cell In[N]" for it
        numbers[name] = number
    return name


def _raw_body(shell, cell: str) -> tuple:
    """(the cell's text as typed, without the ``%%step`` line: what Run All gives the compiler for
    the same cell without that line; its number). *cell* has the line end IPython adds to a cell's
    last line. The cell being run is the last of the shell's raw history; another one there (a
    cell run without history): *cell* itself, numbered with the shell's count."""
    hist = getattr(getattr(shell, "history_manager", None), "input_hist_raw", None)
    raw = hist[-1] if hist else None
    if isinstance(raw, str) and raw:
        first, sep, rest = raw.partition("\n")
        body = rest if sep and first.lstrip().startswith("%%") else raw  # (auto mode: no %%step line)
        if body == cell or body + "\n" == cell:
            return body, len(hist) - 1
    return cell, getattr(shell, "execution_count", 0)


def _unquote(text):
    """magic_arguments keeps the quotes of a quoted option value: drop them."""
    if text and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


#: the frame that expands a cell magic's line (``var_expand(line, 2)``: two frames above it)
_RUN_CELL_MAGIC = InteractiveShell.run_cell_magic.__code__


def _expanded(shell, line: str) -> str:
    """The ``%%step`` line as IPython's ``var_expand`` makes it (``$name``, ``{expr}``),
    which the magic opts out of (``no_var_expand``): IPython copies the whole user
    namespace for it on every cell (O(names), ~55 us at 6,000 names), although a
    line with no ``$``, ``{`` or ``}`` comes out unchanged. A line with one is
    expanded exactly as IPython does, in the same frame's names."""
    if "$" not in line and "{" not in line and "}" not in line:
        return line
    frame, depth = sys._getframe(0), 0
    while frame is not None and frame.f_code is not _RUN_CELL_MAGIC:
        frame, depth = frame.f_back, depth + 1
    if frame is None:  # not called through run_cell_magic: IPython expands nothing then either
        return line
    return shell.var_expand(line, depth + 2)


#: the usual ``%%step`` line: a name alone (no quote, escape, option or space inside)
_NAME_ALONE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\Z")
#: parser -> what it makes of a name alone (its defaults): the fast path of _parse_step_line
_DEFAULTS: dict = {}


def _parse_step_line(magic, line: str):
    """``%%step`` options; a missing or spaced name gets a message that says how.
    A name alone gets the parser's defaults without parsing (shlex and argparse:
    ~35 us of a plan-mode cell), the same namespace argparse makes of it."""
    alone = _NAME_ALONE.match(line)
    parser = getattr(magic, "parser", None)
    if alone is not None and parser is not None:
        defaults = _DEFAULTS.get(parser)
        if defaults is None:
            defaults = _DEFAULTS[parser] = vars(parse_argstring(magic, "name"))
        args = argparse.Namespace()  # (its __init__ sets the 12 fields one by one: ~2x slower)
        args.__dict__.update(defaults)
        args.name = alone.group(1)
        return args
    from IPython.core.error import UsageError

    try:
        words = shlex.split(line)
    except ValueError:  # an unclosed quote: argparse will say so
        words = line.split()
    if not words or words[0].startswith("-"):
        raise UsageError("%%step needs a step name first: %%step NAME [options] (see %%step?).")
    try:
        return parse_argstring(magic, line)
    except UsageError as exc:
        suggested = _option_suggestion(magic, exc)
        if suggested:
            raise UsageError(f"%%step: {exc}{suggested} (see %%step?)") from None
        names = []
        for word in words:
            if word.startswith("-"):
                break
            names.append(word)
        if len(names) > 1:
            suggestion = "_".join(names)
            raise UsageError(
                f"%%step takes one step name, got {' '.join(names)!r}: a name has no spaces. "
                f"Use letters, digits, _ and -, e.g. %%step {suggestion}"
            ) from None
        raise


def _may_warn(plan, step) -> bool:
    """Whether plan.registration_warnings can have something to say of *step*: not when its
    analysis warned of nothing and a step above writes each name it reads (the usual cell;
    else the full check, with the namespace, the builtins and its "did you mean")."""
    a = step.analysis
    if a is None or a.warnings:
        return True
    sources = plan.context.deps.sources.get(step.name, ())
    for n in step.inputs:
        if n not in sources:
            return True
    return False


def _option_suggestion(magic, exc) -> str:
    """``; did you mean --retry?`` for an unrecognized option in argparse's message *exc*."""
    match = re.search(r"unrecognized arguments: (.*)", str(exc))
    if not match:
        return ""
    known = [o for action in magic.parser._actions for o in action.option_strings if o.startswith("--")]
    for word in match.group(1).split():
        if word.startswith("-"):
            close = did_you_mean(word.split("=", 1)[0], known)
            if close:
                return close
    return ""


def _check_loadable(plan, names) -> None:
    """``%steps load NAME...``: every name must be a value of a step (waiting
    to be read, or read already); else an error naming the unknown names and
    the ones that can be loaded. Nothing is loaded then."""
    pending = set(plan.deferred.pending) if plan.deferred else set()
    known = pending | {n for step in plan.steps.values() for n in step.outputs}
    known |= {n for r in plan.records.values() if r.cached for n in (r.outputs or ())}
    unknown = [n for n in dict.fromkeys(names) if n not in known]
    if not unknown:
        return
    one = len(unknown) == 1
    which = f"{', '.join(unknown)} {'is not a value' if one else 'are not values'} of any step"
    if pending:
        shown = sorted(pending)[:30]
        more = f" and {len(pending) - len(shown)} more" if len(pending) > len(shown) else ""
        can = f"values that can be loaded: {', '.join(shown)}{more} (%steps load alone loads them all)"
    else:
        can = "nothing is waiting to be loaded (every restored value is loaded)"
    raise NbstepsError(f"%steps load: {which}; {can}. Nothing was loaded.")


def _yes_from_env() -> bool:
    return config.yes()


def _steps_doc() -> str:
    lines = ["Manage and run the notebook's plan of %%step cells.", "", "Subcommands:"]
    lines += [f"  %steps {k:<8} {v}" for k, v in SUBCOMMANDS.items()]
    for parser in (run_args, plan_args, graph_args):
        lines += ["", (parser.__doc__ or "").strip()]
    return "\n".join(lines)


@magics_class
class StepMagics(Magics):
    @magic_arguments(name="%step")  # usage line: %%step (a cell magic)
    @argument("name", help="step name: letters, digits, _ and -")
    @argument("--after", nargs="+", default=[], metavar="STEP", help="explicit upstream steps")
    @argument("--retry", type=checked(check_retry), default=0, help="extra attempts on failure (0-100)")
    @argument(
        "--retry-delay",
        type=checked(check_retry_delay),
        default=1.0,
        help="first backoff delay in seconds (doubles; 0-86400)",
    )
    @argument("--retry-on", default=None, help="only retry these exceptions (comma-separated names)")
    @argument(
        "--timeout", type=checked(check_timeout), default=None, help="fail the step after S seconds (> 0)"
    )
    @argument("--optional", action="store_true", help="a failure blocks nothing downstream")
    @argument("--confirm", default=None, metavar="TEXT", help="ask before running the step")
    @argument("--no-cache", action="store_true", help="always execute, never restore a checkpoint")
    @argument("--define", action="store_true", help="only register the step, do not run it")
    @argument("--force", action="store_true", help="run it even if it is up to date")
    @no_var_expand  # expanded by _expanded, only when the line can use a variable
    @cell_magic
    @one_line_interrupts
    def step(self, line: str, cell: str):
        """Register this cell as a named step and (in interactive mode) run it.

        Dependencies are inferred from the names the cell reads and writes, or
        given with --after. Running a step first runs any upstream step that is
        not completed. The cell's last expression is the step's result.
        """
        line = _expanded(self.shell, line)
        alone = _NAME_ALONE.match(line)
        # a name alone (the usual line) is a step with no options: no argparse namespace, no options
        # passed on to be checked against the defaults (cell_step's fast path either way)
        args = None if alone is not None else _parse_step_line(self.step, line)
        name = alone.group(1) if args is None else args.name
        plan = session.current()
        try:
            source = _python_source(self.shell, cell)
            named = code_name(self.shell, cell)
            if args is None:
                step = plan.add_cell(name, source, named)
            else:
                step = plan.add_cell(
                    name,
                    source,
                    named,
                    after=args.after,
                    retry=args.retry,
                    retry_delay=args.retry_delay,
                    retry_on=args.retry_on,
                    timeout=args.timeout,
                    optional=args.optional,
                    confirm=_unquote(args.confirm),
                    cache=not args.no_cache,
                )
        except KeyboardInterrupt:
            raise StepsInterrupted(f"step {name} was not registered (or changed)") from None
        lab.note_cell(self.shell, step.name)  # the JupyterLab extension's badge of this cell
        if _may_warn(plan, step):
            for warning in plan.registration_warnings(step.name):
                print(f"nbsteps: warning: {warning}")
        cells = self._cells(plan)
        if (args is not None and args.define) or session.mode() == "plan":
            if cells is None or not cells.open(step.name, own=False):
                deps = ", ".join(plan.dependencies(step.name)) or "nothing"
                outs = ", ".join(step.outputs) or "nothing"
                # (one write: print writes the line and its end apart, each through IPython's tee)
                sys.stdout.write(f"nbsteps: registered step {step.name} (needs {deps}; writes {outs})\n")
            return None
        force = args is not None and args.force
        rec = self._run_own(plan, step.name, cells, force=force, recover=True)
        if rec is None:  # restored, but its result could not be read back: it executes now, as in Run All
            rec = self._run_own(plan, step.name, cells, force=False, recover=False)
        if not rec.has_result:
            return None
        return cells.out_value(rec) if cells is not None else rec.result

    def _run_own(self, plan, name: str, cells, force: bool, recover: bool):
        """Run step *name* from its own cell; its record (StepsFailed if the
        run failed). *recover*: a result restored from a checkpoint is read
        now, and if it cannot be, the step is reset (run.recovery) and None returned."""
        if cells is not None:
            cells.own = name
            cells.open(name, own=True)
        lost = False
        try:
            # the cell's own output area says how its step went; `nbsteps run` streams text lines to its log
            omit = name if cells is not None and not config.headless() else None
            summary = self._run(
                plan,
                [name],
                quiet=True,
                omit=omit,
                yes=_yes_from_env(),
                force=[name] if force else [],
                **_run_options(),
            )
            rec = plan.records[name]
            if (
                recover
                and summary.ok
                and rec.has_result
                and not rec.result_loaded
                and not (cells is not None and cells.shows_stored_result(rec))  # (else read when used)
            ):
                try:
                    rec.result  # noqa: B018 - read now: the cell shows it
                except CheckpointUnavailable as exc:
                    if exc.step != name:
                        raise
                    plan.lost(exc)  # warns and resets the step: the next run executes it
                    lost = True
        finally:
            if cells is not None:
                cells.finish_own(name)
        if lost:
            return None
        if cells is None and rec.status == COMPLETED and rec.cached:  # kept (up to date) or restored
            print(f"  {status_line(plan.context, name)}")
        if not summary.ok:
            raise StepsFailed(summary)
        return rec

    @cell_magic
    def undo(self, line: str, cell: str):
        """%%undo NAME: register compensation code for step NAME (run by
        %steps undo NAME, and by %steps run --rollback when a step fails)."""
        name = line.strip()
        if not name:
            raise NbstepsError("%%undo needs the step name: %%undo NAME")
        session.current().set_undo(name, _python_source(self.shell, cell))
        print(f"nbsteps: registered undo for step {name}")

    def _cells(self, plan):
        """The step cells' displays of *plan* (None outside a Jupyter kernel: in_kernel(), asked of
        the magic's own shell, without IPython's get_ipython)."""
        if type(self.shell).__name__ != "ZMQInteractiveShell":
            return None
        from nbsteps.ipython.cells import for_plan

        return for_plan(self.shell, plan)

    def _run(self, plan, targets, quiet=False, omit=None, **kw):
        """Run; an interrupt at any moment (even before the plan's run began)
        ends with this run's summary as a one-line StepsFailed."""
        from nbsteps.ipython.display import run_listeners

        previous, listeners = plan.last_summary, []
        try:
            # unknown steps are reported before anything is drawn (a name check: the upstream
            # walk is the run's, which skips it for one cell whose upstream is up to date)
            for name in [*(targets or ()), *(kw.get("force") or ())]:
                plan[name]
            self._cells(plan)  # step cells show what the run does to their steps
            listeners = run_listeners(plan, quiet=quiet, omit=omit)
            listeners.append(_magics_before_threads(self.shell, plan))  # loads them if steps may use threads
            confirm = None if config.headless() else _prompt
            return plan.run(targets, confirm=confirm, listeners=listeners, **kw)
        except KeyboardInterrupt:
            with deferred_interrupts():
                if plan.last_summary is None or plan.last_summary is previous:  # plan.run never began
                    plan.record_interrupt(targets)
            raise StepsFailed(plan.last_summary) from None
        finally:  # a run that could not start (e.g. no dask scheduler) leaves no live widget behind
            for listener in listeners:
                settle = getattr(listener, "settle", None)
                if settle is not None:
                    settle()

    @line_magic
    @one_line_interrupts
    def steps(self, line: str):
        parts = shlex.split(line)
        if not parts:
            print(_steps_doc())
            return None
        cmd, rest = parts[0], line.strip()[len(parts[0]) :].strip()
        handler = getattr(self, f"_cmd_{cmd}", None)
        if handler is None:
            raise NbstepsError(
                f"unknown subcommand {cmd!r} of %steps{did_you_mean(cmd, SUBCOMMANDS)}; "
                f"use one of: {', '.join(SUBCOMMANDS)} (see %steps?)."
            )
        from IPython.core.error import UsageError

        parser = OPTION_PARSERS.get(cmd)
        if parser is None:  # a subcommand without options: an option word is a mistake, not a name
            wrong = [w for w in parts[1:] if w.startswith("--")]
            if wrong:
                raise UsageError(f"%steps {cmd} takes no options, got {wrong[0]} (see %steps?)")
        try:
            return handler(rest)
        except UsageError as exc:  # argparse's words, with the command they are about
            if str(exc).startswith("%steps"):
                raise
            suggested = _option_suggestion(parser, exc) if parser is not None else ""
            raise UsageError(f"%steps {cmd}: {exc}{suggested} (see %steps?)") from None
        except OSError as exc:  # a path the user gave: say which and why, no traceback
            where = exc.filename or rest or "the file"
            raise NbstepsError(
                f"%steps {cmd} could not use {where}: {exc.strerror or exc}. "
                f"Check that the directory exists and is writable, or give another path."
            ) from None

    steps.__doc__ = _steps_doc()

    # -- subcommands -----------------------------------------------------------
    def _cmd_run(self, rest: str):
        a = parse_argstring(run_args, rest)
        plan = session.current()
        summary = self._run(
            plan,
            a.targets or None,
            **_run_options(a.workers, a.backend, a.address),
            fail_fast=a.fail_fast,
            rollback=a.rollback,
            force=a.force,
            force_all=a.force_all,
            yes=a.yes or _yes_from_env(),
        )
        if not summary.ok and not a.allow_failures:
            raise StepsFailed(summary)
        return None

    def _cmd_plan(self, rest: str):
        a = parse_argstring(plan_args, rest)
        plan = session.current()
        print(plan.plan(a.targets or None, force=a.force, force_all=a.force_all).text)
        for line in session.pending_replays_text(plan):  # (a run that executes a step replays them first)
            print(line)

    def _cmd_status(self, rest: str):
        print(session.status_text(session.current()))

    def _cmd_results(self, rest: str):
        return session.current().results()

    def _cmd_export(self, rest: str):
        target = rest.strip()
        if not target:
            raise NbstepsError(
                "%steps export needs a file name: %steps export results.csv (.json .parquet .html)"
            )
        path = session.current().export(target)
        print(f"nbsteps: wrote {path}")

    def _cmd_graph(self, rest: str):
        a = parse_argstring(graph_args, rest)
        from nbsteps.views.graph_command import graph_command

        plan = session.current()
        plan.refresh_stale()
        return graph_command(plan.context, a.format, a.output)

    def _cmd_show(self, rest: str):
        from nbsteps.ipython.display import show

        return show(session.current())

    def _cmd_reset(self, rest: str):
        names = shlex.split(rest)
        done = session.current().reset(*names)
        print(f"nbsteps: reset {', '.join(done) if done else 'nothing'}")

    def _cmd_remove(self, rest: str):
        names = shlex.split(rest)
        if len(names) != 1:
            raise NbstepsError("%steps remove takes one step name: %steps remove NAME")
        session.current().remove(names[0])
        print(f"nbsteps: removed step {names[0]}")

    def _cmd_undo(self, rest: str):
        names = shlex.split(rest)
        if len(names) != 1:
            raise NbstepsError("%steps undo takes one step name: %steps undo NAME")
        print(session.current().undo(names[0]))

    def _cmd_why(self, rest: str):
        names = shlex.split(rest)
        if len(names) != 1:
            raise NbstepsError("%steps why takes one step name: %steps why NAME")
        print(session.current().why(names[0]))

    def _cmd_load(self, rest: str):
        names = shlex.split(rest) or None
        plan = session.current()
        if names is not None:
            _check_loadable(plan, names)
        done = plan.load(names)
        if names is None:  # the results restored cells show as Out, too (nbsteps.ipython.lazy)
            from nbsteps.ipython.lazy import bind_results

            if bind_results(self.shell):
                done = [*done, "the results in Out"]
        print(f"nbsteps: loaded {', '.join(done) if done else 'nothing (every restored value is loaded)'}")

    def _cmd_mode(self, rest: str):
        mode = rest.strip()
        if mode not in ("interactive", "plan"):
            raise NbstepsError("%steps mode takes 'interactive' or 'plan'.")
        session.set_mode(mode)
        print(f"nbsteps: mode {mode}")

    def _cmd_auto(self, rest: str):
        from nbsteps.ipython import auto

        word = rest.strip().lower()
        if word not in ("", "on", "off"):
            raise NbstepsError("%steps auto takes nothing, 'on' or 'off'.")
        if word == "off":
            was = auto.disable(self.shell)
            print("nbsteps: auto off: plain cells are ordinary code" + ("" if was else " (it was off)"))
            return
        auto.enable(self.shell)
        print(
            "nbsteps: auto on: every following code cell is a step (name: a first-line '# step: NAME' "
            "comment, else the cell's id); %steps auto off to stop"
        )

    def _cmd_store(self, rest: str):
        a = parse_argstring(store_args, rest)
        plan = session.current()
        if not a.spec:
            print(f"nbsteps: store {plan.store.describe()}{_garbage_note(plan.store)}")
            return
        max_size = _unquote(a.max_size) if a.max_size is not None else "default"
        store = plan.set_store(_unquote(a.spec), max_size=max_size)
        limit = getattr(store, "max_size", None)
        from nbsteps.formatting import fmt_bytes

        extra = (
            f" (at most {fmt_bytes(limit)}, least recently used removed first)"
            if limit and a.max_size is not None
            else ""
        )
        print(f"nbsteps: checkpoints in {store.describe()}{extra}{_garbage_note(store)}")


def _garbage_note(store) -> str:
    """``; collected 37 dead checkpoints (12.3 MB)`` (stores.garbage), '' for a memory store."""
    note = getattr(store, "garbage_note", None)
    return f"; {note()}" if note is not None else ""


def load_ipython_extension(ip) -> None:
    from nbsteps.ipython import hooks, step_magics

    session.bind(ip)
    ip.register_magics(StepMagics)
    hooks.install(ip, SUBCOMMANDS, StepMagics.step.parser)
    step_magics.route(ip)  # a magic inside a step reads and writes the step's namespace
    lab.install(ip)  # the comm of the JupyterLab extension (labextension/): badges and side panel
    # a failed step's own exception is shown as IPython shows any exception
    # (lone surrogates in its message escaped: a Jupyter message cannot carry them)
    StepsFailed.format_error = staticmethod(
        lambda err: [
            safe_str(line)
            for line in ip.InteractiveTB.structured_traceback(type(err), err, err.__traceback__)
        ]
    )


def unload_ipython_extension(ip) -> None:
    pass
