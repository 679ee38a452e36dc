"""The size limit of a directory store: least-recently-used eviction.

A store directory holds one checkpoint per step and fingerprint. Its size (the
store's own files in its step folders) is counted once per process, on the
first write, then kept up to date by each write of this process. When it passes
``max_size`` the store is scanned again (other kernels write to it too) and the
checkpoints used least recently (the modification time of their metadata,
touched on every restore) are removed until it is back under 90 % of the
limit. The checkpoint just written is never removed, even when it alone is
larger than the limit, nor one that a live kernel restored and has not read
yet (pinned: :mod:`nbsteps.stores.pins`).

Removing a checkpoint takes its step's lock, checks that its metadata is the
one that was scanned (not replaced or used since), removes the metadata (the
checkpoint is gone from then on) and then the value files no metadata names.
Like everything else in the store, nothing is followed through a link and only
files with the store's own names are removed.

:class:`Budget` gets what it works on, not the store: the store directory
(:class:`~nbsteps.stores.folders.Folders`), the pins it must not evict
(:class:`~nbsteps.stores.pins.Pins`) and the limit. The store tells it what
each write added (``added``) and when to count again (``forget``), and reads
``evicted`` to know that versions left the store.
"""

from __future__ import annotations

import os
import threading
from typing import NamedTuple

from nbsteps.stores import layout
from nbsteps.stores.folders import Folders
from nbsteps.stores.fs import LinkRefused, open_dir
from nbsteps.stores.layout import Corrupt, ours
from nbsteps.stores.pins import Pins

LOW_WATER = 0.9  # evict down to this fraction of the limit


class Version(NamedTuple):
    used_ns: int  # mtime of the metadata: last write or restore
    dirname: str
    meta: str
    nbytes: int
    raw: bytes


class Budget:
    """Usage accounting and eviction of one store directory (*folders*),
    bounded by *limit* bytes (None: no limit); never evicts what *pins* pin."""

    def __init__(self, folders: Folders, pins: Pins, limit: "int | None") -> None:
        self.folders = folders
        self.pins = pins
        self.limit = limit
        self.usage: "int | None" = None  # bytes, None until counted
        self._lock = threading.Lock()
        self.evicted = 0  # checkpoints removed by this process (for tests and messages)

    def forget(self) -> None:
        """Count again on the next write (after a drop)."""
        self.usage = None

    def added(self, nbytes: int, protect: "tuple[str, str]") -> None:
        """A write of this process added *nbytes* (negative: freed); evict if
        the store is now over its limit, never the checkpoint *protect*
        (``(dirname, meta file)``)."""
        limit = self.limit
        if limit is None:
            return
        with self._lock:
            if self.usage is None:
                self.usage = self._count()
            else:
                self.usage += nbytes
            if self.usage <= limit:
                return
            self.usage = self._evict(protect, int(limit * LOW_WATER))

    # -- scanning ---------------------------------------------------------------
    def _folders(self, root: int):
        with os.scandir(root) as it:
            names = [e.name for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        for name in names:
            try:
                fd = open_dir(name, root, self.folders.directory / name)
            except (LinkRefused, OSError):
                continue
            try:
                yield name, fd
            finally:
                os.close(fd)

    def _count(self) -> int:
        """Bytes of the store's own files in every step folder."""
        total = 0
        try:
            with self.folders.root() as root:
                for _, folder in self._folders(root):
                    with os.scandir(folder) as it:
                        for e in it:
                            if ours(e.name) and e.is_file(follow_symlinks=False):
                                try:
                                    total += e.stat(follow_symlinks=False).st_size
                                except FileNotFoundError:
                                    pass
        except OSError:
            pass
        return total

    def versions(self) -> "tuple[list[Version], int]":
        """Every checkpoint of the store (oldest use first) and the bytes of
        files that belong to none (debris, removed by the step's next write)."""
        found: list[Version] = []
        loose = 0
        with self.folders.root() as root:
            for dirname, folder in self._folders(root):
                sizes: dict[str, int] = {}
                with os.scandir(folder) as it:
                    for e in it:
                        if ours(e.name) and e.is_file(follow_symlinks=False):
                            try:
                                sizes[e.name] = e.stat(follow_symlinks=False).st_size
                            except FileNotFoundError:
                                pass
                for used, meta, size in layout.list_metas(folder):
                    try:
                        raw = layout.read_meta_bytes(folder, meta)
                        files = (
                            [e["file"] for e in layout.parse_meta(raw, None, meta)["values"]] if raw else []
                        )
                    except (Corrupt, OSError):
                        raw, files = b"", []
                    nbytes = sizes.pop(meta, size) + sum(sizes.pop(f, 0) for f in files)
                    found.append(Version(used, dirname, meta, nbytes, raw or b""))
                loose += sum(sizes.values())
        found.sort()
        return found, loose

    # -- evicting -----------------------------------------------------------------
    def _evict(self, protect: "tuple[str, str]", target: int) -> int:
        try:
            versions, loose = self.versions()
        except OSError:
            return 0
        total = loose + sum(v.nbytes for v in versions)
        for v in versions:
            if total <= target:
                break
            if (v.dirname, v.meta) == protect:
                continue
            if self._remove(v):
                total -= v.nbytes
                self.evicted += 1
        return total

    def _remove(self, v: Version) -> bool:
        """Remove checkpoint *v* if it is still the one scanned and unused since."""
        try:
            with self.folders.root() as root:
                return self.folders.remove_checkpoint(
                    root,
                    v.dirname,
                    v.meta,
                    pinned=self.pins.pinned,
                    unchanged=lambda st, raw: st.st_mtime_ns == v.used_ns and raw == v.raw,
                )
        except (LinkRefused, OSError):
            return False
