"""``nbsteps status NOTEBOOK.ipynb --store DIR``: which steps a run would
restore and which it would execute, without a kernel.

Computed from the notebook's cells (the same steps and names as ``nbsteps run``
gives them), their analysis and the store's checkpoint metadata (nothing is
unpickled, nothing is written). A step is

- ``done``: a checkpoint of its code, taken after the checkpoints of its
  upstream steps that are done, is in the store;
- ``stale``: it has checkpoints, none of them of this code (``code changed``),
  or of these inputs (``upstream X re-ran since``, ``upstream X is stale``);
- ``failed``: the last ``nbsteps run`` with this store ran this code and it
  failed (what it raised);
- ``never run``: no checkpoint, no failure;
- ``unknown``: a checkpoint matches, but the step also reads values only the
  kernel knows (a parameter set in a plain cell, a notebook function): whether
  they changed is known only by running.

A checkpoint that keeps the files its step read (``parts["files"]``) is stale when
one of them changed since (``file sales.csv changed``), but for what the steps below it
wrote, as their latest checkpoints say: as for ``nbsteps run``, which decides the same
(``nbsteps.run.decide.staleness.explained_below``).

Exit status: 0 when every step is done, 1 otherwise, 2 for bad usage.
"""

from __future__ import annotations

import json
import os

from nbsteps.cli.cells import notebook_steps, python_source, step_options
from nbsteps.cli.driver import say
from nbsteps.errors import UsageError

#: the last ``nbsteps run``'s step statuses, kept in the store directory
LAST_RUN = ".nbsteps-last-run.json"


def write_last_run(store: str, notebook: str, report: dict) -> None:
    """(after ``nbsteps run --store``) what each step did, for ``nbsteps status``."""
    import time

    from nbsteps.files import atomic_write

    if not os.path.isdir(store):
        return
    body = {"notebook": notebook, "finished": time.time(), "steps": report.get("steps", {})}
    try:
        with atomic_write(os.path.join(store, LAST_RUN), "w") as f:
            json.dump(body, f, indent=1, sort_keys=True)
    except OSError as exc:
        say(f"nbsteps: could not record the run's statuses in {store}: {exc}", err=True)


def _last_run(store: "str | None") -> dict:
    if not store:
        return {}
    try:
        with open(os.path.join(store, LAST_RUN), encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) and isinstance(data.get("steps"), dict) else {}
    except (OSError, ValueError):
        return {}


def _open_store(store: "str | None"):
    """The store to read, or None when there is nothing to read (no directory,
    no key: then nothing was ever checkpointed that this user can verify)."""
    if not store or not os.path.isdir(store):
        return None
    from nbsteps.stores import open_store
    from nbsteps.stores.signing import key_path

    if not key_path().exists():
        return None
    return open_store(store)


def _checkpoints(store, name: str) -> list:
    """Metadata of *name*'s checkpoints, most recently used first."""
    if store is None:
        return []
    found = []
    for fp in reversed(store.fingerprints(name)):
        cp = store.peek(name, fp)
        if cp is not None:
            found.append(cp)
    return found


def _build_plan(steps, path: str):
    """A plan of the notebook's steps (memory store, empty namespace); problems by step."""
    from nbsteps.plan import Plan

    plan = Plan(store="memory")
    problems = {}
    for s in steps:
        try:
            name, options = step_options(s.header)
            plan.add_cell(name, python_source(s.body), **options)
        except Exception as exc:  # a cell nbsteps cannot register: the run would fail there
            problems[s.name] = " ".join(str(exc).split())[:200]
    return plan, problems


def _files_changed(plan, name: str, parts: dict) -> str:
    """``file sales.csv changed`` when the checkpoint keeps the files step *name* read
    (``parts["files"]``, where nbsteps fingerprints files) and one changed since, but for
    what a step below it wrote (its latest checkpoint's, from the store of *plan*): the
    decision ``nbsteps run`` makes."""
    if not parts.get("files"):
        return ""
    from nbsteps.model import file_inputs
    from nbsteps.run.decide.staleness import explained_below

    return file_inputs.why(parts["files"], explained_below(plan.context, name))


class _Judge:
    """Walks the steps in order, each judged against its upstream's judgement."""

    def __init__(self, plan, store, last: dict) -> None:
        from nbsteps.model.dependencies import ORDER_ONLY

        self.plan, self.store, self.last = plan, store, last
        self.order_only = ORDER_ONLY
        self.state: dict[str, str] = {}
        self.token: dict[str, str] = {}

    def judge(self, name: str) -> tuple[str, str]:
        step = self.plan.steps[name]
        deps = self.plan.deps.deps.get(name, {})
        upstream = sorted(d for d, kind in deps.items() if kind not in self.order_only)
        cps = _checkpoints(self.store, name)
        ran = (self.last.get("steps") or {}).get(name) or {}
        matching = [cp for cp in cps if (cp.parts or {}).get("code") == step.static_digest]
        fresh = [cp for cp in matching if set((cp.parts or {}).get("upstream", {})) == set(upstream)]
        if ran.get("status") == "failed" and ran.get("code") == step.static_digest:
            after = [cp for cp in fresh if (cp.finished or 0) > float(self.last.get("finished") or 0)]
            if not after:
                return "failed", ran.get("error") or "failed in the last run"
        if not cps:
            note = ""
            if ran.get("status") in ("blocked", "cancelled"):
                note = f" ({ran['status']} in the last run)"
            return "never run", f"no checkpoint{note}"
        if not matching:
            return "stale", "code changed"
        if not fresh:
            return "stale", "its inputs changed (it reads from other steps than when it ran)"
        for d in upstream:
            if self.state.get(d) != "done" and self.state.get(d) != "unknown":
                return "stale", f"upstream {d} is {self.state.get(d, 'not known')}"
        for cp in fresh:
            parts = cp.parts or {}
            if all(parts["upstream"].get(d) == self.token.get(d) for d in upstream):
                moved = _files_changed(self.plan, name, parts)
                if moved:
                    return "stale", moved
                self.token[name] = parts.get("token", cp.fingerprint)
                outside = sorted({*(parts.get("params") or {}), *(parts.get("helpers") or {})})
                if outside or any(self.state.get(d) == "unknown" for d in upstream):
                    why = (
                        f"reads {', '.join(outside)} from the kernel"
                        if outside
                        else "an upstream step is unknown until run"
                    )
                    return "unknown", f"{why}: unknown until run"
                return "done", "a checkpoint of this code and these inputs"
        changed = [d for d in upstream if (fresh[0].parts or {})["upstream"].get(d) != self.token.get(d)]
        return "stale", f"upstream {', '.join(changed)} re-ran since"

    def run(self, names) -> dict:
        out = {}
        for name in names:
            state, why = self.judge(name)
            self.state[name] = state
            out[name] = (state, why)
        return out


def status_command(args) -> int:
    from nbsteps.cli.notebook import _load_notebook

    nb = _load_notebook(args.notebook)
    store_dir = os.path.abspath(args.store) if args.store else None
    if store_dir and os.path.exists(store_dir) and not os.path.isdir(store_dir):
        raise UsageError(f"--store {args.store} is not a directory")
    steps, zero, with_ids = notebook_steps(nb.cells)
    plan, problems = _build_plan(steps, args.notebook)
    try:
        store = _open_store(store_dir)
    except Exception as exc:
        raise UsageError(f"--store {args.store}: {exc}") from None
    if store is not None:  # what the steps below wrote is read from their checkpoints, as in a run
        plan.set_store(store)
    judged = _Judge(plan, store, _last_run(store_dir)).run([n for n in plan.order()])
    rows = []
    for s in steps:
        if s.name in problems:
            state, why = "broken", problems[s.name]
        else:
            state, why = judged.get(s.name, ("never run", ""))
        rows.append({"step": s.name, "cell": s.index + 1, "state": state, "why": why})
    ok = bool(rows) and all(r["state"] == "done" for r in rows)
    if args.json:
        body = {
            "notebook": args.notebook,
            "store": store_dir,
            "zero_edit": zero,
            "named_by": "cell id" if with_ids else "position",
            "up_to_date": ok,
            "steps": rows,
        }
        print(json.dumps(body, indent=1))
        return 0 if ok else 1
    _print_text(args, rows, zero, with_ids, store_dir, ok)
    return 0 if ok else 1


def _print_text(args, rows, zero, with_ids, store_dir, ok) -> None:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    where = f"store {store_dir}" if store_dir else "no --store (nothing is checkpointed between runs)"
    kind = " (each code cell is a step)" if zero else ""
    say(f"nbsteps: {args.notebook}{kind}, {where}")
    if not with_ids:
        say("nbsteps: the notebook has no cell ids: steps are named by position (cell-N)")
    width = max((len(r["step"]) for r in rows), default=0)
    for r in rows:
        why = f": {r['why']}" if r["state"] != "done" and r["why"] else ""
        say(f"  {r['step']:<{width}}  {r['state']}{why}")
    summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no steps"
    say(f"nbsteps: {'up to date' if ok else 'not up to date'}: {summary}")
