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
        # step -> (checkpoint, its loaded values' names and ids, their entries): _entries
        self._entries: dict[str, tuple] = {}

    def remember(self, cp: Checkpoint) -> None:
        with self._lock:
            self._held[cp.step] = cp
            self._entries.pop(cp.step, None)

    def forget(self, step: str) -> None:
        with self._lock:
            self._held.pop(step, None)
            self._entries.pop(step, None)

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
        with self._lock:  # one look at what is held, for the whole walk
            held_now = dict(self._held)
        setdefault, changed = refs.setdefault, refs.changed
        while todo:
            step, token = todo.pop()
            if step in seen or token is None:
                continue
            seen.add(step)
            held = held_now.get(step)
            if held is None or version(held) != token:
                continue
            for name, value, entry in self._entries_of(held, token):
                if own.get(name, _MISSING) is value:
                    changed.add(id(value))
                elif entry is not None:
                    setdefault(id(value), entry)
            todo.extend(((held.parts or {}).get("upstream") or {}).items())
        return refs

    def _entries_of(self, held: Checkpoint, token: Any) -> list:
        """``(name, value, (reference, value) or None)`` for each loaded value of *held*
        (None: not shareable), in its order; kept per step while *held* is the
        checkpoint held, of version *token*, and its loaded values are the same objects
        under the same names (compared in C), so that a put walking many upstream steps
        neither redoes them in Python nor makes their references again."""
        outputs = held.outputs
        lazy = isinstance(outputs, LazyValues)
        loaded = outputs._values if lazy else outputs  # what is read: the same objects
        sig = (token, tuple(loaded), tuple(map(id, loaded.values())))
        cached = self._entries.get(held.step)
        if cached is not None and cached[0] is held and cached[1] == sig:
            return cached[2]
        entries = []
        for name in list(outputs):
            if lazy and not outputs.loaded(name):
                continue
            value = outputs[name]
            ref = (("u", held.step, token, held.fingerprint, name), value) if shareable(value) else None
            entries.append((name, value, ref))
        with self._lock:
            if self._held.get(held.step) is held:
                self._entries[held.step] = (held, sig, entries)
        return entries
