"""The run context: exactly what running and showing a plan needs.

The :class:`~nbsteps.plan.Plan` facade builds one :class:`RunContext` (and the
collaborators it holds) and keeps its state in it; the executor, every function of
``nbsteps.run`` and the views receive this context, never the Plan. It holds:

- ``steps``: the registered steps, in notebook (registration) order;
- ``deps``: the resolved dependency graph (:class:`~nbsteps.model.dependencies.Dependencies`),
  replaced whenever a step changes, so a run that captured it keeps *its* graph;
- ``records``: one :class:`~nbsteps.model.record.StepRecord` per step, what
  happened to it (the executor changes them; views only read them);
- ``store``: where checkpoints go (``nbsteps.stores``);
- ``namespace``: where completed steps' outputs are published (the notebook's),
  through ``publisher`` (:class:`~nbsteps.run.publishing.Publisher`), with
  ``deferred`` the restored values not read yet;
- ``validity``: which completed steps are known to be up to date
  (:mod:`nbsteps.run.decide.validity`); ``state_head``: which step last changed each
  piece of shared process state (:mod:`nbsteps.run.decide.replay`), and
  ``pending_replay``: the replays a run left for later (until code runs that needs the state);
- the event sink: ``listeners`` (the plan's) and ``run_listeners`` (those of the
  run in progress), reached through :meth:`emit` and :meth:`warn`;
- ``clock``: wall-clock time for records and events.

The graph queries (:meth:`order`, :meth:`dependencies`, :meth:`upstream`...)
read ``deps``; they are here because every layer above the model asks them.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Iterable

from nbsteps.errors import UnknownStepError
from nbsteps.model import file_inputs, graphs
from nbsteps.model.dependencies import Dependencies
from nbsteps.model.record import StepRecord, changed_since, files_version, journal_position
from nbsteps.model.state import effects_of, is_file
from nbsteps.model.status import COMPLETED, EXECUTED
from nbsteps.model.step import Step
from nbsteps.run import events as ev


class RunContext:
    """State and services of one plan, for the layers below the Plan facade (see module doc)."""

    def __init__(
        self, namespace: dict, store, *, deferred, validity, listeners: "Iterable[Callable]" = ()
    ) -> None:
        self.steps: dict[str, Step] = {}
        self.deps = Dependencies()
        self.records: dict[str, StepRecord] = {}
        self.namespace = namespace
        self.store = store
        self.listeners: list[Callable] = list(listeners)
        self.run_listeners: list[Callable] = []
        #: shared-state label -> the step that last changed it in this process (see nbsteps.run.decide.replay)
        self.state_head: dict[str, str] = {}
        #: step -> shared-state labels: restored steps whose effect on process state a run left to
        #: replay until something executes (nbsteps.run.decide.replay, Plan.settle)
        self.pending_replay: dict[str, list[str]] = {}
        #: outputs restored from a directory store, not read yet (a run.deferred.Deferred)
        self.deferred = deferred
        #: steps known to be up to date: a run of one cell need not re-check its upstream
        #: (run.decide.validity)
        self.validity = validity
        self.publish_lock = threading.Lock()
        #: step -> ident of the worker thread it ran on, when it made thread-bound values there
        #: (their home, nbsteps.run.attempt.threads); a step not here made them on the calling thread
        self.threads: dict[str, int] = {}
        #: step -> the thread its last attempt ran on because a value it read is bound to that
        #: thread (0: the calling thread): what it made may reach that value unseen, and the steps
        #: reading it run there too (nbsteps.run.attempt.threads.derived_home)
        self.affine: dict[str, int] = {}
        #: id of a value -> ids of the live objects a step that read or made it used: the steps
        #: using it keep notebook order with theirs (nbsteps.run.attempt.live.tie)
        self.tied: dict[int, frozenset] = {}
        #: step -> why its checkpoint could not be read (a restored value read after its run, by a
        #: cell or the step's own result): it executes in the next run that selects it (run.recovery)
        self.lost: dict[str, str] = {}
        #: a run.publishing.Publisher of this context, set by the facade that composes them
        self.publisher = None
        #: how to resume, shown in summaries ("%steps run" in a notebook)
        self.resume_hint = "plan.run()"
        #: the summary of the last run (frozen), or None
        self.last_summary = None
        self.clock: Callable[[], float] = time.time
        self._files_read: tuple | None = None  # (key, records with files, their files): files_read()
        #: step -> the files its latest execution in this kernel only appended to (``Outcome.appended``)
        self.appended: dict[str, frozenset] = {}
        #: path -> its fingerprint before the first step executed in this kernel that could write it
        #: (:meth:`note_baseline`): a file that is so again is as if nothing had executed
        self.file_baseline: dict[str, "str | None"] = {}
        self._peeked: dict = {}  # (step, id of the store) -> its latest checkpoint's wrote: stored_wrote

    # -- the event sink ------------------------------------------------------------
    def emit(self, event: "ev.Event", listeners: "Iterable[Callable] | None" = None) -> None:
        """Send *event* to *listeners* (default: the run's, else the plan's)."""
        ev.emit_to(listeners if listeners is not None else (self.run_listeners or self.listeners), event)

    def warn(self, step: str, message: str) -> None:
        """A problem a user should hear of (a value that cannot be stored, a
        damaged file): tell the listeners (the text reporter prints it), or
        warn when nobody listens."""
        if self.run_listeners or self.listeners:
            self.emit(ev.Event(ev.WARNING, self, step, self.records.get(step), message))
        else:
            import warnings

            warnings.warn(f"nbsteps: {message}", RuntimeWarning, stacklevel=2)

    # -- publishing ----------------------------------------------------------------
    def publish(self, outputs: dict, step: "str | None" = None) -> None:
        self.publisher.publish(outputs, step)

    def load(self, names: "Iterable[str] | None" = None) -> list[str]:
        return self.publisher.load(names)

    def files_read(self) -> frozenset:
        """The files the steps of the plan read (their records' ``files``): an attempt that
        changes one (in C too) wrote it. Kept until a record's ``files`` change
        (``record.files_version``) or a record that read files leaves the plan: a run of one
        cell does not pass over every record."""
        key = (files_version(), id(self.records))
        cached = self._files_read
        if cached is not None and cached[0] == key and all(self.records.get(n) is r for n, r in cached[1]):
            return cached[2]
        holders = tuple((n, r) for n, r in self.records.items() if r.files)
        files = frozenset(p for _, r in holders for p in r.files)
        self._files_read = (key, holders, files)
        return files

    # -- what changed ----------------------------------------------------------------
    def changes_since(self, mark: "tuple | None") -> "tuple[set[str] | None, tuple]":
        """(the steps whose record changed or that were registered again since *mark*, or None
        when anything may have changed; a new mark). None the first time (*mark* None) and
        when the graph was resolved again, the records, steps, namespace or store replaced,
        or the working directory changed (a restored step's line names its store's
        directory). Passes over every step after each cell (``refresh_stale``, the step
        cells, the JupyterLab badges) keep a mark each and pass over these steps only."""
        key = (self.deps, self.records, self.steps, self.namespace, self.store, os.getcwd())
        if mark is None:
            return None, (key, journal_position())
        changed, position = changed_since(mark[1])
        old = mark[0]
        if (
            changed is None
            or old[5] != key[5]
            or any(a is not b for a, b in zip(old[:5], key[:5], strict=True))
        ):
            return None, (key, position)
        return set(changed), (key, position)

    # -- graph queries -------------------------------------------------------------
    def require(self, name: str) -> Step:
        """The step *name*, or an UnknownStepError with a "did you mean"."""
        try:
            return self.steps[name]
        except KeyError:
            raise UnknownStepError(name, self.steps) from None

    def written_below(self, name: str) -> dict[str, set]:
        """``{path: fingerprints}`` of the files the steps below *name* in the notebook
        wrote, as they left them (``StepRecord.wrote``): a file step *name* read that is
        now one of these changed after it, as in Run All (nbsteps.model.file_inputs)."""
        out: dict[str, set] = {}
        below = False
        for s in self.steps:
            if below:
                rec = self.records.get(s)
                wrote = getattr(rec, "wrote", None)
                if not wrote and self.store is not None and (rec is None or rec.status != COMPLETED):
                    wrote = self.stored_wrote(s)  # not restored yet (a new kernel): its checkpoint's
                for path, fp in (wrote or {}).items():
                    out.setdefault(path, set()).add(fp)
            below = below or s == name
        return out

    def stored_wrote(self, name: str) -> dict:
        """What the latest checkpoint of step *name* says it wrote (``parts["wrote"]``): a step
        below a reader, not restored yet in this kernel, explains the files as it left them. The
        store is asked once per step and store (its metadata only), whatever the readers asking."""
        return self._peek(name)[0]

    def _peek(self, name: str) -> tuple:
        """(``parts["wrote"]``, ``parts["appended"]`` as a frozenset) of step *name*'s latest
        checkpoint, asked of the store once per step and store."""
        key = (name, id(self.store))
        found = self._peeked.get(key)
        if found is None:
            try:
                cp = self.store.peek(name)
            except Exception:  # a damaged checkpoint: it explains nothing
                cp = None
            parts = getattr(cp, "parts", None) if cp is not None else None
            parts = parts if isinstance(parts, dict) else {}
            wrote, appended = parts.get("wrote"), parts.get("appended")
            found = self._peeked[key] = (
                wrote if isinstance(wrote, dict) else {},
                frozenset(appended) if isinstance(appended, list) else frozenset(),
            )
        return found

    def note_baseline(self, name: str) -> None:
        """Step *name* is about to execute: note in ``file_baseline`` the files it may write (what
        it wrote when it last ran, in this kernel or as its latest checkpoint says, and the files
        its code changes: the analysis' ``file:`` effects, removals seen), as they are now, those not
        noted yet in this kernel. Asked of the store only the first time the step executes here."""
        rec = self.records.get(name)
        if rec is not None and rec.held_from:  # completed here before: what it wrote then
            paths = list(rec.wrote)
        else:
            paths = list(self.stored_wrote(name))
        step = self.steps.get(name)
        if step is not None and (step.observed_state or (step.analysis is not None and step.analysis.state)):
            paths.extend(os.path.normpath(os.path.abspath(x[5:])) for x in effects_of(step) if is_file(x))
        base = self.file_baseline
        for path in paths:
            if path not in base:
                base[path] = file_inputs.fingerprint(path)

    def note_appended(self, name: str, appended: frozenset) -> "list | None":
        """Step *name* executed and only appended to the files *appended* (``Outcome.appended``):
        kept for :meth:`appends`; the sorted list its checkpoint keeps (``parts["appended"]``), or
        None when there are none."""
        if appended:
            self.appended[name] = appended
            return sorted(appended)
        self.appended.pop(name, None)
        return None

    def appends(self, name: str) -> frozenset:
        """The files step *name* only appended to when it last executed: in this kernel, else as
        its latest checkpoint says (a step above that appends to a file leaves what the steps
        below wrote in it: :func:`nbsteps.run.decide.staleness.rewritten_above`)."""
        found = self.appended.get(name)
        if found is not None:
            return found
        rec = self.records.get(name)
        if rec is not None and rec.held_from == EXECUTED:  # executed here, appended to nothing
            return frozenset()
        return self._peek(name)[1]

    def dependencies(self, name: str) -> dict[str, str]:
        """``{upstream: "inferred" | "explicit" | ...}`` of step *name*."""
        return self.deps.deps.get(name, {})

    def sources(self, name: str) -> dict[str, str]:
        """``{input name: step it comes from}``"""
        return self.deps.sources.get(name, {})

    def upstream(self, names: Iterable[str]) -> set[str]:
        return self.deps.upstream(names)

    def downstream(self, names: Iterable[str]) -> set[str]:
        return self.deps.downstream(names)

    def order(self, names: "Iterable[str] | None" = None) -> list[str]:
        """*names* (default: all) in plan order, which is a topological order."""
        if names is None:
            return self.topological()
        chosen = set(names)
        return [s for s in self.topological() if s in chosen]

    def topological(self) -> list[str]:
        """All steps, dependencies first, ties in registration order (cached on the graph)."""
        return self.deps.topological(self.steps)

    def levels(self, names: "Iterable[str] | None" = None) -> dict[str, int]:
        """Parallel level of each step (0 = no dependencies among *names*)."""
        names = self.order(names)
        chosen = set(names)
        return graphs.levels(names, lambda s: (d for d in self.dependencies(s) if d in chosen))

    def select(self, targets: "Iterable[str] | None" = None) -> list[str]:
        """The steps a run of *targets* needs (targets and their upstream)."""
        if not targets:
            return self.order()
        targets = list(targets)
        for t in targets:
            self.require(t)
        return self.order(self.upstream(targets))
