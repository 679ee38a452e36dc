"""Objects known elsewhere by identity (nbsteps.run.attempt.task._loses_ties): a step that
changes one changes the one object, as in Run All, instead of a private copy.

Found by the corpus (SQLAlchemy's ORM tutorial, docs/corpus.md): ``patrick.addresses.append(...)``
and ``sandy.fullname = ...`` change an ORM object loaded through a session. nbsteps gave the step a
deep copy, so that the version above stays intact; but a copy of an ORM object is in no session
(its state's weak reference to the session's identity map is not copied), so the lazy load failed
(``DetachedInstanceError``) or the change never reached the database. Here the same shape in plain
Python (a registry that knows its items through their state's weak references), then SQLAlchemy's
own when it is installed; and the control: an object whose copy only drops a cache still gets its
private copy.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_ok, run_steps
from tests.test_semantics import run_all

REGISTRY = '''
import weakref

class State:
    """What an item's registry knows it by: a weak reference back to the item, and one to the
    registry's table (what pickling, and so a deep copy, leaves out: a copy is in no registry)."""
    def __init__(self, item, table):
        self.obj = weakref.ref(item)
        self.table = weakref.ref(table)

    def __getstate__(self):
        return {"instance": self.obj()}

    def __setstate__(self, state):
        self.obj = weakref.ref(state["instance"])

class Item:
    def __init__(self, name, registry):
        self.name = name
        self.value = 0
        self._state = State(self, registry.table)
        registry.table.states.append(self._state)

class Table:
    def __init__(self):
        self.states = []

class Registry:
    def __init__(self):
        self.table = Table()

    def load(self, name):
        return Item(name, self)

    def flush(self):
        """What every item in the registry holds (a session's flush)."""
        out = {}
        for st in self.table.states:
            if st.table() is self.table and st.obj() is not None:
                out[st.obj().name] = st.obj().value
        return out
'''


@pytest.fixture
def registry_lib(module_from_source):
    return module_from_source("tiedlib", REGISTRY)


TIED = [
    "import tiedlib\nreg = tiedlib.Registry()\nitem = reg.load('x')",
    "item.value = 5",
    "saved = reg.flush()",
]


def test_a_step_changing_an_object_its_registry_knows_changes_the_one_object(shell, registry_lib):
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(TIED)])
    ns = shell.user_ns
    assert ns["saved"] == run_all(TIED)["saved"] == {"x": 5}
    assert ns["reg"].flush() == {"x": 5}


SA = [
    "from typing import List\n"
    "from sqlalchemy import ForeignKey, String, create_engine, select\n"
    "from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship\n"
    "class Base(DeclarativeBase):\n    pass\n"
    "class User(Base):\n"
    "    __tablename__ = 'user_account'\n"
    "    id: Mapped[int] = mapped_column(primary_key=True)\n"
    "    name: Mapped[str] = mapped_column(String(30))\n"
    "    addresses: Mapped[List['Address']] = relationship(back_populates='user')\n"
    "class Address(Base):\n"
    "    __tablename__ = 'address'\n"
    "    id: Mapped[int] = mapped_column(primary_key=True)\n"
    "    email: Mapped[str]\n"
    "    user_id: Mapped[int] = mapped_column(ForeignKey('user_account.id'))\n"
    "    user: Mapped['User'] = relationship(back_populates='addresses')\n"
    "engine = create_engine('sqlite://')\n"
    "Base.metadata.create_all(engine)\n"
    "with Session(engine) as s:\n    s.add_all([User(name='patrick'), User(name='sandy')])\n    s.commit()",
    "session = Session(engine)",
    "patrick = session.scalars(select(User).where(User.name == 'patrick')).one()",
    "patrick.addresses.append(Address(email='patrick@example.org'))",  # a lazy load, in a session
    "sandy = session.scalars(select(User).where(User.name == 'sandy')).one()",
    "sandy.name = 'sandy cheeks'",
    "session.commit()",
    "names = sorted(session.scalars(select(User.name)).all())\n"
    "emails = sorted(session.scalars(select(Address.email)).all())",
]


def test_sqlalchemy_orm_objects_are_changed_in_their_session_as_in_run_all(shell):
    pytest.importorskip("sqlalchemy")
    run_steps(shell, [f"%%step c{i}\n{body}" for i, body in enumerate(SA)])
    ns, ref = shell.user_ns, run_all(SA)
    assert (ns["names"], ns["emails"]) == (ref["names"], ref["emails"])
    assert ns["names"] == ["patrick", "sandy cheeks"] and ns["emails"] == ["patrick@example.org"]


CACHE = '''
class Counter:
    """A copy drops its cache (as many __getstate__ do) and keeps its weak references."""
    def __init__(self):
        import weakref
        self.n = 0
        self.me = weakref.ref(self)
        self._cache = {"n": 0}

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_cache", "me")}

    def __setstate__(self, state):
        import weakref
        self.__dict__.update(state)
        self.me = weakref.ref(self)

class Box:
    def __init__(self):
        self.counter = Counter()
'''


def test_an_object_whose_copy_only_drops_a_cache_still_gets_a_private_copy(shell, module_from_source):
    module_from_source("cachelib", CACHE)
    run_steps(
        shell,
        [
            "%%step c0\nimport cachelib\no = cachelib.Box()",
            "%%step c1\no.counter.n += 1",
            "%%step c2\nm = o.counter.n",
        ],
    )
    run_ok(shell, "%%step c1\no.counter.n += 10")  # edited: runs on the version above, intact
    run_ok(shell, "%steps run")
    assert (
        shell.user_ns["m"]
        == run_all(["import cachelib\no = cachelib.Box()", "o.counter.n += 10", "m = o.counter.n"])["m"]
        == 10
    )
