"""A real IPython kernel driven through jupyter_client, for tests that
interrupt it (``KernelManager.interrupt_kernel``, SIGINT) at chosen moments.

    with LiveKernel(kernel_name, cwd) as k:
        k.run("%load_ext nbsteps")            # must succeed
        msg = k.submit("%steps run")          # returns at once
        k.wait_for_file(cwd / "started")      # a marker the cell writes
        k.interrupt()
        out = k.collect(msg)                  # {"status", "ename", "evalue", "traceback", "stdout"}
        k.value("plan_state()")               # a JSON value printed by the kernel
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

MARK = "@@nbsteps-test@@"


class LiveKernel:
    def __init__(self, kernel_name: str, cwd, env: "dict | None" = None) -> None:
        from jupyter_client import KernelManager

        self.cwd = Path(cwd)
        self.km = KernelManager(kernel_name=kernel_name)
        kw = {"cwd": str(self.cwd)}
        if env is not None:
            kw["env"] = {**os.environ, **env}
        self.km.start_kernel(**kw)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def __enter__(self) -> "LiveKernel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Shut the kernel down as Jupyter does (a shutdown request on the control channel,
        answered even while a cell runs; killed if it has not ended within a few seconds):
        its exit waits for the directory store's pending commits, as a restart from
        JupyterLab's menu does (a kernel killed at once loses the commits still pending)."""
        try:
            self.kc.stop_channels()
        finally:
            self.km.shutdown_wait_time = 5.0
            self.km.shutdown_kernel(now=False)

    # -- executing ------------------------------------------------------------------
    def submit(self, code: str) -> str:
        return self.kc.execute(code, store_history=False)

    def collect(self, msg_id: str, timeout: float = 120) -> dict:
        """Everything the cell *msg_id* printed and its error, once the kernel is idle."""
        out = {"status": None, "ename": None, "evalue": None, "traceback": [], "stdout": "", "stderr": ""}
        deadline = time.monotonic() + timeout
        idle = False
        while not idle:
            msg = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind == "error":
                out.update(ename=content["ename"], evalue=content["evalue"], traceback=content["traceback"])
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
        # The reply comes before "idle". None may come: ipykernel does not reply when
        # the interrupt lands in its own code after the cell ("KeyboardInterrupt
        # caught in kernel"): status "no reply".
        import queue

        reply_deadline = min(deadline, time.monotonic() + 10)
        while True:
            try:
                reply = self.kc.get_shell_msg(timeout=max(0.1, reply_deadline - time.monotonic()))
            except queue.Empty:
                out["status"] = "no reply"
                return out
            if reply["parent_header"].get("msg_id") == msg_id:
                out["status"] = reply["content"]["status"]
                return out

    def run(self, code: str, timeout: float = 120) -> dict:
        """Run a cell that must succeed."""
        out = self.collect(self.submit(code), timeout)
        if out["status"] != "ok":
            raise AssertionError(
                f"cell failed: {out['ename']}: {out['evalue']}\n" + "\n".join(out["traceback"]) + f"\n{code}"
            )
        return out

    def value(self, expr: str, timeout: float = 120):
        """The JSON value of *expr* evaluated in the kernel."""
        out = self.run(f"print({MARK!r} + __import__('json').dumps({expr}))", timeout)
        line = [ln for ln in out["stdout"].splitlines() if ln.startswith(MARK)][-1]
        return json.loads(line[len(MARK) :])

    def quiet_value(self, expr: str, timeout: float = 120):
        """The JSON value of *expr*, asked as a frontend's inspector asks (a silent request:
        IPython runs no ``pre_run_cell`` hook, so nothing a cell would settle first runs)."""
        code = f"print({MARK!r} + __import__('json').dumps({expr}))"
        out = self.collect(self.kc.execute(code, silent=True), timeout)
        if out["status"] != "ok":
            raise AssertionError(f"{expr} failed: {out['ename']}: {out['evalue']}")
        line = [ln for ln in out["stdout"].splitlines() if ln.startswith(MARK)][-1]
        return json.loads(line[len(MARK) :])

    # -- interrupting -------------------------------------------------------------------
    def interrupt(self) -> None:
        self.km.interrupt_kernel()

    @staticmethod
    def wait_for_file(path, timeout: float = 60) -> None:
        path = Path(path)
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} never appeared")
            time.sleep(0.005)


def nbsteps_frames(traceback_lines) -> list[str]:
    """Lines of a traceback the kernel reported that show a frame of nbsteps' own files."""
    import re

    import nbsteps

    package = os.path.dirname(os.path.abspath(nbsteps.__file__))
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(traceback_lines))
    return [line for line in text.splitlines() if package in line]
