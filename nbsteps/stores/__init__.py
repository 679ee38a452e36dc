"""Checkpoint stores behind one small protocol (:class:`Store`).

``memory`` keeps references in the kernel; a directory keeps signed files so a
new kernel resumes. ``open_store`` chooses; nothing else imports an
implementation.
"""

from __future__ import annotations

from nbsteps.model.checkpoint import Checkpoint
from nbsteps.run.attempt import live
from nbsteps.stores.base import Store
from nbsteps.stores.memory import MemoryStore

__all__ = ["Checkpoint", "Store", "MemoryStore", "open_store"]


def _pickles(value) -> bool:
    """Whether *value* can be pickled, as a directory store pickles it (leaving it as it was)."""
    from nbsteps.stores.encoding import NullSink, pickle_to
    from nbsteps.stores.pickling import DroppedUnpicklable

    try:
        pickle_to(NullSink(), value)
    except DroppedUnpicklable:
        try:
            pickle_to(NullSink(), value, faithful=False)
        except Exception:
            return False
    except Exception:
        return False
    return True


live.pickles = _pickles  # values with no versions are told apart by the stores' pickler


def open_store(spec: "str | Store | None", max_size: "int | str | None" = "default") -> Store:
    """``None``/``"memory"`` → MemoryStore; a path → DiskStore; a Store as is.
    *max_size* bounds a directory store (``"2GB"``; default 10 GB)."""
    from nbsteps.errors import StoreError

    if spec is None or isinstance(spec, Store):
        return spec or MemoryStore()
    if str(spec) == "memory":
        return MemoryStore()
    from nbsteps.stores.disk import DiskStore

    try:
        return DiskStore(spec, max_size=max_size)
    except ValueError as exc:  # a size nbsteps cannot read
        raise StoreError(str(exc)) from None
    except OSError as exc:  # not a directory, no permission, a key file others can write
        message = str(exc)
        raise StoreError(
            message if message.startswith("nbsteps") else f"cannot use {spec} as checkpoint store: {exc}"
        ) from None
