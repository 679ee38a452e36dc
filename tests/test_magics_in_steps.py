"""IPython's magics inside a step work on the step's namespace (issue 21, defect 5),
and ``%steps load`` names what it does not know (defect 12).

Each scenario runs the same code twice: as plain cells in a plain IPython without
nbsteps (a subprocess: Run All), and as ``%%step`` cells in a real shell with nbsteps,
interactively (each cell runs its step) and in plan mode (``%steps mode plan``, then
``%steps run --workers 2``); the names the notebook ends with, and what was printed,
must be the same. Everything a magic touches is in the test's tmp dirs: the working
directory (``%cd``, ``%run``'s script), IPython's database (``%store``), the variable
``%env`` sets (restored).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import types

import pytest
from conftest import run_err, run_ok

import nbsteps
from nbsteps.errors import NbstepsError, StepsFailed

pytestmark = pytest.mark.usefixtures("nothing_outside_the_store_changes")

HELPER = "h = 41\n\ndef twice(x):\n    return 2 * x\n"


class Scenario:
    """*steps*: (name, code) of the step cells, in notebook order; *setup* and *after*:
    plain cells run before and after them; *names*: what the notebook ends with
    (compared by repr); *markers*: strings whose presence in what was printed must be
    the same."""

    def __init__(self, steps, names, after=(), setup=(), markers=()):
        self.steps, self.names, self.after, self.setup, self.markers = steps, names, after, setup, markers


SCENARIOS = {
    # %run copies the script's names into the namespace: the step's own code reads them after it
    "run": Scenario(
        [("r", "%run helper.py\nval = h + 1"), ("use", "doubled = twice(val)")], ["h", "val", "doubled"]
    ),
    # %run -i runs the script in the namespace: it sees the step's names
    "run_i": Scenario(
        [("ri", "x_for_script = 5\n%run -i reads.py\nplus = from_script + 1")], ["from_script", "plus"]
    ),
    # %%capture runs its body in the namespace and binds its output there; the body changes an input
    "capture": Scenario(
        [
            ("items", "items = [1, 2, 3]"),
            ("c", "%%capture out\nitems.append(4)\nprint('hidden text', len(items))\ncounted = len(items)"),
        ],
        ["items", "counted", "text"],
        after=["text = out.stdout"],
        markers=["hidden text"],
    ),
    # %time runs its statement in the namespace: the generator sees the step's k
    "time": Scenario(
        [("t", "k = 2\n%time s = sum(v * k for v in range(4))\nafter_time = s + 1")],
        ["k", "s", "after_time"],
        markers=["Wall time"],
    ),
    # after a top-level await (the rest of the step runs on another thread): still the step's namespace
    "await": Scenario(
        [
            (
                "aw",
                "import asyncio\nk2 = 3\nawait asyncio.sleep(0)\n"
                "%time got = sum(v * k2 for v in range(3))\n"
                "seen_by_magics = 'k2' in get_ipython().user_ns",
            )
        ],
        ["k2", "got", "seen_by_magics"],
        markers=["Wall time"],
    ),
    # %timeit from a function in the step: the timed code sees the step's names and the function's
    "timeit": Scenario(
        [
            (
                "ti",
                "base = 3\nsecret = 9\n"
                "def measure():\n    y = 2\n"
                "    return get_ipython().run_line_magic('timeit', '-o -q -n 2 -r 1 base * y')\n"
                "result = measure()\nloops = (result.loops, result.repeat)\ndel secret",
            )
        ],
        ["base", "loops", "secret"],
    ),
    # %prun runs its statement in the namespace
    "prun": Scenario(
        [("p", "top = 20\n%prun -q total = sum(range(top))\ndoubled_total = total * 2")],
        ["total", "doubled_total"],
    ),
    # %env sets the process's environment (as in any cell), and reads it back
    "env": Scenario(
        [("e", "%env NBS_MAGICS_IN_STEPS=seven\nseen = %env NBS_MAGICS_IN_STEPS")],
        ["seen", "env_after"],
        after=["import os\nenv_after = os.environ.get('NBS_MAGICS_IN_STEPS')"],
    ),
    # %cd changes the working directory and keeps its history (_dh)
    "cd": Scenario(
        [("d", "import os\n%cd -q sub\nhere = os.path.basename(os.getcwd())")],
        ["here", "dh_last"],
        after=["import os\ndh_last = os.path.basename(_dh[-1])"],
    ),
    # %store saves a step's value in IPython's database; %store -r restores it into another step
    "store": Scenario(
        [("keep", "kept = [1, 2]\n%store kept"), ("back", "%store -r kept\nback = kept + [3]")],
        ["kept", "back"],
        setup=["%load_ext storemagic"],
        markers=["Stored 'kept'"],
    ),
}

PLAIN = textwrap.dedent("""
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    cells, names, result = json.loads(sys.argv[1])
    ok = [ip.run_cell(c).success for c in cells]
    ns = {n: repr(ip.user_ns[n]) if n in ip.user_ns else "<missing>" for n in names}
    with open(result, "w") as f:
        json.dump({"ok": ok, "ns": ns}, f)
""")


def workdir(root):
    """The files the scenarios use, in *root* (the working directory of both runs)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "helper.py").write_text(HELPER)
    (root / "reads.py").write_text("from_script = x_for_script * 10\n")
    (root / "sub").mkdir(exist_ok=True)
    return root


_plain_cache: dict = {}


def plain_run_all(key, tmp_path_factory) -> dict:
    """The scenario's cells, without %%step lines, run in order in a plain IPython
    (no nbsteps) in a fresh process: what Run All gives."""
    if key in _plain_cache:
        return _plain_cache[key]
    sc = SCENARIOS[key]
    root = tmp_path_factory.mktemp(f"plain_{key}")
    cwd = workdir(root / "work")
    cells = list(sc.setup) + [code for _, code in sc.steps] + list(sc.after)
    result = root / "result.json"
    env = dict(os.environ, IPYTHONDIR=str(root / "ipython"), NBS_MAGICS_IN_STEPS="before")
    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, json.dumps([cells, sc.names, str(result)])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(result.read_text())
    assert all(got["ok"]), (key, proc.stdout, proc.stderr)  # Run All runs every cell
    got["printed"] = {m: m in proc.stdout + proc.stderr for m in sc.markers}
    _plain_cache[key] = got
    return got


@pytest.fixture
def ip(shell, tmp_path, monkeypatch):
    """The nbsteps shell, working in a tmp dir (restored after), with IPython's
    database (%store) in tmp, and the variable %env sets restored."""
    from IPython.external.pickleshare import PickleShareDB

    monkeypatch.chdir(workdir(tmp_path / "work"))
    monkeypatch.setattr(shell, "_db", PickleShareDB(str(tmp_path / "ipython_db")))
    monkeypatch.setenv("NBS_MAGICS_IN_STEPS", "before")
    shell.run_line_magic("steps", "mode interactive")
    return shell


def names_of(ip, names) -> dict:
    return {n: repr(ip.user_ns[n]) if n in ip.user_ns else "<missing>" for n in names}


def run_with_nbsteps(ip, sc: Scenario, mode: str) -> None:
    for cell in sc.setup:
        run_ok(ip, cell)
    if mode == "plan":
        run_ok(ip, "%steps mode plan")
    for name, code in sc.steps:
        run_ok(ip, f"%%step {name}\n{code}")
    if mode == "plan":
        run_ok(ip, "%steps run --workers 2")
    for cell in sc.after:
        run_ok(ip, cell)


@pytest.mark.parametrize("mode", ["interactive", "plan"])
@pytest.mark.parametrize("key", list(SCENARIOS))
def test_a_magic_in_a_step_does_what_run_all_does(ip, key, mode, capfd, tmp_path_factory):
    expected = plain_run_all(key, tmp_path_factory)
    sc = SCENARIOS[key]
    capfd.readouterr()
    run_with_nbsteps(ip, sc, mode)
    out = capfd.readouterr()
    assert names_of(ip, sc.names) == expected["ns"]
    assert {m: m in out.out + out.err for m in sc.markers} == expected["printed"]


def test_a_failing_step_leaves_nothing_its_magics_bound(ip):
    """%run's names, %%capture's output and what %store -r restores stay in the
    step; it failed: none of it reaches the notebook."""
    err = run_err(ip, "%%step bad\n%run helper.py\nval = h + 1\nraise ValueError('stop here')")
    assert isinstance(err, StepsFailed) and "bad" in str(err) and "stop here" in str(err)
    assert "h" not in ip.user_ns and "twice" not in ip.user_ns and "val" not in ip.user_ns
    # fixed: the step runs, and its names are published
    run_ok(ip, "%%step bad\n%run helper.py\nval = h + 1")
    assert (ip.user_ns["h"], ip.user_ns["val"], ip.user_ns["twice"](2)) == (41, 42, 4)


def test_a_magic_failing_in_a_step_names_the_step_without_nbsteps_frames(ip):
    err = run_err(ip, "%%step missing\n%run no_such_script.py\nafter = 1")
    assert isinstance(err, StepsFailed) and "missing" in str(err) and "no_such_script.py" in str(err)
    shown = "\n".join(err._render_traceback_())
    plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)  # (IPython colours the frame's name)
    assert "no_such_script.py" in shown and "Cell In[" in plain  # the step's cell, as IPython names it
    assert "<step missing>" in nbsteps.step("missing").traceback
    assert os.sep + "nbsteps" + os.sep not in shown  # the user's frames and IPython's, none of nbsteps'
    assert "after" not in ip.user_ns


def test_parallel_steps_each_see_their_own_namespace_inside_a_magic(ip, monkeypatch):
    """Two steps on two worker threads are inside a magic at the same time (a
    barrier holds both there): each magic sees its own step's names only."""
    gate = types.ModuleType("gate")
    gate.barrier = threading.Barrier(2, timeout=60)
    monkeypatch.setitem(sys.modules, "gate", gate)
    run_ok(ip, "%steps mode plan")
    for side in ("a", "b"):
        run_ok(
            ip,
            f"%%step {side}\nimport gate\nwho_{side} = '{side}'\n"
            f"%time seen_{side} = (gate.barrier.wait(), "
            f"sorted(n for n in get_ipython().user_ns if n.startswith('who_')))[1]",
        )
    run_ok(ip, "%steps run --workers 2")
    assert ip.user_ns["seen_a"] == ["who_a"] and ip.user_ns["seen_b"] == ["who_b"]
    assert "who_a" in ip.user_ns and "who_b" in ip.user_ns  # both published afterwards
    assert ip.user_ns is ip.user_global_ns  # outside steps: the shell's own, one namespace


def test_magics_outside_steps_are_ipythons_own(ip):
    run_ok(ip, "%run helper.py")
    assert ip.user_ns["h"] == 41
    run_ok(ip, "%%capture out\nprint('x')\ny = 2")
    assert ip.user_ns["out"].stdout == "x\n" and ip.user_ns["y"] == 2
    run_ok(ip, "%time z = y + 1")
    assert ip.user_ns["z"] == 3


# -- %steps load NAME (defect 12) ------------------------------------------------------------
def _restored(ip, tmp_path):
    """The cells run once, then again in a 'new kernel': their values are restored, not read yet."""
    from nbsteps.ipython import session

    cells = [
        f"%steps store {tmp_path / 'store'}",
        "%%step make\nframe = list(range(10))\nother = 'o'",
        "%%step total\ntotal = sum(frame)",
    ]
    for c in cells:
        run_ok(ip, c)
    session._plan = None
    ip.reset(new_session=False)
    session.bind(ip)
    for c in cells:
        run_ok(ip, c)
    plan = session.current()
    assert set(plan.deferred.pending) >= {"frame", "other", "total"}
    return plan


def test_steps_load_of_an_unknown_name_says_which_and_what_can_be_loaded(ip, tmp_path, tmp_key, capfd):
    plan = _restored(ip, tmp_path)
    pending = set(plan.deferred.pending)
    err = run_err(ip, "%steps load no_such_name frame")
    assert isinstance(err, NbstepsError)
    msg = str(err)
    assert msg.startswith("%steps load: no_such_name is not a value of any step;")  # the unknown name only
    assert "can be loaded: " + ", ".join(sorted(pending)) in msg
    assert set(plan.deferred.pending) == pending  # nothing loaded
    assert "every restored value is loaded" not in capfd.readouterr().out
    run_ok(ip, "%steps load frame")
    assert ip.user_ns["frame"] == list(range(10)) and "frame" not in plan.deferred.pending
    run_ok(ip, "%steps load frame")  # loaded already: a value of a step, nothing to do, no error
    run_ok(ip, "%steps load")
    err = run_err(ip, "%steps load nope")
    assert "nope is not a value of any step" in str(err) and "every restored value is loaded" in str(err)


def test_in_a_real_kernel_run_and_capture_in_steps_work_on_the_steps_namespace(kernel_name, tmp_path):
    from conftest import cell_text, execute_notebook

    cwd = workdir(tmp_path / "work")
    nb = execute_notebook(
        [
            "%load_ext nbsteps",
            "%%step r\n%run helper.py\nval = h + 1",
            "%%step c\n%%capture out\nprint('hidden text')\nn = val * 2",
            "%steps mode plan",
            "%%step t\nk = 2\n%time s = sum(v * k for v in range(4))",
            "%steps run --workers 2",
            "print('seen', h, val, repr(out.stdout), n, s)",
        ],
        kernel_name,
        cwd,
    )
    assert "hidden text" not in cell_text(nb.cells[2])
    assert "Wall time" in cell_text(nb.cells[4]) + cell_text(nb.cells[5])
    assert "seen 41 42 'hidden text\\n' 84 12" in cell_text(nb.cells[6])
