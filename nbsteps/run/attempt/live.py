"""Values with no versions: live objects that exist in this process only.

nbsteps keeps versions of a name (SPEC: the version each step's position implies; a step that
changes its input in place works on a private copy, and the version above it is never the
changed object). Some values cannot have a second version: a database engine whose in-memory
database lives in its connection pool, a session whose identity map holds the objects loaded
through it, a socket, a lock, a running generator. Copying one makes a second object that is
not the same thing (a session copied shallow shares its transaction with the original, and one
of them commits it); executing the step that made it again makes a new object beside it (a
second, empty in-memory database; ``CREATE TABLE`` again on a file), not its version.

:func:`has_versions` tells them apart by whether the value can be pickled, which is what a
checkpoint needs too (a store keeps such a value in memory only, and says so): it decides
for any library, with no list of kinds. For such a value nbsteps does what Run All does: the
step that changes it changes the one object (no private copy, :mod:`nbsteps.run.attempt.task`),
and a change seen at run time does not make the step above execute again
(:mod:`nbsteps.run.observed_writes`); the order of the steps that use it is kept by the
writes recorded as for any other value.
"""

from __future__ import annotations


class _Discard:
    """A file that keeps nothing (what :func:`has_versions` pickles to without a store)."""

    def write(self, data) -> int:
        return len(data)


def _cloudpickles(value) -> bool:
    import cloudpickle  # (importing nbsteps imports no pickler)

    try:
        cloudpickle.CloudPickler(_Discard(), protocol=5, buffer_callback=lambda b: None).dump(value)
    except Exception:
        return False
    return True


#: ``value -> bool``: whether *value* can be pickled. The stores set it to their own
#: pickler (:mod:`nbsteps.stores`), which leaves the live object as it was (statsmodels'
#: ``__getstate__`` edits the object it pickles); plain cloudpickle until a store is imported.
pickles = _cloudpickles


def has_versions(value) -> bool:
    """Whether a version of *value* can exist apart from the live object: whether it can
    be pickled (see the module doc). Asked only where nbsteps would otherwise copy the value
    or execute the step that made it again, never for every value."""
    return pickles(value)
