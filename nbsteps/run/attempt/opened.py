"""The files a step's code opens, observed while it runs (SPEC 1, "Files").

**The mechanism.** One process-wide audit hook (:func:`sys.addaudithook`), added the
first time a step runs in the process (CPython cannot remove one: it stays, and costs
one function call and one comparison per audit event of the process). CPython raises
the ``open`` audit event, with the path and the ``os.open`` flags, for every file
opened from Python: ``open()``/``io.open``, ``os.open``, ``pathlib``, ``io.open_code``.
That covers every library that opens its file in Python and parses it in C: pandas'
C parser (``read_csv`` opens the file through ``open``), numpy's ``loadtxt``,
``genfromtxt``, ``load`` and ``fromfile``, ``%run script.py``. A library that opens
files in its own C or C++ code (pyarrow's ``read_parquet``, h5py) raises no event: a
literal path the analysis saw given to a reader is taken as a hint for those
(:meth:`Opened.inputs`).

**Attribution.** The hook looks up a ``ContextVar`` that :func:`recording` sets for the
duration of a step's code. An attempt runs in its own copy of a context, on whichever
thread (:func:`nbsteps.run.attempt.task.run_task`), so steps running in parallel
record their own opens, and an open where no step runs (the kernel, nbsteps' stores,
other threads) costs one context variable lookup. A thread a step starts itself does
not inherit the context (``threading.Thread``): what it opens is not seen.

**What is an input.** The flags say it: opened for reading (``O_RDONLY``, ``O_RDWR``)
without truncating or creating it exclusively, and not written by the step before
(``w``, ``x``, ``a``, ``O_CREAT``). A file opened only to write or append is a change
of that file, ordered against its readers and writers by the analysis
(:mod:`nbsteps.model.state`), not a read. Never inputs: what an import opens (a frame
of importlib's bootstrap on the stack: modules, their ``.pyc``, data a module reads
when first imported; an import runs once per process, not once per step), files
under the interpreter's prefixes and site-packages, nbsteps' own package, a
checkpoint store's directory (:func:`ignore_under`), Python source and extension
files on ``sys.path`` (tracebacks and warnings read them), ``/proc``, ``/dev``,
``/sys``, directories and devices. The fingerprints are taken when the step's code
has finished (:mod:`nbsteps.model.file_inputs`).

**The environment.** The same hook sees the step change the process environment:
``os.environ[k] = v`` and ``del os.environ[k]`` call ``putenv`` / ``unsetenv``, which raise
the audit events ``os.putenv`` / ``os.unsetenv``, wherever the write is made (polars'
``pl.Config.set_tbl_rows`` writes ``POLARS_FMT_MAX_ROWS`` inside the library, where the
analysis cannot see it). Such a step is labelled a change of ``environ``
(:attr:`Opened.state`, kept as ``Step.observed_state`` and in its checkpoint), as a write
the analysis sees is: it keeps its order with the steps touching the environment and is
replayed when restored (:mod:`nbsteps.run.decide.replay`). Not a change made by an import
(it is made again when the module is imported in a new process). A read of the
environment raises no event: a restored writer is replayed before code executes
(``settles``), so what reads it unseen reads what Run All gives it.

**Deletions and renames.** Removing a file (``os.remove``, ``os.unlink``, ``Path.unlink``, and
``shutil.rmtree``, which removes each file of the folder by ``os.unlink``), renaming one
(``os.rename``, ``os.replace``, ``Path.rename``, ``shutil.move``) and truncating one raise the audit
events ``os.remove`` (path, dir_fd), ``os.rename`` (src, dst, src_dir_fd, dst_dir_fd) and
``os.truncate``: each path is a change of that file, a write (:meth:`Opened.writes`: its fingerprint
after the step, ``missing`` for a removed one, goes to the step's ``wrote``, so a step above that
read it is not stale for it: the file changed after it, as in Run All). A name relative to a
directory descriptor (``shutil.rmtree``'s, the store's) is resolved through ``/proc/self/fd``; the
store's folder and nbsteps' own calls are left out, as for ``open``. A file removed or renamed
away that the step did not write itself in the same attempt (a temporary file) is also labelled
``file:<path>`` (relative to the working directory when inside it, as the analysis labels a
literal path) in :attr:`Opened.state`, an observed change kept as ``Step.observed_state``: from
then on the plan orders the step after the steps above that touch that file, as it does for a
literal ``os.remove('f.csv')`` (:mod:`nbsteps.model.state`), when the path was a variable the
analysis could not read (``shutil.rmtree(location)``).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import site
import sys
import threading

from nbsteps.model import file_inputs
from nbsteps.model.state import ENVIRON, is_file

_recorder: contextvars.ContextVar["Opened | None"] = contextvars.ContextVar("nbsteps_opened", default=None)
_installed = False
_install_lock = threading.Lock()
_roots: set[str] = set()  # directories whose files are never inputs (stores), see ignore_under
_ignored: "tuple[str, ...] | None" = None  # prefixes (with a trailing separator), computed once
_NO_STATE: frozenset = frozenset()  # (a constant: no call per attempt)
_SOURCE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyi", ".pyd", ".so")
_O_WRITE = os.O_CREAT | os.O_TRUNC | os.O_APPEND
_O_ACCMODE = os.O_RDONLY | os.O_WRONLY | os.O_RDWR
#: the flags recorded for a removed, renamed or truncated path: a write, never a read
CHANGED = os.O_WRONLY | os.O_TRUNC
#: the flags recorded for a removed folder (``os.rmdir``): neither a read nor a file written
REMOVED_DIR = CHANGED | getattr(os, "O_DIRECTORY", 0o200000)
#: at most this many ``file:`` labels an attempt records for what it removed (a folder of
#: thousands of files is a change of each, in ``wrote``; its first ones order the step)
LABELS_MAX = 256
#: the audit events other than ``open`` the hook looks at (one set lookup for every other event)
_EVENTS = frozenset({"os.putenv", "os.unsetenv", "os.remove", "os.rename", "os.rmdir", "os.truncate"})


def _bootstrap_files() -> frozenset:
    """The file names of importlib's bootstrap code (``<frozen importlib._bootstrap>``
    on CPython 3.11, a real path where it is not frozen)."""
    import importlib._bootstrap as boot
    import importlib._bootstrap_external as ext

    return frozenset(f.__code__.co_filename for f in (boot._find_and_load, ext.SourceLoader.get_code))


_BOOTSTRAP = _bootstrap_files()
try:  # modules being imported now, in any thread: empty but while an import runs
    from importlib._bootstrap import _module_locks as _IMPORTS
except ImportError:  # pragma: no cover - another implementation: always look at the stack
    _IMPORTS = None


def _importing() -> bool:
    """Whether an import is in progress on this thread (importlib's bootstrap on
    the stack). Walking the stack costs a few microseconds in a deep notebook
    stack: it is done only while some module is being imported."""
    if _IMPORTS is not None and not _IMPORTS:
        return False
    boot = _BOOTSTRAP
    frame = sys._getframe(3)  # _importing, add, the hook: then the code that opens the file
    while frame is not None:
        if frame.f_code.co_filename in boot:
            return True
        frame = frame.f_back
    return False


#: shutil.rmtree's helpers that open folders relative to a directory descriptor
_RMTREE = frozenset(
    f.__code__ for f in (getattr(shutil, n, None) for n in ("_rmtree_safe_fd", "_rmtree_safe_fd_stack")) if f
)
#: nbsteps' own source files (the package's folder)
_PACKAGE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + os.sep


def _with_sep(path: str) -> str:
    path = os.path.normpath(os.path.abspath(path))
    return path if path.endswith(os.sep) else path + os.sep


def _prefixes() -> "tuple[str, ...]":
    global _ignored
    if _ignored is None:
        dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        with contextlib.suppress(Exception):
            dirs.update(site.getsitepackages())
        with contextlib.suppress(Exception):
            dirs.add(site.getusersitepackages())
        dirs.add(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the nbsteps package
        dirs.update(_roots)
        special = ("/proc/", "/dev/", "/sys/") if os.name == "posix" else ()
        _ignored = (*special, *sorted(_with_sep(d) for d in dirs if d))
    return _ignored


def ignore_under(directory) -> None:
    """Files under *directory* are never inputs (a checkpoint store's folder:
    values restored lazily are read while a step runs)."""
    global _ignored
    path = _with_sep(os.fspath(directory))
    if path not in _roots:
        _roots.add(path)
        _ignored = None


class Opened:
    """The opens of one attempt: ``(absolute path, flags)`` in the order they happened."""

    __slots__ = ("events", "state")

    def __init__(self) -> None:
        self.events: list = []
        #: the process state labels it was seen changing (``environ``: the audit events
        #: ``os.putenv`` / ``os.unsetenv``, which ``os.environ``'s writes raise), not in an import;
        #: ``file:<path>`` for a file it removed or renamed away (:meth:`changed`)
        self.state: frozenset = _NO_STATE

    def add(self, path, flags) -> None:
        """Called by the audit hook, on the thread that opens the file."""
        if not isinstance(path, str):
            if isinstance(path, int):  # a file descriptor: opened already
                return
            try:
                path = os.fsdecode(path)
            except TypeError:
                return
        if not os.path.isabs(path):
            # a name relative to a directory descriptor nbsteps holds (its store opens everything with
            # dir_fd=, which the audit event leaves out): not the step's, and not under the cwd
            # a folder shutil.rmtree opens relative to its parent's descriptor to remove it: no read either
            try:
                code = sys._getframe(2).f_code
                if code.co_filename.startswith(_PACKAGE) or code in _RMTREE:
                    return
            except ValueError:  # no Python frame opened it
                pass
            path = os.getcwd() + os.sep + path  # normalised in inputs()
        if path.startswith(_ignored or _prefixes()) or _importing():
            return
        self.events.append((path, flags if isinstance(flags, int) else 0))

    def changed(self, path, dir_fd, removed: bool) -> None:
        """Called by the audit hook: *path* (relative to the directory descriptor *dir_fd*
        when not absolute) is removed, renamed away (*removed*), renamed to or truncated."""
        path = _operand(path, dir_fd, 3)
        if path is not None:
            self._changed(path, removed)

    def _changed(self, path: str, removed: bool) -> None:
        if removed and len(self.state) < LABELS_MAX and not self._wrote(path):
            label = "file:" + file_inputs.shown(path)
            if label not in self.state:
                self.state = self.state | {label}
        self.events.append((path, CHANGED))

    def removed_dir(self, path, dir_fd) -> None:
        """Called by the audit hook: the folder *path* is removed."""
        path = _operand(path, dir_fd, 3)
        if path is not None:
            self.events.append((path, REMOVED_DIR))

    def renamed(self, src, dst, src_dir_fd, dst_dir_fd) -> None:
        """Called by the audit hook before *src* is renamed to *dst*: a change of both, and of
        every file under *src* when it is a folder (each one is gone from there)."""
        path = _operand(src, src_dir_fd, 3)
        if path is not None and os.path.isdir(path):
            for top, _dirs, names in _walk(path):
                for name in names:
                    self._changed(os.path.join(top, name), True)
        if path is not None:
            self._changed(path, True)
        path = _operand(dst, dst_dir_fd, 3)
        if path is not None:
            self._changed(path, False)

    def _wrote(self, path: str) -> bool:
        """Whether this attempt wrote *path* before (a temporary file of its own)."""
        for p, flags in self.events:
            if (flags & _O_ACCMODE != os.O_RDONLY or flags & _O_WRITE) and os.path.normpath(p) == path:
                return True
        return False

    def appended(self) -> frozenset:
        """The absolute paths it opened to write only in append mode (``O_APPEND``; never truncated,
        overwritten in place, removed or renamed): what other steps left in them is still there."""
        out, other = set(), set()
        for path, flags in self.events:
            if flags & _O_ACCMODE == os.O_RDONLY and not flags & _O_WRITE:
                continue  # a read
            (out if flags & os.O_APPEND and not flags & os.O_TRUNC else other).add(os.path.normpath(path))
        return frozenset(out - other) if out else _NO_STATE

    def inputs(self, analysis=None) -> dict:
        """``{absolute path: fingerprint}`` of the files read (see the module's
        docstring), with the existing files *analysis* names as read by literal
        paths that no open showed (hints for libraries opening files in C)."""
        if not self.events and (analysis is None or not getattr(analysis, "state", None)):
            return {}  # opened nothing, names no file
        reads: dict[str, None] = {}
        written: set[str] = set()
        for path, flags in self.events:
            path = os.path.normpath(path)
            if flags == REMOVED_DIR:  # a folder it removed (opened first to list it): not an input
                reads.pop(path, None)
                continue
            access = flags & _O_ACCMODE
            creates = flags & os.O_CREAT and flags & os.O_EXCL
            if access != os.O_WRONLY and not flags & os.O_TRUNC and not creates and path not in written:
                reads.setdefault(path, None)
            if access != os.O_RDONLY or flags & _O_WRITE:
                written.add(path)
        for path in _hinted(analysis):
            if path not in reads and path not in written and os.path.isfile(path):
                reads.setdefault(path, None)
        return file_inputs.fingerprints(p for p in reads if not _ignored_path(p))

    def writes(self) -> set:
        """The absolute paths opened for writing or appending (not ignored ones)."""
        out = set()
        for path, flags in self.events:
            if (flags & _O_ACCMODE != os.O_RDONLY or flags & _O_WRITE) and flags != REMOVED_DIR:
                path = os.path.normpath(path)
                if not _ignored_path(path):
                    out.add(path)
        return out


def _hinted(analysis) -> list:
    """Absolute paths of the files *analysis* saw read through literal paths."""
    if analysis is None:
        return []
    state = getattr(analysis, "state", ()) or ()
    effects = getattr(analysis, "effects", ()) or ()
    return [os.path.abspath(label[5:]) for label in state if is_file(label) and label not in effects]


def _ignored_path(path: str) -> bool:
    """Python source and extension files on sys.path (read by imports, tracebacks,
    warnings), and anything under the ignored prefixes."""
    if path.startswith(_prefixes()):
        return True
    if path.endswith(_SOURCE_SUFFIXES):
        where = os.path.dirname(path) + os.sep
        for entry in sys.path:
            if isinstance(entry, str) and where.startswith(_with_sep(entry or os.curdir)):
                return True
    return False


def _walk(folder: str, limit: int = 10_000):
    """``os.walk`` of *folder*, stopped after *limit* entries (a rename of a huge tree records
    its first files)."""
    seen = 0
    for top, dirs, names in os.walk(folder):
        seen += len(dirs) + len(names)
        yield top, dirs, names
        if seen >= limit:
            return


def _operand(path, dir_fd, depth: int) -> "str | None":
    """The absolute, normalised path a removal or rename names, or None: a descriptor, a
    name nbsteps' own code gives (its store works relative to directory descriptors), a
    descriptor that cannot be resolved, an ignored place (the store, the interpreter's
    prefixes), or an import's (``.pyc`` files are written by ``os.replace``)."""
    if not isinstance(path, str):
        if isinstance(path, int):
            return None
        try:
            path = os.fsdecode(path)
        except TypeError:
            return None
    try:  # the code calling os.remove / os.rename, *depth* frames up (_operand, Opened's method, the hook)
        if sys._getframe(depth).f_code.co_filename.startswith(_PACKAGE):
            return None
    except ValueError:  # no Python frame
        pass
    if not os.path.isabs(path):
        if isinstance(dir_fd, int) and dir_fd >= 0:
            try:  # (Linux; elsewhere such a name is not resolved: not recorded)
                base = os.readlink(f"/proc/self/fd/{dir_fd}")
            except OSError:
                return None
        else:
            base = os.getcwd()
        path = base + os.sep + path
    path = os.path.normpath(path)
    if path.startswith(_ignored or _prefixes()) or _importing():
        return None
    return path


def _hook(event: str, args: tuple) -> None:
    if event == "open":
        rec = _recorder.get()
        if rec is not None:
            rec.add(args[0], args[2])
    elif event in _EVENTS:  # (one lookup: every other event comes here)
        rec = _recorder.get()
        if rec is None:
            return
        if event == "os.remove":
            rec.changed(args[0], args[1], True)
        elif event == "os.rename":
            rec.renamed(args[0], args[1], args[2], args[3])
        elif event == "os.rmdir":  # (shutil.rmtree opens each folder before: no read of it)
            rec.removed_dir(args[0], args[1])
        elif event == "os.truncate":
            rec.changed(args[0], None, False)
        elif ENVIRON not in rec.state and not _importing():  # os.putenv / os.unsetenv
            rec.state = rec.state | {ENVIRON}


def install() -> None:
    """Add the audit hook to this process (once)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if not _installed:
            _prefixes()
            sys.addaudithook(_hook)
            _installed = True


class recording(Opened):
    """``with recording() as opened:`` while the block runs in this context, the
    files opened in it are recorded in *opened* (an :class:`Opened`: the recording
    itself). A class, not a generator: it is entered once per attempt."""

    __slots__ = ("_token",)

    def __enter__(self) -> Opened:
        if not _installed:
            install()
        self._token = _recorder.set(self)
        return self

    def __exit__(self, *exc) -> bool:
        _recorder.reset(self._token)
        return False
