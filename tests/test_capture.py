"""Each step's output is its own (nbsteps.run.attempt.capture): what parallel steps
print never interleaves and is kept on the record; each step's pyplot figures
belong to it, are kept as PNG images and closed; a checkpoint keeps the
output (memory and disk), so a restored step has it again."""

from __future__ import annotations

import base64
import sys
import threading

import pytest

import nbsteps
from nbsteps.run.attempt import capture

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# two steps that print in small pieces while the other does too; a barrier makes them
# really overlap (each waits for the other to have started)
CHATTY = """
import time
_ = barrier.wait(timeout=10)  # a used result: not a mutation of barrier
for i in range(200):
    print("{who}", end="")
    print(" says", i, end="")
    print()
    if i % 20 == 0:
        time.sleep(0.001)
print("{who} on stderr", file=sys.stderr)
{out} = 1
"""


def chatty_plan(store="memory"):
    plan = nbsteps.Plan(store=store)
    plan.namespace.update(barrier=threading.Barrier(2), sys=sys)
    plan.add_cell("a", CHATTY.format(who="A", out="x"))
    plan.add_cell("b", CHATTY.format(who="B", out="y"))
    return plan


def test_parallel_prints_never_interleave_and_stay_on_the_record(capsys):
    plan = chatty_plan()
    assert plan.run(workers=2).ok
    for step, who, other in (("a", "A", "B"), ("b", "B", "A")):
        rec = plan[step]
        lines = rec.stdout.splitlines()
        assert lines == [f"{who} says {i}" for i in range(200)], lines[:5]
        assert rec.stderr == f"{who} on stderr\n"
        assert other not in rec.stdout
        assert [kind for kind, _ in rec.output] == ["stdout", "stderr"]
    # no frontend shows step output here (plain Python): it is echoed, whole lines at a time
    out = capsys.readouterr()
    echoed = out.out.splitlines()
    assert sorted(echoed) == sorted([f"A says {i}" for i in range(200)] + [f"B says {i}" for i in range(200)])
    assert "A on stderr" in out.err and "B on stderr" in out.err


def test_no_echo_when_a_frontend_claims_the_step(capsys):
    seen = []

    class Frontend:
        def claims(self, name):
            return name == "a"

        def changed(self, name, cap):
            seen.append(name)

    capture.set_frontend(Frontend())
    try:
        plan = chatty_plan()
        assert plan.run(workers=2).ok
    finally:
        capture.set_frontend(None)
    out = capsys.readouterr().out
    assert "A says" not in out and "B says 0" in out  # a: shown by the frontend only
    assert plan["a"].stdout.count("A says") == 200
    assert seen and set(seen) == {"a"}  # told as output arrived, from the step's thread


FIGURE = """
import matplotlib.pyplot as plt
_ = barrier.wait(timeout=10)  # a used result: not a mutation of barrier
plt.figure(figsize=({w}, 2))
plt.plot([1, 2, 3])
plt.title("{who}")
print("{who} drew")
{out} = len(plt.get_fignums())
"""


def test_parallel_steps_draw_their_own_figures_kept_as_png_and_closed():
    plt.close("all")
    plt.figure()  # a figure of the notebook itself: no step may take or close it
    plan = nbsteps.Plan()
    plan.namespace.update(barrier=threading.Barrier(2))
    plan.add_cell("a", FIGURE.format(w=3, who="A", out="na"))
    plan.add_cell("b", FIGURE.format(w=5, who="B", out="nb"))
    assert plan.run(workers=2).ok
    # each step saw only its own figure
    assert plan["a"].outputs["na"] == 1 and plan["b"].outputs["nb"] == 1
    for step, size in (("a", "300x200"), ("b", "500x200")):
        [shown] = plan[step].displays
        assert set(shown["data"]) == {"image/png", "text/plain"}
        assert base64.b64decode(shown["data"]["image/png"]).startswith(b"\x89PNG")
        assert f"<Figure size {size} with 1 Axes>" == shown["data"]["text/plain"]
        assert [k for k, _ in plan[step].output] == ["stdout", "display"]
    # the steps' figures were closed: only the notebook's own is open
    assert len(plt.get_fignums()) == 1
    plt.close("all")


def test_a_figure_that_is_the_result_is_not_shown_twice():
    plan = nbsteps.Plan()
    plan.add_cell("fig", "import matplotlib.pyplot as plt\nf, ax = plt.subplots()\nax.plot([1, 2])\nf")
    assert plan.run().ok
    assert plan["fig"].displays == []  # the result shows it
    assert type(plan["fig"].result).__name__ == "Figure"
    assert plt.get_fignums() == []


def test_first_import_of_pyplot_inside_parallel_steps():
    code = (
        "import threading, matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import nbsteps\n"
        "plan = nbsteps.Plan()\n"
        "plan.namespace['barrier'] = threading.Barrier(2)\n"
        "for who in 'ab':\n"
        '    plan.add_cell(who, "_ = barrier.wait(10)\\nimport matplotlib.pyplot as plt\\n'
        'plt.plot([1])\\n_ = barrier.wait(10)\\n" + who + "_ = 1")\n'
        "assert plan.run(workers=2).ok\n"
        "import matplotlib.pyplot as plt\n"
        "print(len(plan['a'].displays), len(plan['b'].displays), len(plt.get_fignums()))\n"
    )
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["1", "1", "0"], proc.stdout


def test_failed_step_keeps_what_it_printed():
    plan = nbsteps.Plan()
    plan.add_cell("bad", "print('before the error')\nraise ValueError('no')")
    assert not plan.run().ok
    assert plan["bad"].stdout == "before the error\n"


@pytest.mark.parametrize("store", ["memory", "disk"])
def test_restored_step_has_its_output_again(store, tmp_path, tmp_key):
    where = "memory" if store == "memory" else str(tmp_path / "store")
    plan = nbsteps.Plan(store=where)
    plan.add_cell("draw", "import matplotlib.pyplot as plt\nprint('drawing')\nplt.plot([1, 3, 2])\nv = 1")
    plan.add_cell("after", "w = v + 1")
    assert plan.run().ok
    first = plan["draw"].output
    assert [k for k, _ in first] == ["stdout", "display"]
    if store == "disk":
        plan = nbsteps.Plan(store=where)  # a new session: only the store remembers
        plan.add_cell("draw", "import matplotlib.pyplot as plt\nprint('drawing')\nplt.plot([1, 3, 2])\nv = 1")
        plan.add_cell("after", "w = v + 1")
    else:
        plan.records["draw"].output = ()  # forget it: the restore must bring it back
        plan.records["draw"].status = "pending"
    assert plan.run().ok
    rec = plan["draw"]
    assert rec.cached and rec.output == first and rec.stdout == "drawing\n"
    assert rec.attempts == 1 and rec.started  # of the run that produced the checkpoint
    assert plt.get_fignums() == []  # images, never live pyplot objects


def test_displays_in_a_step_go_to_its_record(shell):
    from conftest import run_ok

    run_ok(
        shell,
        "%%step shows\nfrom IPython.display import display, HTML\n"
        "display(HTML('<b>bold</b>'))\nprint('and text')\nx = 1",
    )
    rec = nbsteps.step("shows")
    assert rec.displays[0]["data"]["text/html"] == "<b>bold</b>"
    assert rec.stdout == "and text\n"
    assert [k for k, _ in rec.output] == ["display", "stdout"]


def test_router_is_transparent_outside_steps(capsys):
    capture.install()
    print("plain print")
    assert capsys.readouterr().out == "plain print\n"
    assert sys.stdout.encoding
