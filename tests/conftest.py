import os
import signal
import sys
from pathlib import Path

# every change of a step's status in the whole suite, here and in the kernels the
# tests start, is checked against the documented state machine (nbsteps.model.status)
os.environ["NBSTEPS_CHECK_TRANSITIONS"] = "1"

import pytest

from nbsteps.ipython import session
from nbsteps.model import status as lifecycle

assert lifecycle.STRICT, "NBSTEPS_CHECK_TRANSITIONS must be set before nbsteps is imported"

# Tests send real SIGINTs to this process (Ctrl-C in a step, an interrupt while a commit
# waits). A shell without job control starts a background command with SIGINT ignored, which
# Python then leaves ignored: the suite started that way (`bash .ci/run &` from a script) saw
# no KeyboardInterrupt at all. As in a terminal or a kernel, Ctrl-C raises it here; the
# processes the tests start inherit the default disposition.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# the repository root, so tests can import the benchmark workloads (bench/)
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def shell():
    """A real IPython InteractiveShell with nbsteps loaded and an empty plan."""
    from IPython.core.interactiveshell import InteractiveShell

    ip = InteractiveShell.instance()
    ip.reset(new_session=False)
    session._plan = None
    session.set_mode("interactive")
    ip.run_line_magic("load_ext", "nbsteps")
    session.bind(ip)
    yield ip
    session._plan = None


@pytest.fixture
def module_from_source():
    """``make(name, source)``: a module *name* made from the Python *source* and put in
    ``sys.modules`` (a library a test's steps import); every module made is taken out again
    after the test."""
    import types

    made = []

    def make(name: str, source: str):
        mod = types.ModuleType(name)
        exec(source, mod.__dict__)
        sys.modules[name] = mod
        made.append(name)
        return mod

    yield make
    for name in made:
        sys.modules.pop(name, None)


def module_from_file(name: str, path):
    """The Python file *path* loaded as a new module *name* (not put in ``sys.modules``: each
    call, a module of its own)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def collected_values(harness, ns: dict) -> dict:
    """``{name: digest}`` of the values in *ns* as the corpus harness (*harness*, the module
    tests/corpus/harness.py) collects them after a run (its ``COLLECT_SRC``)."""
    import contextlib
    import io
    import json

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(harness.COLLECT_SRC, "<collect>", "exec"), {"NS": ns, "OPTIONS": {}})
    return json.loads(out.getvalue().split(harness.MARK, 1)[1])["values"]


def warned_store(directory, **options):
    """A DiskStore whose warnings are kept in ``store.warnings`` as ``(step, message)``."""
    from nbsteps.stores.disk import DiskStore

    store = DiskStore(directory, **options)
    store.warnings = []
    store.warn = lambda step, message: store.warnings.append((step, message))
    return store


def run_ok(ip, cell):
    """Run a cell that must succeed; returns its result."""
    r = ip.run_cell(cell)
    if not r.success:
        raise AssertionError(f"cell failed: {r.error_in_exec or r.error_before_exec!r}\n{cell}")
    return r.result


def run_steps(ip, cells, mode: str = "interactive", workers: int = 4) -> None:
    """``%%step`` *cells* as a user runs them: each executed (interactive), or each
    registered in plan mode, then ``%steps run --workers N``."""
    run_ok(ip, f"%steps mode {mode}")
    for cell in cells:
        run_ok(ip, cell)
    if mode == "plan":
        run_ok(ip, f"%steps run --workers {workers}")


def run_err(ip, cell):
    """Run a cell that must fail; returns the exception it raised."""
    r = ip.run_cell(cell)
    assert not r.success, f"cell unexpectedly succeeded:\n{cell}"
    return r.error_in_exec or r.error_before_exec


_SHELL_ON_STORE = """
import contextlib, io, json, sys, warnings
warnings.simplefilter("ignore")
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "nbsteps")
ip.run_line_magic("steps", "store " + sys.argv[1])
shown = io.StringIO()
with contextlib.redirect_stdout(shown):
    for cell in json.loads(sys.argv[2]):
        assert ip.run_cell(cell).success, cell
import nbsteps
plan = nbsteps.current()
out = {}
exec(sys.argv[3])
print(json.dumps(out))
"""


def shell_on_store(store, cells: list, cwd, report: str) -> dict:
    """A new process (a new kernel): an IPython shell with nbsteps and the directory store
    *store* runs *cells* (each must succeed), then *report*, Python that fills the dict
    ``out`` from ``ip``, ``plan`` and ``shown`` (what the cells printed); returns ``out``."""
    import json
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", _SHELL_ON_STORE, str(store), json.dumps(cells), report],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(args: list, timeout: float, key_file=None):
    """``python *args*`` run from the repository root (a benchmark: ``-m bench ...``,
    ``bench/scale.py ...``) with no ``NBSTEPS_STORE`` set and, when given, *key_file* as
    ``NBSTEPS_KEY_FILE``; it must succeed (else its stderr's end is shown). Returns the
    completed process (``stdout`` as text)."""
    import subprocess

    env = dict(os.environ)
    if key_file is not None:
        env["NBSTEPS_KEY_FILE"] = str(key_file)
    env.pop("NBSTEPS_STORE", None)
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def holding_process(script: str, store):
    """Another live kernel: a process running *script* on *store* that prints ``restored``
    once it holds its values (waited for here) and then reads stdin."""
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    assert proc.stdout.readline().strip() == "restored"
    return proc


@pytest.fixture
def tmp_key(tmp_path, monkeypatch):
    monkeypatch.setenv("NBSTEPS_KEY_FILE", str(tmp_path / "key" / "secret"))
    return tmp_path / "key" / "secret"


@pytest.fixture
def kernel_name(tmp_path_factory, monkeypatch):
    """A kernelspec that runs this interpreter (so kernels see this venv)."""
    import json

    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "nbsteps-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "nbsteps test",
                "language": "python",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    return "nbsteps-test"


def execute_notebook(cells, kernel_name, cwd, allow_errors=False, timeout=120, store_widget_state=False):
    """Execute *cells* (source strings) in a fresh real kernel via nbclient."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=timeout,
        allow_errors=allow_errors,
        store_widget_state=store_widget_state,
        resources={"metadata": {"path": str(cwd)}},
        # a loaded machine can be seconds behind on output: wait for it, never drop it silently
        iopub_timeout=120,
        raise_on_iopub_timeout=True,
    )
    client.execute()
    return nb


def cell_text(cell) -> str:
    """All text a cell printed or showed (stream, results, errors)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif out.get("output_type") in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.get("output_type") == "error":
            parts.append(out["ename"] + ": " + out["evalue"] + "\n" + "\n".join(out["traceback"]))
    return "".join(parts)


# -- nothing outside the store ------------------------------------------------------------------
_SKIP_DIRS = {
    ".git",
    ".venv",
    "__pycache__",
    ".grimp_cache",
    ".import_linter_cache",
    ".ruff_cache",
    ".pytest_cache",
    "artifacts",
    "cache",
    "runtime",
    ".ipython",
    "demo-output",
}


def byte_snapshot(*roots) -> dict:
    """path -> (size, sha256) of every regular file under *roots* (links: their target)."""
    import hashlib

    out = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
            for name in filenames:
                p = Path(dirpath) / name
                if p.is_symlink():
                    out[str(p)] = ("link", os.readlink(p))
                elif p.is_file():
                    out[str(p)] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


@pytest.fixture
def nothing_outside_the_store_changes():
    """The checkout the tests run in and the user's nbsteps/Jupyter settings are
    byte for byte the same after the test (issue 21: nothing outside the store is
    ever created, changed or removed). Each test's own files live in tmp_path."""
    home = Path.home()
    roots = [ROOT, home / ".config", home / ".local" / "share" / "nbsteps"]
    before = byte_snapshot(*roots)
    yield
    after = byte_snapshot(*roots)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == [], f"files outside the store changed: {changed[:20]}"


PLAIN_RUN_ALL = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
cells, names = json.loads(sys.argv[1])
ok = [ip.run_cell(c).success for c in cells]
print(json.dumps({"ok": ok, "ns": {n: repr(ip.user_ns.get(n, "<missing>")) for n in names}}))
"""


def plain_run_all(cells, names, cwd) -> dict:
    """Run *cells* as plain IPython cells (Run All, no nbsteps) in a new process in *cwd*; the
    ``repr`` of each of *names* in its namespace afterwards (``"<missing>"`` for an unbound one)."""
    import json
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-c", PLAIN_RUN_ALL, json.dumps([cells, names])],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(got["ok"]), got
    return got["ns"]
