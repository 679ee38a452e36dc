"""Interrupting a real kernel (jupyter_client ``interrupt_kernel``) at chosen
moments of ``%steps run``: while a checkpoint is written, and as the run starts
(before the executor exists, before the plan's run began, while a step is
registered). The kernel itself reports what it holds afterwards."""

import pytest
from live_kernel import LiveKernel, nbsteps_frames

pytestmark = pytest.mark.kernel

#: a value whose pickling (inside the disk store's put) says so and then waits
SLOW_PICKLE = """
import pathlib, time
class SlowPickle:
    def __reduce__(self):
        pathlib.Path("putting").touch()
        time.sleep(60)
        return (SlowPickle, ())
"""

#: patch *target* (module attribute) so that calling it says so and then waits
STALL = """
import importlib, pathlib, time
def stall(target, marker):
    module, _, attr = target.rpartition(".")
    module = importlib.import_module(module)
    real = getattr(module, attr)
    def stalled(*args, **kwargs):
        pathlib.Path(marker).touch()
        time.sleep(60)
        return real(*args, **kwargs)
    setattr(module, attr, stalled)
    return lambda: setattr(module, attr, real)
"""

STATE = """
import nbsteps, json
def state(name, outputs):
    plan = nbsteps.current()
    rec = plan.records.get(name)
    cp = plan.store.peek(name) if name in plan.steps else None
    return {"registered": name in plan.steps, "status": rec and str(rec.status),
            "published": [o for o in outputs if o in get_ipython().user_ns],
            "stored": cp is not None and cp.fingerprint == rec.fingerprint,
            "last": plan.last_summary.text if plan.last_summary else None}
"""


def _interrupted(k: LiveKernel, code: str, marker: str) -> dict:
    msg = k.submit(code)
    k.wait_for_file(k.cwd / marker)
    k.interrupt()
    return k.collect(msg)


def test_interrupt_while_a_checkpoint_is_written_completes_nothing(tmp_path, kernel_name, tmp_key):
    """Defect 3: the record used to say completed before store.put and publish."""
    with LiveKernel(kernel_name, tmp_path) as k:
        k.run(f"%load_ext nbsteps\n%steps store {tmp_path / 'store'}\n%steps mode plan")
        k.run(SLOW_PICKLE + STATE)
        k.run("%%step big\nblob = SlowPickle()\nn = 1")
        out = _interrupted(k, "%steps run", "putting")
        assert out["ename"] == "StepsFailed", out
        assert "big cancelled (interrupted)" in out["evalue"] and "Interrupted" in out["evalue"]
        assert not nbsteps_frames(out["traceback"]), out["traceback"]
        st = k.value("state('big', ['blob', 'n'])")
        assert st["status"] == "cancelled" and st["published"] == [] and not st["stored"], st
        leftovers = [
            p.name for p in (tmp_path / "store").rglob("*") if p.is_file() and ".locks" not in p.parts
        ]
        assert leftovers == [], leftovers  # nothing half-written
        k.run("del SlowPickle\nclass SlowPickle:\n    pass")  # now it pickles at once: the run resumes
        k.run("%steps run")
        st = k.value("state('big', ['blob', 'n'])")
        assert st["status"] == "completed" and st["published"] == ["blob", "n"] and st["stored"], st


@pytest.mark.parametrize("where", ["nbsteps.plan.make_backend", "nbsteps.ipython.display.run_listeners"])
def test_interrupt_as_a_run_starts_reports_this_run(tmp_path, kernel_name, where):
    """Defect 4: before the executor's loop (in Plan.run, in the magics) an interrupt
    gave AttributeError: 'NoneType' object has no attribute 'text' in a fresh session,
    and the previous run's summary after a run."""
    with LiveKernel(kernel_name, tmp_path) as k:
        k.run("%load_ext nbsteps\n%steps mode plan")
        k.run(STALL + STATE)
        k.run("%%step a\nx = 1")
        k.run(f"undo = stall({where!r}, 'first')")
        out = _interrupted(k, "%steps run", "first")  # fresh session: no run yet
        assert out["ename"] == "StepsFailed", out
        assert out["evalue"] == (
            "0 of 1 steps completed; a cancelled (interrupted). "
            "Interrupted: completed steps are kept; run %steps run to resume."
        ), out
        assert not nbsteps_frames(out["traceback"]), out["traceback"]
        assert k.value("state('a', ['x'])")["status"] == "cancelled"

        k.run("undo()\n%steps run")
        assert k.value("state('a', ['x'])")["last"].startswith("1 of 1 steps completed.")
        k.run("%%step b\ny = x + 1")
        k.run(f"undo = stall({where!r}, 'second')")
        out = _interrupted(k, "%steps run", "second")  # after a run: its summary is not this one
        assert out["ename"] == "StepsFailed", out
        assert out["evalue"].startswith("1 of 2 steps completed; b cancelled (interrupted). Interrupted"), out
        assert not nbsteps_frames(out["traceback"]), out["traceback"]
        st = k.value("state('b', ['y'])")
        assert st["status"] == "cancelled" and st["published"] == [] and st["last"] == out["evalue"], st
        k.run("undo()\n%steps run")  # the next run resumes
        assert k.value("state('b', ['y'])")["status"] == "completed"


def test_interrupt_while_a_step_is_registered_is_one_line(tmp_path, kernel_name):
    with LiveKernel(kernel_name, tmp_path) as k:
        k.run("%load_ext nbsteps")
        k.run(STALL + STATE)
        k.run("undo = stall('nbsteps.model.step.analyse_cell', 'analysing')")
        out = _interrupted(k, "%%step a\nx = 1", "analysing")
        assert out["ename"] == "StepsInterrupted" and "KeyboardInterrupt" in "\n".join(out["traceback"]), out
        assert not nbsteps_frames(out["traceback"]), out["traceback"]
        assert k.value("state('a', ['x'])")["registered"] is False
        k.run("undo()")
        k.run("%%step a\nx = 1")
        assert k.value("state('a', ['x'])")["status"] == "completed"
