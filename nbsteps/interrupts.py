"""Keeping a few lines atomic with respect to Ctrl-C (KeyboardInterrupt).

A KeyboardInterrupt can be raised between any two Python instructions of the
main thread. Where state must change all at once (publish a step's outputs and
mark it completed; commit a checkpoint and note that it is committed), those
lines run inside :class:`deferred_interrupts`: a SIGINT that arrives meanwhile
is recorded, and delivered again, to the handler that was in place, as soon as
the block ends. Nothing is lost: the interrupt is only late by the length of
the block (which must therefore be short and never wait).

During a run the executor *watches* interrupts (:class:`watching_interrupts`):
its SIGINT handler notes every interrupt, even one that a step running on the
caller's thread catches and swallows (a bare ``except:``), so that the run stops
all the same; and deferring is then a counter, not two ``signal.signal`` calls.

Off the main thread both do nothing: Python delivers signals to the main
thread only.
"""

from __future__ import annotations

import threading

try:  # the C functions: signal.signal/getsignal wrap their results in enums (~5 us)
    import _signal as signal
except ImportError:  # pragma: no cover - not CPython
    import signal  # type: ignore[no-redef]

_SIGINT = signal.SIGINT
_get_ident = threading.get_ident  # (C)
_getsignal = signal.getsignal


def _on_main_thread() -> bool:
    return _get_ident() == threading.main_thread().ident


class _Watch:
    """The SIGINT handler of a watched run: notes, defers or passes on."""

    __slots__ = ("old", "hit", "depth", "pending", "ident", "owner")

    def __init__(self, old, owner: "watching_interrupts") -> None:
        self.old, self.hit, self.depth, self.pending = old, False, 0, False
        self.ident = _get_ident()  # the main thread's, where it is installed
        self.owner = owner  # its ``hit``: a plain attribute (read after every step run inline)

    def __call__(self, signum, frame) -> None:
        self.hit = self.owner.hit = True
        if self.depth:
            self.pending = True
        else:
            self.old(signum, frame)  # default_int_handler: KeyboardInterrupt, here


_watch: "_Watch | None" = None  # the handler installed by the innermost watching_interrupts


class watching_interrupts:
    """For the length of a run: ``hit`` tells whether a SIGINT came since the
    start, whatever the code that received its KeyboardInterrupt did with it."""

    __slots__ = ("_watch", "_outer", "hit")

    def __enter__(self) -> "watching_interrupts":
        global _watch
        self._watch, self.hit = None, False
        if not _on_main_thread():
            return self
        old = signal.getsignal(_SIGINT)
        if not callable(old):  # ignored or default: nothing to chain to, nothing to watch
            return self
        watch, self._outer = _Watch(old, self), _watch
        signal.signal(_SIGINT, watch)
        self._watch = _watch = watch
        return self

    def __exit__(self, *exc) -> bool:
        global _watch
        watch = self._watch
        if watch is not None:
            self._watch = None
            signal.signal(_SIGINT, watch.old)
            self.hit = False  # (told for the length of the run only)
            _watch = self._outer
            if watch.pending:  # only if a deferred block was left by an exception
                signal.raise_signal(_SIGINT)
        return False


class deferred_interrupts:
    """``with deferred_interrupts(): ...``: no KeyboardInterrupt inside the
    block; one that arrived meanwhile is raised when it ends."""

    __slots__ = ("_old", "_hit", "_watch")

    def __enter__(self) -> "deferred_interrupts":
        self._hit = False
        watch = _watch
        # a watched run, on the thread it was installed on (the main one), its handler in place:
        # a counter is enough (and no Python call to find the main thread)
        if watch is not None and _get_ident() == watch.ident and _getsignal(_SIGINT) is watch:
            watch.depth += 1
            self._watch, self._old = watch, None
            return self
        self._old = self._watch = None
        if not _on_main_thread():
            return self
        old = signal.getsignal(_SIGINT)
        if old is not None and old is _watch:  # (a child forked off another thread: a new main ident)
            old.depth += 1
            self._watch = old
            return self
        if old is None:  # a handler not installed from Python: leave it alone
            return self
        self._old = old
        signal.signal(_SIGINT, self._record)  # from here on a SIGINT is only noted
        return self

    def _record(self, signum, frame) -> None:
        self._hit = True

    def __exit__(self, *exc) -> bool:
        watch = self._watch
        if watch is not None:
            self._watch = None
            watch.depth -= 1
            if not watch.depth and watch.pending:
                watch.pending = False
                watch.old(_SIGINT, None)  # as if it had just arrived
            return False
        old = self._old
        if old is not None:
            self._old = None
            signal.signal(_SIGINT, old)
            if self._hit:  # deliver it now, as if it had just arrived
                self._hit = False
                signal.raise_signal(_SIGINT)
        return False
