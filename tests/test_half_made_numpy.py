"""A run looks for arrays viewing a changed array (run/attempt/array_views.py) on the executor's
thread while a step on another thread may be importing numpy for the first time: ``numpy`` is
then in ``sys.modules`` half made, without ``ndarray`` yet. The look must find nothing, not
raise ("partially initialized module 'numpy' has no attribute 'ndarray'" stopped a plan run of
the corpus notebook pl_dataframe, whose polars imports numpy lazily inside a step)."""

from __future__ import annotations

import importlib.machinery
import sys
import types

from nbsteps.run.attempt.array_views import views_of


def test_views_of_with_numpy_half_imported(monkeypatch):
    half = types.ModuleType("numpy")  # what the import system holds while numpy/__init__.py runs
    half.__spec__ = importlib.machinery.ModuleSpec("numpy", None)
    half.__spec__._initializing = True
    monkeypatch.setitem(sys.modules, "numpy", half)
    assert views_of({"a": [1, 2], "b": 3}, {"a": [1, 2]}, set()) == {}


def test_views_of_finds_a_view_once_numpy_is_imported():
    import numpy as np

    base = np.arange(6.0)
    ns = {"base": base, "v": base[2:], "other": np.zeros(2)}
    assert set(views_of(ns, {"base": base}, {"base"})) == {"v"}
