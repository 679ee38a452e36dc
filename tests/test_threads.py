"""Threads as Run All sees them (issue 23, cases 6 and 7).

6. A value bound to the thread that made it (a sqlite3 connection or cursor, a
   ``threading.local``, an object that checks it is used on its owner's thread) is used
   on that thread: the steps that read it run there (the executor's thread when it was
   made there, else the worker that made it, which keeps it).
7. First imports never run on two threads at once: a package whose lazily imported
   submodules (PEP 562 ``__getattr__``) import each other, touched by two steps at once.

Each scenario runs the same cells in a plain IPython in a fresh process without nbsteps
(Run All), and as ``%%step`` cells with nbsteps: interactively, in plan mode with
``%steps run --workers 4``, and in a real kernel; the values must be the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import uuid
from dataclasses import dataclass

import pytest
from conftest import cell_text, execute_notebook, run_ok

from nbsteps.run.attempt import threads


@dataclass
class Scenario:
    setup: tuple  # ordinary cells first
    steps: tuple  # (name, code)
    names: tuple  # the values compared


def sqlite_connect(con="con", cur="cur"):
    return (
        "import sqlite3\n"
        f"{con} = sqlite3.connect(':memory:')\n"
        f"{con}.execute('create table t (x)')\n"
        f"{con}.executemany('insert into t values (?)', [(1,), (2,), (3,)])\n"
        f"{cur} = {con}.cursor()"
    )


def readers(con="con", cur="cur", suffix=""):
    return (
        (f"total{suffix}", f"a{suffix} = {cur}.execute('select sum(x) from t').fetchone()[0]"),
        (f"biggest{suffix}", f"b{suffix} = {con}.execute('select max(x) from t').fetchone()[0]"),
    )


SQLITE_CONNECT, READERS = sqlite_connect(), readers()
OWNED = textwrap.dedent(
    """\
    import threading
    class Owned:
        def __init__(self):
            self.owner = threading.get_ident()
            self.v = 7
        def get(self):
            if threading.get_ident() != self.owner:
                raise RuntimeError('used from another thread')
            return self.v
    o = Owned()
    loc = threading.local()
    loc.v = 5"""
)
SCENARIOS = {
    # made by a step: alone in its level, it runs on the executor's thread
    "sqlite_step": Scenario((), (("connect", SQLITE_CONNECT), *READERS), ("a", "b")),
    # made by a step on a worker thread (another step runs beside it): the readers go there
    "sqlite_on_a_worker": Scenario(
        (),
        (
            ("connect", "import time\ntime.sleep(0.2)\n" + SQLITE_CONNECT),
            ("beside", "import time\ntime.sleep(0.2)\nz = 1"),
            *READERS,
        ),
        ("a", "b", "z"),
    ),
    # made in an ordinary cell, on the kernel's main thread
    "sqlite_cell": Scenario((SQLITE_CONNECT,), READERS, ("a", "b")),
    # threading.local and an object that checks its owner thread, made beside another step
    "owned_on_a_worker": Scenario(
        (),
        (
            ("make", "import time\ntime.sleep(0.2)\n" + OWNED),
            ("beside", "import time\ntime.sleep(0.2)\nz = 1"),
            ("use_o", "c = o.get()"),
            ("use_loc", "d = loc.v"),
            ("use_both", "e = o.get() + loc.v"),
        ),
        ("c", "d", "e", "z"),
    ),
}

PLAIN = textwrap.dedent(
    """\
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell
    cells, names, out = json.loads(sys.argv[1])
    ip = InteractiveShell.instance()
    ok = [ip.run_cell(c).success for c in cells]
    json.dump({"ok": ok, "ns": {n: repr(ip.user_ns.get(n)) for n in names}}, open(out, "w"))
    """
)


def plain_run_all(cells, names, tmp_path, syspath=None) -> dict:
    """*cells* run in order in a plain IPython (no nbsteps) in a fresh process: Run All."""
    out = tmp_path / f"plain-{uuid.uuid4().hex}.json"
    env = {"PYTHONPATH": str(syspath)} if syspath else {}
    import os

    proc = subprocess.run(
        [sys.executable, "-c", PLAIN, json.dumps([list(cells), list(names), str(out)])],
        cwd=tmp_path,
        env={**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out.read_text())
    assert all(got["ok"]), (proc.stdout, proc.stderr)  # Run All runs every cell
    return got["ns"]


def with_nbsteps(ip, setup, steps, mode: str) -> None:
    for cell in setup:
        run_ok(ip, cell)
    run_ok(ip, f"%steps mode {mode}")
    for name, code in steps:
        run_ok(ip, f"%%step {name}\n{code}")
    if mode == "plan":
        run_ok(ip, "%steps run --workers 4")


def values(ip, names) -> dict:
    return {n: repr(ip.user_ns.get(n)) for n in names}


@pytest.mark.parametrize("mode", ["interactive", "plan"])
@pytest.mark.parametrize("key", list(SCENARIOS))
def test_a_thread_bound_value_is_used_on_its_thread(shell, key, mode, tmp_path):
    sc = SCENARIOS[key]
    expected = plain_run_all([*sc.setup, *(code for _, code in sc.steps)], sc.names, tmp_path)
    with_nbsteps(shell, sc.setup, sc.steps, mode)
    assert values(shell, sc.names) == expected


def test_the_plan_says_which_steps_run_on_one_thread(shell):
    run_ok(shell, SQLITE_CONNECT)
    run_ok(shell, "%steps mode plan")
    for name, code in READERS:
        run_ok(shell, f"%%step {name}\n{code}")
    from nbsteps.ipython import session

    text = session.current().plan().text  # what %steps plan prints
    assert "total: reads cur (sqlite3.Cursor), made on the calling thread" in text
    assert "biggest: reads con (sqlite3.Connection)" in text


def test_what_is_bound_to_a_thread_is_decided_by_what_it_is():
    import sqlite3

    con = sqlite3.connect(":memory:")

    class Holder:
        def __init__(self):
            self.con = con

    class Ident:
        def __init__(self):
            self.owner = threading.get_ident()

    assert threads.bound_kind(con) == "sqlite3.Connection"
    assert threads.bound_kind(con.cursor()) == "sqlite3.Cursor"
    assert threads.bound_kind(threading.local()) == "_thread._local"
    assert "holds sqlite3.Connection" in threads.bound_kind(Holder())
    assert "holds a thread's ident" in threads.bound_kind(Ident())
    assert threads.bound_kind([con]) and threads.bound_kind({"c": con})
    for free in (1, "s", [1, 2], {"a": 1}, threading, Holder, len, object(), 2**40):
        assert threads.bound_kind(free) == "", free
    con.close()


# -- first imports (case 7) ------------------------------------------------------------------
def lazy_package(root, name: str):
    """A package whose submodules are imported on first attribute access (PEP 562) and
    import each other, slowly: two threads importing them at once deadlock."""
    pkg = root / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        textwrap.dedent(
            """\
            import importlib
            def __getattr__(name):
                if name in ("alpha", "beta"):
                    return importlib.import_module(f"{__name__}.{name}")
                raise AttributeError(name)
            """
        )
    )
    for mine, other, value in (("alpha", "beta", 1), ("beta", "alpha", 2)):
        (pkg / f"{mine}.py").write_text(
            f"import time\ntime.sleep(0.4)\nfrom {name} import {other}\n"
            f"VALUE = {value}\ndef other():\n    return {other}.VALUE\n"
        )
    return root


def import_cells(name: str):
    setup = (f"import {name}",)
    steps = (
        ("via_attribute", f"x = {name}.alpha.VALUE * 10 + {name}.alpha.other()"),
        ("via_from_import", f"from {name} import beta\ny = beta.VALUE * 10 + beta.other()"),
    )
    return setup, steps


@pytest.fixture
def fresh_package(tmp_path, monkeypatch):
    name = f"lazypkg_{uuid.uuid4().hex[:8]}"
    root = lazy_package(tmp_path / "lib", name)
    monkeypatch.syspath_prepend(str(root))
    yield name, root
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_first_imports_of_lazy_submodules_never_race(shell, fresh_package, mode, tmp_path):
    name, root = fresh_package
    setup, steps = import_cells(name)
    expected = plain_run_all([*setup, *(c for _, c in steps)], ("x", "y"), tmp_path, syspath=root)
    assert expected == {"x": "12", "y": "21"}
    with_nbsteps(shell, setup, steps, mode)
    assert values(shell, ("x", "y")) == expected


# A package like scikit-image (lazy_loader): its ``__getattr__`` keeps what it imported in the
# package, and a submodule's own code imports itself through the package (skimage.morphology's
# footprints.py: ``from skimage import morphology``), so while that first import runs, the package
# already holds the half-made module. A step that reads it then, on another thread, meets no
# import at all: the first import cannot be waited for, and the step fails with "partially
# initialized module", which Run All never meets (corpus ski_coins_segmentation, plan way).
CACHING_INIT = """\
import importlib, sys
def __getattr__(name):
    if name == "alpha":
        module = importlib.import_module(f"{__name__}.{name}")
        sys.modules[__name__].__dict__[name] = module  # kept, as lazy_loader does
        return module
    raise AttributeError(name)
"""


@pytest.fixture
def caching_package(tmp_path, monkeypatch):
    name = f"cachingpkg_{uuid.uuid4().hex[:8]}"
    pkg = tmp_path / "lib" / name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(CACHING_INIT)
    (pkg / "alpha.py").write_text(f"import time\nfrom {name} import alpha\ntime.sleep(0.8)\nVALUE = 1\n")
    monkeypatch.syspath_prepend(str(pkg.parent))
    yield name, pkg.parent
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def test_a_module_half_imported_by_another_step_is_read_as_run_all_reads_it(shell, caching_package, tmp_path):
    name, root = caching_package
    setup = (f"import {name}",)
    steps = (
        ("importing", f"a = {name}.alpha.VALUE"),
        ("meanwhile", f"import time\ntime.sleep(0.3)\nb = {name}.alpha.VALUE * 10"),
    )
    expected = plain_run_all([*setup, *(c for _, c in steps)], ("a", "b"), tmp_path, syspath=root)
    assert expected == {"a": "1", "b": "10"}
    with_nbsteps(shell, setup, steps, "plan")
    assert values(shell, ("a", "b")) == expected


# -- a real kernel --------------------------------------------------------------------------------
@pytest.mark.kernel
def test_in_a_real_kernel_workers_do_what_run_all_does(kernel_name, tmp_path):
    """In a kernel, plan mode with four workers: a connection made by a step on a worker,
    one made in an ordinary cell, and the lazy package's first imports, all at once."""
    name = f"lazypkg_{uuid.uuid4().hex[:8]}"
    root = lazy_package(tmp_path / "lib", name)
    setup, imports = import_cells(name)
    steps = (
        *SCENARIOS["sqlite_on_a_worker"].steps,
        *imports,
        *readers("con0", "cur0", suffix="2"),
    )
    setup = (f"import sys\nsys.path.insert(0, {str(root)!r})", *setup, sqlite_connect("con0", "cur0"))
    names = ("a", "b", "z", "x", "y", "a2", "b2")
    expected = plain_run_all([*setup, *(c for _, c in steps)], names, tmp_path)
    nb_cells = [
        "%load_ext nbsteps",
        *setup,
        "%steps mode plan",
        *(f"%%step {n}\n{c}" for n, c in steps),
        "%steps run --workers 4",
        f"print('values', {{n: repr(globals().get(n)) for n in {list(names)!r}}})",
    ]
    nb = execute_notebook(nb_cells, kernel_name, tmp_path)
    text = cell_text(nb.cells[-1])
    assert f"values {expected!r}" in text, (text, cell_text(nb.cells[-2]))


# Python's sqlite3 tutorial (corpus py_sqlite3) in plan mode: the connection is made on a worker
# while other steps run, the cursor on that connection's thread, and the step that uses the
# cursor is then the only one ready. It must run where the cursor was made (not inline on the
# calling thread), and the cursor's step, run on the connection's home, makes that home its own.
TUTORIAL = [
    ("slow", "import time\ntime.sleep(0.2)\nslow = 1"),
    ("connect", "import sqlite3\ncon = sqlite3.connect('tutorial.db')"),
    ("cursor", "import time\ntime.sleep(0.4)\ncur = con.cursor()"),
    ("create", "cur.execute('CREATE TABLE movie(title, year)')"),
    ("insert", "cur.execute(\"INSERT INTO movie VALUES ('Holy Grail', 1975)\")\ncon.commit()"),
    ("count", "n = cur.execute('SELECT count(*) FROM movie').fetchone()[0]"),
]


def test_a_lone_step_reading_a_cursor_made_on_a_home_runs_on_that_home(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain").mkdir()
    expected = plain_run_all([code for _, code in TUTORIAL], ["n", "slow"], tmp_path / "plain")
    with_nbsteps(shell, [], TUTORIAL, "plan")
    assert values(shell, ["n", "slow"]) == expected == {"n": "1", "slow": "1"}


# -- values bound to a thread further down (the walk) -----------------------------------------
# SQLAlchemy's in-memory SQLite engine keeps one connection per thread in a threading.local two
# attributes below the engine (engine.pool._conn), and a Session holds its sqlite3 connection
# several levels down (corpus sa_orm_quickstart, plan way): bound_kind walks what a value holds.
WRAPPERS = textwrap.dedent(
    """\
    import sqlite3, threading, time
    time.sleep(0.2)
    class Box:
        def __init__(self, inner):
            self.inner = inner
    class Slotted:
        __slots__ = ('inner', 'note')
        def __init__(self, inner):
            self.inner, self.note = inner, 'n'
    con = sqlite3.connect(':memory:')
    con.execute('create table t (x)')
    con.executemany('insert into t values (?)', [(1,), (2,), (3,)])
    deep_con = Box(Slotted(Box(con)))
    del con
    local = threading.local()
    local.v = 5
    deep_local = Box([Slotted(local)])
    del local
    made_on = threading.get_ident()"""
)
DEEP_READERS = (
    (
        "read_con",
        "import threading, time\ntime.sleep(0.2)\n"
        "a = deep_con.inner.inner.inner.execute('select sum(x) from t').fetchone()[0]\n"
        "a_on = threading.get_ident()",
    ),
    (
        "read_both",
        "import threading, time\ntime.sleep(0.2)\n"
        "b = deep_con.inner.inner.inner.execute('select max(x) from t').fetchone()[0]"
        " + deep_local.inner[0].inner.v\nb_on = threading.get_ident()",
    ),
)


def test_a_connection_or_local_held_several_attributes_down_is_bound():
    import sqlite3
    from concurrent.futures import ThreadPoolExecutor

    class Box:
        def __init__(self, inner):
            self.inner = inner

    class Slotted:
        __slots__ = ("inner",)

        def __init__(self, inner):
            self.inner = inner

    con = sqlite3.connect(":memory:")
    three_down = Box(Slotted(Box(con)))
    two_down = Box({"k": threading.local()})
    box = "test_threads.Box"
    assert threads.bound_kind(three_down) == f"{box} (holds sqlite3.Connection at .inner.inner.inner)"
    assert threads.bound_kind(two_down) == f"{box} (holds _thread._local at .inner['k'])"
    assert threads.bound_values({"w": three_down, "n": 1, "f": Box(Box(Box(2.5)))}) == {
        "w": f"{box} (holds sqlite3.Connection at .inner.inner.inner)"
    }
    # one down reads as it always did
    assert threads.bound_kind(Box(con)) == f"{box} (holds sqlite3.Connection)"
    # a pool of threads is not bound to the thread that made it (its threads hold their own idents)
    with ThreadPoolExecutor(2) as pool:
        pool.submit(int).result()
        assert threads.bound_kind(Box(pool)) == ""
    con.close()


def run_all_and_plan(shell, steps, names, tmp_path):
    """The values of *names* in plain Run All and in plan mode with four workers."""
    expected = plain_run_all([code for _, code in steps], names, tmp_path)
    with_nbsteps(shell, (), steps, "plan")
    return expected, values(shell, names)


def test_steps_reading_a_value_bound_further_down_run_on_its_thread(shell, tmp_path):
    steps = (
        ("make", WRAPPERS),
        ("beside", "import time\ntime.sleep(0.2)\nz = 1"),  # so that make runs on a worker
        *DEEP_READERS,
    )
    expected, got = run_all_and_plan(shell, steps, ("a", "b", "z"), tmp_path)
    assert got == expected == {"a": "6", "b": "8", "z": "1"}
    ns = shell.user_ns
    assert ns["a_on"] == ns["b_on"] == ns["made_on"] != threading.main_thread().ident


SQLALCHEMY = textwrap.dedent(
    """\
    import threading, time
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session
    time.sleep(0.2)
    engine = create_engine('sqlite+pysqlite:///:memory:')
    with engine.begin() as conn:
        conn.execute(text('create table t (x int)'))
        conn.execute(text('insert into t values (1), (2), (3)'))
    session = Session(engine)
    first = session.execute(text('select min(x) from t')).scalar()
    made_on = threading.get_ident()"""
)
SA_READERS = (
    (
        "in_session",
        "import threading, time\ntime.sleep(0.2)\n"
        "a = session.execute(text('select sum(x) from t')).scalar()\na_on = threading.get_ident()",
    ),
    (
        "on_engine",
        "import threading, time\ntime.sleep(0.2)\nwith engine.connect() as c:\n"
        "    b = c.execute(text('select max(x) from t')).scalar()\nb_on = threading.get_ident()",
    ),
)


def test_a_sqlalchemy_engine_and_session_are_used_on_their_thread(shell, tmp_path):
    pytest.importorskip("sqlalchemy")
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    engine = create_engine("sqlite+pysqlite:///:memory:")
    session = Session(engine)
    session.execute(text("select 1"))
    assert threads.bound_kind(engine) == "sqlalchemy.engine.base.Engine (holds _thread._local at .pool._conn)"
    assert "holds _thread._local at .bind.pool._conn" in threads.bound_kind(session)
    session.close()

    steps = (("make", SQLALCHEMY), ("beside", "import time\ntime.sleep(0.2)\nz = 1"), *SA_READERS)
    expected, got = run_all_and_plan(shell, steps, ("first", "a", "b", "z"), tmp_path)
    assert got == expected == {"first": "1", "a": "6", "b": "3", "z": "1"}
    ns = shell.user_ns
    assert ns["a_on"] == ns["b_on"] == ns["made_on"] != threading.main_thread().ident
