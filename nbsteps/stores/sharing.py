"""Identity kept across a restore: objects shared between values stay shared.

In the kernel that ran a notebook, values share objects: ``holder = {"xs": xs}``,
``fig, ax = plt.subplots()`` (``ax.figure is fig``), a pipeline and the
estimator inside it, a later step's ``models = {"pipe": pipe}``. Pickled one
value per file, each would come back with its own copies. So a directory store
writes what another value already holds as a **reference** to it (a pickle
persistent id), never as a copy:

- **within a checkpoint**: values are written in order (DataFrames and Series
  first, what the step printed last); a value that an earlier value of the same
  checkpoint is, or holds, is written as ``("v", position, memo index)``
  (``-1``: the whole value; else the index of the object in the earlier
  value's pickle, found while pickling it). Reading such a value reads the
  value it refers to first (once: values are cached per checkpoint, and the
  unpickler's memo gives back the very object).
- **across steps**: an object that is a value of an upstream step (the version
  this step used: ``parts["upstream"]``, followed transitively) as this process
  holds it is written as ``("u", step, token, fingerprint, name)``; reading it
  gives the value that step's checkpoint gave this process (the same
  :class:`~nbsteps.model.checkpoint.LazyValues`, so the same object), or reads
  that checkpoint from the store if this process does not hold it.

Kept: every value that is, or is held by, another value of the same step or of
an upstream step (``holder["xs"] is xs``, ``ax.figure is fig`` and
``fig.axes[0] is ax``, ``pipe.named_steps["clf"] is clf``, ``alias is df``,
``holder2["xs"] is xs`` in a later step). Not kept: an object that is no value
of its own and that two values hold (``a = [z]; b = [z]`` in one step: each
gets a copy of ``z``), or that a later step takes out of an upstream value
(``clf = pipe.named_steps["clf"]`` in a later step gets a copy unless ``clf``
is a value of some step); sharing between immutable objects (strings, numbers,
tuples, dtypes: nothing can tell them apart); a pandas column taken from a
frame (with copy-on-write it is its own object). A step that changed an
upstream object in place keeps its own copy.

References to instances and arrays are found in the pickler's
``reducer_override`` (called for them anyway) and written as a call of
:func:`nbsteps.stores.pickling._shared`; an exact list, dict, set or bytearray
can only be found by a ``persistent_id``, a Python call for every object
pickled, installed only when such a container is to be referred to.

:class:`Held` is the store's record of the checkpoint of each step this
process last wrote or restored (the values it holds).
"""

from __future__ import annotations

import threading
from typing import Any

from nbsteps.model.checkpoint import Checkpoint, LazyValues
from nbsteps.stores.pickling import shareable

_MISSING = object()


def version(cp: Checkpoint) -> Any:
    return (cp.parts or {}).get("token", cp.fingerprint)


class Refs(dict):
    """``id(object) -> (reference, object)``, and the ids of the upstream values that the
    checkpoint being written outputs again under their name (``changed``)."""

    __slots__ = ("changed",)

    def __init__(self) -> None:
        super().__init__()
        self.changed: set = set()


class Held:
    """The checkpoint of each step that this process last wrote or restored."""

    def __init__(self) -> None:
        self._held: dict[str, Checkpoint] = {}
        self._lock = threading.Lock()

    def remember(self, cp: Checkpoint) -> None:
        with self._lock:
            self._held[cp.step] = cp

    def forget(self, step: str) -> None:
        with self._lock:
            self._held.pop(step, None)

    def find(self, step: str, token: Any) -> "Checkpoint | None":
        with self._lock:
            cp = self._held.get(step)
        return cp if cp is not None and version(cp) == token else None

    def upstream_refs(self, cp: Checkpoint) -> dict:
        """``id(object) -> (reference, object)`` for the values of the upstream versions
        *cp* was computed from (transitively) that this process holds: what
        writing *cp* writes as references. Values not read yet are left out
        (nothing of *cp* can hold them), and so are values *cp* outputs under
        the same name (it changed them in place: its own version is written; their ids are
        the result's ``changed``, so that none is written as a module's object either:
        :func:`nbsteps.stores.pickling.module_value`)."""
        refs = Refs()
        own = cp.outputs if isinstance(cp.outputs, dict) else {}
        todo = list(((cp.parts or {}).get("upstream") or {}).items())
        seen: set = set()
        while todo:
            step, token = todo.pop()
            if step in seen or token is None:
                continue
            seen.add(step)
            held = self.find(step, token)
            if held is None:
                continue
            outputs = held.outputs
            lazy = isinstance(outputs, LazyValues)
            for name in list(outputs):
                if lazy and not outputs.loaded(name):
                    continue
                value = outputs[name]
                if own.get(name, _MISSING) is value:
                    refs.changed.add(id(value))
                    continue
                if not shareable(value):
                    continue
                refs.setdefault(id(value), (("u", step, token, held.fingerprint, name), value))
            todo.extend(((held.parts or {}).get("upstream") or {}).items())
        return refs
