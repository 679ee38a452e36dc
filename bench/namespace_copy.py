"""What a step's private namespace costs, and what a cheaper one would cost the user's code.

A ``%%step`` cell runs in a private namespace: a copy of the user namespace
(``dict(task.base)`` in ``nbsteps/run/attempt/task.py``) with the step's inputs
put over it, so that a failed or interrupted step leaves the user's names as
they were, and names the analysis cannot see (``df.query("@x")``, ``eval``, a
patsy formula naming ``np``, IPython's ``$x``) resolve as in an ordinary cell.
The copy grows with the names in the namespace, not with the step: it is what
makes issue 26's target 6 (interactive cell at 2,000 cells over 200) and target
8 (10,000 ``%%step`` cells) grow.

Three namespaces a step could run in, each timed here:

* ``copy``: today's: an exact ``dict`` copy of the namespace;
* ``overlay``: a ``dict`` subclass holding the step's own names whose
  ``__missing__`` is the user namespace's ``__getitem__`` (a C call: no Python
  frame), created in constant time;
* ``overlay+``: the same, with every name the code mentions copied in.

and for each, a function defined by the step (it keeps that namespace as its
``__globals__`` for as long as it lives) reading four globals (two builtins,
one name of the user namespace, one of the step) in a loop. CPython 3.11 takes
its fast, specialised ``LOAD_GLOBAL`` only when globals and builtins are exact
dicts: a subclass sends every global lookup through ``PyObject_GetItem`` and a
miss through ``__missing__``.

    python bench/namespace_copy.py [--names 1000,6000,30000] [--calls 1000000]
"""

from __future__ import annotations

import argparse
import builtins
import os
import statistics
import time

BODY = """
def work(n):
    t = 0
    for i in range(n):
        t += abs(k) + len(s)
    return t
"""


def _overlay_class(base: dict) -> type:
    class Overlay(dict):
        __slots__ = ()
        __missing__ = base.__getitem__  # (a bound C method: no Python frame on a miss)

    return Overlay


def _median_us(fn, repeat: int, inner: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner * 1e6)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--names", default="1000,6000,30000", help="sizes of the user namespace")
    ap.add_argument("--calls", type=int, default=1_000_000, help="loop iterations of the step's function")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("\nmaking the namespace a step runs in (µs, median):")
    print(f"{'names':>7} {'copy':>9} {'overlay':>9}")
    for n in (int(x) for x in args.names.split(",")):
        base = {f"name{i}": i for i in range(n)}
        cls = _overlay_class(base)
        copy = _median_us(lambda base=base: dict(base), args.repeat, max(1, 20_000 // n))
        over = _median_us(lambda cls=cls: cls(__builtins__=builtins, __name__="__main__"), args.repeat, 2_000)
        print(f"{n:>7,} {copy:>9.1f} {over:>9.2f}")

    base = {f"name{i}": i for i in range(6000)}
    base["k"] = 3
    cls = _overlay_class(base)
    spaces = {
        "copy": dict(base),
        "overlay": cls(),
        "overlay+": cls(k=3, abs=abs, len=len),  # every name the code mentions, copied in
    }
    print(f"\na function the step defined, {args.calls:,} iterations of 4 global reads (s, median):")
    first = None
    for label, ns in spaces.items():
        ns.update(__builtins__=builtins, s="ab")
        exec(BODY, ns)
        work = ns["work"]
        work(1000)
        times = []
        for _ in range(max(3, args.repeat // 2)):
            t0 = time.perf_counter()
            work(args.calls)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        first = first or t
        print(f"  {label:<9} {t:.3f}  ({t / first:.2f}x the copy)")


if __name__ == "__main__":
    main()
