"""Real-browser test harness: JupyterLab driven by Playwright + system Chromium.

Usage::

    from tests.browser import jupyterlab_server, stage_notebook

    nb = stage_notebook("notebooks/demo.ipynb", tmp_path)   # stripped copy
    with jupyterlab_server(tmp_path) as lab:
        page = lab.open_and_run_all(nb.name, timeout=120)
        assert page.locator(".jupyter-widgets").count() > 0
        lab.screenshot("tests/artifacts/demo.png")

Every run gets its own temporary Jupyter config/data/runtime, JupyterLab
settings/workspaces and IPython dirs, so nothing depends on (or writes to) the
user's home.  The kernel is a kernelspec pointing at ``sys.executable``.

Nothing here ever kills processes by name: the server is stopped through
``POST /api/shutdown`` (which also stops its kernels), then, if needed, by a
signal to the PID this module started.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

CHROMIUM = os.environ.get("NBSTEPS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
KERNEL_NAME = "python3"
KERNEL_DISPLAY_NAME = "Python 3 (ipykernel)"

# JupyterLab user settings written for every run (names checked against the
# schemas shipped with JupyterLab 4.x).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker": {
        # Attach every cell/output to the DOM (no virtual scrolling).
        "windowingMode": "none",
    },
}


def chromium_available() -> bool:
    return os.path.exists(CHROMIUM)


def browser_marks(dot: bool = True) -> list:
    """The ``pytestmark`` of a browser test module: the ``browser`` marker,
    skipped without Debian's chromium (and, with *dot*, without Graphviz)."""
    import pytest

    marks = [
        pytest.mark.browser,
        pytest.mark.skipif(
            not chromium_available(), reason="/usr/bin/chromium not installed (apt-get install chromium)"
        ),
    ]
    if dot:
        marks.append(pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed"))
    return marks


# --------------------------------------------------------------------------
# Notebook preparation
# --------------------------------------------------------------------------


def strip_notebook(nb):
    """Return a copy of *nb* (nbformat NotebookNode) with no outputs,
    execution counts or widget state, and a python3 kernelspec."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "python",
    }
    nb.metadata.setdefault("language_info", {"name": "python"})
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def saved_notebook(nb_path: Path, done, timeout: float = 30, what: str = "the save"):
    """The notebook at *nb_path* once *done(nb)* holds, polled while JupyterLab saves it.
    Jupyter's contents manager writes the file in place (its atomic writing keeps a backup
    copy, it does not rename a finished file into place), so a read during a save can find
    it empty or cut short: such a read is retried, not a failure."""
    import nbformat

    deadline = time.monotonic() + timeout
    while True:
        try:
            nb = nbformat.read(nb_path, as_version=4)
        except (ValueError, nbformat.reader.NotJSONError):  # mid-write
            nb = None
        if nb is not None and done(nb):
            return nb
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.25)


def stage_notebook(src, dest_dir, name: str | None = None) -> Path:
    """Write a stripped copy of notebook *src* (path, NotebookNode, or a list
    of code cells' sources) into *dest_dir*; return its path."""
    import nbformat

    if isinstance(src, list):
        src = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in src])
    if isinstance(src, (str, os.PathLike)):
        src = Path(src)
        nb = nbformat.read(src, as_version=4)
        name = name or src.name
    else:
        nb = src
        if name is None:
            raise ValueError("name is required when src is a notebook object")
    dest = Path(dest_dir) / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(strip_notebook(nb), dest)
    return dest


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------


class LabError(RuntimeError):
    pass


class Lab:
    """A running JupyterLab server plus a headless Chromium (Playwright)."""

    def __init__(
        self, root_dir: Path, base_url: str, token: str, proc, run_dir: Path, log_path: Path, browser, context
    ):
        self.root_dir = root_dir
        self.base_url = base_url  # e.g. "http://127.0.0.1:4321/"
        self.token = token
        self.proc = proc
        self.run_dir = run_dir
        self.log_path = log_path
        self.browser = browser
        self.context = context
        self.page = None
        self.console: list[str] = []  # browser console messages + page errors

    # ---- REST helpers ---------------------------------------------------
    def api(self, method: str, path: str, body=None, timeout: float = 10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def server_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # ---- browser --------------------------------------------------------
    def new_page(self):
        page = self.context.new_page()
        page.on("console", lambda m: self.console.append(f"console.{m.type}: {m.text}"))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.page = page
        return page

    def open(self, notebook: str, timeout: float = 60):
        """Open *notebook* (path relative to root_dir) and wait until all its
        cells are on the page and the kernel status bar says Idle."""
        rel = self._rel(notebook)
        import nbformat

        ncells = len(nbformat.read(self.root_dir / rel, as_version=4).cells)
        page = self.new_page()
        url = f"{self.base_url}lab/tree/{urllib.request.pathname2url(rel)}?token={self.token}"
        page.goto(url, wait_until="domcontentloaded", timeout=timeout * 1000)
        deadline = time.monotonic() + timeout
        while True:
            s = self.snapshot()
            if s["dialog"]:
                raise LabError(f"unexpected JupyterLab dialog: {s['dialog']!r}")
            if s["cells"] == ncells and s["idle"]:
                return page
            if time.monotonic() > deadline:
                raise LabError(
                    f"notebook not ready after {timeout}s (expected {ncells} cells): {s}\n{self._diag()}"
                )
            page.wait_for_timeout(200)

    def open_and_run_all(self, notebook: str, timeout: float = 120, raise_on_error: bool = True):
        """Open *notebook*, click Run > Run All Cells, wait until every code
        cell shows an ``[n]`` prompt and the kernel is Idle again; return the page.

        If a cell raises, JupyterLab stops the run (later cells stay ``[ ]``):
        this raises LabError with the stderr/traceback text, or, with
        ``raise_on_error=False``, returns the page as it is.
        """
        start = time.monotonic()
        page = self.open(notebook, timeout=timeout)
        clicks = 0
        last_click = 0.0
        stalled_since = None
        while True:
            now = time.monotonic()
            s = self.snapshot()
            if s["dialog"]:
                raise LabError(f"unexpected JupyterLab dialog: {s['dialog']!r}")
            prompts = [p.strip() for p in s["prompts"]]
            done = [bool(re.fullmatch(r"\[\d+\]:?", p)) for p in prompts]
            if all(done) and s["idle"]:
                tracebacks = [t for t in s["stderr"] if "Traceback (most recent call last)" in t]
                if raise_on_error and tracebacks:  # e.g. the last cell raised
                    raise LabError("cell raised an error:\n" + tracebacks[-1])
                return page
            started = any(done) or any("*" in p for p in prompts)
            # Run All stopped early (a cell raised): some done, none queued/running.
            if started and s["idle"] and not any("*" in p for p in prompts):
                stalled_since = stalled_since or now
                if now - stalled_since > 2:
                    if not raise_on_error:
                        return page
                    raise LabError(
                        f"run-all stopped with prompts {prompts}; "
                        "stderr/traceback output:\n" + "\n---\n".join(s["stderr"][-3:])
                    )
            else:
                stalled_since = None
            # Click (again) if nothing has started 8 s after the previous click.
            if not started and (clicks == 0 or now - last_click > 8):
                self.run_all_cells()
                clicks += 1
                last_click = time.monotonic()
            if now - start > timeout:
                raise LabError(
                    f"run-all not finished after {timeout}s ({clicks} click(s)): {s}\n{self._diag()}"
                )
            page.wait_for_timeout(250)

    def run_all_cells(self):
        """Click Run > Run All Cells in the menu bar."""
        page = self.page
        # Make sure the notebook is the current widget (enables the command).
        page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5}, timeout=10_000)
        page.keyboard.press("Escape")
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click(timeout=10_000)
        # Lab 4 menu item is "runmenu:run-all" (older: notebook:run-all-cells).
        item = page.locator(
            '.lm-Menu-item[data-command="runmenu:run-all"], '
            '.lm-Menu-item[data-command="notebook:run-all-cells"]'
        ).first
        item.wait_for(state="visible", timeout=10_000)
        if "lm-mod-disabled" in (item.get_attribute("class") or ""):
            page.keyboard.press("Escape")
            return
        item.click(timeout=10_000)

    def wait_all_run(self, page=None, timeout: float = 120) -> None:
        """Wait until the notebook of *page* (default: the current one) is idle
        with every cell run (each prompt ``[N]``); *page* becomes the current one."""
        if page is not None:
            self.page = page
        deadline = time.monotonic() + timeout
        while True:
            s = self.snapshot()
            if s["idle"] and all(re.fullmatch(r"\[\d+\]:?", p.strip()) for p in s["prompts"]):
                return
            assert time.monotonic() < deadline, f"run all not finished: {s}"
            self.page.wait_for_timeout(250)

    def snapshot(self) -> dict:
        """State of the current page used for waiting (and error messages)."""
        return self.page.evaluate(_SNAPSHOT_JS)

    def screenshot(self, path, notebook_only: bool = False) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if notebook_only:
            self.page.locator(".jp-NotebookPanel").first.screenshot(path=str(path))
        else:
            self.page.screenshot(path=str(path))
        return path

    # ---- internals ------------------------------------------------------
    def _rel(self, notebook) -> str:
        p = Path(notebook)
        if p.is_absolute():
            p = p.resolve().relative_to(self.root_dir)
        return p.as_posix()

    def _diag(self) -> str:
        return (
            "--- browser console (last 20) ---\n"
            + "\n".join(self.console[-20:])
            + "\n--- server log (tail) ---\n"
            + self.server_log()[-3000:]
        )


_SNAPSHOT_JS = r"""() => {
  const q = (s) => Array.from(document.querySelectorAll(s));
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)')
             || document.querySelector('.jp-NotebookPanel');
  const inPanel = (s) => panel ? Array.from(panel.querySelectorAll(s)) : [];
  const sb = document.querySelector('#jp-main-statusbar');
  const sbText = sb ? sb.innerText.replace(/\s+/g, ' ') : '';
  const dlg = document.querySelector('.jp-Dialog');
  return {
    cells: inPanel('.jp-Notebook .jp-Cell').length,
    prompts: inPanel('.jp-CodeCell .jp-InputArea-prompt').map(e => e.innerText.trim()),
    idle: /\|\s*Idle\b/.test(sbText),
    status: sbText.slice(0, 200),
    dialog: dlg ? dlg.innerText.slice(0, 500) : null,
    // tracebacks are rendered as application/vnd.jupyter.stderr too
    stderr: inPanel('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
              .map(e => e.innerText.slice(0, 3000)),
  };
}"""


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def _prepare_run_dir(run: Path) -> dict:
    """Create isolated Jupyter dirs; return the env for the server."""
    d = {k: run / k for k in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
    for p in d.values():
        p.mkdir(parents=True, exist_ok=True)
    # Kernel = the Python running the tests (its env must have ipykernel).
    _write_json(
        d["data"] / "kernels" / KERNEL_NAME / "kernel.json",
        {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": KERNEL_DISPLAY_NAME,
            "language": "python",
            "metadata": {"debugger": True},
        },
    )
    for plugin, values in LAB_SETTINGS.items():
        _write_json(d["settings"] / f"{plugin}.jupyterlab-settings", values)
    _write_json(
        d["config"] / "jupyter_server_config.json",
        {
            "LabApp": {
                "news_url": None,
                "check_for_updates_class": "jupyterlab.handlers.announcements.NeverCheckForUpdate",
                "user_settings_dir": str(d["settings"]),
                "workspaces_dir": str(d["workspaces"]),
            },
        },
    )
    env = dict(os.environ)
    for var in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_PREFER_ENV_PATH"):
        env.pop(var, None)
    env.update(
        JUPYTER_CONFIG_DIR=str(d["config"]),
        JUPYTER_DATA_DIR=str(d["data"]),
        JUPYTER_RUNTIME_DIR=str(d["runtime"]),
        JUPYTERLAB_SETTINGS_DIR=str(d["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(d["workspaces"]),
        IPYTHONDIR=str(d["ipython"]),
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait_for_server(proc, runtime_dir: Path, log_path: Path, token: str, timeout: float) -> str:
    """Wait for the jpserver-<pid>.json file, then for /api/status; return base URL."""
    info_file = runtime_dir / f"jpserver-{proc.pid}.json"
    deadline = time.monotonic() + timeout
    base_url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(
                f"jupyter lab exited with {proc.returncode}:\n" + log_path.read_text(errors="replace")[-3000:]
            )
        if base_url is None and info_file.exists():
            try:
                info = json.loads(info_file.read_text())
                base_url = f"http://127.0.0.1:{info['port']}{info.get('base_url', '/')}"
            except (ValueError, KeyError):
                pass
        if base_url is not None:
            try:
                req = urllib.request.Request(
                    base_url + "api/status", headers={"Authorization": f"token {token}"}
                )
                with urllib.request.urlopen(req, timeout=2) as r:
                    if r.status == 200:
                        return base_url
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.1)
    raise LabError(f"jupyter lab not up after {timeout}s:\n" + log_path.read_text(errors="replace")[-3000:])


def _stop_server(proc, base_url: str | None, token: str) -> None:
    if proc.poll() is not None:
        return
    if base_url:
        try:
            req = urllib.request.Request(
                base_url + "api/shutdown",
                data=b"",
                method="POST",
                headers={"Authorization": f"token {token}"},
            )
            urllib.request.urlopen(req, timeout=5).read()
        except (urllib.error.URLError, OSError):
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # server cleans up its kernels on SIGTERM
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
        # The server could not clean up: end whatever it left in the process
        # group we created for it (its own kernels), by that group's id only.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def jupyterlab_server(
    root_dir,
    *,
    startup_timeout: float = 60,
    viewport: tuple[int, int] = (1280, 1024),
    keep_run_dir: bool = False,
) -> Iterator[Lab]:
    """Start JupyterLab serving *root_dir* plus a headless Chromium page source.

    Yields a :class:`Lab`. Server output goes to ``lab.log_path``.
    """
    from playwright.sync_api import sync_playwright

    root_dir = Path(root_dir).resolve()
    run_dir = Path(tempfile.mkdtemp(prefix="nbsteps-lab-"))
    env = _prepare_run_dir(run_dir)
    token = secrets.token_hex(16)
    log_path = run_dir / "server.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port=0",  # OS picks a free port; read from jpserver-<pid>.json
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--ServerApp.password=",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.terminals_enabled=False",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers/CI often run as root
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd,
        cwd=root_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    base_url = None
    try:
        base_url = _wait_for_server(proc, run_dir / "runtime", log_path, token, startup_timeout)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
                lab = Lab(root_dir, base_url, token, proc, run_dir, log_path, browser, context)
                yield lab
            finally:
                browser.close()
    finally:
        try:
            _stop_server(proc, base_url, token)
        finally:
            log.close()
            if not keep_run_dir:
                shutil.rmtree(run_dir, ignore_errors=True)
