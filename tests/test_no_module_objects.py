"""Functions and classes whose ``__module__`` is None (SymPy's ``Function('f')`` is such a
class, ``lambdify``'s functions such functions) are pickled by value when no module has them,
and by reference when one does (under their qualname, in its dict or through its
``__getattr__``), as cloudpickle decides; and a function made in a function that a module
added after an earlier pickle hands out is found there (the pickler keeps which modules are
below a package between pickles).
"""

from __future__ import annotations

import io
import sys
import types

import cloudpickle
import pytest

from nbsteps.stores import pickling


def _dumped(value) -> bytes:
    buf = io.BytesIO()
    pickling.dump(value, buf)
    return buf.getvalue()


def _function(name: str):
    ns: dict = {}
    exec(f"def {name}(x):\n    return x + 1\n", ns)  # no __name__ in its globals: __module__ None
    f = ns[name]
    assert f.__module__ is None
    return f


def _class(name: str):
    c = type(name, (), {"__module__": None, "y": 2})
    assert c.__module__ is None
    return c


@pytest.fixture
def module():
    mod = types.ModuleType("nomodlib_nbsteps")
    sys.modules[mod.__name__] = mod
    yield mod
    sys.modules.pop(mod.__name__, None)


@pytest.mark.parametrize("make", [_function, _class])
def test_an_object_of_no_module_that_no_module_has_is_pickled_by_value(make):
    obj = make("_gen_nbsteps_nomod")
    data = _dumped(obj)
    ours = cloudpickle.dumps(obj, protocol=5)
    maker = b"_make_function" if isinstance(obj, types.FunctionType) else b"_make_skeleton_class"
    assert maker in data and maker in ours
    back = pickling.load(data)
    if isinstance(obj, types.FunctionType):
        assert back is not obj and back(1) == 2
    else:
        assert back.y == 2


@pytest.mark.parametrize("make", [_function, _class])
def test_an_object_of_no_module_that_a_module_has_is_pickled_by_reference(make, module):
    obj = make("_gen_nbsteps_held")
    module._gen_nbsteps_held = obj
    data = _dumped(obj)
    assert b"nomodlib_nbsteps" in data and b"_make_" not in data
    assert pickling.load(data) is obj


def test_an_object_of_no_module_that_a_module_getattr_hands_out_is_pickled_by_reference(module):
    obj = _function("_gen_nbsteps_lazy")
    module.__getattr__ = lambda name: (
        obj if name == "_gen_nbsteps_lazy" else (_ for _ in ()).throw(AttributeError(name))
    )
    data = _dumped(obj)
    assert b"nomodlib_nbsteps" in data and b"_make_function" not in data
    assert pickling.load(data) is obj


def test_a_factory_made_function_of_a_module_added_later_is_pickled_by_reference():
    pkg = types.ModuleType("factpkg_nbsteps")
    sys.modules[pkg.__name__] = pkg

    def make():
        def wrapper(x):
            return x

        return wrapper

    f = make()
    f.__module__ = pkg.__name__
    try:
        first = _dumped(f)  # no module has it yet: a copy
        assert b"_make_function" in first
        sub = types.ModuleType("factpkg_nbsteps.sub")
        sub.wrapper_made = f
        sys.modules[sub.__name__] = sub
        data = _dumped(f)
        assert b"factpkg_nbsteps.sub" in data and b"_make_function" not in data
        assert pickling.load(data) is f
    finally:
        sys.modules.pop("factpkg_nbsteps", None)
        sys.modules.pop("factpkg_nbsteps.sub", None)
