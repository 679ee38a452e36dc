"""Arrays that view the memory of an array a step changes in place.

``a = stats.mstats.trimtail(x, p)`` (a masked array over ``x``'s memory), then a
cell below ``x[9:11] = np.nan``: in Run All, ``a`` shows the NaNs. A step that
changes ``x`` works on a private copy of it (the checkpoint above never changes),
so the views are copied with it: the arrays the namespace holds that share
``x``'s memory are rebuilt as the same views (offset, shape, strides) of the one
copied buffer, handed to the step and published as its outputs too. The steps
above that read that version of ``x`` come first (``order`` edges, see
``nbsteps.model.dependencies``), so their views are in the namespace by then.

Only views of one contiguous buffer that owns its memory are rebuilt; other
sharing is left as it was (the step's copy is independent, as before).
"""

from __future__ import annotations

import copy
import sys
from typing import Any


def _root(arr: Any) -> Any:
    while getattr(arr, "base", None) is not None and isinstance(arr.base, sys.modules["numpy"].ndarray):
        arr = arr.base
    return arr


def _address(arr: Any) -> int:
    return arr.__array_interface__["data"][0]


def views_of(namespace: dict, changed: dict, skip) -> dict[str, tuple[str, Any]]:
    """``{name: (changed name, array)}``: the arrays of *namespace* (other than
    *skip*) that share memory with an array of *changed* whose buffer can be copied."""
    np = sys.modules.get("numpy")
    # (getattr: numpy may be half made, its first import running on a step's thread right now:
    # then no array of it exists yet, and reading its attributes would raise)
    ndarray = getattr(np, "ndarray", None) if np is not None else None
    if ndarray is None:
        return {}
    targets = {n: v for n, v in changed.items() if isinstance(v, ndarray) and _copyable(_root(v))}
    if not targets:
        return {}
    found: dict[str, tuple[str, Any]] = {}
    for name, value in list(namespace.items()):
        if name in skip or name.startswith("_") or not isinstance(value, ndarray):
            continue
        for n, x in targets.items():
            if value is not x and _root(value) is _root(x) and np.may_share_memory(value, x):
                found[name] = (n, value)
                break
    return found


def _copyable(root: Any) -> bool:
    return root.base is None and (root.flags.c_contiguous or root.flags.f_contiguous)


def copy_with_views(arrays: dict) -> dict:
    """Copies of *arrays* (views of one or more buffers) that view the copied
    buffers as the originals view theirs."""
    np = sys.modules["numpy"]
    buffers: dict[int, tuple[Any, Any]] = {}
    out = {}
    for name, arr in arrays.items():
        root = _root(arr)
        if id(root) not in buffers:
            buffers[id(root)] = (root, root.copy(order="K"))
        old, new = buffers[id(root)]
        flat = new.reshape(-1, order="A")  # a view of the copy: one byte range
        view = np.ndarray(
            arr.shape, arr.dtype, buffer=flat, offset=_address(arr) - _address(old), strides=arr.strides
        )
        if (
            type(arr) is not np.ndarray
        ):  # masked arrays and other subclasses: same type, own copy of their state
            view = view.view(type(arr))
            for k, v in vars(arr).items():
                view.__dict__[k] = v.copy() if isinstance(v, np.ndarray) else copy.copy(v)
        out[name] = view
    return out
