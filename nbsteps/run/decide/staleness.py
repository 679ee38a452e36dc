"""Is a step up to date? Its fingerprint parts now, and why it must run.

A step's fingerprint covers its normalised source and ``--after`` (the static
digest), the executions of its upstream steps (their tokens), the outside
values it reads that are cheap to hash, and the code of notebook-defined
helpers it calls (see :mod:`nbsteps.model.fingerprint`); not the names that only the
bodies of functions it defines read (the calling step reads them: ``Step.called_reads``;
``CellAnalysis.later_reads``). The files it read are kept with its checkpoint,
which holds only while they are unchanged (:mod:`nbsteps.model.file_inputs`).
"""

from __future__ import annotations

import heapq
import os
import threading
import weakref
from typing import Callable

from nbsteps.model import file_inputs
from nbsteps.model.checkpoint import Checkpoint
from nbsteps.model.dependencies import ORDER_ONLY, Dependencies
from nbsteps.model.fingerprint import combine, outside_parts
from nbsteps.model.record import files_version
from nbsteps.model.state import effects_of, is_file
from nbsteps.model.status import BLOCKED, CANCELLED, COMPLETED, EXECUTED, FAILED
from nbsteps.model.step import Step
from nbsteps.run.context import RunContext

#: per resolved graph: step name -> (step, static parts); entries are checked against
#: the step object, so a step appended in place needs no clearing. The step object is
#: the key: a step edited or registered again is a new Step, and a function step's
#: code was read once, when it was registered (its ``static_digest``), so its
#: ``__code__`` is not read again here (each read is an audit event: a Python call
#: into the files hook, 3 times a step)
_STATIC: "weakref.WeakKeyDictionary[Dependencies, dict]" = weakref.WeakKeyDictionary()
#: (weak reference to the graph of the latest call, its cache): a run asks about one graph
_LAST: tuple = (lambda: None, {})


def static_parts(ctx: RunContext, step: Step) -> tuple:
    """(sorted upstream names, outside names to digest, their namespace or
    None for the plan's) of *step*: fixed for a resolved graph and a step
    object, so cached per Dependencies object (forgotten with it)."""
    global _LAST
    g = ctx.deps
    last_graph, cache = _LAST
    if last_graph() is not g:
        cache = _STATIC.get(g)
        if cache is None:
            cache = _STATIC[g] = {}
        _LAST = (weakref.ref(g), cache)
    hit = cache.get(step.name)
    if hit is not None and hit[0] is step:
        return hit[1]
    static = cache[step.name] = (step, _static_parts(g, step))
    return static[1]


def _static_parts(g: Dependencies, step: Step) -> tuple:
    """:func:`static_parts` of *step* in graph *g*, not cached (apart: its comprehensions make
    cells at each call, and most calls are cache hits)."""
    name = step.name
    deps = g.deps.get(name, _NONE)
    func = step.func
    if func is not None:
        code = getattr(func, "__code__", None)
        names = code.co_names if code else ()
        if deps and names and not deps.keys().isdisjoint(names):  # (rare: a global named as a step)
            names = tuple([n for n in names if n not in deps])
        globs = getattr(func, "__globals__", _NONE)
    else:
        sourced = g.sources.get(name, _NONE)
        names = tuple(sorted([n for n in step.inputs if n not in sourced]))
        later = step.analysis.later_reads if step.analysis is not None else None
        if later and names:
            # read only in the bodies of functions the cell defines: the caller reads them when it calls
            # one (Step.called_reads, the notebook's namespace from an ordinary cell), not this cell: no
            # parameter of it, whoever writes them and whenever that was registered (their appearance or
            # new value changes nothing the cell did)
            called = step.called_reads | step.linked | step.analysis.shadowable
            names = tuple([n for n in names if n not in later or n in called])
        globs = None
    if not deps:
        upstream = ()
    elif len(deps) == 1:  # (most steps: one upstream step, no list, no sort)
        upstream = () if _ORDER in deps.values() else tuple(deps)
    else:  # (a list comprehension and sort: no generator)
        upstream = [d for d, kind in deps.items() if kind not in ORDER_ONLY]
        upstream.sort()
        upstream = tuple(upstream)
    return (upstream, names, globs)


_NONE: dict = {}
(_ORDER,) = ORDER_ONLY  # (the one edge kind that orders only)


def outside_names(ctx: RunContext, step: Step) -> tuple:
    """The names *step* reads from the namespace (not from other steps)."""
    deps, names, globs = static_parts(ctx, step)
    return names if globs is None or globs is ctx.namespace else ()


def fingerprint_parts(
    ctx: RunContext, step: Step, tokens: dict | None = None, digests: dict | None = None
) -> dict:
    """What determines the step's outputs now (see nbsteps.model.fingerprint).
    *tokens* overrides the upstream execution tokens (used by previews); *digests*
    (name -> ``outside_parts``' parameter and helper digests of it, taken once for many
    steps) those of the outside names it reads from the plan's namespace."""
    deps, names, globs = static_parts(ctx, step)
    if tokens is None:
        records = ctx.records
        upstream = {}
        for d in deps:
            r = records[d]
            upstream[d] = r.token if r.status == COMPLETED else None
    else:  # (loops and map: a comprehension here made cells of tokens and digests at every call)
        upstream = {}
        for d in deps:
            upstream[d] = tokens.get(d)
    if names:
        if (
            digests is not None
            and (globs is None or globs is ctx.namespace)
            and all(map(digests.__contains__, names))
        ):
            params, helpers = {}, {}
            for n in names:
                p, h = digests[n]
                if p is not None:
                    params[n] = p
                elif h is not None:
                    helpers[n] = h
        else:
            params, helpers = outside_parts(names, ctx.namespace if globs is None else globs)
        if len(params) > 1:
            params = dict(sorted(params.items()))
        if len(helpers) > 1:
            helpers = dict(sorted(helpers.items()))
    else:
        params, helpers = {}, {}
    return {"code": step.static_digest, "upstream": upstream, "params": params, "helpers": helpers}


def explained_below(ctx: RunContext, name: str) -> Callable[[], dict]:
    """What the steps below step *name* in the notebook wrote (``RunContext.written_below``), as
    the *explained* of :func:`stale_reason` and :func:`nbsteps.model.file_inputs.changed`: asked
    only when a file it read changed. A file that is now as a step below left it changed as Run
    All changes it, after the step read it: no change of its input. The run (the executor, the
    preview), :func:`refresh_stale` and every explanation (``%steps why``, the status line, the
    badges, ``nbsteps status``) ask this: a step said to be stale is one the next run executes."""
    return lambda: ctx.written_below(name)


def files_moved(ctx: RunContext, name: str, files: "dict | None") -> list:
    """The paths of *files* (``{path: fingerprint}`` step *name* read, as its record or checkpoint
    keeps them) that changed since, but for what a step below it wrote (:func:`explained_below`):
    the files that make it stale, sorted."""
    return file_inputs.changed(files, explained_below(ctx, name)) if files else []


def rewritten_above(ctx: RunContext, name: str, held) -> str:
    """Why step *name*, up to date by its fingerprint, executes again all the same: a file it
    wrote when its values were made (*held*: its record, or the checkpoint it would be restored
    from, whose ``wrote`` is ``parts["wrote"]``) was written again since by a step above it in the
    notebook that executed in this kernel, is now as that step left it, and is neither as *name*
    nor as the last step writing it in the notebook (*name* or one below) left it; else ``""``.

    Run All writes the files in notebook order: step A above writes F, step B below removes or
    rewrites it, and F ends as the last writer leaves it (SPEC 1, "Files"). A new kernel executes
    A again (its values could not be stored, or it is stale) and would restore B, whose effect on
    F is not replayed by restoring its values: F would end as A left it. So B executes again, and
    so does each writer below whose version of F is gone (the same rule, B being above it then).
    A file that is as the last writer below left it, or as it was before the steps that executed
    in this kernel could write it (``RunContext.file_baseline``: A's write undone by a step in
    between that executed again) is left as it is: as when nothing executed, restoring every
    writer down to the last one leaves it as Run All does, and a step between that reads it finds
    it as a step below left it (:func:`explained_below`). (A new kernel running the cells one by
    one knows no step below yet: the baseline is what keeps pd_io_text's cell66, which writes
    tmp.csv from random draws, restored after cells 43 and 44 wrote and removed it again.)

    Only files both steps were seen writing (their ``wrote``), no file of a library's own (a
    cache, a temporary file) that one of them did not write; only a step above that finished
    after *name*'s values were made (a checkpoint's time: an earlier process), so a step that
    executed again after the step above it is not executed again at every run. Not a file the
    step above only appended to (``O_APPEND``, ``RunContext.appended``): what *name* left in it
    is still there (editing the first of three steps appending to a log executes it alone)."""
    wrote = _wrote_of(held)
    if not wrote:
        return ""
    made = getattr(held, "finished", None) or 0.0
    records, found, now = ctx.records, {}, {}
    for s in ctx.steps:
        if s == name:
            break
        rec = records.get(s)
        theirs = rec.wrote if rec is not None else None
        if not theirs or rec.held_from != EXECUTED or rec.status != COMPLETED:
            continue
        if (rec.finished or 0.0) <= made:
            continue
        appended = ctx.appended.get(s)
        for path, fp in wrote.items():
            left = theirs.get(path)
            if left is None or left == fp or (appended and path in appended):
                continue
            if path not in now:
                now[path] = file_inputs.fingerprint(path)
            if now[path] == left:
                found[path] = s  # (the nearest such step above is named)
    if found:
        last, base = _last_written(ctx, name, wrote, found), ctx.file_baseline
        for path, s in found.items():
            if now[path] != last.get(path) and now[path] != base.get(path, _MISSING):
                return f"file {file_inputs.shown(path)} written again by {s} above"
    return ""


def _wrote_of(held) -> "dict | None":
    """``wrote`` of a record, or ``parts["wrote"]`` of a checkpoint."""
    wrote = getattr(held, "wrote", None)
    if wrote is None:
        parts = getattr(held, "parts", None)
        wrote = parts.get("wrote") if isinstance(parts, dict) else None
    return wrote


def _last_written(ctx: RunContext, name: str, wrote: dict, paths) -> dict:
    """``{path: fingerprint}`` of *paths* as the last step writing each, in notebook order, left it:
    step *name* (*wrote*) or one below it (its record's ``wrote``, or its latest checkpoint's when
    it is not completed in this kernel, as :meth:`RunContext.written_below` reads them)."""
    last = {p: wrote.get(p) for p in paths}
    below, records, store = False, ctx.records, ctx.store
    for s in ctx.steps:
        if below:
            rec = records.get(s)
            theirs = getattr(rec, "wrote", None)
            if not theirs and store is not None and (rec is None or rec.status != COMPLETED):
                theirs = ctx.stored_wrote(s)
            if theirs:
                for p in last:
                    if p in theirs:
                        last[p] = theirs[p]
        below = below or s == name
    return last


def rewritten_ahead(ctx: RunContext, name: str, held, will_run: "set[str]") -> str:
    """:func:`rewritten_above` foreseen by a preview: step *name* (restored from *held* otherwise)
    runs when the nearest step above it in the notebook that the run will execute (*will_run*) and
    that writes a file *name* wrote leaves it otherwise than *name* and the last writer of it did:
    as it left it when it last ran, or, when no run of it says (its values were not stored: no
    checkpoint), unknown (its code changes that file: the analysis' ``file:`` effects, or a
    removal seen); not a step that only appends to it; else ``""``."""
    wrote = _wrote_of(held)
    if not wrote or not will_run:
        return ""
    records, ahead = ctx.records, {}
    for s in ctx.steps:
        if s == name:
            break
        if s not in will_run:
            continue
        rec = records.get(s)
        theirs = (rec.wrote if rec is not None else None) or ctx.stored_wrote(s)
        if not theirs:
            changes = [label[5:] for label in effects_of(ctx.steps[s]) if is_file(label)]
            theirs = dict.fromkeys((os.path.normpath(os.path.abspath(p)) for p in changes), "")
        appended = ctx.appends(s)
        for path in wrote:
            left = theirs.get(path) if theirs else None
            if left is not None and path not in appended:
                ahead[path] = (s, left)  # (the nearest step above wins)
    if ahead:
        last, base = _last_written(ctx, name, wrote, ahead), ctx.file_baseline
        for path, (s, left) in ahead.items():
            if left == wrote[path] or (left and left == last.get(path)):
                continue
            if left and left == (base[path] if path in base else file_inputs.fingerprint(path)):
                continue  # as it was before the run: as if nothing had executed
            return f"file {file_inputs.shown(path)}: {s} above will write it again"
    return ""


def stale_reason(step: Step, parts: dict, cp: Checkpoint | None, record=None, explained=None) -> str:
    """Why the step must run given its checkpoint; '' when it is up to date."""
    if not step.cache:
        return "--no-cache"
    if cp is None:
        if record is not None and record.status in (FAILED, BLOCKED, CANCELLED):
            if record.status == FAILED and record.attempted and record.attempted != step.static_digest:
                return "code changed since it failed"
            return f"{record.status} last run"
        return "never run"
    return _changed_since(cp.parts or {}, parts, explained)


def _changed_since(old: dict, parts: dict, explained) -> str:
    """:func:`stale_reason` for a step with a checkpoint whose parts are *old* (apart: the
    comprehensions here make cells of these names at each call, and most calls have none)."""
    if old.get("code") != parts["code"]:
        return "code changed"
    for kind, label in (("helpers", "helper"), ("params", "parameter")):
        changed = [
            k
            for k in set(old.get(kind, {})) | set(parts[kind])
            if old.get(kind, {}).get(k) != parts[kind].get(k)
        ]
        if changed:
            return f"{label} {', '.join(sorted(changed))} changed"
    if old.get("upstream") != parts["upstream"]:
        changed = [k for k, v in parts["upstream"].items() if old.get("upstream", {}).get(k) != v]
        return f"upstream {', '.join(changed) or 'set'} changed"
    # a file it read changed since, but for what a step below wrote (nbsteps.model.file_inputs)
    return file_inputs.why(old.get("files"), explained)


NOT_STORED = "not stored when it last ran"


def not_stored(store, name: str, fingerprint: str, reason: str) -> str:
    """For a step "never run" in this kernel (*reason*) whose very fingerprint an earlier
    process computed but *store* could not keep (its note, ``store.unstored``): why not,
    the reason it runs again; else ``""``."""
    if reason == "never run" and (why := store.unstored(name, fingerprint)):
        return f"its values were {NOT_STORED}: {why}"
    return ""


class _Pass:
    """What :func:`refresh_stale` keeps of a context between calls."""

    __slots__ = ("mark", "names", "readers", "seen", "own", "files", "graph", "position", "lock")

    def __init__(self) -> None:
        self.lock = threading.RLock()  # (a live view refreshes on its timer's thread)
        self.mark = None  # RunContext.changes_since
        self.names: dict[str, tuple] = {}  # step -> the outside names it reads from the plan's namespace
        self.readers: dict[str, set[str]] = {}  # outside name -> the steps reading it there
        #: outside name -> what a step's fingerprint takes of it (its parameter and helper digests)
        #: at the latest pass: only the readers of a name whose digests changed are checked again
        self.seen: dict[str, tuple] = {}
        self.own: set[str] = set()  # steps reading outside names from globals of their own: always checked
        self.files: tuple = (None, frozenset())  # (files_version, records), steps that read files
        self.graph = None  # the graph ``position`` is of
        self.position: dict[str, int] = {}  # step -> its place in plan order


def _index(ctx: RunContext, memo: _Pass, name: str) -> None:
    """Note in *memo* the outside names step *name* reads now, if it is completed (a change of
    its status is a change of its record: it is noted again then)."""
    for n in memo.names.pop(name, ()):
        readers = memo.readers.get(n)
        if readers is not None:
            readers.discard(name)
            if not readers:
                del memo.readers[n]
                memo.seen.pop(n, None)
    memo.own.discard(name)
    step, rec = ctx.steps.get(name), ctx.records.get(name)
    if step is None or rec is None or rec.status != COMPLETED:  # (its flag is False: nothing to check)
        return
    _, names, globs = static_parts(ctx, step)
    if not names:
        return
    if globs is not None and globs is not ctx.namespace:
        memo.own.add(name)
        return
    memo.names[name] = names
    for n in names:
        memo.readers.setdefault(n, set()).add(name)


def _outside_changed(ctx: RunContext, memo: _Pass) -> set:
    """The steps reading an outside name whose digests (what ``fingerprint_parts`` takes
    of it: ``outside_parts``, name by name) changed since the latest pass; each name
    digested once, however many steps read it. ``memo.seen`` holds the digests now: the
    pass checks its steps against these, so a value changed meanwhile (a run publishing
    on another thread) is a change at the next pass."""
    readers, seen = memo.readers, memo.seen
    if not readers:
        return set()
    params, helpers = outside_parts(readers, ctx.namespace)
    out: set = set()
    for n, steps in readers.items():
        now = (params.get(n), helpers.get(n))
        if seen.get(n, _MISSING) != now:
            seen[n] = now
            out |= steps
    return out


_MISSING = object()


def _stale(ctx: RunContext, name: str, rec, digests: dict) -> bool:
    if rec.status != COMPLETED:
        return False
    records = ctx.records
    return (
        any(records[d].stale for d in ctx.dependencies(name))
        or combine(fingerprint_parts(ctx, ctx.steps[name], digests=digests)) != rec.fingerprint
        or bool(rec.files and files_moved(ctx, name, rec.files))
        or bool(rec.wrote and rewritten_above(ctx, name, rec))
    )


def _seeds(ctx: RunContext, memo: _Pass, changed: set, order: list) -> dict[str, int]:
    """Bring *memo*'s steps reading outside values and files, and its plan positions,
    up to date with the steps *changed*; the positions."""
    records = ctx.records
    for name in changed:
        _index(ctx, memo, name)
    version = files_version()
    if memo.files[0] != version:
        memo.files = (version, frozenset(n for n, r in records.items() if r.files))
    position = memo.position
    if memo.graph is not ctx.deps or len(position) > len(order):
        memo.graph, position = ctx.deps, {}
        memo.position = position
    for i in range(len(position), len(order)):  # (a graph changes in place only by steps appended)
        position[order[i]] = i
    return position


def refresh_stale(ctx: RunContext) -> None:
    """Set ``record.stale`` for completed steps whose code, options, upstream
    executions or outside values changed since they ran (in plan order, so a
    step below a stale one is stale too). The facade calls it before views
    draw the records.

    Only the steps whose flag can have changed since the last call are checked
    (:meth:`RunContext.changes_since`): those whose record changed or that were
    registered again, those reading a name from the namespace whose digests
    (``outside_parts``: what their fingerprints take of it) changed since the last
    call, those reading files (any cell may change either, unknown to nbsteps), and,
    in plan order, those below a step whose record or flag changed. Each outside name
    is digested once a call, however many steps read it. The first call, and one
    after the graph was resolved again, checks every step."""
    memo = ctx.__dict__.get("_stale_pass")
    if memo is None:
        memo = ctx.__dict__.setdefault("_stale_pass", _Pass())
    with memo.lock:
        _refresh(ctx, memo)


def _refresh(ctx: RunContext, memo: _Pass) -> None:
    changed, memo.mark = ctx.changes_since(memo.mark)
    records = ctx.records
    order = ctx.order()
    if changed is None:  # every step, as it is
        memo.names, memo.readers, memo.seen, memo.own = {}, {}, {}, set()
        for name in order:
            _index(ctx, memo, name)
        _outside_changed(ctx, memo)  # (the digests this pass sees)
        for name in order:
            rec = records[name]
            stale = _stale(ctx, name, rec, memo.seen)
            if rec.stale != stale:  # (a record set is a change: only when it is one)
                rec.stale = stale
        return
    position = _seeds(ctx, memo, changed, order)
    down = ctx.deps.downstream_map()
    seeds = changed | _outside_changed(ctx, memo) | memo.own | memo.files[1]
    heap = [(position[n], n) for n in seeds if n in position]
    heapq.heapify(heap)
    seen: set[str] = set()
    while heap:
        _, name = heapq.heappop(heap)
        if name in seen:
            continue
        seen.add(name)
        rec = records[name]
        stale = _stale(ctx, name, rec, memo.seen)
        if rec.stale != stale:
            rec.stale = stale
        elif name not in changed:
            continue  # nothing the steps below read of it changed
        for d in down.get(name, ()):
            if d not in seen:
                heapq.heappush(heap, (position[d], d))
