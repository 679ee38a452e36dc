"""What nbsteps costs on real notebooks (issue 26): the corpus notebooks (the ones
``tests/corpus`` checks, nobody here wrote them) run plainly and with nbsteps, in
fresh real kernels (nbclient, matplotlib inline), alternating, several rounds.

    python bench/corpus.py --quick                  # 3 small notebooks, 1 round (~1-2 min)
    python bench/corpus.py                          # every notebook, 3 rounds (~1 h on 2 cores)
    python bench/corpus.py --only sk_dbscan,sm_ols --repeat 5 --modes plain,store,restore
    python bench/corpus.py --profile sm_ols         # cProfile of nbsteps inside the kernel, interactive
    python bench/corpus.py --profile sm_ols --profile-restore   # ... of the restore in a new kernel
    python bench/corpus.py --profile sm_ols --profile-mode plan  # ... in plan mode (%steps run --workers 4)
    python bench/corpus.py --only sk_dbscan --modes plain,plan --against /tmp/base   # before/after
    python bench/corpus.py --only mpl_quick_start --modes plain,store,restore,outputs   # restore vs its floor

Modes (each a fresh kernel; the timed part is the notebook's cells, each sent as
Run All sends it and waited for; starting the kernel and ``%load_ext`` are not timed):

- ``plain``: the cells as they are (the reference);
- ``store``: ``%steps store DIR``, every cell as ``%%step cellN``, executed at once
  (interactive mode): checkpoints written to a directory (target 1: ≤ 2.5 %);
- ``restore``: right after ``store``, a new kernel runs the same step cells against
  that store (everything restored, nothing executed: target 2, ≤ 5 %); then one ordinary
  cell, timed on its own (``first cell after it``: the replays of process state a restore
  leaves pending run there), then ``%steps load`` reads every value (``+load``);
- ``memory``: interactive mode with the memory store (the step machinery without
  disk writes);
- ``unobserved``: ``memory`` with run-time observation switched off in the kernel
  (the audit hook that records the files a step opens, and the digests of inputs
  that detect undeclared writes: ``nbsteps.run.attempt.opened.recording`` and
  ``nbsteps.run.attempt.observe.watch`` replaced by no-ops; the benchmark only);
- ``plan``: ``%steps mode plan``, the step cells register, then ``%steps run``;
- ``outputs``: the floor of any restore that shows every cell's outputs, through the same
  client: right after ``plain`` (same round), a fresh kernel without nbsteps where each cell,
  instead of its code, publishes exactly the outputs that plain Run All of the round produced
  for it (kept from the plain run; loaded into the kernel untimed): its streams written to
  ``sys.stdout``/``sys.stderr`` (flushed only where the stream changes), its ``display_data``
  through the shell's display publisher, its ``execute_result`` through the displayhook (with
  the bundle as it was, not formatted again: as a restored ``%%step`` cell shows its ``Out``).
  A timed cell is one short call (``_nbsteps_bench_show(i)``), not the cell's source. The
  outputs it shows are checked against plain's (streams merged, execution counts aside):
  ``differs`` lists the cells that differ. ``--against`` does not double it (no nbsteps in it).

For each notebook and mode: the ratio to plain of the same round (rounds alternate
the order of the modes), its spread over rounds, and the cost per step cell in ms
((mode - plain) / cells); the same of the kernel process's CPU time (user + system,
every thread, ``time.process_time()`` in the kernel before and after the timed cells, asked by a
silent request that runs no cell: restore's CPU is its step cells', the first cell after
them apart), which other processes on a loaded machine disturb far less than wall time;
for ``restore`` and ``outputs`` also the kernel's CPU a cell, and restore over its floor
(restore / outputs of the same round, wall and CPU). The summary gives
medians over the notebooks whose plain run takes at least ``--min-seconds`` (default 2 s)
and the worst one. The load average (``os.getloadavg()``) is printed beside every
notebook. Results also go to ``bench/results/corpus.json`` (``--json``).

Where the time goes (``--profile NB``): cProfile inside the kernel, every thread started
during the run profiled too (plan mode's workers), by wall time or, ``--profile-cpu``, by
each thread's CPU time; or ``--spy PATH_TO_PY_SPY`` (``pip install py-spy``): sampling,
without the profiler's own cost, the kernel's samples split into the user's code,
nbsteps' own code outside it, and the rest (IPython, ipykernel), ``--spy-gil`` for the
samples of the thread holding the GIL only (with ``--profile-restore``: the restore in a second
kernel). ``--profile-mode plain|memory|store|plan``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "corpus"))

import harness  # noqa: E402  (tests/corpus/harness.py: the corpus loaders and the Kernel class)

MODES = ("plain", "store", "restore", "memory", "unobserved", "plan", "outputs")
QUICK = ("sk_dbscan", "sm_gls", "nx_shortest_path")

UNOBSERVED = """\
import contextlib as _c, nbsteps.run.attempt.observe as _o, nbsteps.run.attempt.opened as _op
_o.watch = lambda inputs, names: {}
_op.recording = _c.contextmanager(lambda _opened=_op.Opened: (yield _opened()))
del _c, _o, _op"""


def _timed_cells(
    k: "harness.Kernel", cells: list[str], keep: "list | None" = None
) -> "tuple[float, str | None]":
    """Seconds the cells took (each sent and waited for), and the first error; *keep*: a list
    that gets each cell (its outputs)."""
    total = 0.0
    for source in cells:
        t0 = time.perf_counter()
        cell = k.run(source)
        total += time.perf_counter() - t0
        if keep is not None:
            keep.append(cell)
        error = harness._cell_summary(cell)["error"]
        if error:
            return total, f"{source.splitlines()[0][:40]}: {error['ename']}: {error['evalue'][:120]}"
    return total, None


#: the process's CPU clock (user + system, every thread; ``os.times()`` counted 10 ms ticks, so
#: a small notebook's plain run could read 0 and have no CPU ratio)
CPU_NOW = "__import__('time').process_time()"


#: after the timed cells of ``store``: every pending commit waited for (untimed), then the CPU
#: seconds of the store's committer thread (``nbsteps-commit``): the part of the kernel's CPU
#: spent off the cells' thread
COMMIT_CPU = (
    "import threading as _th, time as _t\n"
    "import nbsteps.stores.committer as _c\n"
    "for _x in list(_c._LIVE): _x.wait()\n"
    "print('@@commitcpu@@', sum(_t.clock_gettime(_t.pthread_getcpuclockid(_x.ident)) "
    "for _x in _th.enumerate() if _x.name == 'nbsteps-commit'))\n"
    "del _th, _t, _c"
)


def _commit_cpu(k: "harness.Kernel") -> "float | None":
    text = "".join(o.get("text", "") for o in k.run(COMMIT_CPU).get("outputs", []))
    for line in text.splitlines():
        if line.startswith("@@commitcpu@@ "):
            return float(line.split()[1])
    return None


def _kernel_cpu(k: "harness.Kernel") -> "float | None":
    """CPU seconds (user + system, every thread) the kernel process has used so far:
    ``time.process_time()`` in the kernel, asked by a silent request with no code (its
    ``user_expressions``): no cell runs, so no ``pre_run_cell`` hook (nbsteps' settles a restore's
    pending replays before any cell but a ``%%step`` cell) and no counted execution."""
    kc = k.client.kc
    msg_id = kc.execute("", silent=True, store_history=False, user_expressions={"cpu": CPU_NOW})
    reply = k.client.wait_for_reply(msg_id)
    try:
        return float(reply["content"]["user_expressions"]["cpu"]["data"]["text/plain"])
    except (KeyError, TypeError, ValueError):
        return None


#: the first ordinary cell after a restore: it runs the replays of process state a restore left
#: pending (nbsteps.run.decide.replay), timed on its own
FIRST_CELL = "_nbsteps_bench_first_cell = 1"


#: the ``outputs`` mode's kernel, untimed: the outputs of plain Run All (``_shown_items``, a
#: JSON file) loaded, the displayhook made to show a bundle as it is (as nbsteps'
#: ``cells._hook_cell`` shows a restored cell's Out), and the one call each timed cell makes
SHOW = """\
import json as _j, sys as _sys
with open(%r) as _f:
    _nbsteps_bench_outputs = _j.load(_f)
class _NbstepsBenchShown:
    __slots__ = ("bundle",)
    def __init__(self, bundle):
        self.bundle = bundle
_hook = get_ipython().displayhook
def _nbsteps_bench_format(result, _compute=_hook.compute_format_data, _shown=_NbstepsBenchShown):
    return result.bundle if type(result) is _shown else _compute(result)
_hook.compute_format_data = _nbsteps_bench_format
def _nbsteps_bench_show(i, _outs=_nbsteps_bench_outputs, _sys=_sys, _pub=get_ipython().display_pub.publish,
                        _hook=_hook, _shown=_NbstepsBenchShown):
    last = None
    for kind, a, b in _outs[i]:
        if kind == "display":
            _pub(data=a, metadata=b)
        elif kind == "result":
            _hook(_shown((a, b)))
        else:
            if last is not None and last != kind:
                getattr(_sys, last).flush()
            getattr(_sys, kind).write(a)
            last = kind
del _j, _f, _hook"""


def _shown_items(cell) -> list:
    """What a cell showed, as the ``outputs`` mode's kernel publishes it again: ``(stream name,
    text, None)``, ``("display", data, metadata)``, ``("result", data, metadata)``; consecutive
    text of one stream merged (one write)."""
    items: list = []
    for o in cell.get("outputs", []):
        kind = o.get("output_type")
        if kind == "stream":
            if items and items[-1][0] == o["name"]:
                items[-1][1] += o["text"]
            else:
                items.append([o["name"], o["text"], None])
        elif kind in ("display_data", "execute_result"):
            what = "display" if kind == "display_data" else "result"
            items.append([what, dict(o.get("data", {})), dict(o.get("metadata", {}))])
    return items


def _timed_cpu(
    k: "harness.Kernel",
    cells: list[str],
    out: dict,
    then: "list[str] | None" = None,
    keep: "list | None" = None,
) -> None:
    """``out["seconds"]``, ``out["error"]`` (:func:`_timed_cells`) and ``out["cpu"]``: the
    kernel's CPU seconds over those cells, which a loaded machine moves far less than wall time.
    *then*: cells timed after them on their own (``out["then_seconds"]``, ``out["then_cpu"]``;
    the CPU is read between them without a cell: :func:`_kernel_cpu`). *keep*: as for
    :func:`_timed_cells`."""
    before = _kernel_cpu(k)
    out["seconds"], out["error"] = _timed_cells(k, cells, keep)
    after = _kernel_cpu(k)
    if before is not None and after is not None:
        out["cpu"] = after - before
    if then and not out["error"]:
        out["then_seconds"], _ = _timed_cells(k, then)
        end = _kernel_cpu(k)
        if after is not None and end is not None:
            out["then_cpu"] = end - after


def _untimed(k: "harness.Kernel", cells: list[str]) -> None:
    for source in cells:
        error = harness._cell_summary(k.run(source))["error"]
        if error:
            raise RuntimeError(f"{source!r}: {error}")


#: ``--against DIR``: the other nbsteps, run in the modes suffixed ``@base``
AGAINST: "Path | None" = None


@contextlib.contextmanager
def _kernel(cwd: Path, mode: str):
    """A fresh kernel; for a mode ``M@base``, importing nbsteps from :data:`AGAINST`."""
    if not mode.endswith("@base"):
        with harness.Kernel(cwd) as k:
            yield k
        return
    before = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(AGAINST), before])
    try:
        k = harness.Kernel(cwd).__enter__()
    finally:
        os.environ["PYTHONPATH"] = before
    try:
        where = "".join(
            o.get("text", "") for o in k.run("import nbsteps\nprint(nbsteps.__file__)").get("outputs", [])
        )
        if not where.strip().startswith(str(AGAINST)):
            raise RuntimeError(f"{mode}: the kernel imported nbsteps from {where.strip()}, not {AGAINST}")
        yield k
    finally:
        k.__exit__(None, None, None)


def run_mode(
    mode: str, cells: list[str], files: dict, tmp: Path, store: Path, shown: "list | None" = None
) -> dict:
    """One mode on one notebook in a fresh kernel: {"seconds", "error", ...}; ``plain`` also
    ``"shown"`` (what each cell showed, :func:`_shown_items`), which ``outputs`` takes as
    *shown*."""
    steps = harness.step_cells(cells)
    cwd = tmp / f"{mode}-{time.monotonic_ns()}"
    cwd.mkdir(parents=True)
    harness.write_files(cwd, files)
    out: dict = {"load": os.getloadavg()[0]}
    full, mode = mode, mode.removesuffix("@base")
    with _kernel(cwd, full) as k:
        if mode == "plain":
            kept: list = []
            _timed_cpu(k, cells, out, keep=kept)
            out["shown"] = [_shown_items(c) for c in kept]
        elif mode == "outputs":
            if shown is None:
                raise ValueError("the outputs mode needs the plain run of its round")
            (cwd / "nbsteps-bench-shown.json").write_text(json.dumps(shown))
            _untimed(k, [SHOW % str(cwd / "nbsteps-bench-shown.json")])
            kept = []
            _timed_cpu(k, [f"_nbsteps_bench_show({i})" for i in range(len(shown))], out, keep=kept)
            if not out["error"]:
                out["differs"] = [i + 1 for i, c in enumerate(kept) if _shown_items(c) != shown[i]]
        elif mode in ("store", "restore"):
            _untimed(k, ["%load_ext nbsteps", f"%steps store {store}"])
            _timed_cpu(k, steps, out, [FIRST_CELL] if mode == "restore" else None)
            if mode == "store" and not out["error"]:
                out["commit_cpu"] = _commit_cpu(k)
            if mode == "restore" and not out["error"]:
                out["load_seconds"], _ = _timed_cells(k, ["%steps load"])
                out["executed"] = _executed(k)
        elif mode in ("memory", "unobserved"):
            _untimed(k, ["%load_ext nbsteps"] + ([UNOBSERVED] if mode == "unobserved" else []))
            _timed_cpu(k, steps, out)
        elif mode == "plan":
            _untimed(k, ["%load_ext nbsteps", "%steps mode plan"])
            _timed_cpu(k, steps + ["%steps run --workers 4"], out)
        else:
            raise ValueError(mode)
    shutil.rmtree(cwd, ignore_errors=True)
    return out


def _executed(k: "harness.Kernel") -> "int | None":
    """How many steps executed in the kernel's last runs (a restore: 0)."""
    code = (
        "import nbsteps.ipython.session as _s\n"
        "print('@@executed@@', sum(r.origin == 'executed' for r in _s.current().records.values()))"
    )
    cell = k.run(code)
    for o in cell.get("outputs", []):
        for line in o.get("text", "").splitlines():
            if line.startswith("@@executed@@"):
                return int(line.split()[1])
    return None


def _units(modes: "list[str]") -> "list[tuple[str, ...]]":
    """The modes in the order they run; restore always right after store, outputs right after
    plain (each needs the one before it in the same round)."""
    units = []
    for m in modes:
        if m.startswith("restore") or m == "outputs":
            continue
        again = m.replace("store", "restore")
        if m == "plain" and "outputs" in modes:
            units.append(("plain", "outputs"))
        else:
            units.append((m, again) if m.startswith("store") and again in modes else (m,))
    return units


def measure(entries, cells, modes, repeat, tmp: Path, progress) -> dict:
    results: dict = {e["id"]: {m: [] for m in modes} for e in entries}
    units = _units(modes)
    for r in range(repeat):
        order = units if r % 2 == 0 else list(reversed(units))
        for e in entries:
            nb = e["id"]
            shown = None  # what plain Run All of this round showed, for the outputs mode
            for unit in order:
                store = tmp / f"store-{nb}-{r}"
                for mode in unit:
                    res = run_mode(mode, cells[nb], e.get("files") or {}, tmp, store, shown)
                    shown = res.pop("shown", shown)
                    res["round"] = r
                    results[nb][mode].append(res)
                    progress(nb, mode, res)
                shutil.rmtree(store, ignore_errors=True)
    return results


def _ratio_rows(results: dict, modes, ncells: dict) -> dict:
    """Per notebook and mode: ratios to plain of the same round, per-cell ms."""
    rows: dict = {}
    for nb, by_mode in results.items():
        plain = {x["round"]: x for x in by_mode.get("plain", []) if not x.get("error")}
        row = {"plain_s": statistics.median(x["seconds"] for x in plain.values()) if plain else None}
        cpus = [x["cpu"] for x in plain.values() if x.get("cpu")]
        row["plain_cpu"] = statistics.median(cpus) if cpus else None
        row["load"] = statistics.median(x["load"] for m in by_mode.values() for x in m) if by_mode else None
        for mode in modes:
            if mode == "plain":
                continue
            ratios, per_cell, errors, cpu_ratios, cpu_per_cell = [], [], [], [], []
            for x in by_mode.get(mode, []):
                p = plain.get(x["round"])
                if x.get("error") or p is None:
                    errors.append(x.get("error") or "no plain run")
                    continue
                ratios.append(x["seconds"] / p["seconds"])
                per_cell.append((x["seconds"] - p["seconds"]) / ncells[nb] * 1000)
                if x.get("cpu") and p.get("cpu"):
                    cpu_ratios.append(x["cpu"] / p["cpu"])
                    cpu_per_cell.append((x["cpu"] - p["cpu"]) / ncells[nb] * 1000)
            own_cpu = [x["cpu"] / ncells[nb] * 1000 for x in by_mode.get(mode, []) if x.get("cpu")]
            row[mode] = {
                "ratio": statistics.median(ratios) if ratios else None,
                "cpu_ms": statistics.median(own_cpu) if own_cpu else None,  # the kernel's CPU a cell
                "min": min(ratios, default=None),
                "max": max(ratios, default=None),
                "ms_per_cell": statistics.median(per_cell) if per_cell else None,
                "errors": errors,
                "cpu_ratio": statistics.median(cpu_ratios) if cpu_ratios else None,
                "cpu_ms_per_cell": statistics.median(cpu_per_cell) if cpu_per_cell else None,
            }
            if mode == "outputs":
                row[mode]["differs"] = [x.get("differs") for x in by_mode[mode]]
            floor = {x["round"]: x for x in by_mode.get("outputs", []) if not x.get("error")}
            if mode.removesuffix("@base") == "restore" and floor:
                # over the floor: restore / outputs of the same round, wall and the kernel's CPU
                over = [
                    (x["seconds"] / floor[x["round"]]["seconds"], x.get("cpu"), floor[x["round"]].get("cpu"))
                    for x in by_mode[mode]
                    if not x.get("error") and x["round"] in floor
                ]
                row[mode]["over_floor"] = statistics.median(o[0] for o in over) if over else None
                cpus = [a / b for _, a, b in over if a and b]
                row[mode]["cpu_over_floor"] = statistics.median(cpus) if cpus else None
            if mode.removesuffix("@base") == "restore":
                loads = [x["load_seconds"] for x in by_mode[mode] if "load_seconds" in x]
                row[mode]["load_s"] = statistics.median(loads) if loads else None
                firsts = [x["then_seconds"] for x in by_mode[mode] if "then_seconds" in x]
                row[mode]["first_s"] = statistics.median(firsts) if firsts else None
                first_cpu = [x["then_cpu"] for x in by_mode[mode] if "then_cpu" in x]
                row[mode]["first_cpu"] = statistics.median(first_cpu) if first_cpu else None
                back = [  # until every value is back: the lazy restore, the next cell, then %steps load
                    (x["seconds"] + x.get("then_seconds", 0.0) + x["load_seconds"])
                    / plain[x["round"]]["seconds"]
                    for x in by_mode[mode]
                    if "load_seconds" in x and x["round"] in plain
                ]
                row[mode]["with_load"] = statistics.median(back) if back else None
                row[mode]["executed"] = [x.get("executed") for x in by_mode[mode]]
        rows[nb] = row
    return rows


def _fmt(cell: "dict | None") -> str:
    if not cell or cell.get("ratio") is None:
        return "error" if cell and cell.get("errors") else ""
    spread = f" ({cell['min']:.2f}-{cell['max']:.2f})" if cell["min"] != cell["max"] else ""
    cpu = ""
    if cell.get("cpu_ratio") is not None:
        cpu = f"; CPU {cell['cpu_ratio']:.3f}, {cell['cpu_ms_per_cell']:+.1f} ms"
    return f"{cell['ratio']:.3f}{spread}, {cell['ms_per_cell']:+.1f} ms{cpu}"


def _extra(mode: str, got: dict) -> str:
    """What a restore's cell of the table adds (the next cell, ``%steps load``, over the floor),
    and the outputs mode's: the kernel's CPU a cell, cells that showed other outputs."""
    text = ""
    base = mode.removesuffix("@base")
    if base == "restore" and got.get("load_s") is not None:
        first = ""
        if got.get("first_s") is not None:
            cpu = f" (CPU {got['first_cpu']:.2f} s)" if got.get("first_cpu") is not None else ""
            first = f"first cell after it +{got['first_s']:.2f} s{cpu}; "
        text += (
            f"; {first}with it and `%steps load` {got['with_load']:.3f} (+{got['load_s']:.2f} s); "
            f"executed {got['executed']}"
        )
    if got.get("over_floor") is not None:
        text += f"; over the floor (outputs) {got['over_floor']:.2f}×"
        if got.get("cpu_over_floor") is not None:
            text += f", CPU {got['cpu_over_floor']:.2f}×"
    if got.get("cpu_ms") is not None and base in ("restore", "outputs"):
        text += f"; CPU {got['cpu_ms']:.1f} ms a cell"
    if mode == "outputs" and any(got.get("differs") or ()):
        text += f"; cells showing other outputs than plain: {got['differs']}"
    return text


def _floor_line(rows: dict, big: list, mode: str) -> "str | None":
    """A restore against its floor (the outputs mode of the same rounds), or None."""
    over = [rows[nb][mode]["over_floor"] for nb in big if rows[nb].get(mode, {}).get("over_floor")]
    if not over:
        return None
    own = [rows[nb][mode]["cpu_ms"] for nb in big if rows[nb][mode].get("cpu_ms") is not None]
    floor = [rows[nb]["outputs"]["cpu_ms"] for nb in big if (rows[nb].get("outputs") or {}).get("cpu_ms")]
    own_ms = statistics.median(own) if own else float("nan")
    floor_ms = statistics.median(floor) if floor else float("nan")
    return (
        f"  over its floor (the outputs mode, same round): median {statistics.median(over):.2f}× "
        f"(worst {max(over):.2f}×); the kernel's CPU a cell, median: {mode} {own_ms:.1f} ms, "
        f"outputs {floor_ms:.1f} ms"
    )


def report(rows: dict, modes, ncells: dict, min_seconds: float) -> str:
    shown = [m for m in modes if m != "plain"]
    lines = [
        "| notebook | cells | plain s (CPU s) | load | " + " | ".join(shown) + " |",
        "|---|---|---|---|" + "---|" * len(shown),
    ]
    for nb, row in rows.items():
        plain = f"{row['plain_s']:.2f}" if row["plain_s"] is not None else "error"
        if row.get("plain_cpu") is not None:
            plain += f" ({row['plain_cpu']:.2f})"
        cells = [_fmt(row.get(m)) + _extra(m, row.get(m) or {}) for m in shown]
        lines.append(f"| {nb} | {ncells[nb]} | {plain} | {row['load']:.1f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Cells: ratio to plain Run All of the same round (median; spread over rounds), "
        f"then the cost per cell in ms; CPU: the same of the kernel process's CPU time (user + system, "
        f"all threads). Summary over notebooks whose plain run takes ≥ {min_seconds:g} s:"
    )
    big = [nb for nb, r in rows.items() if r["plain_s"] is not None and r["plain_s"] >= min_seconds]
    for mode in shown:
        vals = [
            (rows[nb][mode]["ratio"], nb) for nb in big if rows[nb].get(mode, {}).get("ratio") is not None
        ]
        per = [
            rows[nb][mode]["ms_per_cell"] for nb in rows if rows[nb].get(mode, {}).get("ratio") is not None
        ]
        if not vals:
            lines.append(f"- {mode}: no notebook of ≥ {min_seconds:g} s measured")
            continue
        worst = max(vals)
        if mode == "restore":
            back = [rows[nb][mode].get("with_load") for nb in big]
            back = [b for b in back if b is not None]
            if back:
                lines.append(
                    f"- restore until every value is back (the next cell, then `%steps load`): median "
                    f"{statistics.median(back):.3f}× (worst {max(back):.3f}×)"
                )
        lines.append(
            f"- {mode}: median {statistics.median(v for v, _ in vals):.3f}× over {len(vals)} notebooks "
            f"(worst {worst[0]:.3f}×, {worst[1]}); per cell, all notebooks: median "
            f"{statistics.median(per):+.1f} ms"
        )
        floor_line = _floor_line(rows, big, mode)
        if floor_line:
            lines.append(floor_line)
        cpu = [
            rows[nb][mode]["cpu_ratio"] for nb in big if rows[nb].get(mode, {}).get("cpu_ratio") is not None
        ]
        cpu_per = [
            rows[nb][mode]["cpu_ms_per_cell"]
            for nb in rows
            if rows[nb].get(mode, {}).get("cpu_ms_per_cell") is not None
        ]
        if cpu:
            lines.append(
                f"  kernel CPU time: median {statistics.median(cpu):.3f}× (worst {max(cpu):.3f}×); "
                f"per cell, all notebooks: median {statistics.median(cpu_per):+.1f} ms"
            )
    return "\n".join(lines)


PROFILE_ON = """\
import cProfile as _cp, threading as _th, time as _t
_timer = _t.thread_time if %r else _t.perf_counter
_profs = [_cp.Profile(_timer)]
def _prof_thread(*_a):  # a thread started from now on (plan mode's workers) gets its own profiler
    _p = _cp.Profile(_timer)
    _profs.append(_p)
    _p.enable()
_th.setprofile(_prof_thread)
_profs[0].enable()"""

PROFILE_OFF = """\
_profs[0].disable()
_th.setprofile(None)
import pstats as _ps, io as _io
_s = _io.StringIO()
_ps.Stats(*_profs, stream=_s).sort_stats(%r).print_stats(%r, %d)
if %r:
    _ps.Stats(*_profs).dump_stats(%r)
print(len(_profs), 'profiled threads')
print(_s.getvalue())"""


def profile(
    nb: str,
    cells: list[str],
    files: dict,
    tmp: Path,
    restore: bool = False,
    mode: str = "store",
    restrict: str = "nbsteps",
    lines: int = 45,
    cpu: bool = False,
    sort: str = "cumulative",
    dump: str = "",
) -> str:
    """cProfile inside the kernel while the notebook's step cells run (*mode*:
    ``store``, interactive with a directory store; ``memory``, interactive with the
    memory store; ``plan``, the cells registered in plan mode then ``%steps run
    --workers 4``; *restore*: in a second kernel, restored from the store): the
    functions matching *restrict* by cumulative time, every thread started during
    the run profiled too (plan mode's workers), and the wall time of each cell as
    the client saw it. *cpu*: each thread's CPU time (``time.thread_time``) instead of
    wall time, so that waiting (for a lock, for a worker, for the machine) counts nothing.
    *dump*: also write the stats to that file (``pstats``: callers, other sort keys)."""
    cwd = tmp / "profile"
    cwd.mkdir(parents=True)
    harness.write_files(cwd, files)
    store = tmp / "profile-store"
    steps = harness.step_cells(cells)
    setup = {"store": [f"%steps store {store}"], "memory": [], "plan": ["%steps mode plan"]}[mode]
    if restore:
        with harness.Kernel(cwd) as k:
            _untimed(k, ["%load_ext nbsteps", f"%steps store {store}"] + steps)
        setup = [f"%steps store {store}"]
    timings = []
    with harness.Kernel(cwd) as k:
        _untimed(k, ["%load_ext nbsteps"] + setup)
        _untimed(k, [PROFILE_ON % cpu])
        for source in steps + (["%steps run --workers 4"] if mode == "plan" and not restore else []):
            t0 = time.perf_counter()
            k.run(source)
            timings.append((source.splitlines()[0], time.perf_counter() - t0))
        cell = k.run(PROFILE_OFF % (sort, restrict, lines, dump, dump))
    text = "".join(o.get("text", "") for o in cell.get("outputs", []))
    wall = "\n".join(f"  {s:<32} {t * 1000:8.1f} ms" for s, t in timings)
    total = sum(t for _, t in timings)
    return f"{text}\nwall time per cell (client side, profiler on):\n{wall}\n  total {total:.2f} s"


def _spy_report(raw: str, lines: int) -> str:
    """Where the kernel's samples went (py-spy ``raw``: one line per distinct stack, root
    first, then its count): the user's code (under ``run_code``: the steps' own code, and
    ``exec`` of plain cells) against nbsteps' own frames outside it, and the nbsteps
    functions by samples that include them (outside the user's code)."""
    import collections

    total = user = own = inside = 0
    incl: collections.Counter = collections.Counter()
    leaf_own: collections.Counter = collections.Counter()
    chains: collections.Counter = collections.Counter()  # the two innermost nbsteps frames, and the leaf
    rest: collections.Counter = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        names = [f for f in frames if "/nbsteps/" in f]
        if any(f.startswith("run_code (") and "/nbsteps/" in f for f in frames):
            user += n
            if "/nbsteps/" in frames[-1]:
                inside += n  # nbsteps' own code called from the user's (capture, audit hook)
                leaf_own[_short(frames[-1])] += n
            continue
        if names:
            own += n
            for f in dict.fromkeys(_short(f) for f in names):
                incl[f] += n
            leaf_own[_short(names[-1])] += n
            leaf = _short(frames[-1]).rsplit("/", 1)[-1]
            chains[" < ".join([leaf] + [_short(f) for f in names[-2:][::-1]])] += n
        else:
            rest[" < ".join(_short(f).rsplit("/", 1)[-1] for f in frames[-1:-4:-1])] += n
    out = [
        f"samples {total} (non-idle, all threads, or the GIL's holder); user code {user} "
        f"(of which nbsteps frames on top: {inside}); nbsteps outside the user's code {own}; "
        f"the rest (IPython, ipykernel, zmq, the kernel's own threads) {total - user - own}",
        "",
        "nbsteps functions, samples including them (outside the user's code):",
    ]
    out += [f"  {n:6d}  {f}" for f, n in incl.most_common(lines)]
    out += ["", "the innermost nbsteps function of each sample (where nbsteps' own time is spent):"]
    out += [f"  {n:6d}  {f}" for f, n in leaf_own.most_common(lines)]
    out += ["", "nbsteps' own samples by leaf frame < the two innermost nbsteps functions:"]
    out += [f"  {n:6d}  {f}" for f, n in chains.most_common(lines)]
    out += ["", "the rest by its three innermost frames:"]
    out += [f"  {n:6d}  {f}" for f, n in rest.most_common(lines)]
    return "\n".join(out)


def _short(frame: str) -> str:
    """``func (/…/nbsteps/views/live.py:12)`` -> ``views/live.py:func``."""
    func, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    return f"{path.split('/nbsteps/', 1)[-1]}:{func}"


def spy_profile(
    nb: str,
    cells: list[str],
    files: dict,
    tmp: Path,
    mode: str,
    spy: str,
    lines: int,
    rate: int,
    gil: bool,
    restore: bool = False,
) -> str:
    """py-spy (sampling, *rate* per second, without pausing the kernel) on the kernel while the
    notebook runs in *mode* (``plain``, ``memory``, ``store``, ``plan``): see :func:`_spy_report`.
    *gil*: only the samples of the thread holding the GIL (what keeps the interpreter busy: nbsteps'
    own code is Python; without it py-spy also counts threads waiting in C, e.g. on a socket).
    *restore*: the step cells stored by a first kernel (untimed), then a second one sampled while
    it runs them against that store (everything restored)."""
    import signal
    import subprocess

    cwd = tmp / "spy"
    cwd.mkdir(parents=True)
    harness.write_files(cwd, files)
    store = tmp / "spy-store"
    steps = harness.step_cells(cells)
    if restore:
        with harness.Kernel(cwd) as k:
            _untimed(k, ["%load_ext nbsteps", f"%steps store {store}"] + steps)
        mode = "store"
    todo = {
        "plain": ([], cells),
        "memory": (["%load_ext nbsteps"], steps),
        "store": (["%load_ext nbsteps", f"%steps store {store}"], steps),
        "plan": (["%load_ext nbsteps", "%steps mode plan"], steps + ["%steps run --workers 4"]),
    }
    setup, timed = todo[mode]
    out = tmp / "spy.txt"
    with harness.Kernel(cwd) as k:
        _untimed(k, setup)
        pid = None
        for o in k.run("import os as _os\nprint('@@pid@@', _os.getpid())\ndel _os").get("outputs", []):
            for line in o.get("text", "").splitlines():
                if line.startswith("@@pid@@"):
                    pid = int(line.split()[1])
        proc = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--full-filenames",
                "-F",
                "--nonblocking",
                "--rate",
                str(rate),
                "--output",
                str(out),
            ]
            + (["--gil"] if gil else []),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.0)  # py-spy attaches
        t0 = time.perf_counter()
        seconds, error = _timed_cells(k, timed)
        wall = time.perf_counter() - t0
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    if not out.exists():
        return f"py-spy wrote nothing: {err.decode(errors='replace')[-2000:]}"
    head = f"{nb} {mode}: {seconds:.2f} s in the cells ({wall:.2f} s wall){'; ' + error if error else ''}\n"
    return head + _spy_report(out.read_text(), lines)


def _progress(nb: str, mode: str, res: dict) -> None:
    what = f"error: {res['error']}" if res.get("error") else f"{res['seconds']:.2f} s"
    if res.get("cpu") is not None:
        what += f", CPU {res['cpu']:.2f} s"
    if res.get("commit_cpu") is not None:
        what += f" (committer thread {res['commit_cpu']:.3f} s in all)"
    print(f"  {nb:<28} {mode:<10} {what} (load {res['load']:.1f})", file=sys.stderr, flush=True)


def main(argv: "list[str] | None" = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)}, 1 round, plain/store/restore")
    ap.add_argument("--only", default="", help="notebooks, comma-separated (corpus.json ids)")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated of {', '.join(MODES)}")
    ap.add_argument("--repeat", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--min-seconds", type=float, default=2.0, help="notebooks in the summary (default 2)")
    ap.add_argument(
        "--against",
        default="",
        metavar="DIR",
        help="also run each nbsteps mode M as M@base with the nbsteps of DIR (a checkout of the "
        "version before), alternated with the others: before/after ratios from one invocation",
    )
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "corpus.json"), help="'-': none")
    ap.add_argument("--profile", default="", help="profile one notebook instead (interactive, store)")
    ap.add_argument("--profile-restore", action="store_true", help="with --profile: profile the restore")
    ap.add_argument(
        "--profile-mode",
        default="store",
        choices=("store", "memory", "plan", "plain"),
        help="with --profile: interactive with a directory store (default), the memory store, plan mode "
        "(or plain, with --spy)",
    )
    ap.add_argument(
        "--profile-restrict", default="nbsteps", help="with --profile: functions shown (a pstats regex)"
    )
    ap.add_argument("--profile-lines", type=int, default=45, help="with --profile: how many functions")
    ap.add_argument("--profile-sort", default="cumulative", help="with --profile: pstats sort key")
    ap.add_argument(
        "--profile-dump",
        default="",
        metavar="PATH",
        help="with --profile: also write the kernel's pstats to PATH (python -m pstats PATH: callers)",
    )
    ap.add_argument(
        "--profile-cpu", action="store_true", help="with --profile: each thread's CPU time, not wall time"
    )
    ap.add_argument(
        "--spy",
        default="",
        metavar="PY_SPY",
        help="with --profile: sample the kernel with this py-spy executable instead of cProfile "
        "(--profile-mode plain too), --profile-lines lines",
    )
    ap.add_argument("--spy-rate", type=int, default=250, help="with --spy: samples per second")
    ap.add_argument("--spy-gil", action="store_true", help="with --spy: only the thread holding the GIL")
    args = ap.parse_args(argv)
    only = [s for s in args.only.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    if args.quick:
        only, args.repeat = only or list(QUICK), 1
        if args.modes == ",".join(MODES):
            modes = ["plain", "store", "restore"]
    if "plain" not in modes:
        modes.insert(0, "plain")
    unknown = set(modes) - set(MODES)
    if unknown:
        ap.error(f"unknown modes: {', '.join(sorted(unknown))}")
    if args.against:
        global AGAINST
        AGAINST = Path(args.against).resolve()
        if not (AGAINST / "nbsteps" / "__init__.py").is_file():
            ap.error(f"--against {args.against}: no nbsteps package there")
        modes = [x for m in modes for x in ([m] if m in ("plain", "outputs") else [m, f"{m}@base"])]

    if args.profile and args.profile_mode == "plain" and not args.spy:
        ap.error("--profile-mode plain needs --spy (cProfile restricted to nbsteps sees nothing there)")

    manifest = harness.load_manifest()
    roots = harness.ensure_sources(manifest)
    entries = [e for e in manifest["notebooks"] if not only or e["id"] in only]
    if args.profile:
        entries = [e for e in manifest["notebooks"] if e["id"] == args.profile]
    if not entries:
        ap.error("no such notebook")
    cells = {e["id"]: harness.notebook_cells(e, roots) for e in entries}
    ncells = {nb: len(c) for nb, c in cells.items()}

    tmp = Path(tempfile.mkdtemp(prefix="nbsteps-bench-corpus-"))
    harness.write_kernelspec(tmp)
    os.environ.update(harness.kernel_env(tmp))
    try:
        if args.profile and args.spy:
            files = entries[0].get("files") or {}
            print(
                spy_profile(
                    args.profile,
                    cells[args.profile],
                    files,
                    tmp,
                    args.profile_mode,
                    args.spy,
                    args.profile_lines,
                    args.spy_rate,
                    args.spy_gil,
                    args.profile_restore,
                )
            )
            return 0
        if args.profile:
            files = entries[0].get("files") or {}
            print(
                profile(
                    args.profile,
                    cells[args.profile],
                    files,
                    tmp,
                    args.profile_restore,
                    args.profile_mode,
                    args.profile_restrict,
                    args.profile_lines,
                    args.profile_cpu,
                    args.profile_sort,
                    str(Path(args.profile_dump).resolve()) if args.profile_dump else "",
                )
            )
            return 0
        load0 = os.getloadavg()
        t0 = time.perf_counter()
        print(
            f"nbsteps corpus bench: {len(entries)} notebooks, modes {','.join(modes)}, {args.repeat} rounds; "
            f"{os.cpu_count()} CPUs, load {load0[0]:.2f}",
            flush=True,
        )

        results = measure(entries, cells, modes, args.repeat, tmp, _progress)
        rows = _ratio_rows(results, modes, ncells)
        load1 = os.getloadavg()
        print(report(rows, modes, ncells, args.min_seconds))
        print(
            f"\nload average {load0[0]:.2f} → {load1[0]:.2f}; {time.perf_counter() - t0:.0f} s; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        )
        if args.json != "-":
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(
                json.dumps({"modes": modes, "rows": rows, "raw": results, "load": [load0, load1]}, indent=1)
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
