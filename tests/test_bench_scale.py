"""Smoke test of ``bench/scale.py`` (issue 26, target 8) at its smallest: every shape
(chain and wide function steps, ``%%step`` cells in plan mode) registers, plans and
runs in a fresh interpreter, and the table gives each phase, the µs per step and the
growth between the sizes. Timings are not asserted (a benchmark, not a timed test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import run_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAD_LOAD = "load before -> after"


@pytest.mark.timeout(180)
def test_scale_bench_times_each_phase_of_each_shape_and_prints_the_growth(tmp_path):
    out = tmp_path / "scale.json"
    args = ["bench/scale.py", "--sizes", "100,200", "--repeat", "1", "--json", str(out)]
    p = run_bench(args, 170, key_file=tmp_path / "key")
    lines = p.stdout.splitlines()
    assert lines[0].startswith("nbsteps scale bench ") and "load " in lines[0]
    for shape in ("chain", "wide", "cells"):
        i = lines.index(f"{shape}: seconds, medians of 1 (wall / CPU)")
        header = [c.strip() for c in lines[i + 1].strip("|").split("|")]
        assert header == ["n", "register", "plan", "run", "total", "µs/step (wall / CPU)", HEAD_LOAD]
        rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[i + 3 : i + 5]]
        assert [r[0] for r in rows] == ["100", "200"]
        for r in rows:
            for cell in r[1:6]:  # wall / CPU, both numbers
                wall, cpu = (float(x) for x in cell.split(" / "))
                assert wall >= 0 and cpu >= 0
            assert "->" in r[6]
        assert lines[i + 5].startswith("growth 200 / 100 (linear = 2.0), wall / CPU: register ")
        assert "; total " in lines[i + 5]
        assert lines[i + 6].startswith("total at 200: ")
    assert lines[-1].startswith("load average ")
    res = json.loads(out.read_text())
    assert res["sizes"] == [100, 200] and res["shapes"] == ["chain", "wide", "cells"]
    for shape in ("chain", "wide", "cells"):
        for n in ("100", "200"):
            (run,) = res["results"][shape][n]
            assert set(run["phases"]) == {"register", "plan", "run"}
            # every step registered (wide: n steps and the final one) and the plan printed a line a level
            assert run["steps"] == int(n) + (shape == "wide")
            assert run["plan_lines"] >= (2 if shape == "wide" else int(n))


def test_scale_bench_help():
    p = subprocess.run(
        [sys.executable, "bench/scale.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0 and "--sizes" in p.stdout and "--repeat" in p.stdout
