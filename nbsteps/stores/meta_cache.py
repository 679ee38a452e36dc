"""The metadata files one process has read and verified, kept while they do not change.

A restore reads each step's metadata several times (what the checkpoint recorded when the
cell registers, the preview of a run on shared state, then the checkpoint itself, and the
upstream steps of a cell on shared state again at every cell below it). Verifying the
signature and parsing the JSON every time was most of what reading a checkpoint cost.
:class:`MetaCache` keeps, per metadata file of one store directory, its bytes, its verified
body and the identity of the file they were read from (``os.fstat`` of the descriptor that
was read: device, inode, size, mode, modification and change times). A later read first
takes the identity of the file now (``os.stat`` relative to the step folder's descriptor,
never through a link) and uses the kept body only if it is the same:

- another process's ``put`` renames a new file into place: another inode (a file created
  while the old one existed never has its number), and nbsteps stamps its modification
  time to the nanosecond (``fs.touch``);
- a file changed in place (tampered with, or written by hand) gets a new change time,
  which no one can set back (``os.utime`` sets the modification time, and changes the
  change time too);
- a file that is gone, or a link now, is read (and refused) as before.

A file whose change time is so recent that a change in the same tick of the file
system's clock could leave its times as they are (``RACY_NS``; ``COARSE_RACY_NS`` when
the change time is a whole second: a file system with 1-2 s timestamps, ext4's small
inodes, FAT, an old NFS server) is *racy*, as git calls such index entries: it is read
again every time, and only when its bytes are the very bytes verified before are the
signature check and the parsing skipped (the same bytes and key verify the same way).
Bytes that differ are verified again; an entry whose file fails verification is
dropped, so a tampered file is reported every time it is read. The store forgets a
step's entries itself when it writes or drops the step, or removes an untrusted
checkpoint.

Nothing but verified bytes is ever kept. A change in place more than ``RACY_NS`` after
the change the cache saw is in another tick, so its change time differs; only a clock
set back, or a file server whose clock lags this machine's, could hide one: then the
cache returns metadata that was signed with the key, replaced since; never untrusted bytes.
"""

from __future__ import annotations

import os
import threading
import time

from nbsteps.stores import layout

#: a metadata file changed less than this before it was read is compared byte for byte
#: at every read: ten ticks of the kernel's clock at HZ=100 (the times file systems stamp)
RACY_NS = 100 * 10**6
#: the same for a change time that is a whole second (a file system with 1-2 s timestamps)
COARSE_RACY_NS = 3 * 10**9
#: entries kept (metadata files are a few kB): the oldest read go first
LIMIT = 4096


def identity(st: os.stat_result) -> tuple:
    """What changes when the file at a name is replaced, rewritten or touched."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)


class MetaCache:
    """Verified metadata of one store directory, by ``(step folder, file name)``."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        # (dirname, name) -> (identity, racy, raw, body)
        self._entries: dict[tuple[str, str], tuple[tuple, bool, bytes, dict]] = {}
        self._guard = threading.Lock()
        #: metadata files read and verified / taken from the cache (for tests and benchmarks)
        self.reads = self.hits = 0

    def read(self, folder: int, dirname: str, name: str) -> "tuple[bytes, dict] | None":
        """The verified metadata file *name* of the step folder *folder* (named
        *dirname*): raw bytes and body; None if absent. Raises
        :class:`~nbsteps.stores.layout.Corrupt` as ``layout.read_meta`` does."""
        slot = (dirname, name)
        kept = self._entries.get(slot)
        if kept is not None and not kept[1]:
            try:
                st = os.stat(name, dir_fd=folder, follow_symlinks=False)
            except FileNotFoundError:
                self.forget(dirname, name)
                return None
            if identity(st) == kept[0]:
                self.hits += 1
                return kept[2], kept[3]
        self.forget(dirname, name)
        raw, st = layout.read_meta_stat(folder, name)
        if raw is None or st is None:
            return None
        if kept is not None and raw == kept[2]:
            body = kept[3]  # the very bytes verified before: verified the same way again
            self.hits += 1
        else:
            body = layout.parse_meta(raw, self.key, name)  # Corrupt: not kept
            self.reads += 1
        racy = time.time_ns() - st.st_ctime_ns < (COARSE_RACY_NS if st.st_ctime_ns % 10**9 == 0 else RACY_NS)
        with self._guard:
            if len(self._entries) >= LIMIT:
                for old in list(self._entries)[: LIMIT // 4]:
                    self._entries.pop(old, None)
            self._entries[slot] = (identity(st), racy, raw, body)
        return raw, body

    def mtime_ns(self, dirname: str, name: str) -> "int | None":
        """The modification time of metadata file *name* of *dirname* when it was last read
        or found unchanged (:meth:`read`); None if nothing is kept of it."""
        kept = self._entries.get((dirname, name))
        return kept[0][4] if kept is not None else None

    def forget(self, dirname: str, name: "str | None" = None) -> None:
        """Drop what is kept of metadata file *name* of *dirname* (None: every one of it)."""
        with self._guard:
            if name is not None:
                self._entries.pop((dirname, name), None)
            else:
                for slot in [s for s in self._entries if s[0] == dirname]:
                    del self._entries[slot]
