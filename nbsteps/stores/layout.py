"""The on-disk format of one checkpoint folder, and how it is read and verified.

A store directory::

    <directory>/
      .locks/<step>.lock          # per-step lock files (flock); never removed
      <step>/
        checkpoint.meta           # signed metadata, written last
        <token>-0.parquet         # one file per value: outputs, then the result
        <token>-1.pkl

A step's folder is named after the step when the name is lower case, else the
name with a hash suffix (so ``Load`` and ``load`` stay apart on case-insensitive
file systems). ``checkpoint.meta`` is a header line
``nbsteps-checkpoint 1 hmac-sha256=<hex>`` followed by the JSON body; the
signature covers the header's format tag and the exact body bytes. The body
holds the fingerprint and its parts, duration, finish time, and for every value
its file, encoding, size and the HMAC of the file's bytes. Nothing is
unpickled or parsed as Parquet before its HMAC has been checked.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import re
from typing import Any

from nbsteps.model.checkpoint import Checkpoint
from nbsteps.stores import signing
from nbsteps.stores.encoding import decode
from nbsteps.stores.fs import LinkRefused, open_file
from nbsteps.stores.signing import StreamingMac

FORMAT = 1
META = "checkpoint.meta"
LOCKS = ".locks"
HEADER = re.compile(rb"nbsteps-checkpoint (\d+) hmac-sha256=([0-9a-f]{64})")
VALUE_FILE = re.compile(r"[0-9a-f]{16}-\d+\.(parquet|pkl)")
_PLAIN_NAME = re.compile(r"[a-z0-9_][a-z0-9_-]{0,99}")
CHUNK = 8 << 20  # read size when verifying files
MAX_META = 64 << 20  # a checkpoint.meta larger than this is not ours


def dirname_of(step: str) -> str:
    """Folder of a step: the name itself when it is safe on every file system."""
    if _PLAIN_NAME.fullmatch(step):
        return step
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", step)[:60]
    return f"{safe}~{hashlib.sha256(step.encode()).hexdigest()[:12]}"


def ours(name: str) -> bool:
    """Whether *name* is one the store writes inside a step folder."""
    return name == META or name.startswith(".tmp-") or bool(VALUE_FILE.fullmatch(name))


def signed_bytes(data: bytes) -> bytes:
    # the format tag is signed with the body, so a body cannot be replayed under another format
    return b"nbsteps-checkpoint %d\n" % FORMAT + data


def header(key: bytes, data: bytes) -> bytes:
    return b"nbsteps-checkpoint %d hmac-sha256=%s\n" % (FORMAT, signing.sign(key, signed_bytes(data)).encode())


class Corrupt(Exception):
    """A checkpoint that must not be trusted: *file* has *problem*."""

    def __init__(self, file: str, problem: str, meta: "bytes | None") -> None:
        super().__init__(f"{file} {problem}")
        self.file, self.problem, self.meta = file, problem, meta



def read_meta_bytes(folder: int) -> "bytes | None":
    try:
        fd = open_file(META, folder, META)
    except FileNotFoundError:
        return None
    except LinkRefused as exc:
        raise Corrupt(META, "is a symbolic link or not a regular file", None) from exc
    try:
        size = os.fstat(fd).st_size
        if size > MAX_META:
            raise Corrupt(META, f"is too large ({size} bytes) to be a checkpoint's metadata", None)
        with open(fd, "rb", closefd=False) as f:
            return f.read(MAX_META + 1)
    finally:
        os.close(fd)

def read_meta(folder: int, key: bytes) -> "tuple[bytes, dict] | None":
    """The verified metadata of *folder* (raw bytes and body); None if absent."""
    raw = read_meta_bytes(folder)
    if raw is None:
        return None
    header, newline, data = raw.partition(b"\n")
    match = HEADER.fullmatch(header)
    if not newline or match is None:
        raise Corrupt(META, "is not signed (no nbsteps signature header)", raw)
    if int(match.group(1)) != FORMAT:
        raise Corrupt(META, f"has an unknown format {match.group(1).decode()}", raw)
    if not signing.verify(key, signed_bytes(data), match.group(2).decode()):
        raise Corrupt(META, "does not match its signature (tampered with, or signed with another key)", raw)
    try:
        body = json.loads(data)
        if not isinstance(body, dict) or not isinstance(body.get("values"), list):
            raise ValueError("not a checkpoint")
        if not isinstance(body.get("fingerprint"), str):
            raise ValueError("no fingerprint")
        for entry in body["values"]:
            if not isinstance(entry, dict) or not VALUE_FILE.fullmatch(str(entry.get("file"))):
                raise ValueError(f"bad value entry {entry!r}")
            if not isinstance(entry.get("size"), int) or entry.get("role") not in ("output", "result", "captured"):
                raise ValueError(f"bad value entry {entry!r}")
    except ValueError as exc:  # signed but malformed: written by a buggy or newer writer
        raise Corrupt(META, f"is malformed ({exc})", raw) from None
    return raw, body

def read_verified(folder: int, name: str, entry: dict, meta: bytes, key: bytes) -> bytearray:
    """The bytes of a value file, after checking its size and HMAC."""
    size = int(entry["size"])
    try:
        fd = open_file(name, folder, name)
    except FileNotFoundError:
        raise Corrupt(name, "is missing", meta) from None
    except LinkRefused:
        raise Corrupt(name, "is a symbolic link or not a regular file", meta) from None
    with open(fd, "rb", buffering=0) as f:
        actual = os.fstat(f.fileno()).st_size
        if actual != size:
            problem = f"is truncated ({actual} of {size} bytes)" if actual < size else \
                f"has the wrong size ({actual} bytes instead of {size})"
            raise Corrupt(name, problem, meta)
        data = bytearray(size)  # calloc: pages are zeroed lazily, as read fills them
        view = memoryview(data)
        mac = StreamingMac(key)
        pos = 0
        try:
            while pos < size:
                n = f.readinto(view[pos:pos + CHUNK])
                if not n:
                    raise Corrupt(name, f"is truncated ({pos} of {size} bytes)", meta)
                mac.update(view[pos:pos + n])  # hashed in a thread while the next chunk is read
                pos += n
        except BaseException:
            mac.abort()
            raise
        digest = mac.hexdigest()
        view.release()
    if not hmac.compare_digest(digest, str(entry.get("hmac", ""))):
        raise Corrupt(name, "does not match its signature (corrupted or tampered with)", meta)
    return data


class Unloadable(Exception):
    """A verified value that cannot be decoded here (e.g. its class's module is gone)."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.file = file


def load_checkpoint(step: str, folder: int, fingerprint: "str | None", load: bool, key: bytes) -> "Checkpoint | None":
    found = read_meta(folder, key)
    if found is None:
        return None
    raw, body = found
    if body.get("step") != step:
        raise Corrupt(META, f"belongs to step {body.get('step')!r}", raw)
    if fingerprint is not None and body.get("fingerprint") != fingerprint:
        return None  # stale: do not even look at the values
    outputs: dict[str, Any] = {}
    result = None
    captured: list = []
    if load:
        for entry in body["values"]:
            value = _load_value(folder, entry, raw, key)
            if entry["role"] == "output":
                outputs[entry["name"]] = value
            elif entry["role"] == "captured":
                captured = value if isinstance(value, list) else []
            else:
                result = value
        if body.get("result_is") in outputs:
            result = outputs[body["result_is"]]
    if "parts_pickle" in body:
        import base64

        parts = pickle.loads(base64.b64decode(body["parts_pickle"]))
    else:
        parts = body.get("parts") or {}
    return Checkpoint(
        step=step, fingerprint=body["fingerprint"], outputs=outputs, result=result,
        has_result=bool(body.get("has_result")), parts=parts,
        duration=float(body.get("duration", 0.0)), finished=float(body.get("finished", 0.0)),
        started=float(body.get("started", 0.0)), attempts=int(body.get("attempts", 0)),
        output=tuple(tuple(item) for item in captured),
    )

def _load_value(folder: int, entry: dict, meta: bytes, key: bytes) -> Any:
    name = entry["file"]
    data = read_verified(folder, name, entry, meta, key)
    try:
        return decode(entry, data)
    except Exception as exc:  # verified bytes: our own file; e.g. a module is missing now
        raise Unloadable(name) from exc

