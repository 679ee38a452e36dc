"""Randomized interrupts of a real kernel: ``KernelManager.interrupt_kernel()``
at random moments of ``%steps run`` over a small plan (quick steps and 50-200 ms
steps, some writing 1-16 MB values: a DataFrame as Parquet, bytes and an array
pickled), with a directory store and with the memory store, in one kernel.

After every interrupt the kernel checks itself:

- every ``completed`` step has its outputs in the namespace (the very objects
  of its record), or, restored from the directory store and not used yet,
  deferred (out of the namespace, read when a cell uses them) and its checkpoint
  in the store with the record's fingerprint and execution token (every 10th
  check also loads it back from the store);
- a step that is not completed published nothing of the attempt that did not
  complete (every execution writes a fresh tag ``t_<step>``), and the store holds
  no checkpoint of such an attempt;
- nothing is ``pending``, ``running`` or ``retrying`` after the run;
- the error shown is the summary of this run (``last_summary`` is new, its
  text is the error's, its statuses are the records'), a one-line
  StepsFailed/StepsInterrupted or IPython's own KeyboardInterrupt, never with
  a frame of nbsteps' files;
- an interrupt sent while the run was going on is never lost.

The figures are printed (run with ``-s``): interrupts sent, landed mid-run,
landed outside the run (before it or after it, in IPython or ipykernel), missed because the
kernel was not executing yet or any more (ipykernel ignores SIGINT between
cells), and consistent.
"""

import json
import random
import time

import pytest
from live_kernel import LiveKernel, nbsteps_frames

pytestmark = pytest.mark.kernel

SETUP = r"""
import itertools, time, json
import numpy as np, pandas as pd
import nbsteps

_tags = itertools.count(1)
def tag():
    return next(_tags)

stamps = {}
def _stamp(event):
    if event.kind in ("planned", "finished"):
        stamps[event.kind] = time.monotonic()
nbsteps.current().listeners.append(_stamp)
get_ipython().events.register("pre_run_cell", lambda info: stamps.__setitem__("cell", time.monotonic()))

good = {}  # step -> (tag, token) of its last completed execution
completed = {}  # step -> the tokens of every execution of it seen completed

def check(prev, full):
    plan, ns = nbsteps.current(), get_ipython().user_ns
    pending = plan.deferred.pending  # restored from the directory store, published when a cell uses them
    problems = []

    def shown(name):  # what the notebook sees under *name* (a deferred value once a cell uses it)
        return ns.get(name) if name not in pending else pending[name][name]

    def published(name, rec):
        if name in ns:
            return name not in pending and ns[name] is rec.outputs.get(name)
        return pending.get(name) is rec.outputs
    for name in plan.order():
        rec, t = plan.records[name], f"t_{name}"
        if rec.status in ("pending", "running", "retrying"):
            problems.append(f"{name} is {rec.status} after the run")
        cp = plan.store.peek(name)
        token = (cp.parts or {}).get("token") if cp is not None else None
        if rec.status == "completed":
            missing = [o for o in plan.steps[name].outputs if not published(o, rec)]
            if missing:
                problems.append(f"{name} completed but {missing} not published")
            if cp is None or cp.fingerprint != rec.fingerprint or token != rec.token:
                problems.append(f"{name} completed but its checkpoint is not in the store")
            elif full:
                loaded = plan.store.get(name, rec.fingerprint)
                if loaded is None or loaded.outputs.get(t) != shown(t):
                    problems.append(f"{name} completed but its stored checkpoint does not load back")
            good[name] = (shown(t), rec.token)
            completed.setdefault(name, set()).add(rec.token)
        else:
            g_tag = good.get(name, (None, None))[0]
            if shown(t) != g_tag:
                problems.append(f"{name} is {rec.status} but its attempt's outputs were published")
            # every checkpoint the store keeps (of any fingerprint: an older one is still there when
            # the garbage collector removed the last, built on upstream versions a forced run replaced)
            # is of an execution seen completed, never of this attempt
            kept = [plan.store.peek(name, fp) for fp in plan.store.fingerprints(name)]
            tokens = {(c.parts or {}).get("token") for c in kept if c is not None}
            strays = tokens.difference(completed.get(name, ()))
            if strays:
                problems.append(f"{name} is {rec.status} but its attempt's checkpoint was stored: {strays}")
    s = plan.last_summary
    new = s is not None and s is not prev
    return {
        "problems": problems, "new": new, "interrupted": bool(new and s.interrupted),
        "text": s.text if s is not None else None,
        "describes_records": bool(s is not None and all(
            s.records[n].status == plan.records[n].status for n in s.steps)),
        "stamps": dict(stamps),
    }
"""

STEPS = [
    '%%step a\nt_a = tag()\ntime.sleep(cfg["a"])\nx_a = [t_a]',
    '%%step b\nt_b = tag()\ntime.sleep(cfg["b"])\n'
    'frame_b = pd.DataFrame({"v": np.full(cfg["size_b"] // 8, float(t_b))})',
    '%%step c\nt_c = tag()\ntime.sleep(cfg["c"])\nx_c = x_a + [t_c]',
    '%%step d\nt_d = tag()\nblob_d = bytes(cfg["size_d"]) + str(t_d).encode()\ntime.sleep(cfg["d"])\n'
    "n_d = len(frame_b)",
    "%%step e\nt_e = tag()\nx_e = x_c + [n_d, t_e]",
    "%%step f\nt_f = tag()",
    '%%step g\nt_g = tag()\ntime.sleep(cfg["g"])\narr_g = np.full(cfg["size_g"], t_g % 251, dtype=np.uint8)\n'
    "len(x_e) + t_f",
]
ERRORS = {"StepsFailed", "StepsInterrupted", "KeyboardInterrupt"}


def _cfg(rng: random.Random) -> dict:
    cfg = {k: (0.0 if rng.random() < 0.3 else round(rng.uniform(0.05, 0.2), 3)) for k in "abcdg"}
    cfg.update({k: rng.randint(1 << 20, 16 << 20) for k in ("size_b", "size_d", "size_g")})
    return cfg


def interrupt_at_random(kernel_name, tmp_path, interrupts: int, seed: int) -> dict:
    rng = random.Random(seed)
    figures = {
        "sent": 0,
        "mid-run": 0,
        "outside the run": 0,
        "missed (kernel idle)": 0,
        "lost": 0,
        "consistent": 0,
        "inconsistent": 0,
    }
    failures: list = []
    with LiveKernel(kernel_name, tmp_path) as k:
        k.run("%load_ext nbsteps\n%steps mode plan")
        k.run(SETUP + f"\ncfg = {_cfg(rng)!r}")
        for cell in STEPS:
            k.run(cell)
        for store in (str(tmp_path / "store"), "memory"):
            k.run(f"%steps store {store}\n%steps run --force-all")  # every record has its checkpoint here
            k.run("good.clear(); completed.clear()")
            assert k.value("check(None, True)")["problems"] == []
            wall = 1.0  # estimate of a whole run, from the runs that were not interrupted
            for _ in range(interrupts // 2):
                workers = rng.choice([1, 2, 4])
                force = " --force-all" if rng.random() < 0.2 else ""
                k.run(f"cfg = {_cfg(rng)!r}\nprev = nbsteps.current().last_summary\nstamps.clear()")
                msg = k.submit(f"%steps run --workers {workers}{force}")
                time.sleep(rng.uniform(0, 1.2 * wall))
                t_before = time.monotonic()
                k.interrupt()
                t_after = time.monotonic()
                figures["sent"] += 1
                out = k.collect(msg)
                state = k.value(f"check(prev, {figures['sent'] % 10 == 0})")
                stamps = state["stamps"]
                where = f"interrupt {figures['sent']} ({store}, workers {workers}{force})"
                bad = list(state["problems"])
                if out["status"] == "error":
                    if out["ename"] not in ERRORS:
                        bad.append(f"error {out['ename']}: {out['evalue']}")
                    frames = nbsteps_frames(out["traceback"])
                    if frames:
                        bad.append(f"nbsteps frames in the traceback: {frames[:3]}")
                    if out["ename"] == "StepsFailed" and not (
                        state["new"] and state["text"] == out["evalue"] and state["describes_records"]
                    ):
                        bad.append(f"the error is not this run's summary: {out['evalue']!r} / {state}")
                    figures["mid-run" if state["interrupted"] else "outside the run"] += 1
                    if state["interrupted"]:
                        kind = "memory" if store == "memory" else "directory"
                        figures[f"mid-run, {kind} store"] = figures.get(f"mid-run, {kind} store", 0) + 1
                elif out["status"] == "no reply":  # landed in ipykernel after the cell: the run was over
                    if state["interrupted"] or not state["describes_records"]:
                        bad.append(f"no reply, and the run was not over: {state}")
                    figures["outside the run"] += 1
                else:
                    if not (state["new"] and state["describes_records"]):
                        bad.append(f"no summary of this run: {state}")
                    finished = stamps.get("finished", 0.0)
                    if stamps.get("planned", float("inf")) < t_before and t_after < finished - 0.6:
                        figures["lost"] += 1
                        bad.append(f"interrupt lost: sent {finished - t_after:.2f} s before the run ended")
                    else:
                        figures["missed (kernel idle)"] += 1
                    if "planned" in stamps and "finished" in stamps:
                        wall = 0.7 * wall + 0.3 * (stamps["finished"] - stamps["planned"])
                figures["inconsistent" if bad else "consistent"] += 1
                if bad:
                    failures.append((where, bad))
    figures["failures"] = failures
    return figures


def _report(figures: dict) -> str:
    counts = ", ".join(f"{k}: {v}" for k, v in figures.items() if k != "failures")
    return f"randomized interrupts: {counts}"


def test_forty_random_interrupts(kernel_name, tmp_path, tmp_key):
    figures = interrupt_at_random(kernel_name, tmp_path, 40, seed=40)
    print("\n" + _report(figures))
    assert figures["failures"] == [], json.dumps(figures["failures"], indent=1)
    assert figures["mid-run"] >= 10  # most landed while steps ran or were being checkpointed


@pytest.mark.slow
def test_two_hundred_random_interrupts(kernel_name, tmp_path, tmp_key):
    figures = interrupt_at_random(kernel_name, tmp_path, 200, seed=200)
    print("\n" + _report(figures))
    assert figures["failures"] == [], json.dumps(figures["failures"], indent=1)
    assert figures["mid-run"] >= 100
