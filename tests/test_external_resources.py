"""State outside Python values, with several workers: a database behind a connection.

Run All runs every cell on one thread, one after another. What a cell does to a database (an
``INSERT``, then a ``SELECT`` in a cell below) is in no name, and some connections refuse every
thread but their maker's. Found by the corpus (pandas' ``to_sql``/``read_sql`` page, SQLAlchemy's
ORM quickstart), here with ``sqlite3`` and plain Python only, in a real IPython shell, run with
``%steps run --workers 4`` and compared with executing the same cells plainly:

- a step reading a connection waits for the steps above it that use it, also when those become
  ready only after it (pandas: ``read_sql_query`` ran before the ``to_sql`` cell above it, since
  the writer waited for another step that had just finished on the same thread);
- what a step made on the thread of a thread-bound value it read (an ORM object that finds its
  session's connection in a registry, by id: no walk of the object reaches it) is used on that
  thread too (SQLAlchemy's quickstart: ``patrick.addresses.append(...)``, a lazy load, ran on a
  worker: "SQLite objects created in a thread can only be used in that same thread").
"""

from __future__ import annotations

import pytest

from tests.conftest import run_steps
from tests.test_semantics import run_all

#: the table, as pandas' ``to_sql`` and ``read_sql_query`` use it: the connection is an argument
TABLES = """
def create(con):
    con.execute("create table t (x int)")

def insert(con, rows):
    con.executemany("insert into t values (?)", rows)

def count(con):
    return con.execute("select count(*) from t").fetchone()[0]
"""

#: the writer needs ``rows`` from a step beside the reader: both become ready when the connection's
#: maker ends, the writer only after the step that makes ``rows`` has ended
WRITE_THEN_READ = [
    "import sqlite3, tables_db\ncon = sqlite3.connect(':memory:')",
    "rows = [(1,), (2,), (3,)]\ntables_db.create(con)",
    "tables_db.insert(con, rows)",
    "n = tables_db.count(con)",
]


def test_a_reader_waits_for_the_writer_above_it_that_became_ready_later(shell, module_from_source):
    """Before: ``n`` was 0 (the count ran before the insert above it)."""
    module_from_source("tables_db", TABLES)
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(WRITE_THEN_READ)], "plan")
    assert shell.user_ns["n"] == run_all(WRITE_THEN_READ)["n"] == 3


REGISTRY = '''
import sqlite3
import threading

_stores = {}


class Store:
    """A connection (bound to the thread that made it) behind a registry: the records it gives
    find it again by its key, as an ORM object finds its session."""

    def __init__(self):
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute("create table t (id int, name text)")
        self.conn.executemany("insert into t values (?, ?)", [(1, "a"), (2, "b")])
        self.key = len(_stores)
        _stores[self.key] = self

    def get(self, i):
        return Record(self.key, i)


class Record:
    def __init__(self, key, i):
        self.store_key, self.i = key, i

    def load(self):
        conn = _stores[self.store_key].conn
        return conn.execute("select name from t where id = ?", (self.i,)).fetchone()[0]
'''

DERIVED = [
    "import registry_db\nstore = registry_db.Store()",
    "import time\ntime.sleep(0.4)\nbeside = 1",  # so that the steps below run beside it, on workers
    "rec = store.get(2)",
    "import threading\nname = rec.load()\nloaded_on = threading.get_ident()",
]


def test_what_a_step_made_from_a_thread_bound_value_is_used_on_its_thread(shell, module_from_source):
    """Before: the step reading ``rec`` ran on a worker and failed (ProgrammingError: SQLite
    objects created in a thread can only be used in that same thread)."""
    module_from_source("registry_db", REGISTRY)
    ref = run_all(DERIVED)
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(DERIVED)], "plan")
    assert shell.user_ns["name"] == ref["name"] == "b"


#: a schema object over a database, as SQLAlchemy's MetaData and Table are: plain Python (it has
#: versions), changed in place by functions the analysis cannot see into
SCHEMA = """
class Meta:
    def __init__(self):
        self.tables, self.notes = [], []

    def create_all(self, con):
        for t in self.tables:
            con.execute(f"create table {t.name} (x int)")


class Table:
    def __init__(self, name, meta):
        self.name, self.meta = name, meta
        meta.tables.append(self)


def note(obj, text):
    obj.notes.append(text)


def insert(con, table, x):
    con.execute(f"insert into {table.name} values (?)", (x,))


def count(con, table):
    return con.execute(f"select count(*) from {table.name}").fetchone()[0]
"""

#: the step that creates the table is seen changing ``meta`` again below it (``note``): the step
#: above it was executed again to make its version of ``meta`` anew (a second CREATE TABLE)
CREATED_ONCE = [
    "import sqlite3, schema_db\ncon = sqlite3.connect(':memory:')\nmeta = schema_db.Meta()\n"
    "t = schema_db.Table('t', meta)",
    "meta.create_all(con)",
    "schema_db.note(meta, 'seen')",
    "schema_db.insert(con, t, 1)\nn = schema_db.count(con, t)",
]


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_a_step_using_a_database_is_not_executed_again_for_a_version(shell, module_from_source, mode):
    """Before: ``create_all`` executed again (its ``meta`` was changed in place by the step below):
    OperationalError: table t already exists."""
    module_from_source("schema_db", SCHEMA)
    ref = run_all(CREATED_ONCE)
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(CREATED_ONCE)], mode)
    assert shell.user_ns["n"] == ref["n"] == 1
    assert shell.user_ns["meta"].notes == ["seen"]


#: ``create_all`` changes ``meta`` on a private copy, and ``t`` with it (it holds ``meta``): the steps
#: below reading ``t`` read the old version, and run again in the run's second pass
INSERTED_ONCE = [
    "import sqlite3, schema_db\ncon = sqlite3.connect(':memory:')\nmeta = schema_db.Meta()\n"
    "t = schema_db.Table('t', meta)",
    "meta.create_all(con)",
    "schema_db.insert(con, t, 1)",
    "n = schema_db.count(con, t)",
]


def test_a_step_using_a_database_runs_once_in_a_run_of_several_passes(shell, module_from_source):
    """Before: the insert executed in both passes of the run: ``n`` was 2."""
    module_from_source("schema_db", SCHEMA)
    ref = run_all(INSERTED_ONCE)
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(INSERTED_ONCE)], "plan")
    assert shell.user_ns["n"] == ref["n"] == 1


#: an engine over a database file, as SQLAlchemy's is over ``sqlite:///file.db``: a dialect of many
#: small objects beside a pool whose idle connection sits in a deque, several levels down; usable
#: from any thread (``check_same_thread=False``), so nothing sends its users to one thread
POOLED = """
import sqlite3
import time
from collections import deque


class Option:
    def __init__(self):
        for i in range(8):
            setattr(self, f"part{i}", Part())


class Part:
    pass


class Dialect:
    def __init__(self):
        for i in range(60):
            setattr(self, f"option{i}", Option())


class Record:
    def __init__(self, path):
        self.connection = sqlite3.connect(path, check_same_thread=False)


class Queue:
    def __init__(self, path):
        self.queue = deque([Record(path)])


class Pool:
    def __init__(self, path):
        self.idle = Queue(path)


class Engine:
    def __init__(self, path):
        self.dialect = Dialect()
        self.pool = Pool(path)

    def run(self, sql, *args):
        con = self.pool.idle.queue[0].connection
        out = con.execute(sql, *args).fetchall()
        con.commit()
        return out


def create(engine):
    time.sleep(0.2)
    engine.run("create table t (x int)")


def insert(engine, rows):
    time.sleep(0.2)
    for r in rows:
        engine.run("insert into t values (?)", r)


def count(engine):
    return engine.run("select count(*) from t")[0][0]
"""

POOLED_STEPS = [
    "import pooled_db, tempfile\nengine = pooled_db.Engine(tempfile.mkdtemp() + '/db.sqlite')",
    "pooled_db.create(engine)",
    "pooled_db.insert(engine, [(1,), (2,)])",
    "n = pooled_db.count(engine)",
]


def test_steps_using_an_engine_whose_connection_lies_deep_keep_notebook_order(shell, module_from_source):
    """Before: the walk for live objects spent its budget on the dialect and never reached the
    pooled connection: the three steps ran at once (no such table: t)."""
    module_from_source("pooled_db", POOLED)
    ref = run_all(POOLED_STEPS)
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(POOLED_STEPS)], "plan")
    assert shell.user_ns["n"] == ref["n"] == 2


#: a unit of work over a connection, as SQLAlchemy's Session is: the objects added to it are held by
#: it, and it sets their ids when it flushes; the objects hold nothing of it
UNIT = """
import sqlite3


class Session:
    def __init__(self, con):
        self.con, self.new = con, []

    def add(self, obj):
        self.new.append(obj)

    def flush(self):
        for obj in self.new:
            obj.id = self.con.execute("insert into t (name) values (?)", (obj.name,)).lastrowid
        self.new = []


class User:
    def __init__(self, name):
        self.name, self.id = name, None
"""

UNIT_STEPS = [
    "import sqlite3, unit_db\ncon = sqlite3.connect(':memory:', check_same_thread=False)\n"
    "con.execute('create table t (id integer primary key, name text)')",
    "squidward = unit_db.User('squidward')",
    "session = unit_db.Session(con)\nsession.add(squidward)",
    "import time\ntime.sleep(0.2)\nsession.flush()",
    "squidward_id = squidward.id",
]


def test_an_object_a_step_used_with_a_connection_keeps_its_order(shell, module_from_source):
    """Before: ``squidward.id`` was read beside the steps that add and flush it (it shares no name
    with them but ``squidward``, and holds nothing of the session): None, not 1."""
    module_from_source("unit_db", UNIT)
    ref = run_all(UNIT_STEPS)
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(UNIT_STEPS)], "plan")
    assert shell.user_ns["squidward_id"] == ref["squidward_id"] == 1
