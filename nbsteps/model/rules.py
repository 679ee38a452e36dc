"""nbsteps' analysis rules as tables: which calls and methods change what, which touch shared
process state, which read or write files (used by :mod:`nbsteps.model.analysis`, whose
docstring lists them)."""

from __future__ import annotations

import builtins
import re

_w = str.split
PURE_FUNCTIONS = frozenset(
    _w("""print display len repr str int float bool complex bytes isinstance issubclass type sorted sum min
    max abs round list dict set frozenset tuple enumerate zip range format id hash any all callable getattr
    hasattr iter map filter reversed divmod pow dir help super object slice Markdown HTML""")
)
PURE_METHODS = frozenset(
    _w("""head tail describe info copy to_csv to_string to_numpy to_dict to_list tolist to_json to_parquet
    to_excel to_pickle to_html to_latex to_markdown to_frame sum mean median std var min max count nunique
    unique value_counts isna isnull notna notnull any all abs round astype groupby agg aggregate apply map
    merge join filter query sort_values sort_index reset_index set_index drop dropna fillna rename replace
    pivot pivot_table melt stack unstack corr cov cumsum diff pct_change shift rolling resample sample
    nlargest nsmallest idxmax idxmin quantile reindex assign where mask clip explode get keys values items
    iterrows itertuples equals duplicated drop_duplicates transpose dot show savefig get_figure predict
    predict_proba transform score get_params format split strip lower upper startswith endswith encode decode
    index find reshape flatten ravel item numpy cpu clone""")
)
# methods that change their receiver even when their result is used (``v = lst.pop()``,
# ``Xs = scaler.fit_transform(X)``): needed before anything ran, when no object is known to resolve
# the hints keyed by type on (nbsteps.model.hints); a method whose result is unused changes its
# receiver anyway unless PURE_METHODS
MUTATING_METHODS = frozenset(
    _w("""pop setdefault popitem fit partial_fit fit_transform fit_predict set_params load_state_dict""")
)
IN_PLACE_ARG = frozenset(_w("shuffle copyto fill_diagonal place put putmask"))
# libraries that never draw from a global random generator (numpy.random has its own rules)
NO_GLOBAL_DRAWS = frozenset(
    _w("""numpy pandas matplotlib math os sys json re pathlib time datetime IPython warnings logging
    collections itertools functools string textwrap operator io csv shutil glob copy typing pickle""")
)
KNOWN_MODULES = frozenset(
    _w("""numpy pandas matplotlib seaborn scipy sklearn torch tensorflow os sys json pickle joblib math
    statistics time datetime re pathlib shutil glob logging warnings random itertools functools collections io
    csv subprocess IPython plotly altair polars pyarrow requests tqdm typing copy string textwrap operator
    asyncio""")
)
CONVENTIONS = {
    n: n
    for n in _w("""os sys random numpy pandas matplotlib seaborn torch shutil pathlib json pickle joblib
    warnings logging math time re glob subprocess scipy sklearn datetime io csv tempfile asyncio""")
} | dict(
    np="numpy",
    pd="pandas",
    plt="matplotlib.pyplot",
    sns="seaborn",
    mpl="matplotlib",
    tf="tensorflow",
    Path="pathlib.Path",
)


def _rules(text: str) -> dict:
    """``prefix ... = label[!] ...`` by line or ``;`` (``a.{b,c}``: a.b, a.c; ``!``: an effect;
    ``-``: none)."""
    table = {}
    for line in re.split(r"[;\n]", text.strip()):
        names, _, labels = line.partition("=")
        value = tuple((x.rstrip("!"), x[-1] == "!") for x in _w(labels) if x != "-")
        for word in _w(names):
            head, _, alts = word.partition("{")
            table.update(
                dict.fromkeys([head + x for x in alts.rstrip("}").split(",")] if alts else [word], value)
            )
    return table


CALL_RULES = _rules("""
random.{seed,setstate} = random! ; random.{Random,SystemRandom} = - ; random = random
numpy.random.{seed,set_state} = numpy.random! ; numpy.random = numpy.random
numpy.random.{default_rng,Generator,RandomState,SeedSequence,BitGenerator,PCG64,MT19937,Philox,SFC64} = -
torch.{manual_seed,seed,set_rng_state} torch.cuda.{manual_seed,manual_seed_all} = torch.random!
torch.{rand,randn,randint,randperm,rand_like,randn_like,bernoulli,multinomial,normal} = torch.random
torch.random = torch.random
matplotlib.pyplot.{rc,rcdefaults,style.use} = pyplot! options:matplotlib!
matplotlib.{rc,rcdefaults,use,style.use} = pyplot! options:matplotlib!
seaborn.{set,set_theme,set_style,set_context,set_palette,reset_defaults} = pyplot! options:matplotlib!
matplotlib.pyplot seaborn = pyplot ; pandas.{set_option,reset_option} = options:pandas!
numpy.{set_printoptions,seterr} = options:numpy! ; os.chdir = cwd! ; os.{putenv,unsetenv} = environ!
""")
STORE_RULES = _rules("""
os.environ = environ! ; sys.path = sys.path! ; pandas.options = options:pandas! ; matplotlib.pyplot = pyplot!
matplotlib.rcParams matplotlib.pyplot.rcParams = options:matplotlib! pyplot!
""")
LOAD_RULES = {k: tuple((label, False) for label, _ in v) for k, v in STORE_RULES.items()}
FILE_READERS = frozenset(
    _w("""open load loadtxt genfromtxt fromfile imread listdir exists isfile isdir stat glob Path read_text
    read_bytes open_dataset""")
)
FILE_WRITERS = frozenset(
    _w("""save savez savez_compressed savetxt savefig dump remove unlink rmdir mkdir makedirs rmtree rename
    replace copy copyfile copytree move write_text write_bytes touch tofile to_csv to_parquet to_json to_excel
    to_pickle to_feather to_hdf to_html to_latex to_markdown to_xml to_netcdf to_zarr to_orc to_stata""")
)
SHELL_READERS = frozenset(_w("ls cat head tail wc du less file stat find tree"))
SHELL_WRITERS = frozenset(_w("rm mkdir cp mv touch rmdir unzip tar wget curl ln tee"))
# magics whose argument is code: do its names stay in the cell? Options taking a value.
CODE_MAGICS = {
    "time": (True, ""),
    "prun": (True, "DlrsT"),
    "debug": (True, "b"),
    "capture": (True, ""),
    "timeit": (False, "nrp"),
}
_PATH_KWARGS = frozenset(_w("path fname file filename filepath_or_buffer path_or_buf"))
_PATH_RE = re.compile(r"[\w.~/\\:+@=,-]+\Z")
_DATA_EXT = re.compile(
    r"\.(csv|tsv|txt|jsonl?|parquet|feather|pkl|pickle|npy|npz|h5|hdf5?|xlsx?|png|jpe?g|svg|pdf|"
    r"gif|nc|zarr|db|sqlite|ya?ml|toml|pt|pth|ckpt|joblib|html|md|log|zip|gz|tar|xml|orc|dta)\Z",
    re.I,
)
_EXPAND_RE = re.compile(r"(?<!\{)\{([^{}]+)\}(?!\})|(?<!\$)\$([A-Za-z_][\w.]*)")
_NOT_INPUTS = frozenset(dir(builtins)) | {"display", "get_ipython", "__IPYTHON__"}

#: methods that may keep state on their receiver even when their result is used (statsmodels results cache
#: the prediction dates on their model: predict/forecast/append of one results object from two parallel
#: steps race; ``append``/``extend`` whose result is used are such methods, list.append returns None);
#: steps calling them on the same object keep notebook order (``order`` edges: nothing stale, nothing
#: blocked)
CACHING_METHODS = frozenset(
    _w("""predict forecast get_prediction get_forecast plot_predict simulate append extend""")
)
