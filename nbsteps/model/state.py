"""Shared process state: which steps must keep their notebook order, and why.

The analysis labels the process-wide state a cell touches (``state``: the
global random generators ``random`` / ``numpy.random`` / ``torch.random``,
``pyplot``, ``cwd``, ``environ``, ``sys.path``, ``options:<lib>``,
``file:<path>``) and which of it the cell changes (``effects``: a seed, a
style, ``os.chdir``, a write). For every label, in notebook order:

- a step that changes the state comes after every earlier step touching it;
- a step that only uses it comes after the nearest step above that changed it.

Uses alone may run in parallel: pyplot's current figure is made per step by the
output capture (:mod:`nbsteps.run.attempt.figures`), so plotting steps do not need to
wait for each other.

Edges from a step that changed the state are ``state`` edges: they count for
staleness (editing a seed re-runs the draws below it). Edges that only keep a
change after earlier uses are ``order`` edges: they order execution but make
nothing stale and block nothing. A draw from a global generator changes it, so every random
step is an effect.

Library code may draw from a global generator where the analysis cannot see it
(an estimator without ``random_state``, ``ArmaProcess.generate_sample``). Once a
step above has touched a global generator, a step that calls such code
(:func:`may_draw`) keeps its notebook order with the other random steps (``order``
edges, labelled ``<generator>?``): a parallel run draws what Run All draws.

How results are shown (``display``) is process state too: a library's set-up call may register
display formatters (SymPy's ``init_printing()`` turns every later ``Out`` into a PNG of its
LaTeX). A call of a library the rules do not know (not the standard library), at a cell's
top level, given only literals and its result dropped, can only be made for what it changes in
the process: it is labelled a change of ``display``; every step that shows a result uses it
(:mod:`nbsteps.model.dependencies`), so it comes after the nearest such call above, as Run All
formats its ``Out`` after it.

Files (``file:<path>``) are state kept outside the process, and writing one does not
depend on what was there before: a step that writes or appends to a file comes after
the steps above that touched it with ``order`` edges only (editing the first of three
steps appending to a log re-runs that step alone), while a step that reads it comes
after the nearest writer above with a ``state`` edge. What a step actually reads is
observed when it runs (:mod:`nbsteps.run.attempt.opened`): a file that changed makes
it stale through its checkpoint (:mod:`nbsteps.model.file_inputs`). A file outlives
the process, so a writer is replayed (:mod:`nbsteps.run.decide.replay`) only while
its file is missing: replaying it otherwise would append twice. A file a step removed or
renamed away through a path the analysis could not read (``shutil.rmtree(location)``) is
observed when it runs (:mod:`nbsteps.run.attempt.opened`): the step carries ``file:<path>`` as
an observed effect (``Step.observed_state``) from then on, so it comes after the steps above
that read or wrote the file, as a literal ``os.remove('f.csv')`` does.

Before a first run has observed them, the files removed through a path the analysis cannot read
are not known: such a removal (``shutil.rmtree(location)``, a notebook's last cell clearing the
folder the cells above wrote and read, some of them through processes or libraries that open it
unseen) is labelled ``files?`` (:data:`FILES_REMOVED`), and the step comes after every step above
it (``order`` edges: nothing stale, nothing blocked), as in Run All.

Library code may change the environment where the analysis cannot see it
(``pl.Config.set_tbl_rows`` writes ``os.environ``): the run observes it
(:mod:`nbsteps.run.attempt.opened`), and the step carries the label as an observed
effect (``Step.observed_state``, kept in its checkpoint's ``parts["state"]``) from then
on, in this kernel and in a new one that restores it.
"""

from __future__ import annotations

import os

#: how results are shown: changed by a library's set-up call, used by every step showing a result
DISPLAY = "display"
#: files the analysis cannot name, removed (``shutil.rmtree(location)``, ``os.remove(path)``): the step
#: comes after every step above it (``order`` edges), as in Run All, where whatever those steps read
#: or left in the removed files (a cache folder, a memory-mapped array's file) was there for them
FILES_REMOVED = "files?"
#: the process environment (``os.environ``): labelled by the analysis, or observed changed at run time
ENVIRON = "environ"
#: labels whose every use changes the state (a draw advances the generator)
USE_IS_EFFECT = frozenset({"random", "numpy.random", "torch.random"})


def state_of(step) -> tuple:
    """The shared-state labels *step* touches, sorted: the analysis's, and those a run saw it
    change (``Step.observed_state``)."""
    a, seen = step.analysis, step.observed_state
    labels = getattr(a, "state", None) if a is not None else None
    if seen:
        return tuple(sorted(seen.union(labels) if labels else seen))
    return tuple(sorted(labels)) if labels else ()  # (most steps: no call)


def effects_of(step) -> frozenset:
    """The shared-state labels *step* changes (the analysis's, and those a run saw it change)."""
    a, seen = step.analysis, step.observed_state
    if a is None:
        return seen
    effects = set(getattr(a, "effects", ()) or ())
    effects.update(label for label in (getattr(a, "state", ()) or ()) if label in USE_IS_EFFECT)
    return frozenset(effects.union(seen) if seen else effects)


def recorded_state(parts: dict) -> frozenset:
    """The process state labels a run saw the step change (``parts["state"]`` of its
    checkpoint: a new kernel restoring it knows what an earlier one observed)."""
    labels = parts.get("state") if parts else None
    return frozenset(str(label) for label in labels) if isinstance(labels, (list, tuple)) else frozenset()


def may_draw(step) -> bool:
    """Whether *step* calls code that might draw from a global random generator
    unseen (anything but known pure functions, methods and libraries)."""
    return bool(getattr(step.analysis, "opaque", False)) if step.analysis is not None else False


def needs_kernel(step, may_draw_from=()) -> bool:
    """Whether *step* must run in the kernel's own process to do what it does in Run All:
    it touches process state (a global random generator, pyplot and the figures it makes,
    the working directory, the environment, ``sys.path``, a library's options), a file (by a
    path relative to the kernel's directory, which a worker does not share), may draw from a
    global generator a step above touched (*may_draw_from*: ``Dependencies.maybe_of``), or
    calls IPython (``get_ipython()``, which a line magic becomes). Another process (a dask
    worker) has its own copy of all of that, or none."""
    return bool(state_of(step) or may_draw_from or "get_ipython" in (step.source or ""))


def is_file(label: str) -> bool:
    """Whether *label* is a file (``file:<path>``): a write does not depend on earlier writes."""
    return label.startswith("file:")


def replayable(label: str) -> bool:
    """Whether restoring a step that changed *label* leaves the state unlike Run All
    (so it is replayed): process state always, a file only while it is missing."""
    if label == FILES_REMOVED:  # (which files is not known: nothing to replay for them)
        return False
    return not is_file(label) or not os.path.exists(label[5:])
