"""Dead checkpoints of a directory store, and their collection.

A step's fingerprint covers the *versions* of its upstream steps: the execution
token of each (``parts["upstream"] = {step: token}`` in the signed metadata;
order-only edges contribute none). A checkpoint's own version is
``parts["token"]`` (the fingerprint, for a checkpoint written without one).
When a step executes again with the same fingerprint (``--force``,
``--no-cache``, a lost checkpoint) its new checkpoint replaces the old one, and
the old version is gone for good: no kernel can ever compute a fingerprint that
matches a downstream checkpoint made from it. Such a checkpoint is **dead**:

    a checkpoint is dead when some upstream version it was computed from is
    held neither by a checkpoint of that upstream step in the store, nor by
    this process (the version it last wrote or restored of that step, which
    counts only while that version is not dead itself).

Steps without upstream are never dead by this rule; the rule is transitive
(collecting a checkpoint can make its downstream dead), so collection walks in
rounds, upstream first: a round removes what is dead given everything that is
still there, and a checkpoint that could not be removed keeps its downstream.

Never removed: a checkpoint pinned by a live kernel (:mod:`nbsteps.stores.pins`);
one whose metadata changed or was used (restored) since the scan; one whose
metadata cannot be verified (the reader reports and removes it); one whose
missing upstream version appeared meanwhile. The last check runs under the
checkpoint's step lock, after re-reading the upstream step's folder: every
kernel writes an upstream checkpoint before the downstream steps that use it
even start, so a downstream checkpoint seen under its lock has its upstream
visible (another kernel that just wrote both is never raced).

When: right after a ``put`` that replaced a checkpoint of another version, a
size eviction or a ``drop`` (a version left the store); by
:meth:`DiskStore.collect_garbage` and ``%steps store``. Like everything else in
the store: under the step's lock, never through a link, only the store's own
file names (:func:`nbsteps.stores.writing.collect`).

:class:`Garbage` gets what it works on, not the store: the store directory
(:class:`~nbsteps.stores.folders.Folders`), the key that verifies metadata,
the checkpoints kept in memory (:class:`~nbsteps.stores.unwritten.Unwritten`,
held by this process) and the pins (:class:`~nbsteps.stores.pins.Pins`). The
store tells it which versions this process holds (``hold``, ``release``) and
that a version left the store (``pending``), and counts its size again
(:class:`~nbsteps.stores.budget.Budget`) after a collection that removed
something.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pickle
import threading
from typing import Any, NamedTuple

from nbsteps.stores import layout
from nbsteps.stores.folders import Folders
from nbsteps.stores.layout import Corrupt, dirname_of, ours
from nbsteps.stores.pins import Pins
from nbsteps.stores.unwritten import Unwritten


class Collected(NamedTuple):
    """What one collection removed: checkpoints and bytes."""

    checkpoints: int = 0
    nbytes: int = 0

    def __add__(self, other: "Collected") -> "Collected":  # type: ignore[override]
        return Collected(self.checkpoints + other.checkpoints, self.nbytes + other.nbytes)

    def describe(self) -> str:
        from nbsteps.formatting import fmt_bytes

        if not self.checkpoints:
            return "no dead checkpoints"
        s = "" if self.checkpoints == 1 else "s"
        return f"{self.checkpoints} dead checkpoint{s} ({fmt_bytes(self.nbytes)})"


class Node(NamedTuple):
    """One checkpoint (on disk, or a version this process holds)."""

    step: str
    version: Any
    upstream: tuple  # ((step, version), ...), versions not None
    dirname: str = ""  # '' for a version held by this process
    meta: str = ""
    stamp: tuple = ()  # (inode, size, mtime_ns) of the metadata when scanned
    digest: bytes = b""  # of its bytes
    nbytes: int = 0
    removable: bool = False  # verified, ours: may be collected


def describe_parts(parts: Any, fingerprint: Any) -> "tuple[Any, tuple] | None":
    """(version, upstream pairs) of a checkpoint's fingerprint parts; None if
    they cannot be understood (then nothing is concluded from them)."""
    if not isinstance(parts, dict):
        return None
    version = parts.get("token", fingerprint)
    upstream = parts.get("upstream") or {}
    if not isinstance(upstream, dict):
        return None
    try:
        hash(version)
        pairs = tuple(sorted(((str(d), t) for d, t in upstream.items() if t is not None), key=lambda p: p[0]))
        for _, t in pairs:
            hash(t)
    except TypeError:
        return None
    return version, pairs


def _parts_of(body: dict, verified: bool) -> Any:
    if "parts_pickle" in body:
        if not verified:
            return None  # never unpickle what is not verified
        return pickle.loads(base64.b64decode(body["parts_pickle"]))
    return body.get("parts") or {}


def version_of(raw: "bytes | None", key: bytes, name: str) -> Any:
    """The version of the checkpoint whose metadata bytes are *raw*; None if
    there is none or it cannot be read."""
    if raw is None:
        return None
    try:
        body = layout.parse_meta(raw, key, name)
        got = describe_parts(_parts_of(body, True), body.get("fingerprint"))
    except Exception:
        return None
    return got[0] if got is not None else None


class Garbage:
    """Dead-checkpoint collection of one store directory (*folders*, whose
    metadata *key* signs); the versions of *unwritten* are held by this
    process, and nothing *pins* pin is removed."""

    def __init__(self, folders: Folders, key: bytes, unwritten: Unwritten, pins: Pins) -> None:
        self.folders = folders
        self.key = key
        self.unwritten = unwritten
        self.pins = pins
        self._lock = threading.Lock()
        self._guard = threading.Lock()  # protects _live
        #: the version of each step this process last wrote or restored: step -> (version, upstream)
        self._live: dict[str, tuple] = {}
        self._cache: dict[tuple, tuple] = {}  # (dirname, meta) -> (stamp, node | None, readable)
        self.pending = False  # a version left the store: collect after this put
        self.collected = Collected()  # by this process, since the store was opened
        self._reported = Collected()  # part of it that %steps store has reported

    # -- what this process holds ------------------------------------------------
    def hold(self, step: str, parts: Any, fingerprint: Any) -> None:
        """This process holds (wrote, is writing or restored) that checkpoint of *step*."""
        got = describe_parts(parts, fingerprint)
        with self._guard:
            if got is None:
                self._live.pop(step, None)
            else:
                self._live[step] = got

    def release(self, step: str) -> None:
        with self._guard:
            self._live.pop(step, None)

    def _live_nodes(self) -> "list[Node]":
        with self._guard:
            nodes = [Node(step, version, upstream) for step, (version, upstream) in self._live.items()]
        for cp in self.unwritten.checkpoints():  # kept in memory (could not be written): held here too
            got = describe_parts(cp.parts, cp.fingerprint)
            if got is not None:
                nodes.append(Node(cp.step, got[0], got[1]))
        return nodes

    # -- scanning ------------------------------------------------------------------
    def _scan(self, root: int) -> "list[Node]":
        """Every checkpoint of the store (metadata read again only when it changed)."""
        nodes: list[Node] = []
        seen: set = set()
        with os.scandir(root) as it:  # step folders, in a fixed order
            names = sorted(
                e.name for e in it if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
            )
        for dirname in names:
            try:
                with self.folders.folder(root, dirname) as folder:
                    nodes.extend(self._scan_folder(dirname, folder, seen))
            except OSError:  # gone meanwhile, a link (refused), unreadable: nothing from it
                continue
        for key in [k for k in self._cache if k not in seen]:
            del self._cache[key]
        return nodes

    def _scan_folder(self, dirname: str, folder: int, seen: "set | None" = None) -> "list[Node]":
        nodes = []
        sizes: dict[str, int] = {}
        metas = []
        with os.scandir(folder) as it:
            for e in it:
                if not ours(e.name) or not e.is_file(follow_symlinks=False):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                sizes[e.name] = st.st_size
                if layout.is_meta(e.name):
                    metas.append((e.name, (st.st_ino, st.st_size, st.st_mtime_ns)))
        for meta, stamp in metas:
            key = (dirname, meta)
            if seen is not None:
                seen.add(key)
            hit = self._cache.get(key)
            if hit is None or hit[0] != stamp:
                hit = (stamp, self._read(dirname, folder, meta, stamp))
                self._cache[key] = hit
            node = hit[1]
            if node is not None:
                files = node.nbytes  # value files listed: sizes on disk now
                nodes.append(node._replace(nbytes=sizes.get(meta, 0) + files))
        return nodes

    def _read(self, dirname: str, folder: int, meta: str, stamp: tuple) -> "Node | None":
        """The node of one metadata file; ``nbytes`` holds its value files' sizes."""
        try:
            raw = layout.read_meta_bytes(folder, meta)
        except (Corrupt, OSError):
            return None
        if raw is None:
            return None
        try:
            body, verified = layout.parse_meta(raw, self.key, meta), True
        except Corrupt:
            try:  # not verified: kept (the reader reports it), its version still counts as held
                body, verified = layout.parse_meta(raw, None, meta), False
            except Corrupt:
                return None
        step = body.get("step")
        try:
            got = describe_parts(_parts_of(body, verified), body.get("fingerprint"))
        except Exception:
            got = None
        if not isinstance(step, str) or got is None:
            return None  # nothing known: neither held nor collected
        removable = verified and dirname_of(step) == dirname
        values = sum(int(e.get("size", 0)) for e in body["values"])
        return Node(
            step,
            got[0],
            got[1],
            dirname,
            meta,
            stamp,
            hashlib.blake2b(raw, digest_size=16).digest(),
            values,
            removable,
        )

    def take_report(self) -> Collected:
        """What was collected since the last call."""
        with self._lock:
            done = Collected(
                self.collected.checkpoints - self._reported.checkpoints,
                self.collected.nbytes - self._reported.nbytes,
            )
            self._reported = self.collected
        return done

    # -- collecting ------------------------------------------------------------------
    def collect(self, auto: bool = False) -> Collected:
        """Remove the dead checkpoints (see the module). *auto*: only if a
        version left the store since the last collection."""
        if auto and not self.pending:
            return Collected()
        with self._lock:
            self.pending = False
            with self.folders.root() as root:
                done = self._collect(root)
            self.collected = self.collected + done
        return done

    def _collect(self, root: int) -> Collected:
        alive: dict[int, Node] = dict(enumerate(self._scan(root) + self._live_nodes()))
        keep: set[int] = set()  # could not be removed: stays, and holds its version
        gone: set[tuple] = set()  # (step, version) held by this process, found dead
        removed = Collected()
        while True:
            held: dict[str, set] = {}
            for node in alive.values():
                held.setdefault(node.step, set()).add(node.version)
            dead = []
            for i, node in alive.items():
                if i not in keep:
                    missing = [(d, t) for d, t in node.upstream if t not in held.get(d, ())]
                    if missing:
                        dead.append((i, missing))
            if not dead:
                return removed
            for i, missing in dead:
                node = alive[i]
                if not node.dirname:  # a version this process holds: dead too, nothing to remove
                    del alive[i]
                    gone.add((node.step, node.version))
                elif node.removable and self._remove(root, node, missing, gone):
                    del alive[i]
                    removed = removed + Collected(1, node.nbytes)
                else:
                    keep.add(i)

    def _remove(self, root: int, node: Node, missing: list, gone: set) -> bool:
        """Remove *node* under its step's lock if it is still the checkpoint
        scanned, not pinned, unused since, and its missing upstream versions
        are still missing."""

        def unchanged(st: os.stat_result, raw: bytes) -> bool:
            if (
                (st.st_ino, st.st_size, st.st_mtime_ns) != node.stamp
                or raw is None
                or hashlib.blake2b(raw, digest_size=16).digest() != node.digest
            ):
                return False  # written or restored since the scan: keep it
            # written meanwhile (another kernel): not dead
            return not any(self._held_now(root, dep, version, gone) for dep, version in missing)

        removed = self.folders.remove_checkpoint(
            root, node.dirname, node.meta, pinned=self.pins.pinned, unchanged=unchanged
        )
        if removed:
            self._cache.pop((node.dirname, node.meta), None)
        return removed

    def _held_now(self, root: int, step: str, version: Any, gone: set) -> bool:
        """Whether *version* of *step* is in the store now (its folder read
        again) or held by this process (and not found dead: *gone*)."""
        if (step, version) not in gone:
            with self._guard:
                live = self._live.get(step)
            if live is not None and live[0] == version:
                return True
            for cp in self.unwritten.checkpoints(step):
                got = describe_parts(cp.parts, cp.fingerprint)
                if got is not None and got[0] == version:
                    return True
        dirname = dirname_of(step)
        try:
            with self.folders.folder(root, dirname) as folder:
                return any(
                    n.step == step and n.version == version for n in self._scan_folder(dirname, folder)
                )
        except FileNotFoundError:
            return False
        except OSError:
            return True  # cannot tell: keep
