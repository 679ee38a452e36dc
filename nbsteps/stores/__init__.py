"""Checkpoint stores behind one small protocol (:class:`Store`).

``memory`` keeps references in the kernel; a directory keeps signed files so a
new kernel resumes. ``open_store`` chooses; nothing else imports an
implementation.
"""
from __future__ import annotations

from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores.base import Store
from nbsteps.stores.memory import MemoryStore

__all__ = ["Checkpoint", "Store", "MemoryStore", "open_store"]


def open_store(spec: "str | Store | None") -> Store:
    """``None``/``"memory"`` → MemoryStore; a path → DiskStore; a Store as is."""
    if spec is None or isinstance(spec, Store):
        return spec or MemoryStore()
    if str(spec) == "memory":
        return MemoryStore()
    from nbsteps.errors import StoreError
    from nbsteps.stores.disk import DiskStore

    try:
        return DiskStore(spec)
    except OSError as exc:  # not a directory, no permission, a key file others can write
        message = str(exc)
        raise StoreError(message if message.startswith("nbsteps") else
                         f"cannot use {spec} as checkpoint store: {exc}") from None
