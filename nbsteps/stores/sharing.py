"""Identity kept across a restore: objects shared between values stay shared.

In the kernel that ran a notebook, values share objects: ``holder = {"xs": xs}``,
``fig, ax = plt.subplots()`` (``ax.figure is fig``), a pipeline and the
estimator inside it, a later step's ``models = {"pipe": pipe}``. Pickled one
value per file, each would come back with its own copies. So a directory store
writes what another value already holds as a **reference** to it (a pickle
persistent id), never as a copy:

- **within a checkpoint**: values are written in order (DataFrames and Series
  first, what the step printed last); an object that an earlier value of the
  same checkpoint wrote -- the value itself or any mutable object inside it,
  by the pickler's memo -- is written as ``("v", position, memo index)``
  (``-1``: the whole value). Reading such a value reads the values it refers
  to first (once: they are cached per checkpoint, and the unpickler's memo
  gives back the very objects).
- **across steps**: an object that is a value of an upstream step (the version
  this step used: ``parts["upstream"]``, followed transitively) as this process
  holds it is written as ``("u", step, token, fingerprint, name)``; reading it
  gives the value that step's checkpoint gave this process (the same
  :class:`~nbsteps.model.checkpoint.LazyValues`, so the same object), or reads
  that checkpoint from the store if this process does not hold it.

Kept: identity of whole values across steps (``holder2["xs"] is xs``,
``pipe.named_steps["clf"] is clf`` when ``clf`` is a value of an upstream step,
``alias is df``), and of every mutable object shared between values of one
step. Not kept: an object *inside* an upstream value that a later step holds
without its container (``clf = pipe.named_steps["clf"]`` in a later step gets
a copy, unless ``clf`` is itself a value of some step); sharing between
immutable objects (strings, numbers, tuples: nothing can tell them apart); a
pandas column taken from a frame (with copy-on-write it is its own object).
A step that changed an upstream object in place keeps its own copy.

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
        the same name (it changed them in place: its own version is written)."""
        refs: dict = {}
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
                if not shareable(value) or own.get(name, _MISSING) is value:
                    continue
                refs.setdefault(id(value), (("u", step, token, held.fingerprint, name), value))
            todo.extend(((held.parts or {}).get("upstream") or {}).items())
        return refs
