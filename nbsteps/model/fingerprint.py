"""Fingerprints: what determined a step's outputs.

A step's fingerprint combines its normalised source, its result-affecting
options, the execution tokens of its upstream steps, digests of the outside
values it reads that are cheap to hash (numbers, strings, small containers,
small arrays and frames), and the code of functions and classes defined in the
notebook that it calls, followed transitively. The parts are kept separately so
that a plan can say why a step is stale.
"""

from __future__ import annotations

import hashlib
import sys
import types
from typing import Any, Iterable

_PRIMITIVES = (type(None), bool, int, float, complex, str)
_MAX_ITEMS = 10_000
_MAX_BYTES = 4_000_000
_MAX_ROWS = 100_000


#: an empty 16-byte BLAKE2b: a copy of it is made faster than a new one (the constructor's
#: keyword arguments), the same digests
_copy_empty = hashlib.blake2b(digest_size=16).copy


def _h(data: bytes) -> str:
    acc = _copy_empty()
    acc.update(data)
    return acc.hexdigest()


def combine(parts: dict) -> str:
    """One digest from the parts dict (sorted, so order does not matter):
    of ``repr(sorted(parts.items()))``, written out for the four parts a step's
    fingerprint has (the same text: ``repr`` of each tuple costs as much as the hash)."""
    if len(parts) == 4 and type(code := parts.get("code")) is str:
        try:
            h, p, u = parts["helpers"], parts["params"], parts["upstream"]
        except KeyError:
            pass
        else:
            return _h(
                f"[('code', {code!r}), ('helpers', {h!r}), ('params', {p!r}), ('upstream', {u!r})]".encode()
            )
    return _h(repr(sorted(parts.items())).encode())


def code_digest(code: types.CodeType) -> str:
    """Digest of a code object that ignores file names and line numbers, so
    re-running an unchanged cell gives the same digest."""
    acc = _copy_empty()
    stack = [code]
    while stack:
        c = stack.pop()
        # one update a code object: its bytecode, then the text of its names and constants
        # (the same digest as an update of each: BLAKE2b hashes the stream)
        text = [repr((c.co_name, c.co_names, c.co_varnames, c.co_freevars))]
        for k in c.co_consts:
            if isinstance(k, types.CodeType):
                stack.append(k)
            else:
                text.append(_set_text(k) if type(k) in _SETS_IN else repr(k))
        acc.update(c.co_code + "".join(text).encode())
    return acc.hexdigest()


_SETS_IN = (frozenset, tuple)  # constants whose repr may hold a frozenset


def _set_text(k) -> str:
    """``repr(k)``, but a frozenset's items sorted: ``x in {"a", "b"}`` compiles to a frozenset
    constant whose repr follows the string hashes, which change with each process
    (``PYTHONHASHSEED``); a tuple without a frozenset inside keeps its repr."""
    if type(k) is frozenset:
        return "frozenset({" + ", ".join(sorted(_set_text(x) for x in k)) + "})"
    if type(k) is tuple and any(type(x) in _SETS_IN for x in k):
        return "(" + ", ".join(_set_text(x) for x in k) + ("," if len(k) == 1 else "") + ")"
    return repr(k)


def is_notebook_defined(obj: Any) -> bool:
    module = getattr(obj, "__module__", None)
    return module == "__main__" or module is None


def _container_digest(value: Any) -> str | None:
    """repr-based digest for small containers of primitives; None if not cheap."""
    count = 0
    stack = [value]
    while stack:
        v = stack.pop()
        count += 1
        if count > _MAX_ITEMS:
            return None
        if isinstance(v, _PRIMITIVES):
            continue
        if isinstance(v, (bytes, bytearray)):
            if len(v) > _MAX_BYTES:
                return None
            continue
        if isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        else:
            return None
    if isinstance(value, (set, frozenset)):
        return _h(repr(sorted(map(repr, value))).encode())
    return _h(repr(value).encode())


def value_digest(value: Any) -> str | None:
    """Digest of an outside value if it is cheap to hash, else None (untracked).

    A value whose ``repr``, ``__hash__`` or buffer raises (a user class with a
    bug, a str subclass with a broken ``__repr__``) is not cheap to hash: it is
    untracked, never an error that would stop unrelated steps.
    """
    try:
        return _value_digest(value)
    except Exception:
        return None


def _value_digest(value: Any) -> str | None:
    if isinstance(value, _PRIMITIVES):
        return _h(f"{type(value).__name__}:{value!r}".encode())
    if isinstance(value, (bytes, bytearray, list, tuple, dict, set, frozenset)):
        return _container_digest(value)
    if isinstance(value, (types.FunctionType, type)) and is_notebook_defined(value):
        return helper_digest(value)
    module = type(value).__module__
    if module == "numpy" and "numpy" in sys.modules:
        nbytes = getattr(value, "nbytes", _MAX_BYTES + 1)
        if nbytes <= _MAX_BYTES and getattr(value, "dtype", None) is not None and value.dtype != object:
            return _h(repr((value.dtype.str, value.shape)).encode() + value.tobytes())
        return None
    if module.startswith("pandas") and "pandas" in sys.modules:
        import pandas as pd

        if isinstance(value, (pd.DataFrame, pd.Series)) and len(value) <= _MAX_ROWS:
            try:
                hashed = pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
            except Exception:  # unhashable cells (lists in object columns), a raising __hash__
                return None
            cols = repr(list(value.columns)) if isinstance(value, pd.DataFrame) else repr(value.name)
            return _h(cols.encode() + hashed)
    return None


def _function_code(obj: Any) -> types.CodeType | None:
    return getattr(obj, "__code__", None)


def helper_digest(obj: Any) -> str:
    """Digest of a notebook-defined function or class and, transitively, of the
    notebook-defined functions and classes its code refers to by global name."""
    acc = _copy_empty()
    seen: set[int] = set()
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen:
            continue
        seen.add(id(o))
        codes: list[tuple[types.CodeType, dict]] = []
        if isinstance(o, type):
            acc.update(f"class {o.__qualname__} {[b.__name__ for b in o.__bases__]}".encode())
            for attr in vars(o).values():
                fn = getattr(attr, "__func__", attr)
                code = _function_code(fn)
                if code is not None:
                    codes.append((code, getattr(fn, "__globals__", {})))
        else:
            code = _function_code(o)
            if code is None:
                continue
            codes.append((code, getattr(o, "__globals__", {})))
            acc.update(repr(getattr(o, "__defaults__", None)).encode())
        for code, globs in codes:
            acc.update(code_digest(code).encode())
            for name in global_names(code):
                ref = globs.get(name)
                if isinstance(ref, (types.FunctionType, type)) and is_notebook_defined(ref):
                    stack.append(ref)
    return acc.hexdigest()


def global_names(code: types.CodeType) -> Iterable[str]:
    stack = [code]
    while stack:
        c = stack.pop()
        yield from c.co_names
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))


def outside_parts(names: Iterable[str], namespace: dict) -> tuple[dict, dict]:
    """(params, helpers): digests of the outside values *names* refer to in
    *namespace*. Values that are not cheap to hash are left out (untracked)."""
    params: dict[str, str] = {}
    helpers: dict[str, str] = {}
    for name in names:
        if name not in namespace:
            continue
        value = namespace[name]
        if isinstance(value, (types.FunctionType, type)):
            if is_notebook_defined(value):
                try:
                    helpers[name] = helper_digest(value)
                except Exception:  # e.g. a class whose attributes raise on access: untracked
                    pass
            continue
        if isinstance(value, types.ModuleType):
            continue
        d = value_digest(value)
        if d is not None:
            params[name] = d
    return params, helpers
