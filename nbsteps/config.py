"""The one place that reads nbsteps' environment variables (``NBSTEPS_*``).

Booleans follow one rule: ``1 true yes on`` are true, ``0 false no off`` are
false (any case), unset or empty means the default, anything else is an error
that names the variable. ``nbsteps run`` sets several of these for the kernel
it starts; explicit options always win over them.

========================  =====================================================
``NBSTEPS_STORE``         default checkpoint store (``memory`` or a directory)
``NBSTEPS_STORE_MAX_SIZE`` size limit of a directory store (``2GB``; default 10 GB)
``NBSTEPS_FILE_DIGEST_MAX`` files a step reads up to this size are known by their content,
                          larger ones by size and modification time (default 64 MB)
``NBSTEPS_WORKERS``       default ``--workers`` of ``%steps run``
``NBSTEPS_BACKEND``       default ``--backend`` (``threads`` or ``dask``)
``NBSTEPS_ADDRESS``       default ``--address`` of the dask scheduler
``NBSTEPS_DASK_WORKERS``  worker processes of the LocalCluster nbsteps starts
``NBSTEPS_YES``           approve every ``--confirm`` step (boolean)
``NBSTEPS_HEADLESS``      nobody watches: no prompts, no widgets (boolean)
``NBSTEPS_WIDGETS``       ``0`` turns the live widget off (boolean)
``NBSTEPS_DISPLAY_UPDATES`` ``0``: never update earlier outputs (boolean; default:
                          on, except for clients executing with store_history off, e.g. nbval)
``NBSTEPS_RESUME_HINT``   how summaries tell the user to resume
``NBSTEPS_KEY_FILE``      the secret key signing disk checkpoints
``NBSTEPS_VERIFY_AT_RESTORE`` value files up to this many bytes are verified when their step is
                          restored from a directory store (default 16 MB); larger ones when read
``NBSTEPS_CHECK_TRANSITIONS`` check every status change against the state machine
                          (boolean; the test suite turns it on, kernels inherit it)
========================  =====================================================
"""

from __future__ import annotations

import os

from nbsteps.errors import ConfigError

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def text(name: str, default: "str | None" = None) -> "str | None":
    """The stripped value of *name*; *default* when unset or empty."""
    value = os.environ.get(name, "").strip()
    return value or default


def flag(name: str, default: "bool | None" = False) -> "bool | None":
    value = text(name)
    if value is None:
        return default
    low = value.lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise ConfigError(f"{name}={value!r}: use 1/0, true/false, yes/no or on/off.")


def positive_int(name: str, default: "int | None" = None) -> "int | None":
    value = text(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{name}={value!r}: use a whole number of at least 1.")
    return number


def store() -> "str | None":
    return text("NBSTEPS_STORE")


def store_max_size() -> "str | None":
    """The raw ``NBSTEPS_STORE_MAX_SIZE`` (parsed by the store, which names it in errors)."""
    return text("NBSTEPS_STORE_MAX_SIZE")


def file_digest_max() -> "str | None":
    """The raw ``NBSTEPS_FILE_DIGEST_MAX`` (parsed by nbsteps.model.file_inputs)."""
    return text("NBSTEPS_FILE_DIGEST_MAX")


def workers() -> "int | None":
    return positive_int("NBSTEPS_WORKERS")


def backend() -> "str | None":
    return text("NBSTEPS_BACKEND")


def address() -> "str | None":
    return text("NBSTEPS_ADDRESS")


def dask_workers() -> int:
    return positive_int("NBSTEPS_DASK_WORKERS") or max(1, os.cpu_count() or 1)


def yes() -> bool:
    return bool(flag("NBSTEPS_YES"))


def headless() -> bool:
    return bool(flag("NBSTEPS_HEADLESS"))


def widgets() -> "bool | None":
    return flag("NBSTEPS_WIDGETS", None)


def display_updates() -> "bool | None":
    return flag("NBSTEPS_DISPLAY_UPDATES", None)


def resume_hint(default: str) -> str:
    return text("NBSTEPS_RESUME_HINT", default) or default


KEY_FILE = "NBSTEPS_KEY_FILE"


def key_file() -> "str | None":
    return text(KEY_FILE)


def check_transitions() -> bool:
    return bool(flag("NBSTEPS_CHECK_TRANSITIONS"))


def verify_at_restore() -> int:
    value = positive_int("NBSTEPS_VERIFY_AT_RESTORE")
    return value if value is not None else 16 * 10**6
