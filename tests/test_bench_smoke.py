"""Smoke test of the benchmark (bench/, issue 7): every nbsteps workload runs
once at tiny size through ``python -m bench --quick``; peers are not needed (a
missing one is reported "not installed"). Timings are not asserted."""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def bench_modules(monkeypatch):
    monkeypatch.syspath_prepend(ROOT)
    from bench import peers, run, run_peers

    return peers, run, run_peers


@pytest.mark.timeout(120)
def test_quick_bench_runs_every_nbsteps_workload(tmp_path):
    out = tmp_path / "quick.json"
    p = run_bench(
        ["-m", "bench", "--quick", "--peers", "none", "--json", str(out)], 110, key_file=tmp_path / "key"
    )
    res = json.loads(out.read_text())
    nb = res["nbsteps"]
    # the DAG workloads shared with the peers, build + run and run only
    labels = [c[0] for c in res["cells"]]
    assert {lb.split("_")[0] for lb in labels} >= {"chain", "wide", "sleep", "diamond"}
    for lb in labels:
        assert "median_s" in nb["cells"][lb], (lb, nb["cells"][lb])
    assert all("median_s" in c for c in nb["run_only"].values()) and nb["run_only"]
    # the nbsteps-only workloads
    extra = nb["extra"]
    for key in ("checkpoint", "import"):
        assert key in extra and "error" not in extra[key], (key, extra.get(key))
    for prefix in ("chain_", "cells_", "rerun_nochange_", "graph_"):
        key = next(k for k in extra if k.startswith(prefix))
        assert "error" not in extra[key], (key, extra[key])
    assert extra[next(k for k in extra if k.startswith("rerun_"))]["executed"] == 0
    assert extra["checkpoint"]["memory"]["runs"][0]["same_object"] is True
    assert res["targets"] and "### nbsteps workloads against the targets" in p.stdout


def test_missing_peer_is_reported_not_installed(bench_modules, monkeypatch):
    peers, run, run_peers = bench_modules
    monkeypatch.setattr(peers, "available", lambda peer: (False, "not installed: apache-hamilton"))
    row = run_peers.run_peer("hamilton", 1, 1.0, [("chain_10", "chain", 10)])
    assert row["status"] == "not installed: apache-hamilton" and row["cells"] == {}
    res = {
        "cells": [("chain_10", "chain", 10)],
        "peers": [row],
        "targets": [],
        "nbsteps": {"cells": {"chain_10": {"median_s": 0.001}}, "run_only": {}, "extra": {}},
    }
    assert "| hamilton | not installed: apache-hamilton |" in run.tables(res)


@pytest.mark.timeout(180)
def test_notebook_bench_runs_quick(tmp_path):
    """bench/notebook.py (issue 14 workloads, real IPython shells in child
    processes) runs at tiny size; timings are not asserted, what ran is."""
    out = tmp_path / "nb.json"
    p = run_bench(["-m", "bench.notebook", "--quick", "--repeat", "1", "--json", str(out)], 170)
    res = json.loads(out.read_text())["results"]["this"]
    assert all("error" not in v for v in res.values()), res
    assert res["notebook"]["rerun_restored"] == 6 and res["notebook"]["rerun_completed"] == 0
    assert res["params"]["p1_again"]["executed"] == 0  # switching a parameter back restores
    assert "interactive `%%step` cell" in p.stdout
