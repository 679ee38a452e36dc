"""Smoke tests of the issue-26 benchmarks: ``bench/write_speed.py`` and
``bench/corpus.py`` run at their smallest and print their tables. Timings are
not asserted (benchmarks, not timed tests)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(tmp_path) -> dict:
    env = dict(os.environ, NBSTEPS_KEY_FILE=str(tmp_path / "key"))
    env.pop("NBSTEPS_STORE", None)
    return env


def _bench(tmp_path, args: list, timeout: float) -> subprocess.CompletedProcess:
    """``python bench/...`` run from the checkout with a key of its own; it must succeed."""
    p = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=timeout
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _corpus_or_skip() -> None:
    """The corpus notebooks' sources, downloaded if need be; the test is skipped without them."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "corpus"))
    import harness

    try:
        harness.ensure_sources(harness.load_manifest())
    except harness.CorpusUnavailable as exc:
        pytest.skip(f"corpus unavailable: {exc}")


@pytest.mark.timeout(120)
def test_write_speed_prints_the_ratio_to_numpy_save_for_each_signature(tmp_path):
    p = _bench(tmp_path, ["bench/write_speed.py", "--quick", "--dir", str(tmp_path)], timeout=110)
    rows = [line.split() for line in p.stdout.splitlines() if line.startswith(("blake3", "hmac-sha256"))]
    assert {(r[0], r[1]) for r in rows} == {
        (a, v) for a in ("blake3", "hmac-sha256") for v in ("array", "frame")
    }
    assert all(r[2].endswith("x") and float(r[2][:-1]) > 0 for r in rows)
    assert list(tmp_path.iterdir()) == [tmp_path / "key"] or not list(tmp_path.glob("nbsteps-write-*"))


@pytest.mark.timeout(300)
def test_corpus_bench_runs_one_small_notebook_in_every_mode(tmp_path):
    _corpus_or_skip()
    out = tmp_path / "corpus.json"
    args = ["bench/corpus.py", "--only", "nx_read_write", "--repeat", "1", "--json", str(out)]
    p = _bench(tmp_path, args, timeout=290)
    assert "| nx_read_write | 4 |" in p.stdout
    row = json.loads(out.read_text())["rows"]["nx_read_write"]
    for mode in ("store", "restore", "memory", "unobserved", "plan", "outputs"):
        assert row[mode]["errors"] == [] and row[mode]["ratio"] > 0, (mode, row[mode])
        assert row[mode]["cpu_ratio"] > 0, (mode, row[mode])  # the kernel's CPU time, measured in it
    assert row["restore"]["executed"] == [0]  # everything restored, nothing executed
    # the floor of a restore: each cell publishes what plain Run All showed, nothing else
    assert row["outputs"]["errors"] == [] and row["outputs"]["cpu_ms"] > 0, row["outputs"]
    assert row["outputs"]["differs"] == [[]], row["outputs"]  # the same outputs as plain's
    assert row["restore"]["over_floor"] > 0, row["restore"]


@pytest.mark.timeout(200)
def test_corpus_bench_profiles_plan_mode_with_its_worker_threads(tmp_path):
    _corpus_or_skip()
    args = ["bench/corpus.py", "--profile", "nx_read_write", "--profile-mode", "plan", "--profile-cpu"]
    p = _bench(tmp_path, args, timeout=190)
    assert "%steps run --workers 4" in p.stdout  # the run cell's wall time, after the step cells'
    threads = next(line for line in p.stdout.splitlines() if line.endswith("profiled threads"))
    assert int(threads.split()[0]) >= 2  # the kernel's thread and those the run started (timers, workers)
    assert "nbsteps/run/attempt/task.py" in p.stdout and "nbsteps/ipython/magics.py" in p.stdout


@pytest.mark.timeout(120)
def test_store_growth_prints_the_size_after_the_edit_cycles(tmp_path):
    p = _bench(tmp_path, ["bench/store_growth.py", "--size", "2MB", "--cycles", "2"], timeout=110)
    lines = [line for line in p.stdout.splitlines() if line.startswith("middle ")]
    assert len(lines) == 2 and all("after 2 edit-and-rerun cycles" in line for line in lines)
    assert float(lines[0].rsplit("= ", 1)[1].rstrip("x")) < 1.1  # held upstream frame: references only
