"""The per-user secret key and the signatures (MACs) of checkpoint files:
keyed BLAKE3 for what is written now, HMAC-SHA256 for checkpoints written
before (still read and verified).

Like Jupyter's notebook signing, the key lives outside any notebook directory,
so a checkpoint directory copied from elsewhere (or edited by someone else) is
not trusted: its signatures were made with another key. The key file is
``$NBSTEPS_KEY_FILE`` if set, else ``$XDG_DATA_HOME/nbsteps/secret_key``
(``~/.local/share/nbsteps/secret_key``). It is created on first use, readable
by its owner only (0600), and holds 32 random bytes as hex.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import queue
import secrets
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from nbsteps import config
from nbsteps.errors import KeyFileError

KEY_ENV = config.KEY_FILE
KEY_BYTES = 32


def key_path() -> Path:
    """Where the secret key is kept (the file may not exist yet)."""
    env = config.key_file()
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "nbsteps" / "secret_key"


def load_key(path: "str | os.PathLike | None" = None) -> bytes:
    """The secret key, created (0600) if it does not exist yet."""
    path = Path(path).expanduser() if path is not None else key_path()
    # A few rounds: another process may be creating the file at the same time.
    for _ in range(100):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if os.path.islink(path):  # a link to nothing: creating the key would write through it
                raise KeyFileError(
                    f"nbsteps: the secret key file {path} is a symbolic link to {os.readlink(path)}, which "
                    f"does not exist. Remove the link (a new key is then created; checkpoints signed with "
                    f"the old key are recomputed) or make it point at your key file"
                ) from None
            _create_key(path)
            continue
        key = _parse_key(data)
        if key:
            _check_private(path)
            return key
        # Empty: only possible with the fallback of _create_key, while the
        # creating process has not written the key yet.
        time.sleep(0.02)
    raise KeyFileError(
        f"nbsteps: the secret key file {path} is empty; delete it to create a new key "
        f"(checkpoints signed with the old key will then be recomputed)"
    )


def _check_private(path: Path) -> None:
    """Refuse a key file that others can write (or that another user owns):
    whoever can write it can forge checkpoints, i.e. run code through pickle."""
    st = os.stat(path)
    getuid = getattr(os, "getuid", None)
    foreign = getuid is not None and st.st_uid != getuid()
    if st.st_mode & 0o022 or foreign:
        who = (
            f"is owned by user id {st.st_uid}"
            if foreign
            else f"can be written by others (mode {st.st_mode & 0o777:o})"
        )
        raise KeyFileError(
            f"nbsteps: the secret key file {path} {who}; anyone who can write it can forge checkpoints. "
            f"Fix it with `chmod 600 {path}` (as its owner), or delete it to create a new key "
            f"(checkpoints signed with the old key will then be recomputed)"
        )


def _parse_key(data: bytes) -> bytes:
    text = data.strip()
    try:
        return bytes.fromhex(text.decode("ascii")) if text else b""
    except (UnicodeDecodeError, ValueError):
        return text  # a key the user wrote by hand: use its bytes as they are


def _create_private(path: Path, content: bytes) -> None:
    """Create *path* (must not exist) readable by its owner only, durably."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, content)
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_key(path: Path) -> None:
    """Create the key file atomically: it never exists with partial content.

    The key is written to a private temporary file (``O_CREAT|O_EXCL``, mode
    0600), made durable, then published with ``os.link``, which fails if
    another process published its key first; that key is then the one used.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    content = (secrets.token_bytes(KEY_BYTES).hex() + "\n").encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        _create_private(tmp, content)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won the race: use its key
        except OSError:
            # The filesystem has no hard links: create the final file directly.
            # A reader that sees it still empty waits (see load_key).
            try:
                _create_private(path, content)
            except FileExistsError:
                return
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


HMAC_SHA256 = "hmac-sha256"  # every checkpoint before issue 26; still read
BLAKE3 = "blake3"  # keyed BLAKE3 (a MAC: the keyed_hash mode), ~4x faster than HMAC-SHA256 on one core
ALGORITHMS = (HMAC_SHA256, BLAKE3)
_BLAKE3_CONTEXT = "nbsteps checkpoint signatures 2026-12 keyed BLAKE3"


def preferred() -> str:
    """The MAC new checkpoints are signed with: keyed BLAKE3 when the
    ``blake3`` package is installed (a dependency), else HMAC-SHA256."""
    global _PREFERRED
    if _PREFERRED is None:
        try:
            import blake3  # noqa: F401

            _PREFERRED = BLAKE3
        except ImportError:
            _PREFERRED = HMAC_SHA256
    return _PREFERRED


_PREFERRED: "str | None" = None
_DERIVED: dict = {}


def _blake3_key(key: bytes) -> bytes:
    """The 32-byte BLAKE3 key of the user's key: BLAKE3's key derivation with
    a context of its own, so the two MACs never share a key."""
    derived = _DERIVED.get(key)
    if derived is None:
        import blake3

        derived = _DERIVED[key] = blake3.blake3(key, derive_key_context=_BLAKE3_CONTEXT).digest()
    return derived


def new_mac(key: bytes, algorithm: str = HMAC_SHA256) -> Any:
    """An incremental MAC (``update`` then ``hexdigest``): HMAC-SHA256 or keyed BLAKE3."""
    if algorithm == BLAKE3:
        try:
            import blake3
        except ImportError:  # a broken install: blake3 is a dependency
            raise ImportError(
                "nbsteps: checkpoints are signed with keyed BLAKE3 and the blake3 package is missing; "
                "install it (pip install blake3)"
            ) from None
        return blake3.blake3(key=_blake3_key(key))
    if algorithm != HMAC_SHA256:
        raise ValueError(f"unknown signature algorithm {algorithm!r}")
    return hmac.new(key, digestmod=hashlib.sha256)


def sign(key: bytes, data: bytes, algorithm: str = HMAC_SHA256) -> str:
    """The MAC of *data*, as hex."""
    mac = new_mac(key, algorithm)
    mac.update(data)
    return mac.hexdigest()


def verify(key: bytes, data: bytes, sig: "str | None", algorithm: str = HMAC_SHA256) -> bool:
    """Whether *sig* is the signature of *data* (constant-time comparison)."""
    if not isinstance(sig, str):
        return False
    try:
        return hmac.compare_digest(sign(key, data, algorithm), sig)
    except TypeError:  # non-ASCII text cannot be a hex signature
        return False


def entry_mac(entry: dict) -> "tuple[str, str]":
    """(algorithm, hex digest) a value file's metadata entry gives for it:
    ``"mac": "blake3:<hex>"``, or ``"hmac": "<hex>"`` (HMAC-SHA256, written
    before issue 26). The entry is inside the signed metadata."""
    mac = entry.get("mac")
    if isinstance(mac, str) and ":" in mac:
        algorithm, _, digest = mac.partition(":")
        if algorithm in ALGORITHMS:
            return algorithm, digest
        return "", ""
    return HMAC_SHA256, str(entry.get("hmac", ""))


def mac_field(algorithm: str, digest: str) -> dict:
    """The metadata entry field for a value file's MAC (see :func:`entry_mac`)."""
    if algorithm == HMAC_SHA256:
        return {"hmac": digest}
    return {"mac": f"{algorithm}:{digest}"}


THREAD_MIN = 8 << 20  # hash in a helper thread once a file is this large


class StreamingMac:
    """Incremental MAC (*algorithm*: keyed BLAKE3 or HMAC-SHA256) of a stream of buffers.

    Small streams are hashed inline. Past ``THREAD_MIN`` bytes, buffers are
    handed to a helper thread (hashlib and blake3 release the GIL), so hashing a large
    file overlaps with encoding and I/O instead of adding to it. They go in
    batches of at least ``_BATCH`` bytes: pyarrow writes ~100 KB pieces, and a
    queue hand-off per piece costs a quarter of the hashing time. Buffers given
    to ``update`` must not change until ``hexdigest`` returns (they are bytes
    objects from pickle/pyarrow, the pickled object's own memory, or slices of
    a read buffer that is only read).
    """

    _BATCH = 4 << 20

    def __init__(self, key: bytes, algorithm: str = HMAC_SHA256) -> None:
        self.algorithm = algorithm
        self._mac = new_mac(key, algorithm)
        self._seen = 0
        self._batch: list[memoryview] = []
        self._batched = 0
        self._queue: "queue.Queue | None" = None
        self._thread: "threading.Thread | None" = None
        self._aborted = False
        self._ended = False  # the end marker is queued

    def update(self, view: memoryview) -> None:
        self._seen += view.nbytes
        if self._queue is None:
            if self._seen < THREAD_MIN:
                self._mac.update(view)
                return
            self._queue = queue.Queue(maxsize=8)  # bounds what waits to be hashed
            thread = threading.Thread(target=self._run, name="nbsteps-hmac", daemon=True)
            self._thread = thread  # before start(): abort() finds it even if start is interrupted
            thread.start()
        self._batch.append(view)
        self._batched += view.nbytes
        if self._batched >= self._BATCH:
            self._queue.put(self._batch)
            self._batch, self._batched = [], 0

    def _run(self) -> None:
        while (batch := self._queue.get()) is not None:
            if self._aborted:
                continue  # drain without hashing until the end marker
            for view in batch:
                self._mac.update(view)

    def hexdigest(self) -> str:
        self.stop()
        return self._mac.hexdigest()

    def stop(self) -> None:
        """Hash what is left and end the helper thread."""
        thread = self._thread
        if thread is not None:
            if not self._ended:
                self._queue.put(self._batch)
                self._queue.put(None)
                self._ended, self._batch = True, []
            thread.join()
            self._thread = None  # only now: an interrupted join leaves it for abort() to join

    def abort(self) -> None:
        """Forget the stream and end the helper thread now (an interrupted or
        failed write). Safe to call at any moment, and more than once."""
        self._aborted = True  # the thread skips what is still queued
        self._batch = []
        thread, q = self._thread, self._queue
        if thread is None:
            return
        if not self._ended:
            while True:  # make room without blocking: only this thread puts
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
            q.put_nowait(None)
            self._ended = True
        try:
            thread.join()
        except RuntimeError:  # its start() was interrupted: it ends at the marker by itself
            pass
        self._thread = None
