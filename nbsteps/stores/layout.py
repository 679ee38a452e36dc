"""The on-disk format of one step folder, and how it is read and verified.

A store directory::

    <directory>/
      .locks/<step>.lock          # per-step lock files (flock); never removed
      <step>/
        <key>.meta                # one signed metadata file per checkpoint (per fingerprint),
        <key>.meta                #   <key> = blake2b(fingerprint)[:24 hex]; written last
        <token>-0.arrow           # one file per value: outputs, then the result
        <token>-1.pkl             # (<token>: 16 hex, fresh for every put)

A step's folder is named after the step when the name is lower case, else the
name with a hash suffix (so ``Load`` and ``load`` stay apart on case-insensitive
file systems). A step keeps one checkpoint per fingerprint; the one whose
metadata was most recently written or used (its modification time, touched on
every restore) is the latest, which is what ``peek`` shows and what
least-recently-used eviction removes last. A ``checkpoint.meta`` written by
nbsteps before version 2 of this layout is read as one more checkpoint.

A metadata file is a header line ``nbsteps-checkpoint 1 blake3=<hex>``
followed by the JSON body; the signature (keyed BLAKE3) covers the header's
format tag and algorithm and the exact body bytes. The body holds the step,
fingerprint and its parts, duration, finish time, and for every value its file,
encoding, size and the MAC of the file's bytes (``"mac": "blake3:<hex>"``).
Checkpoints written before issue 26 are signed with HMAC-SHA256 (header
``nbsteps-checkpoint 1 hmac-sha256=<hex>``, signed bytes without the algorithm,
``"hmac": "<hex>"`` per value): they are read and verified as they are. Nothing
is unpickled or decoded before its MAC has been checked.

A pickled value may refer to other values instead of holding copies of them
(:mod:`nbsteps.stores.sharing`): its entry lists the positions of the values of
the same checkpoint it refers to (``"refs"``) and the upstream values
(``"up"``: step, version, fingerprint, name); a value others refer to by memo
index has ``"memo": true``. :class:`Loads` reads them in that order, once each.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import re
from typing import Any

from nbsteps import config
from nbsteps.model.checkpoint import Checkpoint, LazyValues
from nbsteps.stores import signing
from nbsteps.stores.encoding import decode
from nbsteps.stores.fs import LinkRefused, open_file
from nbsteps.stores.signing import StreamingMac

FORMAT = 1
META = "checkpoint.meta"  # the single metadata file of layout 1 (still read)
LOCKS = ".locks"
HEADER = re.compile(rb"nbsteps-checkpoint (\d+) (hmac-sha256|blake3)=([0-9a-f]{64})")
META_FILE = re.compile(r"[0-9a-f]{24}\.meta")
VALUE_FILE = re.compile(r"[0-9a-f]{16}-\d+\.(parquet|pkl|arrow)")
_PLAIN_NAME = re.compile(r"[a-z0-9_][a-z0-9_-]{0,99}")
CHUNK = 8 << 20  # read size when verifying files
#: value files up to this size are verified when their step is restored (lazily); larger
#: ones when they are read (NBSTEPS_VERIFY_AT_RESTORE, bytes)
VERIFY_AT_RESTORE = config.verify_at_restore()
MAX_META = 64 << 20  # a metadata file larger than this is not ours


def dirname_of(step: str) -> str:
    """Folder of a step: the name itself when it is safe on every file system."""
    if _PLAIN_NAME.fullmatch(step):
        return step
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", step)[:60]
    return f"{safe}~{hashlib.sha256(step.encode()).hexdigest()[:12]}"


def meta_name(fingerprint: str) -> str:
    """The metadata file of the checkpoint with *fingerprint*."""
    return hashlib.blake2b(fingerprint.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest() + ".meta"


def is_meta(name: str) -> bool:
    return name == META or bool(META_FILE.fullmatch(name))


def ours(name: str) -> bool:
    """Whether *name* is one the store writes inside a step folder."""
    return is_meta(name) or name.startswith(".tmp-") or bool(VALUE_FILE.fullmatch(name))


def signed_bytes(data: bytes, algorithm: str = signing.HMAC_SHA256) -> bytes:
    # the format tag (and the algorithm) is signed with the body, so a body cannot be
    # replayed under another format
    if algorithm == signing.HMAC_SHA256:
        return b"nbsteps-checkpoint %d\n" % FORMAT + data
    return b"nbsteps-checkpoint %d %s\n" % (FORMAT, algorithm.encode()) + data


def header(key: bytes, data: bytes, algorithm: "str | None" = None) -> bytes:
    algorithm = algorithm or signing.preferred()
    return b"nbsteps-checkpoint %d %s=%s\n" % (
        FORMAT,
        algorithm.encode(),
        signing.sign(key, signed_bytes(data, algorithm), algorithm).encode(),
    )


class Corrupt(Exception):
    """A checkpoint that must not be trusted: *file* has *problem*; *meta* is
    the metadata file it belongs to and its bytes as read (None: unreadable)."""

    def __init__(self, file: str, problem: str, meta: "bytes | None", meta_file: str = META) -> None:
        super().__init__(f"{file} {problem}")
        self.file, self.problem, self.meta, self.meta_file = file, problem, meta, meta_file


def list_metas(folder: int) -> "list[tuple[int, str, int]]":
    """``(mtime_ns, name, size)`` of the metadata files in *folder* (regular
    files only: a link is not listed), most recently used last."""
    out = []
    with os.scandir(folder) as it:
        for e in it:
            if is_meta(e.name):
                try:
                    st = e.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if e.is_file(follow_symlinks=False):
                    out.append((st.st_mtime_ns, e.name, st.st_size))
    out.sort()
    return out


def read_meta_bytes(folder: int, name: str = META) -> "bytes | None":
    return read_meta_stat(folder, name)[0]


def read_meta_stat(folder: int, name: str = META) -> "tuple[bytes | None, os.stat_result | None]":
    """The bytes of metadata file *name* and the ``fstat`` of the descriptor
    they were read from (None, None if absent); never through a link."""
    try:
        fd = open_file(name, folder, name)
    except FileNotFoundError:
        return None, None
    except LinkRefused as exc:
        raise Corrupt(name, "is a symbolic link or not a regular file", None, name) from exc
    try:
        st = os.fstat(fd)
        if st.st_size > MAX_META:
            raise Corrupt(
                name, f"is too large ({st.st_size} bytes) to be a checkpoint's metadata", None, name
            )
        # os.read, not a buffered file object over the descriptor (~3 us less, once a restored cell)
        chunks, left = [], MAX_META + 1
        while left > 0:
            chunk = os.read(fd, min(left, max(st.st_size + 1, 1 << 16)))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return (chunks[0] if len(chunks) == 1 else b"".join(chunks)), st
    finally:
        os.close(fd)


def parse_meta(raw: bytes, key: "bytes | None", name: str = META) -> dict:
    """The body of metadata *raw*, verified with *key* (None: not verified,
    only for deciding which of the store's own files are still referenced)."""
    header, newline, data = raw.partition(b"\n")
    match = HEADER.fullmatch(header)
    if not newline or match is None:
        raise Corrupt(name, "is not signed (no nbsteps signature header)", raw, name)
    if int(match.group(1)) != FORMAT:
        raise Corrupt(name, f"has an unknown format {match.group(1).decode()}", raw, name)
    algorithm = match.group(2).decode()
    if key is not None and not signing.verify(
        key, signed_bytes(data, algorithm), match.group(3).decode(), algorithm
    ):
        raise Corrupt(
            name, "does not match its signature (tampered with, or signed with another key)", raw, name
        )
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or not isinstance(body.get("values"), list):
            raise ValueError("not a checkpoint")
        if not isinstance(body.get("fingerprint"), str):
            raise ValueError("no fingerprint")
        for entry in body["values"]:
            if not isinstance(entry, dict) or not VALUE_FILE.fullmatch(str(entry.get("file"))):
                raise ValueError(f"bad value entry {entry!r}")
            if not isinstance(entry.get("size"), int) or entry.get("role") not in (
                "output",
                "result",
                "captured",
            ):
                raise ValueError(f"bad value entry {entry!r}")
    except ValueError as exc:  # signed but malformed: written by a buggy or newer writer
        raise Corrupt(name, f"is malformed ({exc})", raw, name) from None
    return body


def read_meta(folder: int, key: bytes, name: str = META) -> "tuple[bytes, dict] | None":
    """The verified metadata file *name* of *folder* (raw bytes and body); None if absent."""
    raw = read_meta_bytes(folder, name)
    if raw is None:
        return None
    return raw, parse_meta(raw, key, name)


def referenced(folder: int) -> "set[str]":
    """The value files that some metadata file of *folder* names (metadata that
    cannot be parsed names nothing). Signatures are not checked: a forged list
    can only keep files, never get one removed."""
    names: set[str] = set()
    for _, meta, _ in list_metas(folder):
        try:
            raw = read_meta_bytes(folder, meta)
            if raw is not None:
                names.update(e["file"] for e in parse_meta(raw, None, meta)["values"])
        except (Corrupt, OSError):
            continue
    return names


def _open_value(folder: int, name: str, entry: dict, meta: bytes, meta_file: str):
    """The value file *name*, opened (never through a link) and of the size its entry says."""
    size = int(entry["size"])
    try:
        fd = open_file(name, folder, name)
    except FileNotFoundError:
        raise Corrupt(name, "is missing", meta, meta_file) from None
    except LinkRefused:
        raise Corrupt(name, "is a symbolic link or not a regular file", meta, meta_file) from None
    f = open(fd, "rb", buffering=0)
    actual = os.fstat(fd).st_size
    if actual != size:
        f.close()
        problem = (
            f"is truncated ({actual} of {size} bytes)"
            if actual < size
            else f"has the wrong size ({actual} bytes instead of {size})"
        )
        raise Corrupt(name, problem, meta, meta_file)
    return f, size


def _check_digest(digest: str, name: str, entry: dict, meta: bytes, meta_file: str) -> None:
    if not digest or not hmac.compare_digest(digest, signing.entry_mac(entry)[1]):
        raise Corrupt(name, "does not match its signature (corrupted or tampered with)", meta, meta_file)


def read_verified(
    folder: int, name: str, entry: dict, meta: bytes, key: bytes, meta_file: str = META
) -> bytearray:
    """The bytes of a value file, after checking its size and HMAC."""
    f, size = _open_value(folder, name, entry, meta, meta_file)
    with f:
        data = bytearray(size)  # calloc: pages are zeroed lazily, as read fills them
        view = memoryview(data)
        algorithm = signing.entry_mac(entry)[0]
        mac = StreamingMac(key, algorithm) if algorithm else None
        pos = 0
        try:
            while pos < size:
                n = f.readinto(view[pos : pos + CHUNK])
                if not n:
                    raise Corrupt(name, f"is truncated ({pos} of {size} bytes)", meta, meta_file)
                if mac is not None:
                    mac.update(view[pos : pos + n])  # hashed in a thread while the next chunk is read
                pos += n
        except BaseException:
            if mac is not None:
                mac.abort()
            raise
        digest = mac.hexdigest() if mac is not None else ""  # an unknown algorithm: never verified
        view.release()
    _check_digest(digest, name, entry, meta, meta_file)
    return data


def verify_value(folder: int, entry: dict, meta: bytes, key: bytes, meta_file: str = META) -> None:
    """Check a value file's size and HMAC without keeping its bytes (a lazy
    restore: a damaged file is found when the step is restored, so the step
    is recomputed then; the value is verified again when it is read)."""
    name = entry["file"]
    f, size = _open_value(folder, name, entry, meta, meta_file)
    with f:
        algorithm = signing.entry_mac(entry)[0]
        mac = signing.new_mac(key, algorithm) if algorithm else None
        buf = bytearray(min(size, 1 << 20) or 1)
        view = memoryview(buf)
        pos = 0
        while pos < size:
            n = f.readinto(view[: min(len(buf), size - pos)])
            if not n:
                raise Corrupt(name, f"is truncated ({pos} of {size} bytes)", meta, meta_file)
            if mac is not None:
                mac.update(view[:n])
            pos += n
        view.release()
    _check_digest(mac.hexdigest() if mac is not None else "", name, entry, meta, meta_file)


class Unloadable(Exception):
    """A verified value that cannot be decoded here (e.g. its class was renamed
    since): *file*, of the checkpoint whose metadata is *meta_file* (bytes *meta*)."""

    def __init__(self, file: str, meta: "bytes | None" = None, meta_file: str = META) -> None:
        super().__init__(file)
        self.file, self.meta, self.meta_file = file, meta, meta_file


class Loads:
    """The values of one checkpoint read so far (by position in its metadata),
    and the objects of those that later values point into (their unpickler's
    memo): a value that refers to another (:mod:`nbsteps.stores.sharing`) gets
    the very object, and each file is read once. *upstream* gives the values
    of upstream steps (``upstream(step, token, fingerprint, name)``)."""

    def __init__(self, body: dict, raw: bytes, meta_file: str, key: bytes, upstream=None) -> None:
        self.body, self.raw, self.meta_file, self.key, self.upstream = body, raw, meta_file, key, upstream
        self.values: dict[int, Any] = {}
        self.memos: dict[int, dict] = {}
        self._reading: set[int] = set()

    def value(self, folder: int, pos: int) -> Any:
        if pos in self.values:
            return self.values[pos]
        entry = self.body["values"][pos]
        if pos in self._reading:
            raise Corrupt(entry["file"], "refers to itself", self.raw, self.meta_file)
        self._reading.add(pos)
        try:
            value = load_value(folder, entry, self.raw, self.key, self.meta_file, loads=(self, pos))
        finally:
            self._reading.discard(pos)
        self.values[pos] = value
        return value

    def resolve(self, folder: int, entry: dict, ref: Any) -> Any:
        """The object a persistent reference of value *entry* names."""
        values = self.body["values"]
        try:
            if ref[0] == "v" and len(ref) == 3 and 0 <= ref[1] < len(values):
                value = self.value(folder, ref[1])
                return value if ref[2] < 0 else self.memos[ref[1]][ref[2]]
            if ref[0] == "u" and len(ref) == 5 and self.upstream is not None:
                return self.upstream(*ref[1:])
        except (KeyError, LookupError, TypeError):
            pass
        what = (
            f"output {ref[4]!r} of step {ref[1]!r}"
            if isinstance(ref, tuple) and len(ref) == 5
            else f"an object of another value ({ref!r})"
        )
        raise Corrupt(
            entry["file"], f"refers to {what}, which is no longer available", self.raw, self.meta_file
        )


def load_checkpoint(
    step: str,
    folder: int,
    fingerprint: "str | None",
    load: bool,
    key: bytes,
    name: str = META,
    lazy_loader=None,
    upstream=None,
    read=None,
) -> "Checkpoint | None":
    """The checkpoint whose metadata is *name* in *folder*; None if absent or,
    when *fingerprint* is given, another one. *load*: read every value now;
    else with *lazy_loader* (``loader(body, raw, name) -> load(value_name)``)
    the values are :class:`LazyValues`; else there are none (a peek). *read*:
    ``read(folder, name)`` instead of :func:`read_meta` (a
    :class:`~nbsteps.stores.meta_cache.MetaCache`'s)."""
    found = read(folder, name) if read is not None else read_meta(folder, key, name)
    if found is None:
        return None
    raw, body = found
    if body.get("step") != step:
        raise Corrupt(name, f"belongs to step {body.get('step')!r}", raw, name)
    if fingerprint is not None and body.get("fingerprint") != fingerprint:
        return None  # another checkpoint: do not even look at the values
    outputs: "dict[str, Any] | LazyValues" = {}
    result = None
    has_result = bool(body.get("has_result"))
    captured: list = []
    if load:
        loads = Loads(body, raw, name, key, upstream)
        for pos, entry in enumerate(body["values"]):
            value = (
                loads.value(folder, pos)
                if entry["role"] != "captured"
                else _load_value(folder, entry, raw, key, name)
            )
            if entry["role"] == "output":
                outputs[entry["name"]] = value
            elif entry["role"] == "captured":
                captured = value if isinstance(value, list) else []
            else:
                result = value
        if body.get("result_is") in outputs:
            result = outputs[body["result_is"]]
    elif lazy_loader is not None:
        # what the step printed and displayed is restored with the checkpoint (its
        # cell shows it at once); only the outputs and the result wait until used
        for entry in body["values"]:
            if entry["role"] == "captured":
                value = _load_value(folder, entry, raw, key, name)
                captured = value if isinstance(value, list) else []
            elif (entry.get("size") or 0) <= VERIFY_AT_RESTORE:
                # verified now (not decoded): a damaged file means the step is recomputed in this run
                verify_value(folder, entry, raw, key, name)
            # larger values are verified as they are read (reading hashes them anyway): a
            # damaged one then recomputes its step in the run that needs it (run/recovery.py);
            # reading hundreds of MB at every restore would make restoring cost a recompute
        names = [e["name"] for e in body["values"] if e["role"] == "output"]
        result_is = body.get("result_is") if body.get("result_is") in names else None
        sizes = {
            (e["name"] if e["role"] == "output" else None): e.get("size")
            for e in body["values"]
            if e["role"] != "captured"
        }
        outputs = LazyValues(
            names,
            lazy_loader(body, raw, name),
            has_result=has_result,
            result_is=result_is,
            describe=step,
            sizes=sizes,
        )
    if "parts_pickle" in body:
        import base64

        parts = pickle.loads(base64.b64decode(body["parts_pickle"]))
    else:
        parts = body.get("parts") or {}
    return Checkpoint(
        step=step,
        fingerprint=body["fingerprint"],
        outputs=outputs,
        result=result,
        has_result=has_result,
        parts=parts,
        duration=float(body.get("duration", 0.0)),
        finished=float(body.get("finished", 0.0)),
        started=float(body.get("started", 0.0)),
        attempts=int(body.get("attempts", 0)),
        output=tuple(tuple(item) for item in captured),
    )


def load_value(
    folder: int, entry: dict, meta: bytes, key: bytes, meta_file: str = META, loads: "tuple | None" = None
) -> Any:
    """One value, verified and decoded; *loads*: ``(Loads, position)`` of
    the checkpoint it belongs to, which resolves its references."""
    return _load_value(folder, entry, meta, key, meta_file, loads)


def _load_value(
    folder: int, entry: dict, meta: bytes, key: bytes, meta_file: str, loads: "tuple | None" = None
) -> Any:
    name = entry["file"]
    data = read_verified(folder, name, entry, meta, key, meta_file)
    resolve = memo = None
    if loads is not None:
        context, pos = loads
        if entry.get("refs") or entry.get("up"):
            resolve = lambda ref: context.resolve(folder, entry, ref)  # noqa: E731
        if entry.get("memo"):
            memo = context.memos[pos] = {}
    try:
        return decode(entry, data, resolve, memo)
    except Corrupt:
        raise  # a value it refers to is gone
    except Exception as exc:  # verified bytes: our own file; e.g. a module is missing now
        raise Unloadable(name, meta, meta_file) from exc
