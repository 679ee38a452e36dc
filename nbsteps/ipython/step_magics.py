"""IPython's magics used inside a step work on the step's namespace.

A step's code runs in a private namespace of its own (its inputs copied in,
its outputs published when it completes), possibly on a worker thread, in
parallel with other steps. IPython's magics do not run in the caller's
namespace: they reach the notebook through the shell, ``shell.user_ns`` (and
``shell.user_global_ns``). ``%run`` copies the script's names into it,
``%%capture out`` binds ``out`` there and runs its body there, ``%time`` and
``%prun`` run their statement there, ``%timeit`` copies the caller's names in
and puts the old values back, ``%store -r`` restores into it, ``%cd`` keeps its
history ``_dh`` there. From a step that meant: the step did not see what the
magic bound (``%run helper.py`` then ``h + 1``: NameError), the magic did not see
the step's names, what it bound leaked into the notebook even when the step
failed, and parallel steps reverted each other's published values.

The mechanism, one for every magic (line and cell, IPython's or an
extension's): while a step's code runs, the executor marks its namespace as
the one of the running step in the thread's context
(:func:`nbsteps.run.attempt.capture.running_in`, a ``contextvars.ContextVar``: each
worker thread, and only the code of the step it runs, sees its own).
:func:`route` replaces ``user_ns`` and ``user_global_ns`` of the shell's class
by data descriptors that resolve, for the shell nbsteps is loaded in, to that
namespace when one is marked in the calling context, and to the shell's own
otherwise. So a magic called from a step's code (or anything else that code
calls which goes through the shell's user namespace, ``get_ipython().user_ns``)
reads and writes the step's namespace, exactly as the same magic in an
ordinary cell reads and writes the notebook's; what it binds there is the
step's (published if it is an output, dropped when the step fails). Elsewhere
(notebook cells, nbsteps' own code, timers and display formatting, which run
:func:`~nbsteps.run.attempt.capture.outside` the step's context, other threads) nothing
changes. Wrapping each magic instead would miss the ones not listed and
extensions' magics; swapping the attribute on the shell object instead would
race between parallel steps.

What is process-wide stays process-wide, as in Run All: ``%cd`` changes the
working directory and ``%env`` the environment of the whole kernel (steps
running in parallel see it).
"""

from __future__ import annotations

from nbsteps.run.attempt import capture

#: marks (in the instance's __dict__) a shell whose user namespace follows the running step
_ROUTED = "_nbsteps_step_namespace"
#: the attributes a magic reaches the user namespace through
_ATTRIBUTES = ("user_ns", "user_global_ns")


class _StepNamespace:
    """A data descriptor on the shell's class standing for *name*: the running
    step's namespace in a context where one runs (and the instance is routed),
    else what *inner* (the class's own descriptor: ``user_global_ns`` is a
    property) or the instance attribute (``user_ns``) gives."""

    def __init__(self, name: str, inner) -> None:
        self.name = name
        self.inner = inner

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        if obj.__dict__.get(_ROUTED):
            ns = capture.namespace()
            if ns is not None:
                return ns
        if self.inner is not None:
            return self.inner.__get__(obj, owner)
        try:
            return obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None

    def __set__(self, obj, value) -> None:
        if self.inner is not None:
            self.inner.__set__(obj, value)  # a read-only property stays read-only
        else:
            obj.__dict__[self.name] = value

    def __delete__(self, obj) -> None:
        if self.inner is not None:
            self.inner.__delete__(obj)
        else:
            del obj.__dict__[self.name]


def route(ip) -> None:
    """Make *ip*'s user namespace resolve to the running step's (once)."""
    cls = type(ip)
    for name in _ATTRIBUTES:
        # the class's own descriptor, if any (user_global_ns is a property; user_ns an instance attribute)
        inner = next((k.__dict__[name] for k in cls.__mro__ if name in k.__dict__), None)
        if isinstance(inner, _StepNamespace):  # this class or a base of it is routed already
            continue
        if inner is not None and not hasattr(inner, "__get__"):
            inner = None
        setattr(cls, name, _StepNamespace(name, inner))
    ip.__dict__[_ROUTED] = True
