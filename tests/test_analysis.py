"""Static analysis of step cells: inputs, outputs, mutation, result."""
import pytest

from nbsteps.model.analysis import analyse_cell
from nbsteps.errors import StepDefinitionError


def a(src):
    return analyse_cell("s", src)


def test_assignments_and_reads():
    r = a("y = x + 1\nz = y * 2")
    assert r.inputs == {"x"}
    assert r.outputs == ("y", "z")
    assert not r.has_result


def test_all_binding_forms_are_outputs():
    src = (
        "import os\nimport a.b\nfrom math import pi as PI\n"
        "def f(q):\n    return q + k\n"
        "class C:\n    pass\n"
        "for i in range(3):\n    pass\n"
        "with open('f') as fh:\n    pass\n"
        "t, (u, *v) = 1, (2, 3)\n"
        "if (w := 5):\n    pass\n"
        "n: int = 3\n"
    )
    r = a(src)
    for name in ["os", "a", "PI", "f", "C", "i", "fh", "t", "u", "v", "w", "n"]:
        assert name in r.outputs, name
    # k is read by f from the global scope; q is f's own parameter
    assert "k" in r.inputs and "q" not in r.inputs


def test_read_before_write_is_an_input():
    r = a("x = x + 1")
    assert "x" in r.inputs and "x" in r.outputs
    r = a("x = 1\ny = x")
    assert "x" not in r.inputs


def test_mutation_forms():
    cases = {
        "df['z'] = 1": "df",
        "obj.attr = 2": "obj",
        "del d['k']": "d",
        "lst.append(3)": "lst",
        "df.drop(columns=['a'], inplace=True)": "df",
        "s.update({1})": "s",
        "acc += 1": "acc",
    }
    for src, name in cases.items():
        r = a(src)
        assert name in r.mutated, src
        assert name in r.inputs and name in r.outputs, src


def test_local_mutation_is_not_an_input():
    r = a("lst = []\nlst.append(1)")
    assert "lst" not in r.inputs and "lst" not in r.mutated


def test_comprehension_and_lambda_scopes():
    r = a("out = [x * factor for x in data]\nf = lambda v: v + offset")
    assert r.inputs == {"factor", "data", "offset"}
    assert "x" not in r.inputs and "v" not in r.inputs


def test_result_is_last_expression_unless_semicolon():
    assert a("x = 1\nx + 1").has_result
    assert not a("x = 1\nx + 1;").has_result


def test_builtins_are_not_inputs():
    assert a("y = len(range(3))").inputs == frozenset()


def test_syntax_error_names_step_and_line():
    with pytest.raises(StepDefinitionError) as e:
        analyse_cell("clean", "x = 1\ny = (")
    msg = str(e.value)
    assert "clean" in msg and "line 2" in msg


def test_digest_ignores_comments_and_layout():
    assert a("x = 1  # one\n").digest == a("x=1\n").digest
    assert a("x = 1").digest != a("x = 2").digest
