"""nbsteps' promise on a corpus of real public notebooks (tests/corpus/).

One test per notebook × way (interactive, plan, headless, resume, edit,
edit-real, input-file, zero-edit), each asserting that the way agrees with
plain Restart & Run All of the same cells (for edit-real: of the edited
notebook; for input-file: on the changed data file): same values, same
figures and text in the same cells, no error (see tests/corpus/harness.py
for the method, SOURCES.md for the notebooks). input-file exists only for
the notebooks that read a data file (corpus.json ``input_change``); a
notebook without a numeric literal to change skips edit-real.

What disagrees today is listed in tests/corpus/expected_failures.json and
marked ``xfail``:

- a case that agreed and no longer does fails (a regression);
- a case that shows a new kind of failure (say "fails" where only "values"
  was recorded) fails too, naming the old and the new failure;
- a fix that makes a case agree is reported as XPASS; with
  ``NBSTEPS_CORPUS_STRICT=1`` it fails the run until ``python
  tests/corpus/harness.py --write`` records it (expected_failures.json and
  REPORT.md).

An outcome that does not match the record is run once more before it counts
(a race would show here): when the second run matches, the test is xfailed as
"flaky" with both outcomes in its reason (``-rx`` shows them). Cases recorded
as ``flaky`` (they agreed in one baseline run and not in another) are xfailed
without ``strict``. ``NBSTEPS_CORPUS_RAW=FILE`` dumps every job's result, for
``harness.py --from-raw FILE --write``.

All selected notebooks × ways run once, in parallel kernels
(``NBSTEPS_CORPUS_WORKERS``, default 3), when the first test asks. The few
notebooks marked ``slow`` in corpus.json (each one alone takes minutes in
every way on 2 cores) are skipped unless ``NBSTEPS_CORPUS_SLOW=1``.
"""

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, module_from_file

harness = module_from_file("nbsteps_corpus_harness", ROOT / "tests" / "corpus" / "harness.py")

MANIFEST = harness.load_manifest()
EXPECTED = harness.load_expected()
NOTEBOOKS = [e["id"] for e in MANIFEST["notebooks"]]
ENTRIES = {e["id"]: e for e in MANIFEST["notebooks"]}
SLOW = {e["id"] for e in MANIFEST["notebooks"] if e.get("slow")}
RUN_SLOW = os.environ.get("NBSTEPS_CORPUS_SLOW", "") not in ("", "0")
STRICT = os.environ.get("NBSTEPS_CORPUS_STRICT", "") not in ("", "0")


class Disagreement(AssertionError):
    """A way disagrees with plain Run All, as expected_failures.json records."""


def _cases():
    for nb in NOTEBOOKS:
        for way in harness.WAYS:
            if way == "input-file" and not ENTRIES[nb].get("input_change"):
                continue  # reads no data file: n/a
            marks = [pytest.mark.corpus, pytest.mark.kernel]
            if nb in SLOW:
                marks += [
                    pytest.mark.slow,
                    pytest.mark.skipif(
                        not RUN_SLOW, reason="slow corpus notebook: NBSTEPS_CORPUS_SLOW=1 runs it"
                    ),
                ]
            expected = EXPECTED["failures"].get(f"{nb}::{way}")
            if expected:
                flaky = bool(expected.get("flaky"))
                reason = ("flaky: " if flaky else "") + expected["reason"]
                # a recorded disagreement that now agrees is reported (XPASS), and fails the run with
                # NBSTEPS_CORPUS_STRICT=1 (then `harness.py --write` records the improvement)
                marks.append(
                    pytest.mark.xfail(strict=STRICT and not flaky, raises=Disagreement, reason=reason)
                )
            yield pytest.param(nb, way, id=f"{nb}-{way}", marks=marks)


@pytest.fixture(scope="session")
def corpus_report(request):
    wanted: dict[str, set] = {}
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if (
            getattr(item, "originalname", "") == "test_promise"
            and callspec is not None
            and (RUN_SLOW or callspec.params["notebook"] not in SLOW)
        ):
            wanted.setdefault(callspec.params["notebook"], set()).add(callspec.params["way"])
    try:
        harness.ensure_sources(MANIFEST)
    except harness.CorpusUnavailable as exc:
        pytest.skip(f"corpus unavailable: {exc}")
    ways = [w for w in harness.WAYS if any(w in s for s in wanted.values())]
    workers = int(os.environ.get("NBSTEPS_CORPUS_WORKERS", "3"))
    raw, dump = [], os.environ.get("NBSTEPS_CORPUS_RAW")  # harness.py --from-raw FILE judges it again
    started = time.monotonic()
    report = harness.evaluate(
        only=set(wanted), ways=ways, workers=workers, plain_runs=1, manifest=MANIFEST, raw=raw
    )
    if dump:
        Path(dump).write_text(json.dumps({"elapsed": time.monotonic() - started, "jobs": raw}))
    return report


def _as_recorded(problems, expected) -> bool:
    if expected is None:
        return not problems
    return bool(problems) and set(harness.kinds(problems)) <= set(expected["kinds"])


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("notebook,way", list(_cases()))
def test_promise(corpus_report, notebook, way):
    if way not in corpus_report[notebook]["verdicts"]:
        pytest.skip(f"{way} does not apply to {notebook}")
    problems = corpus_report[notebook]["verdicts"][way]
    expected = EXPECTED["failures"].get(f"{notebook}::{way}")
    if not _as_recorded(problems, expected):
        first = harness.verdict_text(problems)
        again = harness.evaluate(only={notebook}, ways=[way], workers=1, plain_runs=1, manifest=MANIFEST)[
            notebook
        ]["verdicts"][way]
        if _as_recorded(again, expected):
            pytest.xfail(
                f"flaky: {notebook} {way}: {first}; run again: {harness.verdict_text(again)} (as recorded)"
            )
        problems = again
    text = harness.verdict_text(problems)
    if expected is None:
        assert not problems, f"{notebook} {way}: {text}"
        return
    if not problems:
        return  # XPASS(strict): fixed; regenerate expected_failures.json
    new = sorted(set(harness.kinds(problems)) - set(expected["kinds"]))
    if new:
        pytest.fail(
            f"{notebook} {way}: a new kind of failure ({', '.join(new)}): expected {expected['reason']!r}, "
            f"now {text!r} (python tests/corpus/harness.py --write records it)"
        )
    raise Disagreement(f"{notebook} {way}: {text}")


@pytest.mark.corpus
def test_corpus_is_well_formed():
    """At least 20 notebooks; every recorded edit applies exactly once; every
    notebook has several cells."""
    try:
        roots = harness.ensure_sources(MANIFEST)
    except harness.CorpusUnavailable as exc:
        pytest.skip(f"corpus unavailable: {exc}")
    assert len(NOTEBOOKS) >= 20 and len(set(NOTEBOOKS)) == len(NOTEBOOKS)
    for entry in MANIFEST["notebooks"]:
        cells = harness.notebook_cells(entry, roots)  # raises when an edit does not apply exactly
        assert len(cells) >= 3, entry["id"]
    for key in EXPECTED["failures"]:
        nb, way = key.split("::")
        assert nb in NOTEBOOKS and way in harness.WAYS, f"stale entry {key} in expected_failures.json"


def test_gallery_split():
    text = (
        '"""\nTitle\n=====\n\nText.\n"""\n\n# Author: me\n\n'
        "# %%\n# Some text\n# more\n\nimport numpy as np\nx = 1\n\n"
        "# %%\n# Only text here\n\n# %%\ny = x  # keep this comment\n\n# a comment inside code\nz = 2\n"
    )
    assert harness.split_gallery(text) == [
        "import numpy as np\nx = 1",
        "y = x  # keep this comment\n\n# a comment inside code\nz = 2",
    ]


def test_rst_cells():
    """The Python documentation's pages as cells: doctest statements without
    their shown output, tracebacks dropped; literal blocks that are Python;
    shell sessions and pseudo-code left out."""
    text = (
        "Intro::\n\n   x = 1\n   y = x + 1\n\nA session::\n\n   $ python fibo.py 50\n\n"
        "Doctest:\n\n>>> a = [1, 2]\n>>> a\n[1, 2]\n>>> 1/0\nTraceback (most recent call last):\n"
        "  ...\nZeroDivisionError: division by zero\n>>> for i in a:\n...     print(i)\n...\n1\n2\n\n"
        ".. code-block:: none\n\n   not = python\n\n.. testcode::\n   :hide:\n\n   z = 3\n\n"
        "Pseudo::\n\n   class ClassName:\n       <statement-1>\n"
    )
    assert harness.rst_cells(text) == [
        "x = 1\ny = x + 1",
        "a = [1, 2]\na\nfor i in a:\n    print(i)",
        "z = 3",
    ]


def test_rst_cells_of_ipython_directives():
    """pandas' pages: one cell per ``.. ipython:: python`` block, pseudo-decorators
    dropped, ``:suppress:`` set-up kept, blocks shown without running or run to
    raise left out."""
    text = (
        ".. ipython:: python\n   :suppress:\n\n   import os\n\nText.\n\n"
        ".. ipython:: python\n\n   s = pd.Series([1, 2])\n   @savefig plot.png\n   s.plot();\n   s\n\n"
        ".. ipython:: python\n   :okexcept:\n\n   s.loc[5]\n\n"
        ".. ipython:: python\n\n   @verbatim\n   df.to_sql('data', cnx)\n\n"
        ".. ipython::\n\n   In [1]: x = 1\n\n"
        "Back to text.\n"
    )
    assert harness.rst_cells(text) == ["import os", "s = pd.Series([1, 2])\ns.plot();\ns"]


def test_rst_cells_of_a_page_written_as_doctests():
    """SymPy's tutorial (corpus.json ``"doctest": "as-run"``): each example whose output the
    page shows ends a cell, so that output is the cell's ``Out``; ``+SKIP`` examples and those
    shown raising are left out; the other pages' reading is unchanged."""
    text = (
        "Intro.\n\n    >>> from sympy import *\n    >>> x = symbols('x')\n\n"
        "Then\n\n    >>> expr = x + 1\n    >>> expr\n    x + 1\n    >>> expr.subs(x, 2)\n    3\n"
        "    >>> import numpy # doctest: +SKIP\n    >>> 1/0\n    Traceback (most recent call last):\n"
        "    ZeroDivisionError: division by zero\n    >>> y = 2\n\nEnd.\n"
    )
    assert harness.rst_cells(text, doctest_as_run=True) == [
        "from sympy import *\nx = symbols('x')",
        "expr = x + 1\nexpr",
        "expr.subs(x, 2)",
        "y = 2",
    ]
    unchanged = "expr = x + 1\nexpr\nexpr.subs(x, 2)\nimport numpy # doctest: +SKIP\ny = 2"
    assert harness.rst_cells(text)[1] == unchanged  # the other pages: one cell per paragraph


def test_a_prelude_comes_before_the_page_cells_and_does_not_shift_drops(tmp_path):
    page = tmp_path / "p.rst"
    page.write_text(".. ipython:: python\n\n   a = 1\n\n.. ipython:: python\n\n   b = 2\n")
    entry = {"id": "t", "source": "s", "path": "p.rst", "prelude": {"code": ["import pandas as pd"]}}
    entry["drop"] = {"1": "why"}  # the page's first cell, whatever comes before it
    assert harness.notebook_cells(entry, {"s": tmp_path}) == ["import pandas as pd", "b = 2"]


def test_gallery_scripts_a_notebook_follows_come_first(tmp_path):
    (tmp_path / "a.py").write_text('"""Title a."""\nimport x\n\nchart = x\n')
    (tmp_path / "b.py").write_text('"""Title b."""\nchart = 2\nchart\n')
    entry = {"id": "t", "source": "s", "path": "b.py", "split": "paragraphs", "preceded_by": ["a.py"]}
    assert harness.notebook_cells(entry, {"s": tmp_path}) == ["import x", "chart = x", "chart = 2\nchart"]


def test_a_display_whose_content_is_json_is_compared_whole():
    spec = {"mark": "bar", "params": [{"name": "param_1"}]}
    bundle = {"application/vnd.vegalite.v5+json": spec, "text/plain": "<VegaLite 5 object>"}
    cell = {"outputs": [{"output_type": "display_data", "data": bundle, "metadata": {}}]}
    shown = harness.text_lines(harness._cell_summary(cell)["text"])
    spec["params"][0]["name"] = "param_2"
    other = harness.text_lines(harness._cell_summary(cell)["text"])
    assert shown[0] == other[0] == "<VegaLite 5 object>"
    assert shown != other and not harness._subsequence(shown, other)


def test_split_paragraphs():
    code = "import a\nx = 1\n\n# comment\ndef f():\n    y = 1\n\n    return y\n\nf()\n"
    assert harness.split_paragraphs(code) == [
        "import a\nx = 1",
        "# comment\ndef f():\n    y = 1\n\n    return y",
        "f()",
    ]


def test_real_edit_changes_a_literal_nearest_the_middle():
    cells = ["import numpy as np", "n = 10\nx = np.arange(n)", "print('v1.0')\ny = x * 2.5", "z = y[3]"]
    edit = harness.real_edit(cells)
    assert edit["cell"] == 3 and edit["source"] == "print('v1.0')\ny = x * 2.25"  # not inside the string
    assert harness.real_edit(["a = 1", "b = a[2]", "c = 5"])["source"] == "c = 6"  # no float: an int >= 2
    assert harness.real_edit(["a = 1", "b = 0"]) is None
    assert harness.real_edit(cells, {"cell": 4, "old": "[3]", "new": "[4]"})["source"] == "z = y[4]"
    assert harness.real_edit(cells, False) is None


def _job(values: dict, cells: dict, error=None, steps=None) -> dict:
    run = {"cells": cells, "extra": [], "error": error, "collect": {"values": values}}
    if steps is not None:
        run["collect"]["steps"] = steps
    return run


def test_a_second_kernel_is_judged_against_run_all_in_the_directory_the_first_left():
    """A notebook that changes its directory (py_csv rewrites names.csv, py_sqlite3 creates a
    table in a file): a step executing again does what Run All again there does; a restored
    one shows what it showed; anything else still disagrees."""
    shown = {"1": {"figures": 0, "text": "old"}, "2": {"figures": 0, "text": "x"}}
    plain = {"run": _job({"a": {"": "1"}, "b": {"": "2"}}, shown)}
    again_cells = {"1": {"figures": 0, "text": "new"}, "2": {"figures": 0, "text": "x"}}
    plain["again"] = _job({"a": {"": "9"}, "b": {"": "2"}}, again_cells)
    mixed = _job({"a": {"": "9"}, "b": {"": "2"}}, {"1": {"figures": 0, "text": "new"}, "2": shown["2"]})
    assert harness.compare(harness.same_dir_reference(plain, mixed), mixed, {}, 2) == []
    assert harness.compare(plain, mixed, {}, 2) != []  # against the first Run All alone: differs
    wrong = _job({"a": {"": "5"}, "b": {"": "2"}}, {"1": {"figures": 0, "text": "other"}, "2": shown["2"]})
    kinds = [k for k, _ in harness.compare(harness.same_dir_reference(plain, wrong), wrong, {}, 2)]
    assert kinds == ["values", "text"]
    # Run All again stops at cell 1 with the error a failed step reports inside StepsFailed
    plain["again"]["error"] = {"cell": 1, "ename": "OperationalError", "evalue": "table movie already exists"}
    failed = _job(
        {},
        {"1": {"figures": 0, "text": "new"}},
        error={
            "cell": 1,
            "ename": "StepsFailed",
            "evalue": "cell1 failed: OperationalError: table movie already exists",
        },
    )
    failed["collect"]["values"] = {"a": {"": "9"}, "b": {"": "2"}}
    assert harness.compare(harness.same_dir_reference(plain, failed), failed, {}, 2) == []
    failed["error"]["cell"] = 2  # elsewhere: a disagreement
    assert "fails" in [
        k for k, _ in harness.compare(harness.same_dir_reference(plain, failed), failed, {}, 2)
    ]
    # a notebook that left its directory as it was has no `again`: the first Run All only
    assert harness.same_dir_reference({"run": plain["run"]}, mixed) == {"run": plain["run"]}


def test_a_new_kernel_may_execute_only_what_nbsteps_says_it_could_not_store():
    not_stored = "its values were not stored when it last ran: output 'f' cannot be pickled"
    steps = {
        "cell1": {"status": "completed", "cached": True, "reason": "up to date"},
        "cell2": {"status": "completed", "cached": False, "reason": not_stored},
        "cell3": {"status": "completed", "cached": False, "reason": "upstream cell2 changed"},
        "cell4": {"status": "completed", "cached": False, "reason": "replayed: sets rcParams"},
    }
    assert harness._reran_all({"collect": {"steps": steps}}, "re-ran") == []
    steps["cell5"] = {"status": "completed", "cached": False, "reason": "upstream cell1 changed"}
    assert harness._reran_all({"collect": {"steps": steps}}, "re-ran") == [
        ("reran", "re-ran 1 of 5 steps (cell5)")
    ]


def test_a_new_kernel_may_execute_a_writer_below_a_step_it_had_to_execute():
    """A step whose file a step above, executed in the new kernel and not counted, wrote again
    (nbsteps.run.decide.staleness.rewritten_above): restoring it would leave the file as the step
    above left it. Counted when the step above is counted itself."""
    not_stored = "its values were not stored when it last ran: output 'fh' cannot be pickled"
    steps = {
        "cell1": {"status": "completed", "cached": False, "reason": not_stored},
        "cell2": {
            "status": "completed",
            "cached": False,
            "reason": "file t.csv written again by cell1 above",
        },
        "cell3": {"status": "completed", "cached": True, "reason": "up to date"},  # executed, then kept
        "cell4": {
            "status": "completed",
            "cached": False,
            "reason": "file u.csv written again by cell3 above",
        },
    }
    assert harness._reran_all({"collect": {"steps": steps}}, "re-ran") == []
    steps["cell5"] = {"status": "completed", "cached": False, "reason": "upstream cell3 changed"}
    steps["cell6"] = {
        "status": "completed",
        "cached": False,
        "reason": "file v.csv written again by cell5 above",
    }
    assert harness._reran_all({"collect": {"steps": steps}}, "re-ran") == [
        ("reran", "re-ran 2 of 6 steps (cell5, cell6)")
    ]


# The plan on dask.distributed (the harness's "dask" way: a LocalCluster of worker processes,
# every value pickled back) for three notebooks whose steps need the kernel's own process: a
# seeded global generator (pd_10min), pyplot figures (sk_dbscan), a line magic (sm_ols). The
# whole corpus on dask is a harness run (docs/corpus.md): too slow for this suite on 2 cores.
DASK_NOTEBOOKS = ("pd_10min", "sk_dbscan", "sm_ols")


@pytest.mark.corpus
@pytest.mark.kernel
@pytest.mark.dask
@pytest.mark.timeout(1800)
def test_the_plan_on_dask_agrees_with_run_all():
    try:
        harness.ensure_sources(MANIFEST)
    except harness.CorpusUnavailable as exc:
        pytest.skip(f"corpus unavailable: {exc}")
    report = harness.evaluate(
        only=set(DASK_NOTEBOOKS), ways=["dask"], workers=2, plain_runs=1, manifest=MANIFEST
    )
    problems = {nb: report[nb]["verdicts"]["dask"] for nb in DASK_NOTEBOOKS}
    assert not any(problems.values()), {nb: harness.verdict_text(p) for nb, p in problems.items() if p}
