"""What ``%load_ext nbsteps`` hooks into IPython besides the magics:

- displays made inside a running step (``display()``, ``plt.show()`` with the
  inline backend, ``clear_output()``) go to that step's capture
  (:mod:`nbsteps.run.attempt.capture`), so they land in the step's own cell; widgets
  (a live progress bar) are shown where the run is, as they are live;
- nbsteps' own display updates (a step cell's status and outputs, :func:`unflushed`)
  skip the stream flush ipykernel makes before every display: that flush waits for
  the kernel's IO thread to send what was printed (a round trip per stream, ~0.1-1 ms,
  several per step), and an update changes an output in place, so printed text
  reaching the frontend after it shows the same; a step cell's status line, shown
  first thing in its cell, skips it when neither stream holds text not sent yet
  (:func:`unsent_text`: nothing to order). Other displays keep it: waiting for the
  IO thread is also what keeps a cell that displays in a loop from flooding IOPub
  past its high-water mark, where messages are dropped;
- IPython's ``%%capture`` (``IPython.utils.capture.capture_output``) in a step's code captures
  that step's output only (:func:`capture_in_steps`): it does not swap the process's
  ``sys.stdout``, ``sys.stderr`` and display publisher, which steps running in parallel share
  (two of them swapping and restoring out of order left a finished capture's buffer in
  place as the kernel's stdout, and the kernel hung);
- IPython's display formatting (a result's ``Out``, ``display()``) runs one call at a
  time, under the lock steps' figures are drawn under (:data:`nbsteps.run.attempt.figures.
  drawing`): Run All formats on one thread, and a formatter a library registers need not be
  safe on two (SymPy's ``init_printing()`` renders LaTeX to PNG with matplotlib's mathtext,
  whose parser keeps a state stack);
- tab completion: ``%steps`` subcommands, step names where a step is expected,
  and ``%%step --after`` step names.
"""

from __future__ import annotations

import re
import shlex
import threading
from contextlib import contextmanager

from nbsteps.run.attempt import capture, figures

#: subcommands followed by step names, and the options that take step names
_TAKE_STEPS = {"run", "plan", "reset", "remove", "undo", "why"}
_STEP_OPTIONS = {"--force", "--after"}
#: words (not options) a subcommand takes
_WORDS = {"mode": ["interactive", "plan"], "auto": ["off"], "store": ["memory", ".nbsteps"]}
_VALUES = {"--backend": ["threads", "dask"], "--format": ["svg", "png", "dot"]}
_WIDGET = "application/vnd.jupyter.widget-view+json"


_unflushed = threading.local()


@contextmanager
def unflushed():
    """Displays published in this block on this thread do not flush ``sys.stdout`` and
    ``sys.stderr`` first (see the module doc): for updates of earlier outputs, and for
    outputs that follow one that flushed, with nothing printed between them."""
    was = getattr(_unflushed, "on", False)
    _unflushed.on = True
    try:
        yield
    finally:
        _unflushed.on = was


def unsent_text(stream) -> bool:
    """Whether *stream* (``sys.stdout`` or ``sys.stderr``, maybe behind nbsteps' router)
    may hold printed text not handed to the kernel's IO thread yet: True unless it is
    ipykernel's ``OutStream`` and its buffers are empty. Its flush hands them over and
    waits for the IO thread (which sends messages in the order it is given them) to come
    round: with nothing in them, a display that follows is in order without it."""
    real = getattr(stream, "_nbsteps_stream", stream)
    try:
        from ipykernel.iostream import OutStream
    except ImportError:  # pragma: no cover - not in a kernel
        return True
    if type(real) is not OutStream:
        return True
    buffers, lock = getattr(real, "_buffers", None), getattr(real, "_buffer_lock", None)
    if not isinstance(buffers, dict) or lock is None:  # pragma: no cover - another ipykernel
        return True
    with lock:
        return any(buffer.tell() for buffer in buffers.values())


def route_displays(ip) -> None:
    """Displays published while a step runs (in its thread) go to its capture."""
    pub = getattr(ip, "display_pub", None)
    if pub is None or getattr(pub, "_nbsteps_routed", False):
        return
    publish, clear = pub.publish, pub.clear_output
    flush_streams = getattr(pub, "_flush_streams", None)  # ipykernel's publisher flushes before a display
    if callable(flush_streams):

        def routed_flush_streams():
            if not getattr(_unflushed, "on", False):
                flush_streams()

        pub._flush_streams = routed_flush_streams

    def routed_publish(data, metadata=None, *args, **kwargs):
        cap = capture.active()
        if cap is None or _WIDGET in (
            data or {}
        ):  # a live widget (a progress bar) stays live, where the run is
            return publish(data, metadata, *args, **kwargs)
        transient = kwargs.get("transient") or {}
        cap.display(data, metadata, transient.get("display_id"), bool(kwargs.get("update")))
        return None

    def routed_clear(*args, **kwargs):
        cap = capture.active()
        if cap is None:
            return clear(*args, **kwargs)
        # clear_output(wait=True): when the next output comes
        cap.clear(bool(kwargs.get("wait", args[0] if args else False)))
        return None

    pub.publish, pub.clear_output = routed_publish, routed_clear
    pub._nbsteps_routed = True


class _CapturedInStep:
    """Where a step's output goes inside ``%%capture`` in its code (:func:`capture_in_steps`):
    the streams and displays it captures into its own buffers, the others to the step's
    capture (*outer*), as IPython's ``capture_output`` does with the process's streams."""

    def __init__(self, outer, stdout, stderr, outputs) -> None:
        self.outer = outer
        self.name = getattr(outer, "name", None)
        self.figs = getattr(outer, "figs", None)  # the step's pyplot figures stay the step's
        self._streams = {"stdout": stdout, "stderr": stderr}
        self.outputs = outputs

    def write(self, kind: str, text: str) -> None:
        stream = self._streams.get(kind)
        if stream is None:
            self.outer.write(kind, text)
        else:
            stream.write(text)

    def display(self, data, metadata=None, display_id=None, update=False) -> None:
        if self.outputs is None:
            self.outer.display(data, metadata, display_id, update)
            return
        transient = {"display_id": display_id} if display_id else None
        # as IPython's CapturingDisplayPublisher keeps them (CapturedIO.outputs reads these)
        self.outputs.append({"data": data, "metadata": metadata, "transient": transient, "update": update})

    def clear(self, wait: bool = False) -> None:
        if self.outputs is None:
            self.outer.clear(wait)
        else:
            self.outputs.clear()


def capture_in_steps() -> None:
    """IPython's ``capture_output`` (``%%capture``), entered in a step's code, captures that
    step's output only (in this context), not the whole process's (see the module doc);
    elsewhere it is IPython's own."""
    try:
        from IPython.utils import capture as ipython_capture
    except ImportError:  # pragma: no cover
        return
    cls = ipython_capture.capture_output
    if getattr(cls, "_nbsteps_in_steps", False):
        return
    enter, leave = cls.__enter__, cls.__exit__

    def __enter__(self):
        outer = capture.active()
        if outer is None:
            self._nbsteps_token = None
            return enter(self)
        from io import StringIO

        from IPython.core.getipython import get_ipython

        display = bool(self.display) and get_ipython() is not None
        stdout = StringIO() if self.stdout else None
        stderr = StringIO() if self.stderr else None
        outputs: "list | None" = [] if display else None
        self._nbsteps_token = capture.redirect(_CapturedInStep(outer, stdout, stderr, outputs))
        return ipython_capture.CapturedIO(stdout, stderr, outputs)

    def __exit__(self, *exc):
        token = getattr(self, "_nbsteps_token", None)
        if token is None:
            return leave(self, *exc)
        self._nbsteps_token = None
        capture.restore(token)
        return None

    cls.__enter__, cls.__exit__ = __enter__, __exit__
    cls._nbsteps_in_steps = True


def format_one_at_a_time(ip) -> None:
    """IPython's display formatting, one call at a time (see the module doc)."""
    formatter = getattr(ip, "display_formatter", None)
    if formatter is None or getattr(formatter, "_nbsteps_one_at_a_time", False):
        return
    fmt = formatter.format

    def format_one(*args, **kwargs):
        with figures.drawing:
            return fmt(*args, **kwargs)

    formatter.format = format_one
    formatter._nbsteps_one_at_a_time = True


def step_names() -> list[str]:
    from nbsteps.ipython import session

    try:
        return list(session.current().steps)
    except Exception:  # pragma: no cover - completion must never raise
        return []


def _long_options(parser) -> list[str]:
    return [o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"]


def _options(cmd: str) -> list[str]:
    """The options of subcommand *cmd* (from its parser), then the words it takes."""
    from nbsteps.ipython.options import OPTION_PARSERS

    parser = OPTION_PARSERS.get(cmd)
    options = _long_options(parser.parser) if parser is not None else []
    return options + _WORDS.get(cmd, [])


#: the ``%%step`` magic's argument parser, given by :func:`install` (the magics import this module)
_step_parser = None


def _step_options() -> list[str]:
    return _long_options(_step_parser) if _step_parser is not None else []


def complete_steps(line: str, subcommands) -> list[str]:
    """Completions for the word being typed at the end of a ``%steps`` line."""
    try:
        words = shlex.split(line)
    except ValueError:
        words = line.split()
    if line.endswith((" ", "\t")):
        words.append("")
    words = words[1:]  # drop "%steps"
    current = words[-1] if words else ""
    if len(words) <= 1:
        return [c for c in subcommands if c.startswith(current)]
    cmd, before = words[0], words[-2]
    if before in _VALUES:
        return [v for v in _VALUES[before] if v.startswith(current)]
    options = [o for o in _options(cmd) if o.startswith(current)]
    if (
        cmd in _TAKE_STEPS
        or before in _STEP_OPTIONS
        or (current and not current.startswith("-") and cmd in ("run", "plan"))
    ):
        names = [n for n in step_names() if n.startswith(current) and n not in words[1:-1]]
        return names + (options if current.startswith("-") or not names else [])
    return options


def complete_step_cell(line: str) -> list[str]:
    """``%%step NAME --after <TAB>``: step names; after other options: options."""
    words = line.split()
    if line.endswith((" ", "\t")):
        words.append("")
    current = words[-1] if words else ""
    if len(words) >= 3 and "--after" in words[2:-1]:
        return [n for n in step_names() if n.startswith(current)]
    if current.startswith("-"):
        return [o for o in _step_options() if o.startswith(current)]
    return []


_STEPS_LINE = re.compile(r"^\s*%steps(\s|$)")
_STEP_CELL = re.compile(r"^%%step(\s|$)")


def matcher(subcommands):
    """A completion matcher (IPython's API v2) for ``%steps`` and ``%%step``
    lines: only what fits there, every other matcher suppressed (Python
    keywords and globals make no sense after ``%steps``; ``--AbstractSet``
    is not an option)."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    @context_matcher()
    def nbsteps_matcher(context):
        line = context.line_with_cursor
        if _STEPS_LINE.match(line):
            found = complete_steps(line.lstrip(), subcommands)
        elif _STEP_CELL.match(line) and context.cursor_line == 0:
            found = complete_step_cell(line)
        else:
            return {"completions": []}
        word = "" if line.endswith((" ", "\t")) or not line.split() else line.split()[-1]
        # nothing fits: the word as typed (a no-op), as IPython shows every other matcher's
        # guesses when a suppressing matcher has no completion
        texts = found or [word]
        return {
            "completions": [SimpleCompletion(t, type="nbsteps") for t in texts],
            "matched_fragment": word,
            "suppress": True,
            "ordered": True,
        }

    return nbsteps_matcher


def install(ip, subcommands, step_parser=None) -> None:
    """Displays from steps, and Tab completion of ``%steps`` (its *subcommands*) and
    of ``%%step`` lines (options from *step_parser*, the magic's argument parser)."""
    global _step_parser
    if step_parser is not None:
        _step_parser = step_parser
    route_displays(ip)
    capture_in_steps()
    format_one_at_a_time(ip)
    completer = getattr(ip, "Completer", None)
    matchers = getattr(completer, "custom_matchers", None)
    if isinstance(matchers, list):
        try:
            match = matcher(subcommands)
        except ImportError:  # pragma: no cover - an IPython before the matcher API v2
            match = None
        if match is not None:
            matchers[:] = [m for m in matchers if getattr(m, "__name__", "") != "nbsteps_matcher"]
            matchers.insert(0, match)
            return

    def steps_completer(self, event):
        return complete_steps(event.line, subcommands)

    def step_completer(self, event):
        return complete_step_cell(event.line)

    try:
        ip.set_hook("complete_command", steps_completer, str_key="%steps")
        ip.set_hook("complete_command", step_completer, str_key="%%step")
    except Exception:  # pragma: no cover - an IPython without custom completers
        pass
