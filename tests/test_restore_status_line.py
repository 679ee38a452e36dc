"""A ``%%step`` cell restored in a new kernel draws its status line once, settled (issue 26,
target 2): one ``display_data``, no "starting" line replaced by an ``update_display_data``
(each message costs the kernel and the client a serialisation). A cell whose step executes
still shows "starting" before anything the step prints, and text written before the run
decides comes after the line, as when the line was drawn at once. Real kernels
(jupyter_client), the IOPub messages of each cell as they were sent."""

import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.kernel

BODY = "%%step a\nprint('a prints')\nx = list(range(5))\nlen(x)"
BELOW = "%%step b\nprint('b sees', len(x))\ny = x[1:]"


class Kernel:
    """One kernel; :meth:`run` returns the IOPub messages of a cell, in order."""

    def __init__(self, kernel_name: str, cwd: Path) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name=kernel_name)
        self.km.start_kernel(cwd=str(cwd))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 120) -> list[dict]:
        msg_id = self.kc.execute(code, store_history=True)
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, f"the kernel never went idle after {code!r}"
            try:
                m = self.kc.get_iopub_msg(timeout=1)
            except Exception:  # queue.Empty
                continue
            if m["parent_header"].get("msg_id") != msg_id:
                continue
            kind = m["header"]["msg_type"]
            if kind == "status" and m["content"]["execution_state"] == "idle":
                return got
            if kind in ("display_data", "update_display_data", "stream", "execute_result", "error"):
                got.append({"type": kind, **m["content"]})

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _is_status(m: dict) -> bool:
    return m["type"] in ("display_data", "update_display_data") and "nbsteps-status" in m["data"].get(
        "text/html", ""
    )


def _shape(msgs: list[dict]) -> list[str]:
    """Each message as the kind of output it is: the status line (``status:`` and its first
    words), a stream's text, a result's text."""
    out = []
    for m in msgs:
        if _is_status(m):
            out.append(f"{m['type']} status: {m['data']['text/plain'].split(';')[0]}")
        elif m["type"] == "stream":
            out.append(f"{m['name']}: {m['text'].strip()}")
        elif m["type"] == "execute_result":
            out.append(f"result: {m['data']['text/plain']}")
        elif m["type"] == "error":
            out.append(f"error: {m['ename']}")
        else:
            out.append(m["type"])
    return out


@pytest.fixture
def kernels(tmp_path, tmp_key, kernel_name):
    made = []

    def new() -> Kernel:
        k = Kernel(kernel_name, tmp_path)
        made.append(k)
        k.run("%load_ext nbsteps")
        k.run(f"%steps store {tmp_path / 'store'}")
        return k

    yield new
    for k in made:
        k.close()


def test_a_restored_cell_draws_its_status_line_once(kernels):
    first = kernels()
    ran = _shape(first.run(BODY))
    assert ran[0] == "display_data status: ▶ a starting…", ran
    assert "stdout: a prints" in ran and "result: 5" in ran, ran
    assert any(s.startswith("update_display_data status: ✓ a completed") for s in ran), ran
    first.run(BELOW)

    second = kernels()
    for body, printed in ((BODY, "a prints"), (BELOW, "b sees 5")):
        msgs = second.run(body)
        shape = _shape(msgs)
        statuses = [m for m in msgs if _is_status(m)]
        assert len(statuses) == 1 and statuses[0]["type"] == "display_data", shape
        assert "restored from its checkpoint" in statuses[0]["data"]["text/plain"], shape
        assert statuses[0]["transient"]["display_id"].startswith("nbsteps-step-"), statuses[0]
        assert shape[0].startswith("display_data status: ✓"), shape
        assert f"stdout: {printed}" in shape, shape  # what the step printed, shown again after the line
    assert [s.split(" of ")[0] for s in shape] == [
        "display_data status: ✓ b restored from its checkpoint",
        "stdout: b sees 5",
    ], shape


def test_a_cell_whose_step_executes_shows_starting_first(kernels):
    k = kernels()
    k.run(BODY)
    shape = _shape(k.run("%%step a\nprint('again')\nx = list(range(6))\nlen(x)"))  # edited: executes
    assert shape[0] == "display_data status: ▶ a starting…", shape
    assert shape.index("stdout: again") > 0, shape
    assert any(s.startswith("update_display_data status: ✓ a completed") for s in shape), shape


LISTENER = """\
import sys
import nbsteps.ipython.session as _s
def _told(e):
    if e.kind == "planned":
        print("planned", sorted(e.steps), file=sys.stderr)
_s.current().listeners.append(_told)"""


def test_what_is_written_before_the_run_decides_comes_after_the_line(kernels):
    """A listener of the plan writes on ``sys.stderr`` when a run is planned (before the
    executor decides to restore the step). The cell's line comes first, as when it was drawn
    at once, then that text (on its stream: when the kernel sends it, against what the
    restored step printed on stdout, is the kernel's to decide, as before)."""
    kernels().run(BODY)
    second = kernels()
    assert second.run(LISTENER) == []
    msgs = second.run(BODY)
    shape = _shape(msgs)
    assert shape[0].startswith("display_data status: "), shape
    assert "stderr: planned ['a']" in shape, shape
    assert "stdout: a prints" in shape, shape
    final = [m for m in msgs if _is_status(m)][-1]
    assert "restored from its checkpoint" in final["data"]["text/plain"], shape
