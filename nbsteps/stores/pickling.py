"""Pickling that neither changes the user's live objects nor loses what they hold.

Some classes' ``__getstate__`` edits the object being pickled instead of a copy:
statsmodels' results set ``self.mle_settings["callback"] = None`` "to remove
unpicklable methods". Pickled as they come, checkpointing a value to a disk store
would change it in the user's kernel (a plain Run All never pickles), and a resume
would give back an object without what Run All has.

So, for every object whose class defines ``__getstate__`` in Python, the pickler
takes a shallow snapshot of its ``__dict__`` (and of the dicts directly in it)
before asking for its state, and puts back whatever ``__getstate__`` changed:

- **faithful** (first try): right after ``__getstate__`` returns, before the state
  is written -- a state that *is* the object's ``__dict__`` is then written as the
  object really is (a resume gives back the callback);
- **respectful** (when faithful pickling fails after putting something back,
  because what the class removed really is unpicklable): after the whole value
  is written; the file holds what the class's own pickling gives, and the live
  object is still left as it was.

A class a package makes inside a function and hands out as a module attribute
(``marray.numpy.MArray``) is pickled by reference to that attribute, so values
restored in a new process have the very class the package's functions make; so is
a function made inside a function and handed out that way (SymPy's decorator
``cacheit = __cacheit(maxsize)``, which ``from sympy import *`` binds: a copy of its
closure would take SymPy's cache of every cached function with it, and failed).
Loading makes again the submodules a package creates on attribute access (``load``).

**A module's own object whose pickle cannot be read back is written as a reference**
(:func:`module_value`): ``from sympy import *`` binds ``CC``, a ``ComplexField`` holding
mpmath classes made per context, which pickles by value but fails to unpickle
("TypeError while unpickling CC"), so a new kernel executed the import step again. Run
All's ``CC`` is ``sympy.CC``, the very object importing ``sympy`` gives in a new process.
So a value that *is* (identity) an attribute of a fully imported module (the module of its
class or a package above it: ``sympy.polys.domains.complexfield`` ... ``sympy``) is pickled
by value to memory first. It is written as ``(module, name, class)`` instead when that pickle
holds a copy of a class made at run time (``CC``'s mpmath classes: a new process would make
new classes, not the module's; reading it here would set the live class's state again) or,
holding no reference to another value, fails to be read back here; else the pickle is written.
:func:`_module_value` imports the module and gets the attribute when the value is read; an
attribute that is missing, or no longer an object of that class, raises
:class:`ModuleValueChanged`: the checkpoint cannot be read, its step executes again.
A reference gives what the module holds, not what a step did to the object: a module's
object that pickles and reads back (a list a step appends to, ``rcParams``) stays by value,
and so does one that a later step changes in place (``Held.upstream_refs``'s ``changed``: that
step's own version is not what import gives; unreadable, that step executes again). Not seen:
a step that imports such an object and changes it itself (see docs/stores.md).

Two rules keep a checkpoint from being something else than the value:

- **Values held outside the process are refused** (``outside_process``): an open
  file, a pipe, a socket, a connection that owns a file descriptor, a lock. What
  they stand for belongs to the operating system (or to a thread), not to the
  bytes a pickle could hold: cloudpickle would write an open text file as an
  ``io.StringIO`` of its content at that moment, a ``multiprocessing`` connection
  as a number naming some other descriptor in a new process. Pickling them raises
  :class:`pickle.PicklingError` saying what they are, so the store keeps the
  checkpoint in memory with its warning and a new kernel runs the step again.
- **A module still being imported is never looked into** (``imported``): a step
  may finish while a parallel step runs ``import pandas`` for the first time;
  ``sys.modules`` then holds a half-initialized ``pandas`` without ``DataFrame``.
"""

from __future__ import annotations

import _thread
import copyreg
import importlib
import io
import pickle
import sys
import threading
import types
import weakref
from operator import is_
from typing import Any

_NO_VALUE = object()


def initializing(module: Any) -> bool:
    """Whether *module* is still being imported (by this thread or another):
    importlib sets ``__spec__._initializing`` while its code runs."""
    attrs = getattr(module, "__dict__", None)  # a module's dict: no __getattr__ of its own is run
    if type(attrs) is not dict:
        return False
    return getattr(attrs.get("__spec__"), "_initializing", False) is True


def imported(name: str) -> "types.ModuleType | None":
    """``sys.modules[name]`` once its import is complete; None when it is not
    imported, or still being imported (its attributes may not exist yet)."""
    module = sys.modules.get(name)
    if module is None or initializing(module):
        return None
    return module


_LOCKS = (_thread.LockType, type(_thread.RLock()))


def outside_process(obj: Any) -> "str | None":
    """What *obj* is when its state is held outside the process (or by the
    running threads), for a message; else None.

    The rule: an object is a handle on something outside the process when it
    has a file descriptor -- its class has ``fileno()`` and it returns one: an
    open file at any layer (``FileIO``, ``BufferedReader``, ``TextIOWrapper``,
    a ``gzip`` file, through the real file it holds), a pipe, a socket, a ``multiprocessing``
    connection, a database connection exposing its socket -- or when it is a
    lock (``threading.Lock``/``RLock``, and so a ``Condition`` or ``Event``
    holding one). Pickling can only copy bytes: the file position, the open
    socket, the lock's owner would not come back (cloudpickle even writes an
    open text file as an ``io.StringIO`` of its content). Other resources
    without a descriptor (``sqlite3.Connection``) already refuse pickling.

    ``io.StringIO``/``BytesIO`` have no descriptor and are ordinary values.
    ``fileno()`` is not called on a file-like class written in Python (an
    ``io.IOBase`` subclass: ``tempfile.SpooledTemporaryFile`` would move itself
    to disk): its state is its attributes, where pickling meets the real file
    if it holds one. ``sys.stdout``/``sys.stderr`` are left to cloudpickle,
    which pickles them by reference (the new process's own stream).
    """
    t = type(obj)
    if t in _LOCKS:
        return f"a lock ({t.__module__}.{t.__qualname__}) is state of the running threads"
    try:
        method = getattr(t, "fileno", None)
    except Exception:  # a metaclass's own __getattr__
        return None
    if method is None or not callable(method):
        return None
    if isinstance(method, types.FunctionType) and isinstance(obj, io.IOBase):
        return None
    if obj is sys.stdout or obj is sys.stderr:
        return None
    try:
        fd = obj.fileno()
    except Exception:  # closed, or not backed by a descriptor (io.UnsupportedOperation)
        return None
    if type(fd) is not int or fd < 0:
        return None
    kind = f"{t.__module__}.{t.__qualname__}"
    name = getattr(obj, "name", None) if isinstance(obj, io.IOBase) else None
    if isinstance(name, str):
        return (
            f"an open file {name!r} ({kind}, file descriptor {fd}) is a handle on state outside the process"
        )
    return f"{kind} on file descriptor {fd} is a handle on state outside the process"


def _custom_getstate(t: type) -> bool:
    return isinstance(getattr(t, "__getstate__", None), types.FunctionType)


class _Snapshot:
    """What ``__getstate__`` may edit in place: the ``__dict__`` and the dicts in it."""

    __slots__ = ("attrs", "top", "nested")

    def __init__(self, attrs: dict) -> None:
        self.attrs = attrs
        self.top = top = attrs.copy()
        # the dicts directly in it, each with a copy (most objects hold none: looked for in C first)
        self.nested = (
            [(v, v.copy()) for v in top.values() if type(v) is dict]
            if dict in map(type, top.values())
            else ()
        )

    def restore(self) -> bool:
        """Put back what changed; whether anything had."""
        changed = _put_back(self.attrs, self.top)
        for d, before in self.nested:
            changed = _put_back(d, before) or changed
        return changed


def _put_back(d: dict, before: dict) -> bool:
    # the same values in the same order (by identity, in C: no Python call per item) under
    # the same keys in the same order (equal keys are the same entries of a dict)
    if len(d) == len(before) and all(map(is_, d.values(), before.values())) and list(d) == list(before):
        return False
    if d.keys() == before.keys() and all(d.get(k, _NO_VALUE) is v for k, v in before.items()):
        return False
    d.clear()
    d.update(before)
    return True


class DroppedUnpicklable(Exception):
    """Faithful pickling failed after putting back what a ``__getstate__`` had
    dropped: pickle again with ``faithful=False`` (the class's own state)."""


def _pickler_class():
    import cloudpickle

    copies_class = _copies_class(getattr(cloudpickle.cloudpickle, "_class_setstate", _NO_VALUE))
    cloud_override = cloudpickle.Pickler.reducer_override

    class Pickler(cloudpickle.Pickler):
        def __init__(
            self,
            file: Any,
            faithful: bool,
            refs: "dict | None" = None,
            later: Any = frozenset(),
            exhaustive: bool = False,
        ) -> None:
            # references (stores.sharing): objects in *refs* are written as references, objects
            # in *later* are noted (``found``). reducer_override sees every object but exact
            # lists, dicts, sets, tuples and bytearrays; those are looked for in the memo after
            # the dump (``held``: in *refs*, ``waiting``: in *later*; the pickler memoizes every
            # one it writes): a container of *refs* found there was copied, and the value is
            # pickled again *exhaustive*, with a persistent_id (a Python call per object, scalars
            # included: it doubles the time of pickling many small objects) referring to it
            self.refs, self.later = refs, later
            self.used: set = set()
            self.found: set = set()
            self.held: list = []
            self.waiting: list = []
            if refs is not None:
                _watch(self, refs, later, exhaustive)
            super().__init__(file, protocol=5)
            self.faithful = faithful
            self.kinds: dict[
                type, int
            ] = {}  # what reducer_override does with objects of a class (_class_kind)
            self.snapshots: list[_Snapshot] = []
            self.overrode = False  # faithful: put back something a __getstate__ dropped
            self.copies = False  # wrote a class made at run time by value

        def reducer_override(self, obj: Any) -> Any:
            if self.refs is not None:
                oid = id(obj)
                ref = self.refs.get(oid)
                if ref is not None:
                    self.used.add(ref[0])
                    return _shared, (ref[0],)
                if oid in self.later:
                    self.found.add(oid)
            t = type(obj)
            kind = self.kinds.get(t)
            if kind is None:
                kind = self.kinds[t] = _class_kind(t)
            if not kind:  # nothing of the below applies: pickle's own way (most objects)
                return NotImplemented
            if kind & _MAY_BE_OUTSIDE:
                _refuse_outside(obj)
            if kind & _CLOUD:
                rv = _cloud_reduction(self, obj, cloud_override, copies_class)
                if rv is not NotImplemented:
                    return rv
            if not kind & _OWN:
                return NotImplemented
            return _own_reduction(self, obj, kind)

        def dump_leaving_objects(self, value: Any) -> None:
            try:
                self.dump(value)
            finally:
                for snapshot in reversed(self.snapshots):
                    snapshot.restore()

    return Pickler


def _cloud_reduction(pickler: Any, obj: Any, cloud_override: Any, copies_class: Any) -> Any:
    """A class or function (or what says it is one): by reference when a module hands it
    out, else cloudpickle's reduction (NotImplemented: not one)."""
    if isinstance(obj, (type, types.FunctionType)) and "<locals>" in obj.__qualname__:
        where = _module_attribute(obj)
        if where is not None:  # marray.numpy.MArray, sympy's cacheit: by reference, not a copy
            return getattr, where
    rv = _no_module_reduction(pickler, obj) if getattr(obj, "__module__", None) is None else None
    if rv is None:
        rv = cloud_override(pickler, obj)
    if rv is not NotImplemented:
        pickler.copies |= copies_class(rv)
    return rv


def _no_module_reduction(pickler: Any, obj: Any) -> Any:
    """cloudpickle's reduction of *obj* (whose ``__module__`` is None), by value, when it is a
    function or class that no module has (:func:`_in_no_module`); None: left to cloudpickle.
    SymPy's ``Function('f')`` is such a class, ``lambdify``'s function such a function."""
    import cloudpickle

    t = type(obj)
    try:
        is_class = issubclass(t, type)
    except TypeError:
        return None
    cp = cloudpickle.cloudpickle
    if t is types.FunctionType:
        reduce = getattr(pickler, "_dynamic_function_reduce", None)
    elif is_class and obj not in getattr(cp, "_BUILTIN_TYPE_NAMES", (obj,)):
        reduce = getattr(cp, "_dynamic_class_reduce", None)
    else:
        return None
    if reduce is None or not _in_no_module(obj):
        return None
    return reduce(obj)


def _in_no_module(obj: Any) -> bool:
    """Whether no module (``sys.modules``, ``__main__`` aside) has *obj*, a function or class
    whose ``__module__`` is None, as its attribute named after its qualname: then cloudpickle
    pickles it by value. Its own look-up (``_whichmodule``) asks each module with ``getattr``,
    and ~1,300 failed look-ups build an AttributeError message with the module's repr each:
    ~5 ms per such object. A module of the plain module type without a ``__getattr__`` of its
    own is asked its dict instead (the same answer: no attribute of the module type is such an
    object); the others with ``getattr``, as cloudpickle does. False (left to cloudpickle) for
    a dotted qualname, or when a module has it."""
    name = getattr(obj, "__qualname__", None)
    if type(name) is not str or "." in name or name == "<locals>":
        return False
    for mod_name, module in sys.modules.copy().items():
        if (
            mod_name in ("__main__", "__mp_main__")
            or module is None
            or not isinstance(module, types.ModuleType)
        ):
            continue  # what cloudpickle's look-up skips
        attrs = getattr(module, "__dict__", None)
        if type(module) is types.ModuleType and type(attrs) is dict and "__getattr__" not in attrs:
            if attrs.get(name) is obj:
                return False
            continue
        try:
            if getattr(module, name) is obj:
                return False
        except Exception:  # what cloudpickle's look-up ignores
            pass
    return True


def _watch(pickler: Any, refs: dict, later: Any, exhaustive: bool) -> None:
    """Set *pickler* to find the exact containers of *refs* and *later*: afterwards in its
    memo, or, *exhaustive*, with a persistent_id (see the Pickler's ``__init__``)."""
    held = [oid for oid, (_, o) in refs.items() if type(o) in _CONTAINERS]
    waiting = [oid for oid, o in later.items() if type(o) in _CONTAINERS]
    if exhaustive and (held or waiting):
        pickler.persistent_id = _persistent_id(refs, later, pickler.used, pickler.found)
    else:
        pickler.held, pickler.waiting = held, waiting


def _reduce_leaving_object(pickler: Any, obj: Any) -> Any:
    """The reduction of *obj*, whose class defines ``__getstate__``, leaving *obj* as it was."""
    attrs = getattr(obj, "__dict__", None)
    if type(attrs) is not dict:
        return NotImplemented
    if not pickler.faithful:  # put back after the whole value is written
        snapshot = _Snapshot(attrs)
        try:
            return obj.__reduce_ex__(pickler.proto)
        finally:
            pickler.snapshots.append(snapshot)
    # faithful: a _Snapshot's work inline (once per such object pickled: no calls it can spare)
    top = attrs.copy()
    nested = (
        [(v, v.copy()) for v in top.values() if type(v) is dict] if dict in map(type, top.values()) else ()
    )
    try:
        return obj.__reduce_ex__(pickler.proto)
    finally:
        changed = _put_back(attrs, top)
        for d, before in nested:
            changed = _put_back(d, before) or changed
        if changed:
            pickler.overrode = True


def _refuse_outside(obj: Any) -> None:
    what = outside_process(obj)
    if what is not None:
        raise pickle.PicklingError(f"{what}: a checkpoint cannot hold it")


def _copies_class(class_setstate: Any):
    """Whether a reduction cloudpickle made writes a class made at run time by value
    (it ends with *class_setstate*): reading it makes a new class, or, in the process
    that wrote it, sets the state of the live class again."""

    def copies_class(rv: Any) -> bool:
        return type(rv) is tuple and len(rv) == 6 and rv[5] is class_setstate

    return copies_class


#: _class_kind's flags: outside_process may refuse the object; its class defines __getstate__ in
#: Python; its state is set past __getattr__ (_state_past_getattr); cloudpickle's or the
#: pickler's own reducer_override may apply (a class, a function, or an object whose
#: ``__class__`` may not be its type: what ``isinstance`` looks at)
_MAY_BE_OUTSIDE, _GETSTATE, _PAST, _CLOUD = 1, 2, 4, 8
_OWN = _GETSTATE | _PAST


def _class_kind(t: type) -> int:
    """What the pickler's reducer_override does with the objects of class *t*, decided
    once per class and pickle (a Python call less per object): :func:`outside_process`
    looks at objects whose class is a lock or has a ``fileno`` (it finds nothing in
    the others), :func:`_own_reduction` at those whose class is in no ``copyreg``
    dispatch table and defines ``__getstate__`` in Python or needs a state setter."""
    kind = 0
    try:
        method = getattr(t, "fileno", None)
    except Exception:  # a metaclass's own __getattr__: outside_process finds nothing either
        method = None
    if t in _LOCKS or (method is not None and callable(method)):
        kind |= _MAY_BE_OUTSIDE
    try:
        cloud = issubclass(t, (type, types.FunctionType)) or any(
            "__class__" in vars(k) or "__getattribute__" in vars(k) for k in t.__mro__ if k is not object
        )
    except Exception:  # not a class as issubclass knows them: leave it to the full path
        cloud = True
    if cloud:
        kind |= _CLOUD
    if t not in copyreg.dispatch_table:
        if _custom_getstate(t):
            kind |= _GETSTATE
        if _state_past_getattr(t):
            kind |= _PAST
    return kind


def _own_reduction(pickler: Any, obj: Any, kind: int) -> Any:
    """How *pickler* writes *obj* (of :func:`_class_kind` *kind*) when cloudpickle leaves it
    to pickle: its class's ``__getstate__`` called leaving *obj* as it was; the default
    reduction with a state setter (:func:`_state_past_getattr`); else
    ``NotImplemented`` (pickle's own way)."""
    rv = _reduce_leaving_object(pickler, obj) if kind & _GETSTATE else NotImplemented
    if kind & _PAST:
        return _with_state_setter(obj.__reduce_ex__(pickler.proto) if rv is NotImplemented else rv)
    return rv


def _state_past_getattr(t: type) -> bool:
    """Whether instances of *t* are pickled the default way (``object``'s
    reduction, no ``__setstate__``) while *t* defines ``__getattr__`` in Python.
    Unpickling such an instance looks ``__setstate__`` up on the new, empty
    instance: the lookup fails, so the class's ``__getattr__`` runs before any
    attribute is set, and one that reads an attribute of the instance (``self.message``)
    recurses until RecursionError, or raises its own error: the value pickles
    but never unpickles. Such values get a state setter (:func:`_set_state`)
    that does what unpickling does without that lookup."""
    if isinstance(t, type) and issubclass(t, type):
        return False
    getattr_ = None
    for k in t.__mro__:
        d = k.__dict__
        if "__setstate__" in d or (k is not object and ("__reduce_ex__" in d or "__reduce__" in d)):
            return False  # the class says how it is rebuilt
        if getattr_ is None and k is not object:
            getattr_ = d.get("__getattr__")
    return isinstance(getattr_, types.FunctionType)


def _with_state_setter(rv: Any) -> Any:
    """The reduction *rv* (``object.__reduce_ex__``'s) with :func:`_set_state`
    setting its state, when it has one."""
    if type(rv) is not tuple or len(rv) < 3 or rv[2] is None or (len(rv) > 5 and rv[5] is not None):
        return rv
    return (*rv[:5], *(None,) * (5 - len(rv)), _set_state)


def _set_state(obj: Any, state: Any) -> None:
    """What unpickling does with the state of an object whose class has no
    ``__setstate__`` (its ``__dict__``, then its slots), without looking
    ``__setstate__`` up on the object (see :func:`_state_past_getattr`)."""
    slots = None
    if type(state) is tuple and len(state) == 2:
        state, slots = state
    if state:
        d = obj.__dict__
        for k, v in state.items():
            d[sys.intern(k) if type(k) is str else k] = v
    if slots:
        for k, v in slots.items():
            setattr(obj, k, v)


def _module_attribute(obj: Any) -> "tuple[types.ModuleType, str] | None":
    """(module, name) when a class or function made inside a function (its qualname
    has ``<locals>``) is what a module of its package calls *name*: a namespace a
    package builds, ``marray.numpy.MArray``; a decorator a factory made, ``sympy.core.
    cache.cacheit``, whose own name (``func_wrapper``) is not the module's. A copy of
    such a class would not be the class the module's functions make and check for; a
    copy of such a function would take what its closure holds with it."""
    package = getattr(obj, "__module__", None) or ""
    found = None
    modules = sys.modules.copy()  # one step: no import can change it midway
    for mod_name in _modules_under(package, modules):
        module = modules[mod_name]
        if module is None:
            continue
        if not initializing(module):  # else another thread is running its code: not looked into
            attrs = getattr(module, "__dict__", {})
            if attrs.get(obj.__name__) is obj:
                return module, obj.__name__
            if found is None and not isinstance(obj, type):
                found = next(((module, k) for k, v in list(attrs.items()) if v is obj), None)
    return found


#: package -> (the names of sys.modules when last looked at, those of the package and its
#: modules below it, in the same order)
_UNDER: "dict[str, tuple[list, list]]" = {}


def _modules_under(package: str, modules: dict) -> list:
    """The names in *modules* (a copy of ``sys.modules``) that are *package* or a module below
    it, in *modules*' order: filtered again only when the names changed (``from sympy import *``
    binds ~100 functions made in functions, each looked up here among ~1,300 modules)."""
    names = list(modules)
    known = _UNDER.get(package)
    if known is not None and known[0] == names:
        return known[1]
    prefix = package + "."
    under = [n for n in names if n == package or n.startswith(prefix)]
    _UNDER[package] = (names, under)
    return under


_CONTAINERS = (list, dict, set, bytearray)


def _persistent_id(refs: dict, later: dict, used: set, found: set):
    """A persistent_id for the pickler (a plain function: no bound method per call)."""

    def persistent_id(obj: Any, get=refs.get, id=id) -> Any:
        oid = id(obj)
        hit = get(oid)
        if hit is not None:
            used.add(hit[0])
            return hit[0]
        if oid in later:
            found.add(oid)
        return None

    return persistent_id


class _Resolving(threading.local):
    resolve: Any = None


_RESOLVING = _Resolving()


def _shared(ref: Any) -> Any:
    """(in a pickle) The object a reference names: see :mod:`nbsteps.stores.sharing`.
    Only called while :func:`load` reads a value with a resolver."""
    resolve = _RESOLVING.resolve
    if resolve is None:
        raise pickle.UnpicklingError("a reference to another value, and nothing to resolve it")
    return resolve(ref)


_PICKLER: Any = None

_NOT_SHARED = (type, types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType)
_SHAREABLE: "dict[type, bool]" = {
    list: True,
    dict: True,
    set: True,
    bytearray: True,
    str: False,
    tuple: False,
}


def shareable(obj: Any) -> bool:
    """Whether identity of *obj* matters to a user: a mutable container
    (list, dict, set, bytearray, a NumPy array) or an instance of a class with
    attributes (a figure, an estimator, a DataFrame, the user's own classes).
    Not: numbers, strings, tuples, classes, functions, modules, NumPy dtypes
    and scalars (each new process gives them back as canonical or equal), but a
    function of the notebook (``__main__``: pickled by value, each copy another
    function: ``h = f``). Decided by the type, once per type (a function by its module)."""
    t = type(obj)
    if t is types.FunctionType:
        return getattr(obj, "__module__", None) == "__main__"
    known = _SHAREABLE.get(t)
    if known is None:
        known = _SHAREABLE[t] = (
            issubclass(t, (list, dict, set, bytearray))
            or (t.__module__ == "numpy" and t.__name__ == "ndarray")
            or (not issubclass(t, _NOT_SHARED) and bool(getattr(t, "__dictoffset__", 0)))
        )
    return known


class Dumped:
    """What pickling one value met: the references it wrote (``used``), the
    memo index of each object of *later* it wrote (``found``: ``id -> index``),
    whether it wrote a class made at run time by value (``copies``)."""

    __slots__ = ("used", "found", "copies")

    def __init__(self, used: "set | None" = None, found: "dict | None" = None, copies: bool = False) -> None:
        self.used = used or set()
        self.found = found or {}
        self.copies = copies


def dump(
    value: Any,
    sink: Any,
    faithful: bool = True,
    refs: "dict | None" = None,
    later: "dict | None" = None,
    exhaustive: bool = False,
) -> Dumped:
    """Pickle *value* to *sink* (cloudpickle, protocol 5), leaving live objects
    unchanged. :class:`DroppedUnpicklable` when only the faithful way failed (a
    second try can succeed); a value that cannot be pickled either way raises what
    pickle raised, at once (it is not pickled twice). Objects in *refs*
    (``id(obj) -> (reference, obj)``) are written as references; objects in
    *later* (``id(obj) -> obj``) are written as they are, and their memo
    indices returned (another value can then refer to them). :class:`HeldContainer`
    when *value* holds a list, dict, set or bytearray of *refs*, unless *exhaustive*:
    what was written to *sink* is then to be dropped, and *value* pickled again
    *exhaustive* (a Python call per object pickled, a quarter of the time of pickling
    statsmodels' results: only for the values that need it)."""
    if (refs is None or id(value) not in refs) and id(value) not in getattr(refs, "changed", ()):
        where = module_value(value)
        if where is not None:
            return _dump_module_value(value, where, sink, faithful, refs, later, exhaustive)
    return _dump(value, sink, faithful, refs, later, exhaustive)


class HeldContainer(Exception):
    """The value holds an exact list, dict, set or bytearray that is another value
    (*refs*), and was pickled with a copy of it: pickle it again with ``exhaustive=True``
    (the container then written as a reference), to a new sink."""


def _dump(
    value: Any,
    sink: Any,
    faithful: bool,
    refs: "dict | None",
    later: "dict | None",
    exhaustive: bool = False,
) -> Dumped:
    global _PICKLER
    if _PICKLER is None:
        _PICKLER = _pickler_class()
    sharing = bool(refs or later)
    if sharing and not exhaustive and type(value) in _CONTAINERS and id(value) in refs:
        exhaustive = True  # the value itself is another value: only a persistent_id writes it as one
    out_to = _Switch(sink) if sharing else sink  # the memo's probes (_memo_index) write elsewhere
    if sharing:
        pickler = _PICKLER(out_to, faithful, refs or {}, later or {}, exhaustive)
    else:
        pickler = _PICKLER(sink, faithful)
    try:
        pickler.dump_leaving_objects(value)
    except Exception as exc:
        if pickler.overrode and not isinstance(exc, OSError):
            raise DroppedUnpicklable(str(exc)) from exc
        raise
    out = Dumped(pickler.used, copies=pickler.copies)
    found, held, waiting = set(pickler.found), pickler.held, pickler.waiting
    if found or held or waiting:  # the memo indices of those objects, asked one by one
        later = later or {}
        if any(_memo_index(pickler, out_to, refs[oid][1]) is not None for oid in held):
            raise HeldContainer()
        indices = {oid: _memo_index(pickler, out_to, later[oid]) for oid in found.union(waiting)}
        out.found = {oid: i for oid, i in indices.items() if i is not None}
    return out


class _Switch:
    """The file a pickler writes to, which can be pointed elsewhere (a pickler takes its
    file's ``write`` once)."""

    __slots__ = ("target",)

    def __init__(self, target: Any) -> None:
        self.target = target

    def write(self, data: Any) -> Any:
        return self.target.write(data)


class _NotInMemo(Exception):
    pass


def _memo_index(pickler: Any, out_to: _Switch, obj: Any) -> "int | None":
    """The index of *obj* in the memo of *pickler* (which has dumped its value), or None when
    it is not there: *obj* dumped again alone, to a scratch buffer, is a memo get when it is
    in the memo (pickle looks at the memo before anything else but the persistent_id);
    otherwise the persistent_id stops the dump at the first object inside *obj*. A copy of the
    whole memo (``memo.copy()``, the only way to read it) costs ~2 ms for a figure."""
    scratch = io.BytesIO()
    out_to.target = scratch

    def persistent_id(o: Any) -> None:
        if o is obj:
            return None
        raise _NotInMemo

    pickler.persistent_id = persistent_id
    try:
        pickle.Pickler.dump(pickler, obj)
    except Exception:  # _NotInMemo, or what writing it anew raised: it was not in the memo
        return None
    data = scratch.getvalue()
    at = 2  # PROTO 5
    if data[at : at + 1] == pickle.FRAME:
        at += 9
    op = data[at : at + 1]
    if op == pickle.BINGET:
        return data[at + 1]
    if op == pickle.LONG_BINGET:
        return int.from_bytes(data[at + 1 : at + 5], "little")
    if op == pickle.GET:  # not written at protocol 5; for completeness
        return int(data[at + 1 : data.index(b"\n", at)])
    return None  # written anew: it was not in the memo


#: a module's object whose pickle is larger is written by value, not read back to try it
_TRY_LIMIT = 16 << 20
#: what is never a module's object worth a reference: it reads back as it was written
_PLAIN = frozenset(
    {int, float, complex, bool, str, bytes, type(None), tuple, list, dict, set, frozenset, bytearray, range}
)


def module_value(obj: Any) -> "tuple[str, str] | None":
    """``(module, name)`` when *obj* is (identity) the attribute *name* of a module fully
    imported under *module*: the module its class is defined in, or a package above it
    (``sympy.CC``, ``sympy.polys.domains.CC``: the shortest name); else None. Classes,
    functions and modules are left to pickle (by reference already), and so are plain
    values and arrays (they read back), values of classes made in ``__main__`` or builtins."""
    t = type(obj)
    if t in _PLAIN or issubclass(t, _NOT_SHARED):
        return None
    where = getattr(t, "__module__", None)
    if (
        type(where) is not str
        or where in ("builtins", "__main__")
        or (where, t.__name__) == ("numpy", "ndarray")
    ):
        return None
    modules, oid = sys.modules, id(obj)
    for name, module, attrs in _places_of(t, where):
        if modules.get(name) is not module:  # imported again since: looked up again next time
            _PLACES.pop(t, None)
            continue
        key = _names_of(name, attrs).get(oid)
        if key is not None and attrs.get(key) is obj:
            return name, key
    return None


#: class -> ``(name, module, its dict)`` of its module and the packages above it
_PLACES: Any = weakref.WeakKeyDictionary()


def _places_of(t: type, where: str) -> list:
    """:func:`_places` of class *t* (defined in module *where*), kept once every one
    of those modules is imported."""
    try:
        places = _PLACES.get(t)
    except TypeError:  # a class that cannot be weakly referred to: looked up each time
        places = None
    if places is None:
        places = _places(where)
        if len(places) == where.count(".") + 1:
            try:
                _PLACES[t] = places
            except TypeError:
                pass
    return places


def _places(where: str) -> list:
    """``(name, module, dict)`` of the modules *where* and the packages above it, shortest
    name first, that are fully imported under their own name (not one still running its
    code, made by hand, or the notebook's own namespace)."""
    modules = sys.modules
    parts = where.split(".")
    found = []
    for i in range(1, len(parts) + 1):
        name = ".".join(parts[:i])
        module = modules.get(name)
        attrs = getattr(module, "__dict__", None)  # a module's dict: no __getattr__ of its own is run
        if type(attrs) is not dict or name == "__main__" or initializing(module):
            continue
        if getattr(attrs.get("__spec__"), "name", None) == name:
            found.append((name, module, attrs))
    return found


#: module name -> (its number of attributes, ``id(value) -> name``) when last indexed
_NAMES: "dict[str, tuple[int, dict]]" = {}


def _names_of(name: str, attrs: dict) -> dict:
    """``id(value) -> attribute name`` of the module *name* (dict *attrs*), indexed
    again when its number of attributes changed. An attribute that is set anew
    without that is missed (its value is then written as it is); an id that now
    belongs to another object is no match (the caller compares identities)."""
    n = len(attrs)
    known = _NAMES.get(name)
    if known is not None and known[0] == n:
        return known[1]
    index = {}
    for k, v in list(attrs.items()):  # one step: another thread may set an attribute meanwhile
        if type(k) is str and k.isidentifier() and type(v) not in _PLAIN:
            index.setdefault(id(v), k)
    _NAMES[name] = (n, index)
    return index


class ModuleValueChanged(ImportError):
    """(reading) A value written as a module's attribute is no longer there, or no
    longer an object of the class it was: the module changed since."""


def _kind(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


def _module_value(module_name: str, name: str, kind: str) -> Any:
    """(in a pickle) The object *module_name* calls *name*, an object of class *kind*."""
    module = importlib.import_module(module_name)
    obj = getattr(module, name, _NO_VALUE)
    if obj is _NO_VALUE:
        raise ModuleValueChanged(
            f"{module_name}.{name} does not exist now (it was a {kind})", name=module_name
        )
    if _kind(obj) != kind:
        raise ModuleValueChanged(
            f"{module_name}.{name} is a {_kind(obj)} now, not the {kind} it was", name=module_name
        )
    return obj


class _ModuleValue:
    __slots__ = ("args",)

    def __init__(self, *args: str) -> None:
        self.args = args

    def __reduce__(self) -> Any:
        return _module_value, self.args


def _dump_module_value(
    value: Any,
    where: tuple,
    sink: Any,
    faithful: bool,
    refs: "dict | None",
    later: "dict | None",
    exhaustive: bool = False,
) -> Dumped:
    """Pickle *value*, the attribute ``where[1]`` of module ``where[0]``, by value to
    memory; write that when it holds no copy of a class made at run time and reads
    back; else write a reference to the attribute."""
    buf = io.BytesIO()
    out = _dump(value, buf, faithful, refs, later, exhaustive)  # what cannot be pickled fails here, as before
    data = buf.getbuffer()
    # a copy of a class made at run time is not what the module's code makes and checks for (and
    # reading it here would set the live class's state again); a pickle that refers to other
    # values is not read here (what reading makes could change them): either is written as it is
    if not out.copies and (len(data) > _TRY_LIMIT or out.used or _reads_back(data)):
        sink.write(data)
        return out
    del data
    pickle.Pickler(sink, protocol=5).dump(_ModuleValue(*where, _kind(value)))
    return Dumped()


def _reads_back(data: Any) -> bool:
    """Whether the pickle *data* (no references in it) can be read; what it makes is dropped."""
    try:
        load(data)
    except Exception:
        return False
    return True


class _Reader:
    """A read-only file over bytes or a bytearray (no copy, unlike ``io.BytesIO``)."""

    def __init__(self, data: Any) -> None:
        self.data = data if isinstance(data, (bytes, bytearray)) else bytes(data)
        self.view = memoryview(self.data)
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.view) if n is None or n < 0 else min(len(self.view), self.pos + n)
        out = bytes(self.view[self.pos : end])
        self.pos = end
        return out

    def readinto(self, buf: Any) -> int:
        target = memoryview(buf).cast("B")
        n = min(len(target), len(self.view) - self.pos)
        target[:n] = self.view[self.pos : self.pos + n]
        self.pos += n
        return n

    def readline(self) -> bytes:
        end = self.data.find(b"\n", self.pos)
        return self.read(-1 if end < 0 else end + 1 - self.pos)


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, resolve: Any) -> None:
        super().__init__(file)
        self.resolve = resolve

    def persistent_load(self, pid: Any) -> Any:
        if self.resolve is None:
            raise pickle.UnpicklingError("a reference to another value, and nothing to resolve it")
        return self.resolve(pid)


def load(data: Any, resolve: Any = None, memo: "dict | None" = None) -> Any:
    """Unpickle *data*. A submodule that its package makes on first attribute access
    (``from marray import numpy``: ``marray.numpy`` exists only after it) is made
    again the same way, when a value needs it in a new process. *resolve*
    gives the object of a persistent reference; *memo*, when given, receives
    the objects read (``memo index -> object``)."""
    made: set = set()
    while True:
        try:
            if resolve is None and memo is None:
                return pickle.loads(data)
            unpickler = _Unpickler(_Reader(data), resolve)
            outer, _RESOLVING.resolve = _RESOLVING.resolve, resolve
            try:
                value = unpickler.load()
            finally:
                _RESOLVING.resolve = outer
            if memo is not None:
                memo.update(unpickler.memo.copy())
            return value
        except ModuleNotFoundError as exc:
            name = exc.name or ""
            if name in made or not _make_dynamic_module(name):
                raise
            made.add(name)


def _make_dynamic_module(name: str) -> bool:
    parent, _, child = name.rpartition(".")
    if not parent:
        return False
    try:
        module = getattr(importlib.import_module(parent), child)
    except (ImportError, AttributeError):
        return False
    if not isinstance(module, types.ModuleType):
        return False
    sys.modules.setdefault(name, module)
    return True
