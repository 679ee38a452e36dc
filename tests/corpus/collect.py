"""Runs INSIDE a kernel (as the source of one hidden cell): digests the user
namespace and prints one JSON line after MARK.

Kept free of names in the user namespace: the harness executes this file's
source with ``exec(src, {"NS": user_ns, "OPTIONS": {...}})``.

Every user-visible value (not a module, function, class or IPython's own names)
becomes a flat dict ``{path: digest}``: scalars by repr, arrays by dtype, shape
and a hash of their bytes, pandas objects by ``hash_pandas_object``, sklearn
estimators by their parameters and fitted attributes, matplotlib figures and
axes by counts of what they draw, containers element by element, other objects
by class and public attributes (two levels). Nothing with a memory address
(``0x7f...``) ever enters a digest.
"""

import functools as _functools
import hashlib as _hashlib
import json as _json
import re as _re
import sys as _sys
import types as _types

MARK = "@@nbsteps-corpus@@"
MAX_LEAVES = 3000
MAX_ITEMS = 40  # containers longer than this are one leaf
MAX_DEPTH = 4

_ADDRESS = _re.compile(r"0x[0-9a-fA-F]{6,}")
_SKIP_TYPES = (_types.ModuleType, _types.FunctionType, _types.BuiltinFunctionType, _types.MethodType, type)


_NO_DEFAULT = object()


def _h(data: bytes) -> str:
    return _hashlib.sha256(data).hexdigest()[:16]


def _safe_repr(v) -> str:
    try:
        r = repr(v)
    except Exception as exc:  # pragma: no cover - odd objects
        return f"<repr failed: {type(exc).__name__}>"
    if _ADDRESS.search(r):
        return f"<{type(v).__module__}.{type(v).__qualname__}>"
    return r


class _Digest:
    def __init__(self):
        self.out = {}
        self.np = _sys.modules.get("numpy")
        self.pd = _sys.modules.get("pandas")
        mpl = _sys.modules.get("matplotlib.artist")
        self.Artist = getattr(mpl, "Artist", None)
        fig = _sys.modules.get("matplotlib.figure")
        self.Figure = getattr(fig, "FigureBase", None) or getattr(fig, "Figure", None)
        axes = _sys.modules.get("matplotlib.axes")
        self.Axes = getattr(axes, "Axes", None)

    # one compact digest for a whole (sub)value
    def single(self, v, depth=0) -> str:
        sub = _Digest()
        sub.visit(v, "", depth)
        return _h(_json.dumps(sorted(sub.out.items())).encode())

    def leaf(self, path, text):
        if len(self.out) >= MAX_LEAVES:
            self.out["…"] = "truncated"
            return
        self.out[path] = text

    def visit(self, v, path, depth):
        """Digest *v* under *path*: the first kind of value it is decides how."""
        if (
            self._scalar(v, path)
            or self._numpy(v, path, depth)
            or self._pandas_or_drawing(v, path)
            or self._xarray(v, path)
            or self._polars(v, path, depth)
            or self._container(v, path, depth)
            or self._opaque(v, path)
            or self._estimator(v, path, depth)
        ):
            return
        self._object(v, path, depth)

    def _scalar(self, v, path) -> bool:
        """None, numbers, strings and bytes: their repr (hashed when long)."""
        if v is None or isinstance(v, (bool, int, float, complex, str, bytes)):
            r = repr(v)
            self.leaf(path, r if len(r) <= 100 else f"{type(v).__name__}[{len(v)}]:{_h(r.encode())}")
            return True
        return False

    def _numpy(self, v, path, depth) -> bool:
        """NumPy arrays (dtype, shape, bytes; object arrays element by element) and scalars."""
        np = self.np
        if np is None:
            return False
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                self.leaf(
                    path,
                    f"ndarray{v.shape}O:"
                    + _h("|".join(self.single(x, depth + 1) for x in v.ravel()).encode()),
                )
            else:
                self.leaf(path, f"ndarray{v.shape}{v.dtype.str}:{_h(np.ascontiguousarray(v).tobytes())}")
            return True
        if isinstance(v, np.generic):
            self.leaf(path, f"{type(v).__name__}:{_safe_repr(v.item())}")
            return True
        return False

    def _pandas_or_drawing(self, v, path) -> bool:
        """pandas objects by their hash; matplotlib figures, axes and artists by what they draw."""
        pd = self.pd
        if pd is not None and isinstance(v, (pd.DataFrame, pd.Series, pd.Index)):
            self.leaf(path, self._pandas(v))
        elif self.Figure is not None and isinstance(v, self.Figure):
            self.leaf(path, "Figure:" + ";".join(self._axes(ax) for ax in v.axes))
        elif self.Axes is not None and isinstance(v, self.Axes):
            self.leaf(path, "Axes:" + self._axes(v))
        elif self.Artist is not None and isinstance(v, self.Artist):
            self.leaf(path, self._artist(v))
        else:
            return False
        return True

    def _xarray(self, v, path) -> bool:
        """xarray's objects, which keep their state in slots: every variable (data and
        coordinates) by its dims, values and attrs, the object's attrs and name; a DataTree
        node by node."""
        xr = _sys.modules.get("xarray")
        if xr is None:
            return False
        tree = getattr(xr, "DataTree", None)
        if tree is not None and isinstance(v, tree):
            nodes = [
                f"{node.path}={self._xr_variables(node.to_dataset(inherit=False))}" for node in v.subtree
            ]
            self.leaf(path, f"DataTree[{len(nodes)}]:" + _h("|".join(nodes).encode()))
        elif isinstance(v, xr.Dataset):
            self.leaf(path, "Dataset:" + self._xr_variables(v))
        elif isinstance(v, xr.DataArray):
            variables = self._xr_variables(v.coords.to_dataset())
            self.leaf(
                path,
                f"DataArray name={_safe_repr(v.name)}:"
                + _h((self._xr_variable(v.variable) + "|" + variables).encode()),
            )
        elif isinstance(v, xr.Variable):
            self.leaf(path, "Variable:" + _h(self._xr_variable(v).encode()))
        else:
            return False
        return True

    def _xr_variables(self, ds) -> str:
        parts = [f"{k!s}:{k in ds.coords}:{self._xr_variable(x)}" for k, x in ds.variables.items()]
        return _h(("|".join(sorted(parts)) + "|attrs=" + self.single(dict(ds.attrs))).encode())

    def _xr_variable(self, x) -> str:
        return f"{x.dims}{self.single(self.np.asarray(x.values))}attrs={self.single(dict(x.attrs))}"

    def _polars(self, v, path, depth) -> bool:
        """polars' objects, whose state is a Rust object (``_df``, ``_s``, ``_ldf``, ``_pyexpr``)
        the attribute walk cannot see: a DataFrame by its shape, schema and values column by
        column, a Series by its name, dtype and values, a LazyFrame by its unoptimized plan
        and what it collects to (the corpus's frames are small), an expression by its text.
        Values, not memory layout: two frames equal in values but chunked differently (a
        rechunk, a pickle round trip) are the same."""
        pl = _sys.modules.get("polars")
        if pl is None:
            return False
        if isinstance(v, pl.DataFrame):
            cols = "|".join(f"{n}:{t}:{self._pl_values(v.get_column(n), depth)}" for n, t in v.schema.items())
            self.leaf(path, f"DataFrame{v.shape}:" + _h(cols.encode()))
        elif isinstance(v, pl.Series):
            self.leaf(
                path, f"Series name={_safe_repr(v.name)} {v.dtype}[{v.len()}]:{self._pl_values(v, depth)}"
            )
        elif isinstance(v, pl.LazyFrame):
            try:
                plan = v.explain(optimized=False)
            except Exception as exc:
                plan = f"<explain failed: {type(exc).__name__}>"
            try:
                frame = self.single(v.collect(), depth + 1)
            except Exception as exc:
                frame = f"<collect failed: {type(exc).__name__}>"
            self.leaf(path, f"LazyFrame:{_h(_ADDRESS.sub('0x', plan).encode())}:{frame}")
        elif isinstance(v, pl.Expr):
            self.leaf(path, "Expr:" + _h(_ADDRESS.sub("0x", str(v)).encode()))
        else:
            return False
        return True

    def _pl_values(self, s, depth) -> str:
        try:
            values = s.to_list()
        except Exception as exc:  # pragma: no cover - a dtype with no Python form
            return f"<to_list failed: {type(exc).__name__}>"
        return self.single(values, depth + 1) if values else "[]"

    def _container(self, v, path, depth) -> bool:
        """Lists, tuples and dicts element by element (one hashed leaf when long
        or deep); sets as one hashed leaf, whatever their order."""
        t = type(v)
        if isinstance(v, (list, tuple)):
            if len(v) > MAX_ITEMS or depth >= MAX_DEPTH:
                self.leaf(
                    path,
                    f"{t.__name__}[{len(v)}]:" + _h("|".join(self.single(x, depth + 1) for x in v).encode()),
                )
                return True
            self.leaf(path, f"{t.__name__}[{len(v)}]")
            for i, x in enumerate(v):
                self.visit(x, f"{path}[{i}]", depth + 1)
            return True
        if isinstance(v, dict):
            keys = list(v.keys())
            if len(keys) > MAX_ITEMS or depth >= MAX_DEPTH:
                self.leaf(
                    path,
                    f"dict[{len(v)}]:"
                    + _h(
                        "|".join(
                            _safe_repr(k) + "=" + self.single(x, depth + 1) for k, x in v.items()
                        ).encode()
                    ),
                )
                return True
            self.leaf(path, f"dict[{len(v)}]")
            for k in keys:
                self.visit(v[k], f"{path}[{_safe_repr(k)}]", depth + 1)
            return True
        if isinstance(v, (set, frozenset)):
            self.leaf(
                path,
                f"{t.__name__}[{len(v)}]:"
                + _h("|".join(sorted(self.single(x, depth + 1) for x in v)).encode()),
            )
            return True
        return False

    def _opaque(self, v, path) -> bool:
        """Modules, functions, classes and callables without state: only their kind."""
        if isinstance(v, _SKIP_TYPES) or callable(v) and not hasattr(v, "__dict__"):
            self.leaf(path, f"<{type(v).__name__}>")
            return True
        return False

    def _estimator(self, v, path, depth) -> bool:
        """sklearn estimators: their class, parameters and fitted attributes."""
        t = type(v)
        if not (hasattr(v, "get_params") and (t.__module__ or "").startswith("sklearn")):
            return False
        self.leaf(path, f"{t.__module__}.{t.__qualname__}")
        if depth < MAX_DEPTH:
            try:
                params = v.get_params(deep=False)
            except Exception:
                params = {}
            for k in sorted(params):
                self.visit(params[k], f"{path}.{k}", depth + 1)
            for k in sorted(getattr(v, "__dict__", {})):
                if k.endswith("_") and not k.startswith("_"):
                    self.visit(getattr(v, k), f"{path}.{k}", depth + 1)
        return True

    def _object(self, v, path, depth) -> None:
        """Anything else: its class, then its public attributes two levels down
        (not those the class gives the same), or its repr when it has no
        ``__dict__`` and the repr is not ``<...>``."""
        t = type(v)
        self.leaf(path, f"{t.__module__}.{t.__qualname__}")
        d = getattr(v, "__dict__", None)
        if isinstance(d, dict) and depth < 2:
            for k in sorted(k for k in d if isinstance(k, str) and not k.startswith("_"))[:MAX_ITEMS]:
                x = d[k]
                if isinstance(x, _SKIP_TYPES):
                    continue
                default = getattr(t, k, _NO_DEFAULT)
                if hasattr(default, "__set__"):
                    continue  # a property of the class: reading obj.k never gives this entry
                if isinstance(default, _functools.cached_property):
                    continue  # a cache its first read filled (G.edges): obj.k is the same either way
                if (
                    default is not _NO_DEFAULT
                    and not callable(default)
                    and self.single(default, depth + 1) == self.single(x, depth + 1)
                ):
                    continue  # the class's value: reading obj.k gives the same either way
                self.visit(x, f"{path}.{k}", depth + 1)
        elif d is None:
            r = _safe_repr(v)
            if not r.startswith("<"):
                self.leaf(path, f"{t.__qualname__}:{r if len(r) <= 100 else _h(r.encode())}")

    def _pandas(self, v) -> str:
        pd, np = self.pd, self.np
        kind = type(v).__name__
        shape = getattr(v, "shape", ())
        head = f"{kind}{shape}"
        try:
            if isinstance(v, pd.DataFrame):
                head += (
                    f" cols={_h(repr(list(map(str, v.columns))).encode())}"
                    f" dtypes={_h(str(list(map(str, v.dtypes))).encode())}"
                )
            elif isinstance(v, pd.Series):
                head += f" name={_safe_repr(v.name)} dtype={v.dtype}"
            else:
                head += f" dtype={v.dtype}"
        except Exception:
            pass
        try:
            if isinstance(v, pd.Index):
                hashed = pd.util.hash_pandas_object(v.to_series(index=False), index=False)
            else:
                hashed = pd.util.hash_pandas_object(v, index=True)
            return head + ":" + _h(np.asarray(hashed.values).tobytes())
        except Exception:
            try:
                return head + ":s" + _h(v.to_string().encode())
            except Exception:
                return head

    def _axes(self, ax) -> str:
        parts = []
        for name in ("lines", "collections", "patches", "images", "texts", "tables"):
            n = len(getattr(ax, name, ()) or ())
            if n:
                parts.append(f"{name}={n}")
        try:
            title = ax.get_title()
            if title:
                parts.append(f"title={title!r}")
        except Exception:
            pass
        return "[" + ",".join(parts) + "]"

    def _artist(self, a) -> str:
        name = type(a).__name__
        np = self.np
        try:
            if hasattr(a, "get_xydata") and np is not None:
                return f"{name}:{_h(np.ascontiguousarray(np.asarray(a.get_xydata(), dtype=float)).tobytes())}"
            if hasattr(a, "get_text"):
                return f"{name}:{a.get_text()!r}"
            if hasattr(a, "get_offsets") and np is not None:
                return (
                    f"{name}:{_h(np.ascontiguousarray(np.asarray(a.get_offsets(), dtype=float)).tobytes())}"
                )
        except Exception:
            pass
        return name


def _hidden_names() -> set:
    """The names IPython itself puts in the user namespace: never digested."""
    try:
        from IPython import get_ipython

        ip = get_ipython()
        hidden = set(getattr(ip, "user_ns_hidden", {}) or {})
    except Exception:  # pragma: no cover
        hidden = set()
    return hidden | {"In", "Out", "exit", "quit", "get_ipython", "open"}


def _current_plan():
    """The current nbsteps plan: None when nbsteps is not imported, the
    exception when asking for it failed."""
    if "nbsteps" not in _sys.modules:
        return None
    try:
        import nbsteps

        return nbsteps.current()
    except Exception as exc:
        return exc


def _digests(ns, hidden) -> tuple:
    """``(values, kinds)``: the digest and the type of every user-visible value in *ns*."""
    values, kinds = {}, {}
    for name in sorted(k for k in list(ns) if isinstance(k, str)):
        if name.startswith("_") or name in hidden:
            continue
        v = ns[name]
        if isinstance(v, _SKIP_TYPES) or (type(v).__name__ in ("builtin_function_or_method", "ufunc")):
            continue
        d = _Digest()
        try:
            d.visit(v, "", 0)
        except Exception as exc:
            d.out = {"": f"<digest failed: {type(exc).__name__}>"}
        values[name] = d.out
        kinds[name] = f"{type(v).__module__}.{type(v).__qualname__}"
    return values, kinds


def _downstream(plan, src):
    """The steps downstream of step *src* through the edges that make a step
    stale (an "order" edge only orders execution); None when *src* is no step."""
    down, todo = set(), [src] if src in plan.records else []
    edges = [(u, d) for u, d, kind in plan.edges() if kind != "order"]
    while todo:
        n = todo.pop()
        for u, d in edges:
            if u == n and d not in down:
                down.add(d)
                todo.append(d)
    return sorted(down - {src}) if src in plan.records else None


def _collect(ns, options):
    hidden = _hidden_names()
    plan = _current_plan()
    deferred = []
    if plan is not None and not isinstance(plan, Exception) and getattr(plan, "deferred", None):
        # values restored lazily from a directory store are read when a cell
        # names them (nbsteps.ipython.lazy): a user typing each name gets its
        # value, so read them all, as a cell naming every one of them would
        deferred = sorted(plan.deferred.pending)
        plan.load(deferred)
    values, kinds = _digests(ns, hidden)
    result = {"values": values, "types": kinds, "steps": None, "deferred": deferred}
    if isinstance(plan, Exception):
        result["steps_error"] = f"{type(plan).__name__}: {plan}"
    elif plan is not None:
        try:
            result["steps"] = {
                name: {
                    "status": r.status,
                    "cached": bool(r.cached),
                    "token": str(getattr(r, "token", "")),
                    "reason": r.reason,
                    "error": r.error_text,
                }
                for name, r in ((n, plan.records[n]) for n in plan.order())
            }
            src = options.get("downstream_of")
            if isinstance(src, list):  # several steps: the union of their downstream
                found = [_downstream(plan, one) for one in src]
                result["downstream"] = (
                    None
                    if any(d is None for d in found)
                    else sorted({s for d in found for s in d} - set(src))
                )
            elif src:
                result["downstream"] = _downstream(plan, src)
        except Exception as exc:
            result["steps_error"] = f"{type(exc).__name__}: {exc}"
    print(MARK + _json.dumps(result), flush=True)


_collect(NS, OPTIONS)  # noqa: F821 - both are given by the harness
