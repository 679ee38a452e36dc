"""The text reporter's lines of ``%steps run`` in a real kernel: every line,
in order, without one IOPub message per line (issue 26, target 0: each
flushed line was a stream message and a wait for the kernel's IO thread)."""

from __future__ import annotations

import re

from live_kernel import LiveKernel

STEPS = 40


def _stream_messages(k: LiveKernel, code: str, timeout: float = 120) -> tuple[int, str]:
    """(stream messages, stdout) of the cell *code*, until the kernel is idle."""
    msg_id = k.submit(code)
    count, text = 0, ""
    while True:
        msg = k.kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == "stdout":
            count += 1
            text += content["text"]
        elif kind == "error":
            raise AssertionError(f"{content['ename']}: {content['evalue']}")
        elif kind == "status" and content["execution_state"] == "idle":
            return count, text


def test_a_runs_lines_come_in_order_and_together(tmp_path, kernel_name):
    with LiveKernel(kernel_name, tmp_path) as k:
        k.run("%load_ext nbsteps")
        k.run("%steps mode plan")
        k.run("x0 = 0")
        for i in range(1, STEPS + 1):
            k.run(f"%%step s{i}\nx{i} = x{i - 1} + 1")
        count, text = _stream_messages(k, "%steps run --workers 1")
        assert k.value(f"x{STEPS}") == STEPS
    completed = re.findall(r"✓ (s\d+) completed", text)
    started = re.findall(r"▶ (s\d+) started", text)
    assert completed == [f"s{i}" for i in range(1, STEPS + 1)], text
    assert started == completed, text
    assert text.index("▶ s1 started") < text.index("✓ s1 completed") < text.index("▶ s2 started")
    lines = len(started) + len(completed)
    # one message a line before: the 80 lines of 40 steps came as 80+ messages
    assert count < lines / 4, f"{count} stream messages for {lines} lines"
