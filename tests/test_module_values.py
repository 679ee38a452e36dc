"""A value that is an object a module owns (``from lib import FIELD``) and whose pickle cannot be
read back is stored as a reference to that module attribute; a new process restores it by
importing the module: the very object Run All has (found by the corpus: SymPy's ``CC``, a
``ComplexField`` holding mpmath classes made per context, pickled but failed to unpickle, so every
resume and the zero-edit second run of ``from sympy import *`` executed the import cell again).

What stays by value: a module's object that pickles and reads back (a list a step appends to keeps
what was appended), and a module's object a later step changes (that step's version is its own; as
it cannot be read back, the step executes again in the new process, as Run All). A reference that
no longer names such an object when it is read (the module changed) is an unreadable checkpoint:
reported, and the step executes again. Each run below is a new process (a real IPython shell on a
real directory store): nothing of the first run's objects is left for the second one.
"""

from __future__ import annotations

import pytest
from conftest import shell_on_store

LIBRARY = '''
class Field:
    """Like SymPy's ComplexField: a module-level singleton whose pickle cannot be read back."""

    def __init__(self, prec):
        self.prec = prec

    def __reduce__(self):
        return (Field, ())  # unpickling calls Field() without prec: TypeError


FIELD = Field(53)
REGISTRY = ["builtin"]


class Context:
    """Like mpmath's contexts: classes made per context (cloudpickle copies them by value)."""

    def __init__(self):
        class Number:
            context = self

        self.Number = Number
        self.one = Number()


CONTEXT = Context()
'''

REPORT = """
import importlib, pathlib
lib = importlib.import_module(LIB)
out["origin"] = {n: plan[n].origin for n in plan.steps}
out["reason"] = {n: plan[n].reason for n in plan.steps}
field = ip.user_ns.get("FIELD")
out["is_module_attr"] = field is getattr(lib, "FIELD", None)
out["prec"] = getattr(field, "prec", field)
out["registry"] = ip.user_ns.get("REGISTRY")
context = ip.user_ns.get("CONTEXT")
out["context_is_module_attr"] = context is getattr(lib, "CONTEXT", None)
intact = context is not None and context.Number.context is context
out["context_intact"] = intact and type(context.one) is context.Number
out["runs"] = pathlib.Path("runs.txt").read_text()
out["shown"] = shown.getvalue()
"""


@pytest.fixture
def lib(tmp_path):
    name = f"fieldlib_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(LIBRARY)  # importable in the processes: they run in tmp_path
    return name


def _run(tmp_path, lib, cells, read="FIELD"):
    """A new process runs *cells* on the store, then a plain cell naming *read*; what it saw."""
    report = f"LIB = {lib!r}\n" + REPORT
    return shell_on_store(tmp_path / "store", [*cells, f"_ = {read}"], tmp_path, report)


def _not_executed(seen, *names):
    """Steps *names* were not executed in that process: restored from the store, or restored and
    then completed again as held by the run of a step below them on shared state ("kept")."""
    return all(seen["origin"][n] in ("restored", "kept") for n in names)


def _step(name, body):
    return (
        f"%%step {name}\nimport pathlib\nlog = pathlib.Path('runs.txt')\n"
        f"log.write_text((log.read_text() if log.exists() else '') + '{name}')\n{body}"
    )


def test_a_module_value_that_cannot_be_unpickled_is_restored_as_the_module_attribute(tmp_path, tmp_key, lib):
    cells = [_step("a", f"from {lib} import FIELD\nx = 1"), _step("b", "y = FIELD.prec + x")]
    first = _run(tmp_path, lib, cells)
    assert first["runs"] == "ab" and first["is_module_attr"]
    again = _run(tmp_path, lib, cells)  # a new process: the step of the import is not executed again
    assert again["runs"] == "ab", again["reason"]
    assert _not_executed(again, "a", "b")
    assert again["is_module_attr"]  # the module's own object, as Run All binds it, not a copy
    assert again["prec"] == 53
    assert "could not be read" not in again["shown"]


def test_a_module_value_changed_by_a_later_step_keeps_the_change(tmp_path, tmp_key, lib):
    cells = [_step("a", f"from {lib} import FIELD"), _step("b", "FIELD.prec = 99")]
    first = _run(tmp_path, lib, cells)
    assert first["prec"] == 99
    again = _run(tmp_path, lib, cells)
    # b's version of FIELD is its own (not what importing the module gives); it cannot be read back,
    # so b executes again on the module's object, as Run All does: never FIELD without the change
    assert again["prec"] == 99 and again["is_module_attr"]
    assert _not_executed(again, "a")
    assert again["runs"] == "abb"


def test_a_module_list_a_step_appends_to_keeps_what_was_appended(tmp_path, tmp_key, lib):
    cells = [
        _step("a", f"from {lib} import REGISTRY\nmine = 'mine'\nREGISTRY.append(mine)"),
        _step("b", "later = 'later'\nREGISTRY.append(later)"),
    ]
    first = _run(tmp_path, lib, cells, read="REGISTRY")
    assert first["registry"] == ["builtin", "mine", "later"]
    again = _run(tmp_path, lib, cells, read="REGISTRY")
    assert again["runs"] == "ab" and _not_executed(again, "a", "b")
    assert again["registry"] == ["builtin", "mine", "later"]  # by value: what the steps left


def test_a_reference_that_no_longer_names_the_object_is_an_unreadable_checkpoint(tmp_path, tmp_key, lib):
    cells = [_step("a", f"from {lib} import FIELD")]
    _run(tmp_path, lib, cells)
    # the module changed since: FIELD is a number now (a longer file: no stale bytecode)
    (tmp_path / f"{lib}.py").write_text(LIBRARY.replace("FIELD = Field(53)", "FIELD = 53  # " + "x" * 40))
    again = _run(tmp_path, lib, cells, read="FIELD")
    assert again["runs"] == "aa"  # executed again, as Run All: FIELD is what the module has now
    assert again["origin"] == {"a": "executed"}
    assert "its checkpoint could not be read" in again["reason"]["a"], again["reason"]
    assert again["reason"]["a"].endswith("ModuleValueChanged while unpickling FIELD")
    assert again["prec"] == 53 and again["is_module_attr"]


def test_a_module_value_holding_classes_made_at_run_time_is_restored_as_the_module_attribute(
    tmp_path, tmp_key, lib
):
    # by value it would read back, with copies of the classes: not the module's (isinstance fails)
    cells = [_step("a", f"from {lib} import CONTEXT")]
    first = _run(tmp_path, lib, cells, read="CONTEXT")
    assert first["context_is_module_attr"] and first["context_intact"]  # writing it changed nothing
    again = _run(tmp_path, lib, cells, read="CONTEXT")
    assert again["runs"] == "a" and again["origin"] == {"a": "restored"}
    assert again["context_is_module_attr"] and again["context_intact"]
