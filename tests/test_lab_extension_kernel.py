"""The kernel side of the JupyterLab extension (nbsteps/ipython/lab.py) in a
real kernel through jupyter_client, speaking the protocol the extension
speaks: a comm to target ``nbsteps``, cells executed with their cell ids (as
JupyterLab sends them). On open, the whole state keyed by cell id; then only
what changed, after each executor event and each cell; the side panel's HTML
when asked. Also the comm messages a plan run costs per step."""

from __future__ import annotations

import time
import uuid

import pytest

from nbsteps.ipython.lab import PROTOCOL

pytestmark = pytest.mark.kernel

STEPS = {
    "cell-raw": "%%step raw\nraw = list(range(10))",
    "cell-clean": "%%step clean\nclean = [x for x in raw if x % 3]",
    "cell-total": "%%step total\nimport time\ntime.sleep(0.5)\ntotal = sum(clean)",
    "cell-report": "%%step report --retry 1\nreport = f'total {total}'\nreport",
}


class Tab:
    """One JupyterLab tab as the kernel sees it: a kernel client with a comm."""

    def __init__(self, kc) -> None:
        self.kc = kc
        self.comm_id = uuid.uuid4().hex
        #: data of nbsteps' comm messages, on whichever comm (a tab reads them all off IOPub)
        self.messages: list[dict] = []
        #: the session in the headers of those messages (the kernel process)
        self.sessions: set[str] = set()

    def open(self) -> None:
        msg = self.kc.session.msg(
            "comm_open", {"comm_id": self.comm_id, "target_name": "nbsteps", "data": {"type": "state"}}
        )
        self.kc.shell_channel.send(msg)

    def send(self, data: dict) -> None:
        msg = self.kc.session.msg("comm_msg", {"comm_id": self.comm_id, "data": data})
        self.kc.shell_channel.send(msg)

    def run(self, code: str, cell_id: "str | None" = None, timeout: float = 60) -> None:
        """Execute *code* as the cell *cell_id*; collect comm messages until idle."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.kc.session.msg("execute_request", content, metadata={"cellId": cell_id} if cell_id else {})
        self.kc.shell_channel.send(msg)
        self.drain(until=msg["header"]["msg_id"], timeout=timeout)

    def drain(self, until: "str | None" = None, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                m = self.kc.get_iopub_msg(timeout=0.5)
            except Exception:  # queue.Empty
                if until is None:
                    return
                assert time.monotonic() < deadline, "kernel never went idle"
                continue
            kind, content = m["header"]["msg_type"], m["content"]
            if kind == "comm_msg" and content["data"].get("nbsteps") == PROTOCOL:
                self.messages.append(content["data"])
                self.sessions.add(m["header"]["session"])
            elif kind == "error":
                raise AssertionError("\n".join(content["traceback"]))
            elif until and kind == "status" and content["execution_state"] == "idle":
                if m["parent_header"].get("msg_id") == until:
                    return

    def states(self, kind: str = "state") -> list[dict]:
        return [m for m in self.messages if m.get("type") == kind]

    def last_states(self) -> dict:
        """Each cell's latest state among the state messages received: what its badge shows."""
        last = {}
        for d in self.states():
            last.update(d["cells"])
        return last


@pytest.fixture
def tab(kernel_name, tmp_path):
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name=kernel_name)
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    try:
        yield Tab(kc)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_state_by_cell_id_on_open_then_deltas_per_event(tab):
    tab.run("%load_ext nbsteps")
    for cid, code in list(STEPS.items())[:2]:
        tab.run(code, cid)
    tab.open()
    tab.drain()
    full = tab.states()[-1]
    assert full["full"] is True
    assert set(full["cells"]) == {"cell-raw", "cell-clean"} and full["unbound"] == {}
    raw = full["cells"]["cell-raw"]
    assert raw["step"] == "raw" and raw["status"] == "completed" and raw["origin"] == "executed"
    assert raw["cell_id"] == "cell-raw" and raw["duration"] is not None and raw["stale"] is False

    # a new cell: registered, run (started, completed) -> deltas of that step only
    tab.messages.clear()
    tab.run(STEPS["cell-total"], "cell-total")
    deltas = tab.states()
    assert deltas and all(d["full"] is False for d in deltas)
    seen = [(cid, st["status"]) for d in deltas for cid, st in d["cells"].items()]
    assert ("cell-total", "running") in seen and seen[-1] == ("cell-total", "completed"), seen
    assert {cid for cid, _ in seen} == {"cell-total"}

    # raw edited and run: the steps below it become stale, with the reason
    tab.messages.clear()
    tab.run("%%step raw\nraw = list(range(12))", "cell-raw")
    last = tab.last_states()
    assert last["cell-clean"]["stale"] is True
    assert last["cell-clean"]["stale_reason"] == "upstream raw changed", last["cell-clean"]
    assert last["cell-total"]["stale_reason"] == "upstream clean is stale"
    assert last["cell-raw"]["stale"] is False and last["cell-raw"]["origin"] == "executed"


def test_every_tab_gets_the_news_and_the_panel_on_request(tab):
    tab.run("%load_ext nbsteps")
    tab.open()
    second = Tab(tab.kc)  # a second tab: its own comm
    second.open()
    tab.drain()
    for cid, code in STEPS.items():
        tab.run(code, cid)
    # each message is sent once, on one of the comms: every tab reads them all on IOPub
    # (here both tabs share one client; in JupyterLab each tab has its own connection)
    seen = tab.messages
    assert len(seen) < 2 * len(STEPS) + 2, seen
    last = tab.last_states()
    assert {k: v["status"] for k, v in last.items()} == {cid: "completed" for cid in STEPS}

    tab.messages.clear()
    tab.send({"type": "panel"})
    tab.drain()
    time.sleep(0.5)
    tab.drain()
    panel = tab.states("panel")
    assert panel, tab.messages
    html = panel[-1]["html"]
    assert "nbsteps-graph-img" in html and "table" in html and "nbsteps-timeline" in html
    assert all(f'data-step="{s}"' in html for s in ("raw", "clean", "total", "report"))


def test_messages_per_step_in_a_plan_run(tab, record_property):
    """What the extension costs the kernel: comm messages per step of a plan run
    (one tab open, side panel not asked for; then with the panel)."""
    tab.run("%load_ext nbsteps\n%steps mode plan")
    for cid, code in STEPS.items():
        tab.run(code, cid)
    tab.open()
    tab.drain()
    tab.messages.clear()
    tab.run("%steps run --force-all")
    states = tab.states()
    per_step = len(states) / len(STEPS)
    record_property("comm_messages_per_step", per_step)
    assert not tab.states("panel")
    # a step's start and its end at most (an end and the next start within 0.25 s go together)
    assert 0.5 <= per_step <= 2.5, [list(d["cells"].items()) for d in states]
    tab.send({"type": "panel"})
    tab.drain()
    tab.messages.clear()
    tab.run("%steps run --force-all")
    with_panel = len(tab.messages) / len(STEPS)
    record_property("comm_messages_per_step_with_panel", with_panel)
    assert with_panel <= 4, [m.get("type") for m in tab.messages]
    print(f"comm messages per step: {per_step:.2f} (with the side panel open: {with_panel:.2f})")


def test_failed_and_blocked_steps_say_why(tab):
    tab.run("%load_ext nbsteps\n%steps mode plan")
    tab.run("%%step bad\nx = 1\nraise ValueError('no data for 2024')", "cell-bad")
    tab.run("%%step below\ny = x + 1", "cell-below")
    tab.open()
    tab.drain()
    tab.messages.clear()
    tab.run("%steps run --allow-failures")
    last = tab.last_states()
    bad, below = last["cell-bad"], last["cell-below"]
    assert bad["status"] == "failed" and bad["error"] == "ValueError: no data for 2024", bad
    assert below["status"] == "blocked" and "bad" in below["error"], below
    assert bad["duration"] is not None and below["started"] is None


def test_badges_follow_changes_made_between_runs(tab):
    """After each cell the kernel sends only the states that changed (it keeps the last state
    of each step, see lab.LabState._state): a reset, a step registered again with other
    code, and a step waiting for a new upstream each reach the badges."""
    tab.run("%load_ext nbsteps")
    for cid, code in list(STEPS.items())[:2]:
        tab.run(code, cid)
    tab.run("%steps mode plan")
    tab.open()
    tab.drain()
    tab.messages.clear()
    tab.run("%steps reset clean")
    last = tab.last_states()
    assert last["cell-clean"]["status"] == "pending", last
    assert "needs raw" in last["cell-clean"]["line"], last

    tab.messages.clear()
    tab.run("%%step clean\nclean = [x for x in raw if x % 3 and x > lo]", "cell-clean")
    tab.run("%%step lo\nlo = 2", "cell-lo")  # registered below: clean does not read it (Run All order)
    tab.run("%%step clean\nlo = 1\nclean = [x for x in raw if x % 3 and x > lo]", "cell-clean")
    last = tab.last_states()
    assert last["cell-clean"]["status"] == "pending" and "needs raw" in last["cell-clean"]["line"], last
    assert last["cell-lo"]["status"] == "pending", last

    tab.messages.clear()
    tab.run("%steps run")
    last = tab.last_states()
    assert last["cell-clean"]["status"] == "completed" and "→ lo, clean" in last["cell-clean"]["line"], last


def test_state_messages_are_numbered_and_name_the_kernel_process(tab):
    """Every message names the kernel process (the session of its headers: a restarted kernel
    is another) and every state message has the next number, so a tab can tell another
    process's messages and a message it missed; asked, the kernel sends the whole state."""
    tab.run("%load_ext nbsteps")
    tab.open()
    for cid, code in STEPS.items():
        tab.run(code, cid)
    tab.send({"type": "state"})
    tab.drain()
    time.sleep(0.5)
    tab.drain()
    states = tab.states()
    assert [d["seq"] for d in states] == list(range(1, len(states) + 1)), [d["seq"] for d in states]
    assert states[-1]["full"] is True and set(states[-1]["cells"]) == set(STEPS), states[-1]
    assert len(tab.sessions) == 1 and {d["kernel"] for d in tab.messages} == tab.sessions
