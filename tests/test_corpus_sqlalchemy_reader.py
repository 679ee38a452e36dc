"""What the corpus needed to read SQLAlchemy's pages (tests/corpus: ``sa_*``).

SQLAlchemy's documentation is run by its own test suite (``test/base/test_tutorials.py``) as
doctests: each page one doctest over the whole file, whatever block holds an example (most are
``.. sourcecode:: pycon+sql`` directives, some led by a ``#`` comment), with the markers the pages
put in their shown output (``{execsql}``, ``{stop}``) removed, and the lines between
``.. doctest-disable`` and ``.. doctest-enable`` left out. ``rst_cells`` reads a directive only in
a language it knows and a doctest block only when it starts with ``>>>``:
``harness.doctest_file_cells`` reads a page as that runner does.
"""

import pytest

from tests.conftest import ROOT, module_from_file

harness = module_from_file("nbsteps_corpus_harness_sqlalchemy", ROOT / "tests" / "corpus" / "harness.py")

MARKERS = r"\{(?:stop|sql|opensql|execsql|printsql)\}"

PAGE = """\
Connecting
==========

.. sourcecode:: pycon+sql

    >>> from sqlalchemy import create_engine
    >>> engine = create_engine("sqlite://", echo=True)

.. sourcecode:: pycon+sql

    # "commit as you go"
    >>> with engine.connect() as conn:
    ...     result = conn.execute(text("select 'hello world'"))
    ...     print(result.all())
    {execsql}BEGIN (implicit)
    select 'hello world'
    [...] (){stop}
    [('hello world',)]
    {execsql}ROLLBACK{stop}

Shown, not run:

.. doctest-disable

.. sourcecode:: pycon+sql

    >>> engine = create_engine("postgresql://scott:tiger@localhost/test")

.. doctest-enable

A literal block::

    >>> sandy.__dict__  # doctest: +SKIP
    {'name': 'sandy'}
    >>> squidward.name
    Traceback (most recent call last):
    ...
    sqlalchemy.orm.exc.DetachedInstanceError: ...
    >>> session.close()
"""


def test_a_page_is_read_as_its_projects_doctest_runner_reads_it():
    cells = harness.doctest_file_cells(PAGE, MARKERS)
    assert cells == [
        'from sqlalchemy import create_engine\nengine = create_engine("sqlite://", echo=True)\n'
        "with engine.connect() as conn:\n"
        "    result = conn.execute(text(\"select 'hello world'\"))\n"
        "    print(result.all())",
        "session.close()",
    ]
    # the reader of the Python documentation's pages misses the block led by a comment and
    # runs the one the page's runner leaves out
    other = "".join(harness.rst_cells(PAGE, doctest_as_run=True))
    assert "hello world" not in other and "postgresql" in other


def test_a_page_that_includes_another_is_refused():
    with pytest.raises(ValueError, match="include"):
        harness.doctest_file_cells(".. doctest-include _setup.rst\n\n>>> x = 1\n", MARKERS)


def test_the_pages_a_notebook_follows_come_first(tmp_path):
    (tmp_path / "engine.rst").write_text(">>> engine = 1\n")
    page = "Title\n=====\n\n.. sourcecode:: pycon+sql\n\n    >>> engine + 1\n    2\n"
    (tmp_path / "page.rst").write_text(page)
    entry = {"id": "x", "source": "s", "path": "page.rst", "doctest": "file", "preceded_by": ["engine.rst"]}
    assert harness.notebook_cells(entry, {"s": tmp_path}) == ["engine = 1", "engine + 1"]


def test_the_time_and_the_elapsed_time_a_library_logs_are_not_compared():
    a = harness.text_lines(
        "2026-12-07 06:11:16,959 INFO sqlalchemy.engine.Engine INSERT INTO t VALUES (?)\n"
        "2026-12-07 06:11:16,960 INFO sqlalchemy.engine.Engine [generated in 0.00016s] (1,)\n"
    )
    b = harness.text_lines(
        "2026-12-08 00:01:02,003 INFO sqlalchemy.engine.Engine INSERT INTO t VALUES (?)\n"
        "2026-12-08 00:01:02,004 INFO sqlalchemy.engine.Engine [generated in 0.00231s] (1,)\n"
    )
    assert a == b
    assert harness.text_lines("[cached since 0.0012s ago] (1,)") != a[1:]
