"""Values with no versions (nbsteps.run.attempt.live): a step that changes one changes the one
object, as in Run All; nothing above it executes again and no copy of it is made.

Found by the corpus (SQLAlchemy's tutorial, docs/corpus.md): ``Session(engine)`` changes objects
inside the engine (attributes set on first use), so the step was seen changing ``engine`` and the
step that made it executed again to rebuild its version: a second engine over a new, empty
in-memory database, which the next rebuild read (``no such table``). And ``session.flush()``,
predicted to change ``session``, got a shallow copy of the session (it cannot be deep-copied),
which shares its transaction with the original: the copy committed it and the next step found it
closed. Here the same shapes in plain Python and ``sqlite3`` (no SQLAlchemy), then SQLAlchemy's
own when it is installed.
"""

from __future__ import annotations

import logging
import sqlite3

import pytest

import nbsteps
from nbsteps.run.attempt.live import has_versions, live_objects
from tests.conftest import run_ok, run_steps
from tests.test_semantics import run_all

DB = '''
import sqlite3
import tempfile
import threading

made = []
sessions = []

class Engine:
    """A database in a file behind an object that counts its sessions (state a use changes) and
    holds an open file (so it cannot be pickled; a connection pool holds sockets), as
    SQLAlchemy's engine over a file does; not bound to a thread: each session opens its own
    connection."""
    def __init__(self):
        self.path = tempfile.mkdtemp() + "/db.sqlite"
        self.lock = threading.Lock()
        self.journal = open(self.path + ".journal", "a")
        self.sessions = 0
        made.append(self)

    def connect(self):
        return Session(self)

class Session:
    def __init__(self, engine):
        with engine.lock:
            engine.sessions += 1  # what the first use of SQLAlchemy's engine does, in a plain attribute
        self.engine = engine
        self.conn = sqlite3.connect(engine.path, check_same_thread=False)
        self.done = 0
        sessions.append(self)

    def execute(self, sql):
        out = self.conn.execute(sql).fetchall()
        self.conn.commit()
        return out

    def commit(self):
        self.done += 1
        self.conn.commit()
'''


@pytest.fixture
def db(module_from_source):
    return module_from_source("live_db", DB)


def _ns(shell, names):
    return {n: shell.user_ns[n] for n in names}


USED = [
    "import live_db\nengine = live_db.Engine()",
    "s = live_db.Session(engine)\n"
    'made_table = s.execute("create table t (x int)")\n'
    'n1 = s.execute("insert into t values (1)")',
    'import time\ntime.sleep(0.3)\ns2 = live_db.Session(engine)\nrows = s2.execute("select x from t")',
    "s3 = live_db.Session(engine)\n"
    'n2 = s3.execute("insert into t values (2)")\n'
    'rows2 = s3.execute("select x from t")',
]


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_a_live_value_seen_changed_is_not_made_again(shell, db, mode):
    """Before: each step using the engine was seen changing it, and the step above was executed
    again (``rebuilt``): a second Engine, and a step reading the rebuilt one found no table.
    In plan mode ``c2`` and ``c3`` share no name but the engine: they run in notebook order
    (the database alone orders them: before, ``c3``'s insert could come first)."""
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(USED)], mode)
    made = list(db.made)
    ref = run_all(USED)
    assert shell.user_ns["rows"] == ref["rows"] == [(1,)]
    assert shell.user_ns["rows2"] == ref["rows2"] == [(1,), (2,)]
    assert len(made) == 1, "the engine was made again"  # Run All makes one
    assert shell.user_ns["engine"] is made[0]
    assert shell.user_ns["engine"].sessions == ref["engine"].sessions == 3
    plan = nbsteps.current()
    assert all("rebuilt" not in (plan[f"c{i}"].reason or "") for i in range(len(USED)))


COMMITTED = [
    "import live_db\nengine = live_db.Engine()\ns = live_db.Session(engine)",
    's.execute("create table t (x int)")\ns.commit()',  # predicted to change s: copied before
    's.execute("insert into t values (7)")\ns.commit()',
    'rows = s.execute("select x from t")\ndone = s.done',
]


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_a_step_changing_a_live_value_changes_the_one_object(shell, db, mode):
    """Before: each step predicted to change ``s`` got a shallow copy (a session cannot be
    deep-copied): the namespace's ``s`` was a second Session object beside the first."""
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(COMMITTED)], mode)
    made, sessions = list(db.made), list(db.sessions)
    ref = run_all(COMMITTED)
    assert _ns(shell, ["rows", "done"]) == {"rows": ref["rows"], "done": ref["done"]}
    assert shell.user_ns["rows"] == [(7,)] and shell.user_ns["done"] == 2
    assert shell.user_ns["s"].engine is made[0] and len(made) == 1
    assert shell.user_ns["s"] is sessions[0], "a copy of the session"  # Run All has one Session


def test_what_has_versions(db):
    import threading

    import numpy as np

    assert has_versions(np.arange(10)) and has_versions({"a": [1, 2]}) and has_versions(lambda x: x)
    assert not has_versions(db.Engine())  # a sqlite3 connection inside
    assert not has_versions({"lock": threading.Lock()})


def test_what_is_live_for_the_order(db, tmp_path):
    """Objects of a type pickle refuses by itself order the steps that use them; locks (what a
    Barrier or a thread-safe pool is made of), weak references and plain data do not."""
    import threading

    import numpy as np

    engine = db.Engine()
    assert [type(o).__name__ for o in live_objects(engine)] == ["TextIOWrapper"]
    assert live_objects({"g": (i for i in range(3))}) and live_objects(sqlite3.connect(":memory:"))
    assert live_objects(threading.Barrier(2)) == [] and live_objects(threading.Lock()) == []
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1)
    assert pool.submit(int).result() == 0 and live_objects(pool) == []  # a queue, locks: made to be shared
    assert live_objects(logging.StreamHandler()) == []  # sys.stderr: the process's own stream
    pool.shutdown()
    assert live_objects({"a": np.arange(3), "n": 1}) == []


SA_CELLS = [
    'from sqlalchemy import create_engine, text\nengine = create_engine("sqlite+pysqlite:///:memory:")',
    "with engine.connect() as conn:\n"
    '    conn.execute(text("CREATE TABLE some_table (x int, y int)"))\n'
    '    conn.execute(text("INSERT INTO some_table (x, y) VALUES (1, 1), (2, 4)"))\n'
    "    conn.commit()",
    "from sqlalchemy.orm import Session\n"
    "with Session(engine) as session:\n"
    '    got = session.execute(text("SELECT x, y FROM some_table WHERE y > 2")).all()',
    "with Session(engine) as session:\n"
    '    session.execute(text("UPDATE some_table SET y=5 WHERE x=2"))\n'
    "    session.commit()",
    "session = Session(engine)\n"
    'rows = [tuple(r) for r in session.execute(text("SELECT x, y FROM some_table ORDER BY x"))]\n'
    "session.flush()\nsession.commit()",
    'last = [tuple(r) for r in session.execute(text("SELECT y FROM some_table WHERE x = 2"))]',
]


def test_sqlalchemy_engine_and_session_as_in_run_all(shell):
    """The tutorial's shape (sa_orm_data_manipulation, sa_dbapi_file): before, the step making the
    engine executed again after ``Session(engine)`` (``no such table``), and a ``SELECT`` step
    was rebuilt after the ``UPDATE`` below it."""
    pytest.importorskip("sqlalchemy")
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(SA_CELLS)], "interactive")
    ref = run_all(SA_CELLS)
    for n in ("got", "rows", "last"):
        assert [tuple(r) for r in shell.user_ns[n]] == [tuple(r) for r in ref[n]], n
    assert shell.user_ns["got"] == [(2, 4)] and shell.user_ns["last"] == [(5,)]
    plan = nbsteps.current()
    assert all("rebuilt" not in (plan[f"c{i}"].reason or "") for i in range(len(SA_CELLS)))


def test_the_plan_says_why_steps_using_a_live_object_wait(shell, db):
    """``%steps plan`` (the preview) names the step above that uses the same live object."""
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(USED)], "plan")
    preview = nbsteps.current().plan(force=["c1", "c2", "c3"])
    assert set(preview.lanes) == {"c2", "c3"}, preview.lanes
    assert "engine" in preview.lanes["c3"] and "c1" in preview.lanes["c3"], preview.lanes
    assert "TextIOWrapper" in preview.lanes["c2"]
    assert "same live object" in str(preview)


def test_a_live_value_above_is_not_written_again_for_each_use(shell, db, capfd, tmp_path):
    """With a directory store, a method of an input whose result is used (``engine.connect()``)
    and that changed the input makes the step above write its checkpoint again (a cache it keeps:
    nbsteps.run.upstream_caches). An engine cannot be stored: before, each use wrote it again and
    printed the step above's "cannot be pickled" warning again, in every cell using it."""
    run_ok(shell, f"%steps store {tmp_path / 'store'}")
    cells = ["import live_db\nengine = live_db.Engine()"]
    cells += [f'c{i} = engine.connect()\nr{i} = c{i}.execute("select 1")' for i in range(1, 4)]
    run_steps(shell, [f"%%step s{i}\n{body}" for i, body in enumerate(cells)], "interactive")
    printed = capfd.readouterr().out
    assert printed.count("step 's0': output 'engine' cannot be pickled") == 1, printed
    assert shell.user_ns["engine"].sessions == 3 and shell.user_ns["r3"] == [(1,)]


BOX = '''
import threading
import time

class Box:
    """Plain data with a lock inside: no versions (it cannot be pickled), no live object."""
    def __init__(self):
        self.lock = threading.Lock()
        self.items = [1, 2, 3]

def take(box, wait=0.0):
    time.sleep(wait)
    with box.lock:
        return box.items.pop()
'''


@pytest.fixture
def boxlib(module_from_source):
    return module_from_source("live_box", BOX)


def test_plain_data_with_a_lock_changed_unseen_stays_a_write(shell, boxlib):
    """A value with no versions that holds no live object (here a lock in plain data) changed
    where the analysis did not see it: still a write of that step, so a reader beside it in plan
    mode (which read it before the change) runs again after it, as in Run All; and the step above
    is not executed again (that would make another Box, not its version)."""
    cells = [
        "import live_box\nbox = live_box.Box()",
        "got = live_box.take(box, 0.3)",  # the result is used: no change predicted
        "left = len(box.items)",
    ]
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(cells)], "plan")
    ref = run_all(cells)
    assert (shell.user_ns["got"], shell.user_ns["left"]) == (ref["got"], ref["left"]) == (3, 2)
    assert "rebuilt" not in (nbsteps.current()["c0"].reason or "")
    assert nbsteps.current()["c0"].outputs["box"] is shell.user_ns["box"]  # the one object
