"""What watching the files a step opens costs, per ``open`` (issue 23: files are
inputs, observed through the ``open`` audit event; issue 26: observation's cost).

    python bench/file_opens.py [--files 10000] [--repeat 5]

The same loop opening N small files, three ways, alternated, best of each round:
bare (no audit hook in the process: a fresh interpreter), idle (the hook installed,
no step running: one context-variable lookup per open) and recorded (inside a step's
recording, as when a step runs). Prints µs per open and the differences; the load
average beside them, as every figure in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import json, sys, time
n, repeat, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
code = compile(
    "total = 0\nfor i in range(N):\n    with open(f'many/{i}.txt') as fh:\n        total += int(fh.read())",
    "<opens>", "exec",
)
ns = {"N": n}
exec(code, ns)  # warm the file system's caches
if mode != "bare":
    from nbsteps.run.attempt import opened
    opened.install()
best = float("inf")
for _ in range(repeat):
    if mode == "recorded":
        with opened.recording() as seen:
            t0 = time.perf_counter(); exec(code, ns); dt = time.perf_counter() - t0
    else:
        t0 = time.perf_counter(); exec(code, ns); dt = time.perf_counter() - t0
    best = min(best, dt)
print(json.dumps(best / n * 1e6))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5, help="timed loops per child (best is kept)")
    ap.add_argument("--rounds", type=int, default=3, help="alternated rounds of the three modes")
    args = ap.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(os.path.join(tmp, "many"))
        for i in range(args.files):
            with open(os.path.join(tmp, "many", f"{i}.txt"), "w") as f:
                f.write(str(i))
        got: dict[str, list[float]] = {"bare": [], "idle": [], "recorded": []}
        load0 = os.getloadavg()[0]
        for r in range(args.rounds):
            modes = list(got) if r % 2 == 0 else list(reversed(got))
            for mode in modes:
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(args.files), str(args.repeat), mode],
                    cwd=tmp,
                    env={**os.environ, "PYTHONPATH": root},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                got[mode].append(json.loads(out.stdout))
        load1 = os.getloadavg()[0]
    med = {m: sorted(v)[len(v) // 2] for m, v in got.items()}
    when = time.strftime("%H:%M UTC", time.gmtime())
    print(f"{args.files} opens, {args.rounds} rounds, load {load0:.1f}-{load1:.1f} ({when})")
    for m, v in med.items():
        print(f"  {m:<9} {v:6.2f} µs per open (rounds: {', '.join(f'{x:.2f}' for x in got[m])})")
    print(f"  idle - bare     {med['idle'] - med['bare']:+.2f} µs per open")
    print(f"  recorded - bare {med['recorded'] - med['bare']:+.2f} µs per open")
    return 0


if __name__ == "__main__":
    sys.exit(main())
