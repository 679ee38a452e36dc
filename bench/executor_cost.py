"""The executor's own cost per step (issue 26, target 6b): the peer harness's
``chain_1000`` and ``wide_1000`` (no-op steps, registration + run, observation on:
``bench/nbsteps_side.py``), in CPU time as well as wall time, each version in
fresh interpreters, alternated.

    python bench/executor_cost.py                          # this checkout
    python bench/executor_cost.py --against /tmp/base      # and the nbsteps package in
                                                           # /tmp/base/nbsteps, alternated
    python bench/executor_cost.py --rounds 3 --repeat 9 --profile chain
    python bench/executor_cost.py --floor     # what the guarantees alone cost (see floor())

CPU time (``time.process_time``, every thread of the process) is what the executor
costs; on a loaded machine the wall time adds the waits for a core and moves by
±50 %, CPU time by ±10 %. ``calib`` is a fixed pure-Python loop timed the same way:
compare versions within one run, and figures across runs as multiples of it.
``--profile chain|wide`` prints a cProfile of the run of this checkout instead, ``--sample
chain|wide`` a sampling profile (SIGPROF: cProfile's per-call cost distorts no-op steps), of
the run, or with ``--phase registration`` of the registration.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N = 1000


def _calib() -> float:
    """µs of CPU for a fixed dict/str/call loop (the machine's speed now)."""
    d: dict = {}
    t = time.process_time()
    for i in range(20000):
        d[str(i)] = (i, i * 2)
        d.get(str(i - 1))
    return (time.process_time() - t) * 1e6 / 1000


def _timed(fn) -> tuple:
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def measure(repeat: int) -> dict:
    """In the child: µs/step medians of registration and run, wall and CPU."""
    from bench import nbsteps_side as S

    out: dict = {}
    calib = []
    for wl in ("chain", "wide"):
        S.user_module(wl, N)
        S.build_and_run(wl, N)  # warm-up
        build, run = [], []
        for _ in range(repeat):
            calib.append(_calib())
            w, c, plan = _timed(lambda wl=wl: S.build_plan(wl, N))
            build.append((w, c))
            w, c, _ = _timed(lambda wl=wl, plan=plan: S.run_plan(plan, wl, N))
            run.append((w, c))

        def med(xs, k):
            return round(statistics.median(x[k] for x in xs) * 1e6 / N, 1)

        cell = {"build_cpu": med(build, 1), "run_cpu": med(run, 1), "build_wall": med(build, 0)}
        cell["run_wall"] = med(run, 0)
        cell["cpu"] = round(cell["build_cpu"] + cell["run_cpu"], 1)
        # the least CPU of the runs: on a loaded machine (other processes on the cores, caches
        # shared) the steadiest figure of what the code itself costs
        cell["cpu_min"] = round((min(x[1] for x in build) + min(x[1] for x in run)) * 1e6 / N, 1)
        cell["wall"] = round(cell["build_wall"] + cell["run_wall"], 1)
        out[wl] = cell
    out["calib"] = round(statistics.median(calib), 2)
    return out


def child(impl_root: str, repeat: int) -> dict:
    env = dict(os.environ)
    env.pop("NBSTEPS_STORE", None)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", impl_root, "--repeat", str(repeat)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"{impl_root}: {p.stderr.strip()[-1500:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _child(impl_root: str, repeat: int) -> None:
    """The nbsteps package of *impl_root*, the bench package of this checkout."""
    sys.path.insert(0, impl_root)
    import nbsteps

    where = os.path.dirname(os.path.dirname(os.path.realpath(nbsteps.__file__)))
    if where != os.path.realpath(impl_root):
        raise SystemExit(f"imported the nbsteps in {where}, not the one in {impl_root}")
    sys.path.insert(0, ROOT)
    for name in [m for m in sys.modules if m == "bench" or m.startswith("bench.")]:
        del sys.modules[name]
    print(json.dumps(measure(repeat)))


def floor(repeat: int = 9) -> float:
    """CPU µs/step of a loop over chain_1000 doing only what the guarantees need, with
    nbsteps' own pieces: the fingerprint from the upstream tokens, a memory-store lookup
    and put, the output capture and files recording in a context copy, the call, an
    Outcome and a Checkpoint, publishing, the record's fields, the ready-step Sorter."""
    import contextvars
    import itertools

    sys.path.insert(0, ROOT)
    from bench import nbsteps_side as S
    from nbsteps.model.checkpoint import Checkpoint
    from nbsteps.model.fingerprint import combine
    from nbsteps.model.record import StepRecord
    from nbsteps.run.attempt import opened
    from nbsteps.run.attempt.capture import Capture
    from nbsteps.run.attempt.task import Outcome
    from nbsteps.run.decide.selection import Sorter
    from nbsteps.stores.memory import MemoryStore

    funcs = {f.__name__: f for f in S.user_module("chain", N).STEPS}
    names = list(funcs)
    ups = {s: names[i - 1 : i] for i, s in enumerate(names)}
    down = {names[i - 1]: [s] for i, s in enumerate(names) if i}
    digest = "0" * 32 + "|after=[]"
    executions = itertools.count()

    def attempt(name, args):
        with Capture(name) as cap:
            with opened.recording() as files:
                t0 = time.perf_counter()
                r = funcs[name](**args)
                o = Outcome(True, {name: r}, r, True, started=time.time(), duration=time.perf_counter() - t0)
            cap.finish(r)
        o.output, o.files = cap.output, files.inputs(None)
        return o

    def run():
        store, ns = MemoryStore(), {}
        recs = {s: StepRecord(s) for s in names}
        ts = Sorter(ups, down)
        while ts.is_active():
            for name in ts.get_ready():
                rec = recs[name]
                upstream = {d: recs[d].token for d in ups[name]}
                parts = {"code": digest, "upstream": upstream, "params": {}, "helpers": {}}
                fp = combine(parts)
                if store.get(name, fp) is None:
                    args = {p: recs[p].result for p in ups[name]}
                    o = contextvars.copy_context().run(attempt, name, args)
                    cp = Checkpoint(name, fp, o.outputs, o.result, True, parts=parts, finished=time.time())
                    store.put(cp)
                    ns.update(cp.outputs)
                    rec.status, rec.outputs, rec.result = "running", cp.outputs, cp.result
                    rec.status, rec.fingerprint, rec.token = "completed", fp, f"{fp}:{next(executions)}"
                ts.done(name)

    run()
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.process_time()
        run()
        times.append(time.process_time() - t)
    return statistics.median(times) * 1e6 / N


def profile(workload: str) -> None:
    import cProfile
    import pstats

    sys.path.insert(0, ROOT)
    from bench import nbsteps_side as S

    S.user_module(workload, N)
    S.build_and_run(workload, N)
    prof = cProfile.Profile()
    for _ in range(3):
        plan = S.build_plan(workload, N)
        prof.enable()
        S.run_plan(plan, workload, N)
        prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(40)


def sample(workload: str, runs: int = 150, interval: float = 0.0002, phase: str = "run") -> None:
    """A sampling profile of the run (SIGPROF every *interval* s of CPU): per function, the
    share of samples in it (self) and under it (inclusive). Less distorting than cProfile,
    which costs more per call than the no-op steps themselves. *phase* ``registration``:
    of the registration (``build_plan``) instead."""
    import collections
    import signal

    sys.path.insert(0, ROOT)
    from bench import nbsteps_side as S

    S.user_module(workload, N)
    S.build_and_run(workload, N)
    own, under, lines = collections.Counter(), collections.Counter(), collections.Counter()
    active = [False]

    def where(code) -> str:
        path = code.co_filename
        short = path.split("/nbsteps/", 1)[-1] if "/nbsteps/" in path else os.path.basename(path)
        return f"{short}:{code.co_name}"

    def on_sample(_sig, frame) -> None:
        if not active[0] or frame is None:
            return
        own[where(frame.f_code)] += 1
        lines[f"{where(frame.f_code)}:{frame.f_lineno}"] += 1
        seen = set()
        while frame is not None:
            key = where(frame.f_code)
            if key not in seen:
                seen.add(key)
                under[key] += 1
            frame = frame.f_back

    signal.signal(signal.SIGPROF, on_sample)
    signal.setitimer(signal.ITIMER_PROF, interval, interval)
    try:
        for _ in range(runs):
            active[0] = phase == "registration"
            plan = S.build_plan(workload, N)
            active[0] = phase == "run"
            S.run_plan(plan, workload, N)
            active[0] = False
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
    total = sum(own.values()) or 1
    print(f"{total} samples of the {phase} of {workload}_{N} ({runs} runs)")
    print("inclusive %  function")
    for key, n in under.most_common(45):
        print(f"{100 * n / total:10.1f}  {key}")
    print("self %       function")
    for key, n in own.most_common(30):
        print(f"{100 * n / total:10.1f}  {key}")
    print("self %       line")
    for key, n in lines.most_common(40):
        print(f"{100 * n / total:10.1f}  {key}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--against", default=None, help="a folder holding another nbsteps package (the base)")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds (fresh interpreters)")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per workload in each child")
    ap.add_argument("--profile", choices=("chain", "wide"), default=None)
    ap.add_argument("--sample", choices=("chain", "wide"), default=None, help="a sampling profile")
    ap.add_argument("--phase", choices=("run", "registration"), default="run", help="what --sample profiles")
    ap.add_argument("--floor", action="store_true", help="the floor loop's run cost (this checkout)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child, a.repeat)
        return
    if a.profile:
        profile(a.profile)
        return
    if a.sample:
        sample(a.sample, phase=a.phase)
        return
    if a.floor:
        print(f"floor: chain_{N} run {floor():.1f} µs/step CPU (calib {_calib():.2f})")
        return
    impls = {"this": ROOT}
    if a.against:
        impls["base"] = os.path.abspath(a.against)
    load0 = os.getloadavg()[0]
    runs: dict = {k: [] for k in impls}
    for _ in range(a.rounds):
        for k, root in impls.items():
            runs[k].append(child(root, a.repeat))
    load1 = os.getloadavg()[0]
    what = f"medians of {a.rounds} rounds × {a.repeat} runs"
    print(f"executor cost, µs/step ({what}); load {load0:.2f} → {load1:.2f}")
    print("| version | workload | registration CPU | run CPU | total CPU | total wall | calib |")
    print("|---|---|---|---|---|---|---|")
    for k, rs in runs.items():
        for wl in ("chain", "wide"):

            def m(key, rs=rs, wl=wl):
                return statistics.median(r[wl][key] for r in rs)

            calib = statistics.median(r["calib"] for r in rs)
            cpu = f"{m('build_cpu'):.1f} | {m('run_cpu'):.1f} | {m('cpu'):.1f}"
            print(f"| {k} | {wl}_{N} | {cpu} | {m('wall'):.1f} | {calib:.2f} |")
    for k, rs in runs.items():
        mins = ", ".join(f"{wl}_{N} {min(r[wl]['cpu_min'] for r in rs):.1f}" for wl in ("chain", "wide"))
        print(f"{k}: least total CPU of all runs, µs/step: {mins}")
    if a.against:
        for wl in ("chain", "wide"):
            ratio = statistics.median(r[wl]["cpu"] for r in runs["this"]) / statistics.median(
                r[wl]["cpu"] for r in runs["base"]
            )
            least = min(r[wl]["cpu_min"] for r in runs["this"]) / min(r[wl]["cpu_min"] for r in runs["base"])
            print(f"{wl}_{N}: this / base (total CPU) {ratio:.2f}× (medians), {least:.2f}× (least)")


if __name__ == "__main__":
    main()
