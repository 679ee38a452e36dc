"""Static analysis of a step's cell: what it reads, writes, changes and touches.

Scoping is Python's own (see :mod:`nbsteps.scopes`). On top of it, nbsteps' rules:

**Outputs** are the names bound at the end of the cell, including ``global``
names written by functions the cell calls, names ``%time x = f()`` binds, the
names of ``from m import *`` (when ``m`` can be imported; else a warning).

**Mutation**: a cell changes a value it reads (which makes it an input *and* an
output, and gives the step a private copy) by assigning or deleting an item or
attribute (``df["z"] = 1``, ``obj.a = 1``, ``del d[k]``), ``x += ...``,
``setattr``/``delattr``, ``inplace=True``, a method in ``MUTATING_METHODS`` or
ending in ``_`` (torch), a draw from a random generator object (a method in
``DRAWS``, even when the result is used), a method call whose result is unused
unless the method is in ``PURE_METHODS``, a call of a function whose result is
unused (its name arguments change) unless it is in ``PURE_FUNCTIONS`` or
belongs to one of ``KNOWN_MODULES``, functions changing their first argument
(``IN_PLACE_ARG``: ``random.shuffle(lst)``), and functions defined in the cell
that change a global or a parameter, where they are called. A module is never
a step's value: ``sys.path.append(p)`` or ``pd.options.x = 1`` change shared
state, not ``sys`` or ``pd``. ``.plot``/``.hist``/``.boxplot`` draw with pyplot
and change only an axes-like receiver (``ax``, ``axs``, ``fig``...).

**Shared process state** (``state``; ``effects`` where the cell writes it):
labels ``random``, ``numpy.random``, ``torch.random``, ``pyplot``, ``cwd``,
``environ``, ``sys.path``, ``options:<module>`` and ``file:<path>`` for string
literal paths given to readers and writers, ``open``, ``Path`` and ``!``
commands. Modules are recognised through the cell's imports and, for names it
does not bind, the usual aliases ``CONVENTIONS``. Draws from global generators
are uses; seeding, styling, ``chdir``, environment/option changes and file
writes are effects.

**Warnings**: ``from m import *`` that cannot be listed; ``exec``/``eval``,
``globals()``/``locals()``/``vars()`` (names in strings are invisible to a
static analysis; literal strings are read as code).

The tables::

{tables}
"""
from __future__ import annotations

import ast
import builtins
import importlib.util
import inspect
import linecache
import os
import re
import shlex
import sys
from dataclasses import dataclass
from types import CodeType

from .errors import StepDefinitionError
from .fingerprint import code_digest
from .scopes import MODULE, Walker, root_name

_w = str.split
PURE_FUNCTIONS = frozenset(_w("""print display len repr str int float bool complex bytes isinstance issubclass type
    sorted sum min max abs round list dict set frozenset tuple enumerate zip range format id hash hex oct bin chr ord
    any all callable getattr hasattr iter map filter reversed divmod pow dir help super object slice ascii
    Markdown HTML Image"""))
PURE_METHODS = frozenset(_w("""head tail describe info copy to_csv to_string to_numpy to_dict to_list tolist to_json
    to_parquet to_excel to_pickle to_feather to_html to_latex to_markdown to_records to_frame sum mean median std var
    min max count nunique unique value_counts isna isnull notna notnull any all abs round astype groupby agg aggregate
    apply map merge join filter query sort_values sort_index reset_index set_index drop dropna fillna rename replace
    pivot pivot_table melt stack unstack corr cov cumsum cumprod diff pct_change shift rolling expanding resample
    sample nlargest nsmallest idxmax idxmin quantile reindex assign where mask clip explode get keys values items
    iterrows itertuples equals duplicated drop_duplicates memory_usage select_dtypes transpose dot show savefig
    get_figure get_xlim get_ylim get_legend_handles_labels predict predict_proba transform score decision_function
    get_params format split strip lstrip rstrip lower upper startswith endswith encode decode index find rfind
    reshape flatten ravel item numpy detach cpu clone display render summary"""))
MUTATING_METHODS = frozenset(_w("""append extend insert remove pop clear update setdefault popitem add discard sort
    reverse difference_update intersection_update symmetric_difference_update appendleft extendleft rotate
    __setitem__ __delitem__ resize put itemset fill fit partial_fit fit_transform fit_predict set_params
    load_state_dict"""))
DRAWS = frozenset(_w("""normal integers random uniform standard_normal choice permutation permuted shuffle poisson
    binomial exponential multivariate_normal gamma beta lognormal laplace logistic geometric gumbel hypergeometric
    multinomial dirichlet chisquare pareto rayleigh triangular vonmises wald weibull zipf negative_binomial
    standard_cauchy standard_exponential standard_gamma standard_t bytes randint randn rand random_sample gauss
    getrandbits randrange sample choices betavariate expovariate gammavariate lognormvariate normalvariate
    paretovariate weibullvariate randbytes"""))
AMBIGUOUS_DRAWS = frozenset(_w("sample choice bytes"))  # draws only from an rng-like name (df.sample is pandas)
IN_PLACE_ARG = frozenset(_w("shuffle copyto fill_diagonal place put putmask"))
PLOT_METHODS = frozenset(_w("plot hist boxplot"))
KNOWN_MODULES = frozenset(_w("""numpy pandas matplotlib seaborn scipy sklearn torch tensorflow os sys json pickle
    joblib math statistics time datetime re pathlib shutil glob logging warnings random itertools functools
    collections io csv subprocess IPython plotly altair polars pyarrow requests tqdm typing copy string textwrap
    operator asyncio"""))
CONVENTIONS = {n: n for n in _w("""os sys random numpy pandas matplotlib seaborn torch shutil pathlib json pickle
    joblib warnings logging math time re glob subprocess scipy sklearn datetime io csv tempfile asyncio""")}
CONVENTIONS.update(np="numpy", pd="pandas", plt="matplotlib.pyplot", sns="seaborn", mpl="matplotlib",
                   tf="tensorflow", Path="pathlib.Path")


def _rules(text: str) -> dict:
    """``prefix ... = label[!] ...`` lines -> {prefix: ((label, is_effect), ...)}; ``-`` means none."""
    table = {}
    for line in text.strip().splitlines():
        names, _, labels = line.partition("=")
        value = tuple((lab.rstrip("!"), lab.endswith("!")) for lab in _w(labels) if lab != "-")
        table.update(dict.fromkeys(_w(names), value))
    return table


_STYLE = "= pyplot! options:matplotlib!"
CALL_RULES = _rules(f"""
random.seed random.setstate = random!
random.Random random.SystemRandom = -
random = random
numpy.random.seed numpy.random.set_state = numpy.random!
numpy.random.default_rng numpy.random.Generator numpy.random.RandomState numpy.random.SeedSequence = -
numpy.random.BitGenerator numpy.random.PCG64 numpy.random.PCG64DXSM numpy.random.MT19937 numpy.random.Philox = -
numpy.random = numpy.random
torch.manual_seed torch.seed torch.set_rng_state torch.random.manual_seed torch.random.seed = torch.random!
torch.random.set_rng_state torch.cuda.manual_seed torch.cuda.manual_seed_all torch.cuda.set_rng_state = torch.random!
torch.random torch.rand torch.randn torch.randint torch.randperm torch.rand_like torch.randn_like = torch.random
torch.randint_like torch.bernoulli torch.multinomial torch.normal torch.poisson torch.nn.init = torch.random
matplotlib.pyplot.style.use matplotlib.pyplot.rc matplotlib.pyplot.rcdefaults matplotlib.pyplot.xkcd {_STYLE}
matplotlib.pyplot.switch_backend matplotlib.rc matplotlib.rcdefaults matplotlib.use matplotlib.style.use {_STYLE}
matplotlib.rc_file seaborn.set seaborn.set_theme seaborn.set_style seaborn.set_context seaborn.set_palette {_STYLE}
seaborn.set_color_codes seaborn.reset_defaults seaborn.reset_orig {_STYLE}
matplotlib.pyplot.style.context matplotlib.rc_context matplotlib.pyplot.rc_context = pyplot options:matplotlib
matplotlib.pyplot = pyplot
seaborn.load_dataset seaborn.get_dataset_names seaborn.color_palette seaborn.light_palette = -
seaborn.dark_palette seaborn.diverging_palette seaborn.cubehelix_palette seaborn.husl_palette = -
seaborn = pyplot
pandas.set_option pandas.reset_option = options:pandas!
pandas.get_option pandas.describe_option pandas.option_context = options:pandas
numpy.set_printoptions numpy.seterr numpy.seterrcall numpy.setbufsize numpy.set_string_function = options:numpy!
numpy.get_printoptions numpy.printoptions numpy.geterr numpy.errstate = options:numpy
torch.set_default_dtype torch.set_default_device torch.set_num_threads torch.set_printoptions = options:torch!
torch.use_deterministic_algorithms torch.set_float32_matmul_precision = options:torch!
warnings.filterwarnings warnings.simplefilter warnings.resetwarnings = options:warnings!
logging.basicConfig logging.disable = options:logging!
os.chdir os.fchdir = cwd!
os.getcwd pathlib.Path.cwd = cwd
os.putenv os.unsetenv = environ!
os.getenv = environ
""")
STORE_RULES = _rules("""
os.environ = environ!
sys.path = sys.path!
matplotlib.rcParams matplotlib.pyplot.rcParams = options:matplotlib! pyplot!
pandas.options = options:pandas!
""")
LOAD_RULES = _rules("""
os.environ = environ
sys.path = sys.path
matplotlib.pyplot = pyplot
matplotlib.rcParams matplotlib.pyplot.rcParams = options:matplotlib
pandas.options = options:pandas
""")
FILE_READERS = frozenset(_w("""open load loadtxt genfromtxt fromfile memmap imread listdir exists isfile isdir getsize
    getmtime stat glob iglob scandir walk open_dataset open_dataarray Path read_text read_bytes File"""))
FILE_WRITERS = frozenset(_w("""save savez savez_compressed savetxt savefig dump remove unlink rmdir mkdir makedirs
    rmtree rename replace copy copyfile copy2 copytree move write_text write_bytes touch tofile imsave write_image
    write_html"""))
SHELL_READERS = frozenset(_w("ls cat head tail wc du less more file stat find tree md5sum sha256sum"))
SHELL_WRITERS = frozenset(_w("rm mkdir cp mv touch rmdir unzip tar wget curl ln chmod tee gzip gunzip"))
CODE_MAGICS = {"time": True, "prun": True, "debug": True, "capture": True, "timeit": False}  # binds names?
_VALUE_OPTIONS = {"timeit": "nrp", "prun": "DlrsT", "debug": "b"}
_PATH_KWARGS = frozenset(_w("path fname file filename filepath_or_buffer path_or_buf"))
_PATH_RE = re.compile(r"[\w.~/\\:+@=,-]+\Z")
_DATA_EXT = re.compile(r"\.(csv|tsv|txt|json|jsonl|parquet|feather|arrow|pkl|pickle|npy|npz|h5|hdf5?|xlsx?|png|"
                       r"jpe?g|svg|pdf|gif|nc|zarr|db|sqlite|ya?ml|toml|pt|pth|ckpt|joblib|html|md|log|zip|gz|tar|"
                       r"bz2|xz|avro|orc|mat|tiff?|bmp|wav|mp3|mp4|xml|ini|cfg)\Z", re.I)
_RNG_NAME = re.compile(r"(^|_)(rng|prng|gen|generator|random_state|rs|rand|random)(\d*)(_|$)", re.I)
_AX_NAME = re.compile(r"(ax|axs|axes|fig|figure|g|grid)(\d*|_\w*)\Z|\w*_ax\Z")
_EXPAND_RE = re.compile(r"(?<!\{)\{([^{}]+)\}(?!\})|(?<!\$)\$([A-Za-z_][\w.]*)")
_NOT_INPUTS = frozenset(dir(builtins)) | {"display", "get_ipython", "__IPYTHON__"}
__doc__ = __doc__.format(tables="\n".join(f"    {k}: {' '.join(sorted(v))}" for k, v in [
    ("PURE_FUNCTIONS", PURE_FUNCTIONS), ("PURE_METHODS", PURE_METHODS), ("MUTATING_METHODS", MUTATING_METHODS),
    ("DRAWS", DRAWS), ("IN_PLACE_ARG", IN_PLACE_ARG), ("KNOWN_MODULES", KNOWN_MODULES),
    ("CONVENTIONS", [f"{k}={v}" for k, v in CONVENTIONS.items()])]))


def _lookup(table: dict, path: str):
    while path:
        if path in table:
            return table[path]
        path = path.rpartition(".")[0]
    return None


def _literal(node) -> str | None:
    return node.value if type(node) is ast.Constant and type(node.value) is str else None


def _looks_like_path(s: str, known: bool) -> bool:
    return 0 < len(s) < 256 and "://" not in s and bool(_PATH_RE.match(s)) and (
        known or "/" in s or bool(_DATA_EXT.search(s)))


def _strip_options(magic: str, line: str) -> str:
    """The code of ``%timeit -n 10 x = f()`` (options removed)."""
    s = line.lstrip()
    while s.startswith("-"):
        opt, _, s = s.partition(" ")
        if opt.startswith("--") or (len(opt) == 2 and opt[1] in _VALUE_OPTIONS.get(magic, "")):
            s = s.lstrip().partition(" ")[2]  # the option's value
        s = s.lstrip()
    return s


def star_names(module: str) -> tuple[list | None, str]:
    """The names ``from module import *`` binds (importing *module* if needed), or (None, why not)."""
    mod = sys.modules.get(module)
    if mod is None:
        try:
            if importlib.util.find_spec(module) is None:
                return None, "it cannot be found"
            mod = importlib.import_module(module)
        except BaseException as exc:  # noqa: BLE001 - any import failure means "unknown"
            return None, f"importing it failed: {type(exc).__name__}"
    names = getattr(mod, "__all__", None)
    names = [n for n in dir(mod) if not n.startswith("_")] if names is None else list(names)
    return [n for n in names if isinstance(n, str) and n.isidentifier()], ""


class CellWalker(Walker):
    """:class:`~nbsteps.scopes.Walker` plus nbsteps' rules (see the module docstring)."""

    CONVENTIONS = CONVENTIONS

    def touch(self, table: dict, path: str, fallback: bool = False) -> None:
        rule = _lookup(table, path)
        if rule is None and fallback:  # an attribute of a library changed: one of its options
            rule = ((f"options:{path.partition('.')[0]}", True),)
        for label, effect in rule or ():
            self.label(label, effect)

    def on_load(self, path: str) -> None:
        self.touch(LOAD_RULES, path)

    def on_changed(self, node) -> None:
        key = self._ns_key(node)
        if key:
            return self.store(key)
        path = self.path(node)
        if path:
            self.touch(STORE_RULES, path, fallback=True)
        else:
            self.mutate(root_name(node))

    def visit_Subscript(self, node) -> None:
        key = self._ns_key(node) if type(node.ctx) is ast.Load else None
        if key:
            self.load(key)
        super().visit_Subscript(node)

    def _ns_key(self, node) -> str | None:
        """``x`` for ``globals()["x"]``."""
        v = getattr(node, "value", None)
        if type(node) is ast.Subscript and type(v) is ast.Call and type(v.func) is ast.Name and not v.args \
                and v.func.id in ("globals", "locals", "vars"):
            key = _literal(node.slice)
            return key if key and key.isidentifier() else None
        return None

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def mutate_args(self, node, only_first: bool = False) -> None:
        args = node.args[:1] if only_first else node.args + [k.value for k in node.keywords]
        for a in args:
            self.mutate(root_name(a))

    # -- calls ---------------------------------------------------------------------
    def after_call(self, node: ast.Call, used: bool) -> None:
        func = node.func
        path = self.path(func)
        if path:
            self.module_call(path, node, used)
        elif type(func) is ast.Name:
            self.name_call(func.id, node, used)
        elif type(func) is ast.Attribute:
            self.method_call(func, node, used)

    def module_call(self, path: str, node, used: bool) -> None:
        self.touch(CALL_RULES, path)
        head, _, last = path.rpartition(".")
        if path.startswith("torch.nn.") and last[:1].isupper():
            self.label("torch.random")  # layers draw their initial weights
        if last in IN_PLACE_ARG or (last.endswith("_") and not last.endswith("__")):
            self.mutate_args(node, only_first=True)
        elif last in MUTATING_METHODS and _lookup(STORE_RULES, head):
            self.touch(STORE_RULES, head)  # sys.path.append(p), os.environ.update(...)
        elif not used and path.partition(".")[0] not in KNOWN_MODULES:
            self.mutate_args(node)
        self.files(last, node)

    def name_call(self, name: str, node, used: bool) -> None:
        if not (self.scope.kind is MODULE or self.is_global(name)):
            return self.mutate_args(node) if not used else None
        f = self.funcs.get(name)
        if f is not None:  # a function of the cell: the arguments it changes
            for p, a in list(zip(f.params, node.args)) + [(k.arg, k.value) for k in node.keywords]:
                if p in f.param_mut:
                    self.mutate(root_name(a))
            return
        if name in self.bound or name not in _NOT_INPUTS and name not in PURE_FUNCTIONS:
            self.files(name, node)
            return self.mutate_args(node) if not used else None
        line = getattr(node, "lineno", "?")
        if name in ("setattr", "delattr"):
            self.mutate_args(node, only_first=True)
        elif name in ("exec", "eval"):
            self.dynamic(name, node, line)
        elif name in ("globals", "locals", "vars") and not node.args:
            self.warn(f"nbsteps cannot see names used through {name}() (line {line}): use the names directly "
                      f"(or order steps with --after).")
        elif name == "open":
            mode = _literal(node.args[1]) if len(node.args) > 1 else None
            mode = next((_literal(k.value) for k in node.keywords if k.arg == "mode"), mode) or "r"
            target = _literal(node.args[0]) if node.args else None
            if target and _looks_like_path(target, True):
                self.label("file:" + os.path.normpath(target), any(c in mode for c in "wax+"))
        elif name not in PURE_FUNCTIONS and not used:
            self.mutate_args(node)

    def method_call(self, func: ast.Attribute, node, used: bool) -> None:
        meth, recv = func.attr, func.value
        root = root_name(recv)
        keywords = {k.arg: k.value for k in node.keywords}
        if meth in PLOT_METHODS or (type(recv) is ast.Attribute and recv.attr == "plot"):
            if root and _AX_NAME.match(root):
                self.mutate(root)  # ax.plot(...) draws on that axes
            else:
                self.label("pyplot")  # df.plot(), s.hist(): pandas draws with pyplot
        elif (meth in MUTATING_METHODS or (meth.endswith("_") and not meth.endswith("__"))
              or getattr(keywords.get("inplace"), "value", None) is True):
            self.mutate(root)
        elif meth in DRAWS and (meth not in AMBIGUOUS_DRAWS or (root and _RNG_NAME.search(root))):
            self.mutate(root)  # drawing advances the generator, even when the draw is used
        elif not used and meth not in PURE_METHODS:
            self.mutate(root)
        elif meth == "sample" and "random_state" not in keywords:
            self.label("numpy.random")  # pandas' sample draws from numpy's global generator
        if meth in IN_PLACE_ARG:
            self.mutate_args(node, only_first=True)  # rng.shuffle(a)
        if meth in ("query", "eval") and node.args and _literal(node.args[0]):
            for name in re.findall(r"@([A-Za-z_]\w*)", _literal(node.args[0])):
                self.load(name)  # df.query("a > @limit")
        if type(recv) is ast.Call and self.path(recv.func) == "pathlib.Path":
            self.files(meth, recv)  # Path("out.csv").write_text(...)
        else:
            self.files(meth, node)

    def files(self, name: str, node) -> None:
        if name in PURE_FUNCTIONS or name in ("write", "writelines", "chdir"):  # data or a directory, not a file
            return
        writer = name in FILE_WRITERS or name.startswith(("to_", "save", "write", "dump"))
        known = writer or name in FILE_READERS or name.startswith(("read_", "load"))
        for a in node.args + [k.value for k in node.keywords if k.arg in _PATH_KWARGS]:
            s = _literal(a)
            if s and _looks_like_path(s, known):
                self.label("file:" + os.path.normpath(s), writer)

    def dynamic(self, name: str, node, line) -> None:
        code = _literal(node.args[0]) if node.args else None
        try:
            tree = ast.parse(code, mode="eval" if name == "eval" else "exec") if code is not None else None
        except SyntaxError:
            tree = None
        if tree is None:
            return self.warn(f"nbsteps cannot see dependencies inside exec/eval strings: {name}() at line {line}; "
                             f"use the names directly (or order steps with --after).")
        names = sorted({n.id for n in ast.walk(tree) if type(n) is ast.Name})
        self.visit_all(tree.body if name == "exec" else [tree.body])
        self.warn(f"nbsteps cannot see dependencies inside exec/eval strings: {name}() at line {line} "
                  f"(read as code from its literal string: {', '.join(names) or 'no names'}); a string built at "
                  f"run time would be invisible.")

    def on_import_star(self, module: str, level: int) -> list:
        names, why = star_names(module) if not level else (None, "it is a relative import")
        if names is None:
            self.warn(f"from {'.' * level}{module} import *: nbsteps cannot list the names it binds ({why}); "
                      f"import the names explicitly.")
        return names or []

    # -- IPython's transformed syntax: get_ipython().run_line_magic(...) etc. ------
    def on_call(self, node: ast.Call, used: bool) -> bool:
        func = node.func
        v = getattr(func, "value", None)
        if not (type(v) is ast.Call and type(v.func) is ast.Name and v.func.id == "get_ipython"):
            return False
        args = [_literal(a) for a in node.args]
        if func.attr == "run_line_magic" and len(args) >= 2 and None not in args[:2]:
            self.line_magic(args[0], args[1])
        elif func.attr == "run_cell_magic" and len(args) >= 3 and None not in args[:3]:
            self.cell_magic(*args[:3])
        elif func.attr in ("system", "getoutput") and args and args[0] is not None:
            self.shell(args[0])
        else:
            self.visit_all(node.args)
        return True

    def code(self, source: str, binds: bool = True) -> None:
        try:
            body = ast.parse(source).body
        except SyntaxError:
            return
        if binds:
            self.visit_all(body)
        else:  # %timeit runs the code inside a function: its names stay there
            self.visit(ast.FunctionDef("_", ast.arguments([], [], None, [], [], None, []), body, [], None))
            self.funcs.get("_") and self.read_top("_")
            self.bound.discard("_"), self.outputs.pop("_", None), self.funcs.pop("_", None)

    def line_magic(self, magic: str, line: str) -> None:
        if magic in CODE_MAGICS:
            return self.code(_strip_options(magic, line), CODE_MAGICS[magic])
        if magic in ("pinfo", "pinfo2", "pdef", "pdoc", "psource", "pfile"):
            return self.code(line)
        self.expand(line)
        if magic == "cd":
            self.label("cwd", True)
        elif magic in ("pwd", "dhist", "bookmark"):
            self.label("cwd")
        elif magic in ("env", "set_env"):
            self.label("environ", "=" in line or len(line.split()) > 1)
        elif magic in ("matplotlib", "pylab"):
            self.label("pyplot", True)
        elif magic in ("sx", "system", "sc"):
            self.shell(line)
        elif magic in SHELL_READERS or magic in SHELL_WRITERS:
            self.shell(f"{magic} {line}")
        elif magic == "run":
            self.warn(f"%run {line.strip()}: nbsteps cannot see what the script reads or writes.")

    def cell_magic(self, magic: str, line: str, body: str) -> None:
        if magic in CODE_MAGICS:
            if magic == "timeit":
                self.code(_strip_options(magic, line), False)
            self.code(body, CODE_MAGICS[magic])
            out = [t for t in line.split() if not t.startswith("-")]
            if magic == "capture" and out:
                self.store(out[-1])
        elif magic == "writefile":
            target = [t for t in line.split() if not t.startswith("-")]
            if target:
                self.label("file:" + os.path.normpath(target[-1]), True)

    def expand(self, text: str) -> None:
        """Names IPython substitutes in ``{expr}`` and ``$name``."""
        for braces, dollar in _EXPAND_RE.findall(text):
            try:
                self.visit(ast.parse((braces or dollar).rstrip("."), mode="eval").body)
            except SyntaxError:
                pass

    def shell(self, cmd: str) -> None:
        self.expand(cmd)
        try:
            tokens = shlex.split(_EXPAND_RE.sub("", cmd))
        except ValueError:
            return
        prog = os.path.basename(tokens[0]) if tokens else ""
        writer, known = prog in SHELL_WRITERS, prog in SHELL_READERS or prog in SHELL_WRITERS
        redirect = False
        for tok in tokens[1:]:
            if tok in (">", ">>") or tok.startswith(">"):
                redirect, tok = True, tok.lstrip(">")
            if tok and not tok.startswith("-") and tok not in ("|", "&&", ";", "||") and (
                    redirect or _looks_like_path(tok, known)):
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
    state: frozenset = frozenset()    # labels of process-wide state the cell touches
    effects: frozenset = frozenset()  # the labels it writes (seeding, styling, chdir, files written...)
    warnings: tuple = ()              # what nbsteps cannot see (exec, unresolvable import *)


def step_filename(name: str) -> str:
    return f"<step {name}>"


_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT


def analyse_cell(name: str, source: str, what: str = "step") -> CellAnalysis:
    """Analyse and compile a step's source; a SyntaxError becomes a clear error."""
    filename = step_filename(name)
    try:
        tree = ast.parse(source, filename=filename)
        walker = CellWalker().run(tree.body)
        body = tree.body
        result_expr = None
        if body and isinstance(body[-1], ast.Expr) and not source.rstrip().endswith(";"):
            result_expr = ast.Expression(body=body[-1].value)
            body = body[:-1]
        # dont_inherit: nbsteps' own `from __future__ import annotations` must not reach step code
        body_code = compile(ast.Module(body=body, type_ignores=[]), filename, "exec", _FLAGS, dont_inherit=True)
        result_code = compile(result_expr, filename, "eval", _FLAGS, True) if result_expr is not None else None
    except SyntaxError as exc:  # also 'return' outside function, found when compiling
        text = (exc.text or "").strip()
        where = f"line {exc.lineno}" + (f": {text}" if text else "")
        raise StepDefinitionError(
            f"syntax error in {what} {name!r} at {where} ({exc.msg}). Fix the cell and run it again"
            + ("; the previous definition (if any) stays registered." if what == "step" else ".")
        ) from None
    # register the source so tracebacks through the step show its lines
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    mutated = frozenset(walker.mutated)
    inputs = frozenset(n for n in walker.inputs if n not in _NOT_INPUTS or n in mutated)
    digest = code_digest(body_code) + (code_digest(result_code) if result_code is not None else "")
    return CellAnalysis(source, filename, inputs, tuple(walker.outputs), mutated, result_code is not None, digest,
                        body_code, result_code, frozenset(walker.state), frozenset(walker.effects),
                        tuple(walker.warnings))


def run_code(code: CodeType, ns: dict):
    """``exec``/``eval`` *code* in *ns*; a cell with top-level ``await`` is run to completion
    (on a fresh event loop; on a thread of its own when this thread runs a loop, as in ipykernel)."""
    value = eval(code, ns)
    if not code.co_flags & inspect.CO_COROUTINE:
        return value
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    def complete(coro):
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(coro)
        finally:
            loop.close()
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return complete(value)
    with ThreadPoolExecutor(1, thread_name_prefix="nbsteps-await") as pool:
        return pool.submit(complete, value).result()


@dataclass(frozen=True)
class Analysis:
    """What nbsteps sees in a cell (:func:`analyse`)."""

    inputs: set
    outputs: set
    mutated: set
    state: set
    effects: set
    warnings: tuple
    has_result: bool


_TRANSFORMER = []


def analyse(cell_source: str) -> Analysis:
    """Analyse a cell's raw text (IPython syntax included; a leading ``%%step`` line is skipped)."""
    text = cell_source
    if text.lstrip().startswith("%%step"):
        text = text.lstrip().partition("\n")[2]
    try:
        if not _TRANSFORMER:
            from IPython.core.inputtransformer2 import TransformerManager
            _TRANSFORMER.append(TransformerManager())
        text = _TRANSFORMER[0].transform_cell(text)
    except ImportError:
        pass
    a = analyse_cell("cell", text, what="cell")
    return Analysis(set(a.inputs), set(a.outputs), set(a.mutated), set(a.state), set(a.effects), a.warnings,
                    a.has_result)
