"""Static analysis of a step's cell: what it reads, binds, changes and touches.

Scoping is Python's own (:mod:`nbsteps.model.scopes`); nbsteps' rules come on top. **Mutation** (an input
that becomes an output too; the step gets a private copy): item or attribute assignment or deletion,
``x += ...``, ``setattr``/``delattr``, ``inplace=True``, MUTATING_METHODS (even when their result is used)
and methods ending in ``_``, a generator given to any call as ``random_state=``/``rng=``, other methods whose
result is unused unless PURE_METHODS, unused calls of functions outside PURE_FUNCTIONS and KNOWN_MODULES
(their name arguments), IN_PLACE_ARG (the first argument) and the cell's own functions changing a global or
a parameter, where called. Modules: shared state. **Calls** (``calls``): every method call on a name, for the
hints keyed by the type of the actual object (:mod:`nbsteps.model.hints`: ``rng.choice(xs)`` advances a
``numpy.random.Generator``, ``ax.plot(x)`` changes a ``matplotlib.axes.Axes``), decided where the value is
known; ``x.plot()``/``.hist()``/``.boxplot()`` on a name the cell does not bind is *assumed* to change it
until its value says otherwise (``assumed``). **State** (``state``; ``effects`` where the cell writes it):
labels from CALL_RULES and STORE_RULES, ``pyplot`` for ``.plot``/``.hist``/``.boxplot``, ``file:<path>``
for literal paths given to readers and writers, ``open``, ``Path`` and ``!`` commands, ``options:<module>``
for a standard library function called for its effect (``logging.basicConfig(...)``); modules are
known from the cell's imports, else CONVENTIONS. **Warnings**: ``import *`` that cannot be listed,
``exec``/``eval`` (a literal string is read as code) and ``globals()``/``locals()``/``vars()``.

{tables}
"""

from __future__ import annotations

import ast
import builtins
import contextvars
import importlib.util
import inspect
import linecache
import os
import re
import shlex
import sys
import warnings
from collections import namedtuple
from dataclasses import dataclass
from types import CodeType

from nbsteps.errors import StepDefinitionError
from nbsteps.model.aliases import alias_groups
from nbsteps.model.fingerprint import code_digest
from nbsteps.model.magic_names import capture_magic, run_script, store_magic
from nbsteps.model.rules import (  # noqa: F401 - the tables, listed in this docstring
    _DATA_EXT,
    _EXPAND_RE,
    _NOT_INPUTS,
    _PATH_KWARGS,
    _PATH_RE,
    CACHING_METHODS,
    CALL_RULES,
    CODE_MAGICS,
    CONVENTIONS,
    FILE_READERS,
    FILE_WRITERS,
    IN_PLACE_ARG,
    KNOWN_MODULES,
    LOAD_RULES,
    MUTATING_METHODS,
    NO_GLOBAL_DRAWS,
    PURE_FUNCTIONS,
    PURE_METHODS,
    SHELL_READERS,
    SHELL_WRITERS,
    STORE_RULES,
)
from nbsteps.model.scopes import FUNCTION, MODULE, Scope, Walker, collect, root_name
from nbsteps.model.state import DISPLAY, FILES_REMOVED

#: calls removing the files they are given: given a path the analysis cannot read, labelled
#: ``files?`` (nbsteps.model.state.FILES_REMOVED)
UNNAMED_REMOVALS = frozenset({"os.remove", "os.unlink", "os.rmdir", "os.removedirs", "shutil.rmtree"})

_BUILTINS = frozenset(n for n in dir(builtins) if not n.startswith("_"))  # names a cell may rebind
#: IPython's script cell magics (ScriptMagics: ``%%script`` and its defaults), whose ``--out NAME``,
#: ``--err NAME`` (and ``--proc NAME`` with ``--bg``) bind NAME in the namespace
SCRIPT_MAGICS = frozenset("script sh bash perl ruby python python2 python3 pypy".split())
#: what in a cell's text may bind or delete names the analysis cannot list (``globals()[n] = v``,
#: ``exec(code)``, ``vars()``, a frame's ``f_globals``, a module's ``__dict__``, any magic or ``!``
#: command: ``get_ipython()``, ``import *``): the attempt then compares the whole namespace with
#: what it was (nbsteps.run.attempt.task), else only its new keys. Words, not calls: an
#: over-approximation costs one comparison of the namespace, a miss a name the notebook lacks
_DYNAMIC_RE = re.compile(
    r"(?<![\w.])(?:globals|vars|locals|exec|eval)\s*\(|"  # builtins called (not model.eval())
    r"\b(?:get_ipython|f_globals|f_locals|_getframe|currentframe|__dict__|__main__|user_ns|modules)\b|"
    r"\bimport\s*\*"
)


__doc__ = __doc__ and __doc__.format(
    tables="\n".join(
        f"{k}: {' '.join(sorted(v))}."
        for k, v in [
            ("PURE_FUNCTIONS", PURE_FUNCTIONS),
            ("PURE_METHODS", PURE_METHODS),
            ("MUTATING_METHODS", MUTATING_METHODS),
            ("IN_PLACE_ARG", IN_PLACE_ARG),
            ("KNOWN_MODULES", KNOWN_MODULES),
            ("CONVENTIONS", [f"{k}={v}" for k, v in CONVENTIONS.items()]),
            *(
                (
                    name,
                    [f"{k}={'+'.join(x + '!' * e for x, e in v) or '-'}" for k, v in rules.items()],
                )  # label! = effect
                for name, rules in (("CALL_RULES", CALL_RULES), ("STORE_RULES", STORE_RULES))
            ),
        ]
    )
)


def _lookup(table: dict, path: str):
    while path and path not in table:
        path = path.rpartition(".")[0]
    return table.get(path)


def _literal(node) -> str | None:
    return node.value if type(node) is ast.Constant and type(node.value) is str else None


def _parse(source: str | None, mode: str = "exec"):
    """The AST of a piece of code found in a string (a magic's argument, exec's), or None; quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source, mode=mode) if source is not None else None
        except (SyntaxError, ValueError):
            return None


def _pathlike(s: str | None, known: bool) -> bool:
    return bool(
        s
        and len(s) < 256
        and "://" not in s
        and _PATH_RE.match(s)
        and (known or "/" in s or _DATA_EXT.search(s))
    )


#: standard library calls made for what they show or for a file, not for state the module keeps (files
#: have rules of their own: FILE_READERS, FILE_WRITERS)
_NOT_SETUP = (
    FILE_READERS
    | FILE_WRITERS
    | frozenset(
        "write writelines flush print pprint sleep system run call check_call check_output Popen".split()
    )
)


#: standard library modules whose functions act on the file system (``os.symlink``, ``shutil.copy``),
#: not on state the process keeps: not ``options:<module>`` (replaying them in a new kernel would
#: make the change again, or fail on it); their process state has rules (``os.chdir``: ``cwd``)
_FILESYSTEM = frozenset("os shutil pathlib tempfile glob filecmp zipfile tarfile".split())


def _literal_args(node: ast.Call) -> bool:
    """Whether every argument of the call is a literal (or there is none)."""
    return all(type(a) is ast.Constant for a in [*node.args, *(k.value for k in node.keywords)]) and all(
        k.arg is not None for k in node.keywords
    )


def _strip_options(magic: str, line: str) -> str:
    """The code of ``%timeit -n 10 x = f()``: its options removed (``%time`` takes none)."""
    values = CODE_MAGICS[magic][1]
    return re.sub(rf"^(\s*(--\S+\s+\S+|-[{values}]\s+\S+|-\S+))*", "", line).strip() if values else line


class CellWalker(Walker):
    """:class:`~nbsteps.model.scopes.Walker` plus nbsteps' rules (see the module docstring)."""

    CONVENTIONS, SHARED = CONVENTIONS, _NOT_INPUTS

    def touch(self, path: str, table: dict = LOAD_RULES, fallback: bool = False) -> None:
        rule = _lookup(table, path)
        if rule is None and fallback:  # another attribute of a library changed: one of its options
            rule = ((f"options:{path.partition('.')[0]}", True),)
        for label, effect in rule or ():
            self.label(label, effect)

    on_load = touch  # a module's attribute was referenced

    def on_changed(self, node) -> None:
        path = self.path(node)
        self.touch(path, STORE_RULES, fallback=True) if path else self.mutate(root_name(node))

    def mutate_args(self, node, first: bool = False) -> None:
        for a in node.args[:1] if first else node.args + [k.value for k in node.keywords]:
            self.mutate(root_name(a))

    # -- calls -----------------------------------------------------------------------
    opaque = False  # calls code that may draw from a global random generator unseen (see may_draw)
    #: what it found depends on more than the text: the names a module lists for ``import *``, a
    #: magic's files (``%run script.py``), IPython's store (see _CACHE)
    volatile = False

    def __init__(self) -> None:
        super().__init__()
        self.cached_on: set = set()  # names whose CACHING_METHODS the cell calls (their results used)
        self.calls: list = []  # (name, method, result used, inplace=True) of method calls on names
        self.assumed: set = set()  # names x of x.plot(): changed if x is an axes (nbsteps.model.hints)
        self.called_on: set = set()  # names whose other methods it calls, results used (they may keep caches)
        self.decorated: set = set()  # names a decorated ``def`` binds at the top level (see CellAnalysis)
        self.called: set = set()  # names it calls at the top level (``h(a)``)

    def visit_FunctionDef(self, node) -> None:
        if node.decorator_list and self.scope.kind is MODULE:
            self.decorated.add(node.name)  # @memory.cache def h(x): an object that may keep state
        super().visit_FunctionDef(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def after_call(self, node: ast.Call, used: bool) -> None:
        func, path = node.func, self.path(node.func)
        if not self.opaque:
            self.opaque = (
                path.partition(".")[0] not in NO_GLOBAL_DRAWS
                if path
                else func.id not in PURE_FUNCTIONS and func.id not in _NOT_INPUTS
                if type(func) is ast.Name
                else type(func) is not ast.Attribute or func.attr not in PURE_METHODS
            )
        for k in node.keywords:  # f(X, random_state=rng): the callee draws from the generator
            self.mutate(k.value.id) if k.arg in ("random_state", "rng") and type(
                k.value
            ) is ast.Name else None
        if path:
            self.module_call(path, node, used)
        elif type(func) is ast.Name:
            self.name_call(func.id, node, used)
        elif type(func) is ast.Attribute:
            self.method_call(func, node, used)

    def module_call(self, path: str, node, used: bool) -> None:
        self.touch(path, CALL_RULES)
        head, _, last = path.rpartition(".")
        if last in IN_PLACE_ARG or (last.endswith("_") and not last.endswith("__")):
            self.mutate_args(node, first=True)
        elif (
            (not used or last in MUTATING_METHODS)
            and last not in PURE_METHODS
            and head in STORE_RULES
            and head not in CALL_RULES  # an object, not a module: matplotlib.pyplot.plot(...) changes nothing
        ):
            self.touch(head, STORE_RULES)  # sys.path.append(p), os.environ.update(...)
        elif not used and path.partition(".")[0] not in KNOWN_MODULES:
            self.mutate_args(node)
            if (
                self.scope.kind is MODULE
                and _literal_args(node)
                and _lookup(CALL_RULES, path) is None
                and path.partition(".")[0] not in sys.stdlib_module_names
            ):
                # given nothing of the notebook's and its result dropped, a library call is made for
                # what it changes in the process: set-up such as ``init_printing()``, which registers
                # display formatters (nbsteps.model.state.DISPLAY)
                self.label(DISPLAY, True)
        elif (
            not used
            and self.scope.kind is MODULE
            and path.count(".") >= 2
            and not last[:1].isupper()  # a class made and dropped (a documentation's example) sets nothing
            and _literal_args(node)
            and _lookup(CALL_RULES, path) is None
            and path.partition(".")[0] not in sys.stdlib_module_names
        ):
            # the same, on an object a known library holds (a registry, a config object):
            # ``alt.renderers.enable("mimetype")``, ``pl.Config.set_tbl_rows(2)``
            self.label(DISPLAY, True)
        top = path.partition(".")[0]
        if (
            not used
            and self.scope.kind is MODULE
            and top in sys.stdlib_module_names
            and not last[:1].isupper()  # a class made and dropped sets nothing
            and last not in _NOT_SETUP
            and _lookup(CALL_RULES, path) is None
            and _lookup(STORE_RULES, path) is None  # (os.environ.update(...): the environment's own label)
            and top not in _FILESYSTEM
            and self.setup_args(node, top)
        ):
            # a standard library module's function called for what it does to the process, given only
            # literals and the module's own constants, its result dropped: on state the module keeps
            # (``logging.basicConfig(level=logging.DEBUG)``, the handlers ``logging.warning(...)`` then
            # uses; ``warnings.simplefilter("ignore")``): such steps keep notebook order, a new kernel
            # restoring them replays them (nbsteps.run.decide.replay), as the library's options
            self.label(f"options:{top}", True)
        self.files(last, node)
        if path in UNNAMED_REMOVALS and not any(_pathlike(_literal(a), True) for a in node.args):
            self.label(FILES_REMOVED, True)  # shutil.rmtree(location): which files, not known

    def setup_args(self, node: ast.Call, top: str) -> bool:
        """Whether every argument of *node* is a literal or an attribute of the module *top*
        (``level=logging.DEBUG``), and none is an address (``urlretrieve("https://...", f)``:
        an effect outside the process, which a replay in a new kernel would make again)."""
        for a in [*node.args, *(k.value for k in node.keywords)]:
            if type(a) is ast.Constant and isinstance(a.value, str) and "://" in a.value:
                return False
            if type(a) is not ast.Constant and (
                type(a) is not ast.Attribute or (self.path(a) or "").partition(".")[0] != top
            ):
                return False
        return all(k.arg is not None for k in node.keywords)

    def name_call(self, name: str, node, used: bool) -> None:
        f = self.funcs.get(name) if self.scope.kind is MODULE or self.is_global(name) else None
        if f is not None:  # the cell's own function: the arguments it changes
            for p, a in [*zip(f.params, node.args, strict=False), *((k.arg, k.value) for k in node.keywords)]:
                self.mutate(root_name(a) if p in f.param_mut else None)
        elif name in self.bound or name not in _NOT_INPUTS and name not in PURE_FUNCTIONS:
            if self.scope.kind is MODULE:
                self.called.add(name)
            self.files(name, node)
            self.mutate_args(node) if not used else None
        elif name in ("setattr", "delattr"):
            self.mutate_args(node, first=True)
        elif name in ("exec", "eval"):
            self.dynamic(name, node)
        elif name in ("globals", "locals", "vars") and not node.args:
            self.warnings.append(
                f"nbsteps cannot see names used through {name}() (line {node.lineno}) before the step runs; "
                "the names it binds are seen when it runs."
            )
        elif name == "open" and node.args and _pathlike(_literal(node.args[0]), True):
            mode = [
                _literal(a) or ""
                for a in node.args[1:2] + [k.value for k in node.keywords if k.arg == "mode"]
            ]
            self.label("file:" + os.path.normpath(node.args[0].value), bool(set("".join(mode)) & set("wax+")))
        elif name not in PURE_FUNCTIONS and not used:
            self.mutate_args(node)

    def method_call(self, func: ast.Attribute, node, used: bool) -> None:
        meth, recv, first = func.attr, func.value, _literal((node.args or [None])[0])
        root, keywords = root_name(recv), {k.arg: k.value for k in node.keywords}
        inplace = getattr(keywords.get("inplace"), "value", None) is True
        if type(recv) is ast.Name and self.scope.kind is MODULE:  # decided on the object (model.hints)
            self.calls.append((recv.id, meth, used, inplace))
        if meth in ("plot", "hist", "boxplot") or (type(recv) is ast.Attribute and recv.attr == "plot"):
            # df.plot(), s.hist() draw with pyplot; ax.plot(...) changes that axes: assumed until its
            # value is known (nbsteps.model.hints), a name the cell binds is an output anyway
            self.label("pyplot")
            if type(recv) is ast.Name and self.scope.kind is MODULE and recv.id not in self.bound:
                self.assumed.add(recv.id)
        elif meth in MUTATING_METHODS or (meth.endswith("_") and not meth.endswith("__")) or inplace:
            self.mutate(root)
        elif not used and meth not in PURE_METHODS:
            self.mutate(root)
        if meth in CACHING_METHODS and used and root and type(recv) is ast.Name:
            self.cached_on.add(root)  # res.predict(...): keeps notebook order with other such calls on res
        if used and root and (meth in CACHING_METHODS or meth not in PURE_METHODS):
            self.called_on.add(
                root
            )  # res.append(...) may keep state on res.model: see nbsteps.run.upstream_caches
        if meth in IN_PLACE_ARG:
            self.mutate_args(node, first=True)  # rng.shuffle(a)
        for name in re.findall(r"@([A-Za-z_]\w*)", first or "") if meth in ("query", "eval") else ():
            self.load(name)  # df.query("a > @limit")
        pathlib = type(recv) is ast.Call and self.path(recv.func) == "pathlib.Path"
        self.files(meth, recv if pathlib else node, pathlib)  # Path("out").mkdir(); df.rename("x") is no file

    def files(self, name: str, node, trusted: bool = True) -> None:
        if (
            not (node.args or node.keywords)
            or name in PURE_FUNCTIONS
            or name in ("write", "writelines", "chdir")
        ):
            return
        writer = name in FILE_WRITERS or name.startswith(("save", "write", "dump"))
        known = trusted and (writer or name in FILE_READERS or name.startswith(("read_", "load")))
        for a in node.args + [k.value for k in node.keywords if k.arg in _PATH_KWARGS]:
            if _pathlike(_literal(a), known):
                self.label("file:" + os.path.normpath(a.value), writer)

    def dynamic(self, name: str, node) -> None:
        text = f"nbsteps cannot see dependencies inside exec/eval strings: {name}() at line {node.lineno}"
        tree = _parse(_literal((node.args or [None])[0]), "eval" if name == "eval" else "exec")
        if tree is None:
            return self.warnings.append(
                f"{text}; the names it binds are seen when the step runs, those it reads are not: use them "
                "directly (or order steps with --after)."
            )
        self.visit_all(tree.body if name == "exec" else [tree.body])
        names = ", ".join(sorted({n.id for n in ast.walk(tree) if type(n) is ast.Name})) or "no names"
        self.warnings.append(
            f"{text} (its literal string was read as code: {names}; a string built at run time is invisible)."
        )

    def on_import_star(self, module: str, level: int) -> list:
        """The names ``from module import *`` binds (importing the module if needed), else a warning."""
        self.volatile = True
        why = "it is a relative import" if level else "it cannot be found"
        try:
            mod = (
                None
                if level
                else sys.modules.get(module)
                or (importlib.util.find_spec(module) and importlib.import_module(module))
            )
        except (Exception, SystemExit) as exc:  # any failure means the names are unknown
            mod, why = None, f"importing it failed: {type(exc).__name__}"
        if not mod:
            self.warnings.append(
                f"from {'.' * level}{module} import *: nbsteps cannot list the names it binds "
                f"({why}); import the names explicitly."
            )
            return []
        names = getattr(mod, "__all__", None)
        names = [n for n in dir(mod) if not n.startswith("_")] if names is None else list(names)
        return [n for n in names if isinstance(n, str) and n.isidentifier()]

    # -- IPython's transformed syntax: get_ipython().run_line_magic(...), .system(...) --------
    def on_call(self, node: ast.Call, used: bool) -> bool:
        func, v = node.func, getattr(node.func, "value", None)
        if not (type(v) is ast.Call and getattr(v.func, "id", None) == "get_ipython"):
            return False
        self.volatile = True
        args = [_literal(a) for a in node.args]
        handler, n = {
            "run_line_magic": (self.line_magic, 2),
            "run_cell_magic": (self.cell_magic, 3),
            "system": (self.shell, 1),
            "getoutput": (self.shell, 1),
        }.get(func.attr, (None, 0))
        handler(*args[:n]) if handler and len(args) >= n and None not in args[:n] else self.visit_all(
            node.args
        )
        return True

    def code(self, source: str, binds: bool = True) -> None:
        body = getattr(_parse(source), "body", [])
        names, glob, nonloc = collect(body)  # %timeit runs the code in a function: its names stay there
        self.visit_all(body) if binds else self.enter(
            Scope(FUNCTION, self.scope, names - glob - nonloc, glob), body
        )

    def line_magic(self, magic: str, line: str) -> None:
        if magic in CODE_MAGICS:
            return self.code(_strip_options(magic, line), CODE_MAGICS[magic][0])
        self.expand(line)
        if magic in ("cd", "matplotlib", "env"):  # `%env NAME` alone only reads the variable
            effect = magic != "env" or "=" in line or " " in line.strip()
            self.label({"cd": "cwd", "matplotlib": "pyplot", "env": "environ"}[magic], effect)
        elif magic in ("sx", "system"):
            self.shell(line)
        elif magic in ("run", "store"):  # the names they bind or read (nbsteps.model.magic_names)
            (run_script if magic == "run" else store_magic)(self, line)

    def cell_magic(self, magic: str, line: str, body: str) -> None:
        if magic == "timeit":
            self.code(_strip_options(magic, line), False)
        if magic in CODE_MAGICS:
            self.code(body, CODE_MAGICS[magic][0])
        elif magic == "writefile" and line.split():
            self.label("file:" + os.path.normpath(line.split()[-1]), True)
        if magic == "capture":
            capture_magic(self, line)
        elif magic in SCRIPT_MAGICS:
            self.script_names(line)

    def script_names(self, line: str) -> None:
        """``%%bash --out o --err e`` (IPython's script magics) binds o and e (and ``--proc p``
        with ``--bg``) in the namespace the step runs in: the step's outputs."""
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        for i, word in enumerate(words):
            option, eq, value = word.partition("=")
            if option not in ("--out", "--err", "--proc") or (option == "--proc" and "--bg" not in words):
                continue
            value = value if eq else (words[i + 1] if i + 1 < len(words) else "")
            if value.isidentifier():
                self.store(value)

    def expand(self, text: str) -> None:
        """The names IPython substitutes in ``{expr}`` and ``$name``."""
        for braces, dollar in _EXPAND_RE.findall(text):
            self.visit_all([getattr(_parse((braces or dollar).rstrip("."), "eval"), "body", ast.Pass())])

    def shell(self, cmd: str) -> None:
        self.expand(cmd)
        try:
            tokens = shlex.split(_EXPAND_RE.sub("", cmd)) or [""]
        except ValueError:
            return
        writer, redirect = os.path.basename(tokens[0]) in SHELL_WRITERS, False
        for tok in tokens[1:]:
            redirect, tok = redirect or tok.startswith(">"), tok.lstrip(">")
            if tok[:1] not in ("", "-", "|", "&", ";") and (
                redirect or _pathlike(tok, writer or os.path.basename(tokens[0]) in SHELL_READERS)
            ):
                self.label("file:" + os.path.normpath(tok), writer or redirect)
                redirect = False


@dataclass(frozen=True)
class CellAnalysis:
    source: str
    filename: str
    inputs: frozenset
    outputs: tuple
    mutated: frozenset
    has_result: bool
    digest: str  # of the normalised source (comments and layout ignored)
    body: CodeType
    result: CodeType | None
    state: frozenset = frozenset()  # labels of process-wide state the cell touches
    effects: frozenset = frozenset()  # the labels it writes (seeding, styling, chdir, files written...)
    warnings: tuple = ()  # what nbsteps cannot see (exec, import * it cannot list)
    opaque: bool = False  # calls library or notebook code that might draw from a global generator
    groups: tuple = ()  # outputs bound to one object graph (nbsteps.model.aliases)
    cached_on: frozenset = frozenset()  # inputs whose caching methods it calls (rules.CACHING_METHODS)
    called_on: frozenset = (
        frozenset()
    )  # inputs (not mutated) whose methods it calls, results used, not PURE_METHODS
    shadowable: frozenset = frozenset()  # builtins it reads (input, len...): a step above may rebind them
    #: the functions it defines -> the global names they read that the cell does not bind: a cell
    #: calling one reads them at call time, from the steps above it (``def f(): return k * 2``, k below)
    func_reads: tuple = ()
    #: mutated names the cell never binds (``split(X, random_state=SEED)``, ``lst.append(1)``): where the
    #: value is immutable (nbsteps.model.immutable) the prediction is void and the name is only read
    changed_only: frozenset = frozenset()
    #: ``(name, method, result used, inplace=True)`` of each method call on a name at the top level, for
    #: the hints keyed by the type of the actual object (nbsteps.model.hints)
    calls: tuple = ()
    #: names it does not bind whose ``.plot()``/``.hist()``/``.boxplot()`` it calls: changed if the value is
    #: an axes (a hint), assumed changed until the value is known
    assumed: frozenset = frozenset()
    #: the names a top-level ``import`` statement binds (still bound at the end): modules
    modules: frozenset = frozenset()
    #: inputs read only inside the bodies of functions it defines and does not call (``def f(): return
    #: late``): read when a function is called, by the calling cell (``Step.called_reads``), not when
    #: it is defined; inputs for the order, no parameter of its fingerprint (nbsteps.run.decide.staleness)
    later_reads: frozenset = frozenset()
    #: the names a decorated ``def`` binds at the top level (``@memory.cache def h(x)``, ``@lru_cache``):
    #: a decorator may make an object keeping state across calls (a cache), so a call's output may depend
    #: on the calls before it; the steps calling one version keep notebook order (model.dependencies)
    decorated: frozenset = frozenset()
    #: inputs it calls by name at the top level (``h(a)``)
    called: frozenset = frozenset()
    #: its text has a word by which code binds or deletes names unseen (_DYNAMIC_RE): its attempt
    #: compares the whole namespace after with before (nbsteps.run.attempt.task), not only new keys
    dynamic: bool = False

    def __getattr__(self, name: str):
        # (only for an attribute not found: ``digest`` of an analysis made by _analysis)
        if name != "digest" or "body" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        digest = self.__dict__["digest"] = code_digest(self.body) + (
            code_digest(self.result) if self.result is not None else ""
        )
        return digest


#: the fields _analysis is given: all but ``digest``, computed from the code when first read (a
#: plan-mode cell is only registered: its digest is needed when it runs, or when it is registered again)
_ANALYSIS_FIELDS = tuple(f for f in CellAnalysis.__dataclass_fields__ if f != "digest")
_EMPTY: frozenset = frozenset()


def _analysis(*values) -> CellAnalysis:
    """``CellAnalysis(*values)`` (all fields but ``digest``, see _ANALYSIS_FIELDS) without the frozen
    dataclass's ``__init__``, which sets each of the 22 fields through ``object.__setattr__`` (~3 us
    of a cell); the same object (equality, hash: ``digest`` is computed for them)."""
    obj = object.__new__(CellAnalysis)
    obj.__dict__.update(zip(_ANALYSIS_FIELDS, values, strict=True))
    return obj


def step_filename(name: str) -> str:
    return f"<step {name}>"


#: (file name, source) -> the analysis of a cell registered before (run again unchanged, or registered
#: again by a plan-mode Run All), the latest _CACHE_SIZE; not a cell whose analysis depends on more
#: than its text (CellWalker.volatile)
_CACHE: dict = {}
_CACHE_SIZE = 256


def analyse_cell(name: str, source: str, what: str = "step", filename: "str | None" = None) -> CellAnalysis:
    """Analyse and compile a step's source; a SyntaxError becomes a clear error. *filename*: the
    name its code is compiled under (``co_filename``), default ``<step NAME>``; a cell of a notebook
    gets the name IPython's compiler gives that cell in Run All (nbsteps.ipython.magics.code_name),
    which code keying on its file sees (joblib's cache folders, ``inspect``, warnings)."""
    filename = filename or step_filename(name)
    cached = _CACHE.get((filename, source))
    if cached is not None:
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        return cached
    try:
        # ast.parse without its Python wrapper (no flag of this module's inherited, as there)
        tree = compile(source, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
        walker = CellWalker().run(tree.body)
        body, result = tree.body, None
        if body and isinstance(body[-1], ast.Expr) and not source.rstrip().endswith(";"):
            body, result = body[:-1], ast.Expression(body=body[-1].value)
        # top-level await allowed; dont_inherit: nbsteps' own __future__ imports must not reach step code
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        body_code = compile(
            tree if result is None else ast.Module(body=body, type_ignores=[]),
            filename,
            "exec",
            flags,
            dont_inherit=True,
        )
        result_code = (
            compile(result, filename, "eval", flags, dont_inherit=True) if result is not None else None
        )
    except SyntaxError as exc:  # also 'return' outside function, found when compiling
        where = f"line {exc.lineno}" + (f": {exc.text.strip()}" if (exc.text or "").strip() else "")
        keep = "; the previous definition of it (if any) stays registered." if what == "step" else "."
        raise StepDefinitionError(
            f"syntax error in {what} {name!r} at {where} ({exc.msg}). Fix the cell and run it again{keep}"
        ) from None
    # register the source so tracebacks through the step show its lines
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    # (each part of a walk that found nothing is the shared empty value, not made anew: most cells)
    mutated = frozenset(walker.mutated) if walker.mutated else _EMPTY
    read = walker.inputs
    inputs = frozenset(read).difference(_NOT_INPUTS) if read else _EMPTY
    shadowable = _BUILTINS.intersection(read) if read else _EMPTY
    analysis = _analysis(
        source,
        filename,
        inputs,
        tuple(walker.outputs),
        mutated,
        result_code is not None,
        body_code,
        result_code,
        frozenset(walker.state) if walker.state else _EMPTY,
        frozenset(walker.effects) if walker.effects else _EMPTY,
        tuple(dict.fromkeys(walker.warnings)) if walker.warnings else (),
        walker.opaque,
        # (a group has two names or more: most cells bind one)
        alias_groups(tree.body, walker.outputs, walker.aliases) if len(walker.outputs) > 1 else (),
        frozenset(n for n in walker.cached_on if n in inputs) if walker.cached_on else _EMPTY,
        frozenset(n for n in walker.called_on if n in inputs and n not in mutated)
        if walker.called_on
        else _EMPTY,
        shadowable,
        tuple(
            (n, frozenset(r for r in f.reads if r not in walker.bound and r not in _NOT_INPUTS))
            for n, f in sorted(walker.funcs.items())
        )
        if walker.funcs
        else (),
        mutated - collect(tree.body)[0] if mutated else mutated,  # what it mutates but never binds
        tuple(dict.fromkeys(c for c in walker.calls if c[0] in inputs and c[0] not in walker.aliases))
        if walker.calls
        else (),
        frozenset(walker.assumed & inputs) - mutated if walker.assumed else _EMPTY,
        frozenset(n for n in walker.imported if n in walker.aliases and n in walker.outputs)
        if walker.imported
        else _EMPTY,
        frozenset(walker.later & inputs) if walker.later else _EMPTY,
        frozenset(n for n in walker.decorated if n in walker.outputs) if walker.decorated else _EMPTY,
        frozenset(walker.called & inputs) if walker.called else _EMPTY,
        _DYNAMIC_RE.search(source) is not None,
    )
    if not walker.volatile:
        if len(_CACHE) >= _CACHE_SIZE:
            del _CACHE[next(iter(_CACHE))]  # the oldest
        _CACHE[filename, source] = analysis
    return analysis


def run_code(code: CodeType, ns: dict):
    """``exec``/``eval`` *code* in *ns*; top-level ``await`` runs to completion on an event loop of its
    own, on a helper thread (the calling thread may already run one, as in ipykernel)."""
    value = eval(code, ns)
    if code.co_flags & inspect.CO_COROUTINE:
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="nbsteps-await")
        try:
            # in this context: the step's capture and namespace (nbsteps.run.attempt.capture) hold there too
            value = pool.submit(contextvars.copy_context().run, asyncio.run, value).result()
        finally:
            pool.shutdown(wait=False)  # an interrupt does not wait for the coroutine
    return value


Analysis = namedtuple("Analysis", "inputs outputs mutated state effects warnings has_result")


def analyse(cell_source: str, transform=None) -> Analysis:
    """What nbsteps sees in a cell's text (a first ``%%step`` line is skipped), after *transform*
    (IPython's input transformer, given by :func:`nbsteps.analyse`): sets ``inputs``, ``outputs``,
    ``mutated``, ``state``, ``effects``; ``warnings``; ``has_result``."""
    text = (
        cell_source.lstrip().partition("\n")[2] if cell_source.lstrip().startswith("%%step") else cell_source
    )
    if transform is not None:
        text = transform(text)
    r = analyse_cell("cell", text, what="cell")
    return Analysis(*(set(getattr(r, f)) for f in Analysis._fields[:5]), r.warnings, r.has_result)
