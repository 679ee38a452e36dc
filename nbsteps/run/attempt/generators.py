"""The global random generators' states around a step that may draw from them.

A step seen changing its input in place has the step that made that input executed again,
to make its version again (``rebuild``, :mod:`nbsteps.run.observed_writes`). When that step
drew from a global generator (``np.random.rand`` below a ``np.random.seed`` that is not
executed again), executing it again would draw other numbers than Run All's one execution
did. So the generators' states are taken when such a step starts (:func:`taken`), and a
rebuild runs with them (:func:`drawing_as`): it draws what its first attempt drew, and the
process's generators are put back as they were afterwards.

Only the generators the analysis labels (``random``, ``numpy.random``, ``torch.random``:
:data:`nbsteps.model.state.USE_IS_EFFECT`) whose module is imported already are taken, and
only for a step that touches one, or may draw from one a step above touched
(``Dependencies.maybe_of``).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

from nbsteps.model.state import USE_IS_EFFECT, state_of


def labels(ctx, name: str) -> tuple:
    """The global generators step *name* may draw from."""
    step, maybe = ctx.steps[name], ctx.deps.maybe_of.get(name)
    # (state_of(step) written out for the usual case, no labels: no call, every attempt)
    a = step.analysis
    if not maybe and not step.observed_state and (a is None or not getattr(a, "state", None)):
        return ()
    state = state_of(step)
    return tuple(sorted({label for label in (*state, *(maybe or ())) if label in USE_IS_EFFECT}))


def _numpy():
    return sys.modules.get("numpy.random")


def _torch():
    torch = sys.modules.get("torch")
    return getattr(torch, "random", None) if torch is not None else None


def taken(found: tuple) -> dict:
    """``{label: state}`` of the generators *found* (labels) whose module is imported."""
    out: dict = {}
    for label in found:
        try:
            if label == "random":
                out[label] = sys.modules["random"].getstate()
            elif label == "numpy.random" and (np_random := _numpy()) is not None:
                out[label] = np_random.get_state(legacy=False)
            elif label == "torch.random" and (torch_random := _torch()) is not None:
                out[label] = torch_random.get_rng_state()
        except Exception:  # a generator that cannot say its state: not taken
            continue
    return out


def _set(states: dict) -> None:
    for label, state in states.items():
        try:
            if label == "random":
                sys.modules["random"].setstate(state)
            elif label == "numpy.random":
                _numpy().set_state(state)
            elif label == "torch.random":
                _torch().set_rng_state(state)
        except Exception:
            continue


@contextmanager
def drawing_as(states: "dict | None"):
    """Run the block with the generators in *states* (from :func:`taken`), then put them back
    as they were before it (nothing when *states* is empty)."""
    if not states:
        yield
        return
    now = taken(tuple(states))
    _set(states)
    try:
        yield
    finally:
        _set(now)
