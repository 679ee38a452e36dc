"""Static analysis of step cells: inputs, outputs, mutation, result."""

import asyncio
import subprocess
import sys

import pytest

import nbsteps
from nbsteps import analyse
from nbsteps.errors import StepDefinitionError
from nbsteps.model.analysis import analyse_cell


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


# -- real scoping (reported defects) -------------------------------------------------


def io(src):
    r = a(src)
    return set(r.inputs), set(r.outputs)


def test_comprehension_first_iterable_is_read_in_the_enclosing_scope():
    assert io("x2 = [x * 2 for x in x]") == ({"x"}, {"x2"})
    assert io("pairs = {k: v for k, v in d.items() if v > lim}") == ({"d", "lim"}, {"pairs"})
    assert io("g = (y for y in ys for z in y)") == ({"ys"}, {"g"})


def test_walrus_in_a_comprehension_binds_in_the_cell():
    assert io("[y := f(v) for v in vs]") == ({"f", "vs"}, {"y"})
    assert io("any((hit := v) > 3 for v in vs)\nlast = hit") == ({"vs"}, {"hit", "last"})
    # inside a function the walrus binds in the function, not the cell
    assert io("def g():\n    [(w := 0) for i in range(3)]\n    return w") == (set(), {"g"})


def test_match_captures_are_outputs_and_case_bodies_scope_normally():
    src = (
        "match p:\n    case Point(x=px):\n        q = px + z\n    case [first, *rest]:\n        pass\n"
        "    case {'k': kv, **others}:\n        pass\n    case Color.RED | None as c:\n        pass"
    )
    ins, outs = io(src)
    assert ins == {"p", "Point", "z", "Color"}
    assert outs == {"px", "q", "first", "rest", "kv", "others", "c"}


def test_global_assigned_by_a_called_function_is_an_output():
    src = "def tick():\n    global calls\n    calls += 1\ntick(); tick()"
    assert io(src) == ({"calls"}, {"tick", "calls"})
    assert "calls" in a(src).mutated
    assert io("calls = 0\n" + src) == (set(), {"calls", "tick"})
    # defined but never called: nothing is written
    assert io("def setg():\n    global g\n    g = 1") == (set(), {"setg"})
    # called through another function, defined later
    assert io("def outer():\n    inner()\ndef inner():\n    global g\n    g = k\nouter()") == (
        {"k"},
        {"outer", "inner", "g"},
    )


def test_global_update_reaches_the_steps_outputs_at_run_time():
    plan = nbsteps.Plan()
    plan.add_cell("count", "calls = 0\ndef tick():\n    global calls\n    calls += 1\ntick(); tick()")
    plan.add_cell("later", "seen = calls * 10")
    assert plan.run().ok
    assert plan["count"].outputs["calls"] == 2 and plan["later"].outputs["seen"] == 20
    assert plan.dependencies("later") == {"count": "inferred"}


def test_class_bodies_are_ordered_and_do_not_leak_into_methods():
    assert io("class C:\n    a = b\n    b = 1") == ({"b"}, {"C"})
    assert io("class C:\n    b = 1\n    a = b") == (set(), {"C"})
    # a method never sees the class's names: `scale` is the cell's global
    assert io("class C:\n    scale = 2\n    def m(self):\n        return scale") == ({"scale"}, {"C"})
    # comprehensions in a class body see only their first iterable in the class
    assert io("class C:\n    xs = [1]\n    ys = [x for x in xs]\n    zs = [len(xs) for _ in ys]") == (
        {"xs"},
        {"C"},
    )


def test_names_deleted_by_the_end_of_the_cell_are_not_outputs():
    assert io("tmp = load()\nout = tmp * 2\ndel tmp") == ({"load"}, {"out"})
    assert io("try:\n    v = f()\nexcept ValueError as err:\n    msg = str(err)") == ({"f"}, {"v", "msg"})
    assert io("del old") == ({"old"}, set())


def test_top_level_await_is_accepted_and_runs():
    r = a("import asyncio\nawait asyncio.sleep(0)\ndone = True")
    assert r.outputs == ("asyncio", "done")
    plan = nbsteps.Plan()
    plan.add_cell(
        "wait", "import asyncio\nawait asyncio.sleep(0.01)\ndone = True\nawait asyncio.sleep(0, 'r')"
    )
    assert plan.run().ok
    assert plan["wait"].outputs["done"] is True and plan["wait"].result == "r"

    async def inside_a_running_loop():  # as in ipykernel, where a loop runs on the main thread
        plan.run(force_all=True)

    asyncio.run(inside_a_running_loop())
    assert plan["wait"].ok and plan["wait"].result == "r"


def test_magics_in_transformed_form(shell):
    t = shell.transform_cell
    assert io(t("%time x = f(a)")) == ({"f", "a"}, {"x"})
    assert io(t("%timeit -n 10 -r 2 y = g(b)")) == ({"g", "b"}, set())  # timeit's names stay inside it
    assert io(t("%%time\nz = h(c)\n")) == ({"h", "c"}, {"z"})
    assert io(t("%prun -s cumulative w = k(d)")) == ({"k", "d"}, {"w"})
    assert io(t("listing = !ls {folder} $pattern")) == ({"folder", "pattern"}, {"listing"})
    assert io(t("!cp {src} out/")) == ({"src"}, set())
    assert a(t("!ls data/raw")).state == {"file:data/raw"}


def test_magic_cell_runs_through_the_shell(shell):
    from conftest import run_ok

    run_ok(shell, "a_val = 3\ndef f(v):\n    return v + 1")
    run_ok(shell, "%%step timed\n%time x = f(a_val)\n")
    assert shell.user_ns["x"] == 4
    assert nbsteps.step("timed").outputs == {"x": 4}


def test_star_import_names_are_outputs_or_a_warning():
    r = a("from math import *\ny = floor(pi)")
    assert {"pi", "floor", "y"} <= set(r.outputs) and "pi" not in r.inputs and not r.warnings
    r = a("from no_such_module_xyz import *\nv = thing")
    assert r.inputs == {"thing"} and "no_such_module_xyz" in r.warnings[0] and "explicitly" in r.warnings[0]


def test_changes_to_module_attributes_are_not_outputs():
    r = a(
        "import sys\nimport numpy as np\nsys.path.append('src')\npd.options.display.max_rows = 5\n"
        "np.random.seed(0)\nos.environ['K'] = '1'\nplt.rcParams['figure.dpi'] = 90"
    )
    assert set(r.outputs) == {"sys", "np"} and not r.mutated
    assert r.inputs == {"pd", "os", "plt"}


def test_step_code_does_not_inherit_nbsteps_future_annotations():
    plan = nbsteps.Plan()
    plan.add_cell("ann", "def f(x: int) -> str: ...\nann = f.__annotations__")
    assert plan.run().ok
    assert plan["ann"].outputs["ann"] == {"x": int, "return": str}


# -- mutation ------------------------------------------------------------------------
def test_more_mutation_forms():
    cases = {
        "setattr(obj, 'a', 1)": "obj",
        "delattr(obj, 'a')": "obj",
        "model.fit(X, y)": "model",
        "rng.shuffle(arr)": "rng",
        "random.shuffle(lst)": "lst",
        "np.random.shuffle(arr)": "arr",
        "v = lst.pop()": "lst",
        "t.add_(1)": "t",
        "helper(df)": "df",
        "df['a'] += 1": "df",
        "del obj.attr": "obj",
        "scaler.fit_transform(X)": "scaler",
    }
    for src, name in cases.items():
        r = a(src)
        assert name in r.mutated and name in r.inputs and name in r.outputs, src
    assert a("rng.shuffle(arr)").mutated == {"rng", "arr"}


def test_calls_whose_effect_depends_on_the_object_are_left_to_its_type():
    # a draw advances a generator but only reads a list or a frame: decided on the value
    # (nbsteps.model.hints), never on how the variable is spelt
    for src in ["sample = rng.normal(size=3)", "k = rng.integers(0, 9)", "x, = rng.choice(xs, 1)"]:
        r = a(src)
        assert "rng" not in r.mutated and ("rng", src.split(".")[1].split("(")[0], True, False) in r.calls, (
            src
        )
    # x.plot() on a name the cell does not bind: assumed changed (an axes) until its value is known
    r = a("ax.plot(xs)")
    assert r.assumed == {"ax"} and not r.mutated and r.state == {"pyplot"}
    assert a("fig, ax = plt.subplots()\nax.plot(xs)").assumed == frozenset()


def test_calls_that_do_not_change_their_arguments():
    for src in [
        "print(df)",
        "display(df)",
        "n = len(df)",
        "df.head()",
        "top = df.head()",
        "df.describe()",
        "fig.savefig('a.png')",
        "s = sorted(xs)",
        "isinstance(x, int)",
        "df.to_csv('o.csv')",
        "smp = df.sample(3)",
        "np.mean(arr)",
        "json.dumps(cfg)",
        "plt.plot(xs)",
        "sns.lineplot(data=df)",
        "df.plot(x='a')",
        "df.plot.bar()",
        "s.hist()",
    ]:
        assert not a(src).mutated, src


def test_functions_of_the_cell_that_change_globals_or_arguments():
    r = a("def add(v):\n    items.append(v)\nadd(1)")
    assert r.mutated == {"items"} and r.inputs == {"items"} and "items" in r.outputs
    assert not a("def add(v):\n    items.append(v)").mutated  # never called here
    r = a("def add_col(d):\n    d['z'] = 1\n    return d\nout = add_col(df)")
    assert r.mutated == {"df"}
    assert not a("def total(d):\n    return d.sum()\nout = total(df)").mutated


# -- shared process state ----------------------------------------------------------------
def st(src):
    r = a(src)
    return set(r.state), set(r.effects)


def test_state_labels_and_effects():
    assert st("random.seed(1)") == ({"random"}, {"random"})
    assert st("v = random.random()") == ({"random"}, set())
    assert st("import numpy\nnumpy.random.seed(0)") == ({"numpy.random"}, {"numpy.random"})
    assert st("from numpy import random as npr\nu = npr.rand(3)") == ({"numpy.random"}, set())
    assert st("from numpy import random\nrandom.seed(1)") == ({"numpy.random"}, {"numpy.random"})
    assert st("from random import shuffle\nshuffle(deck)") == ({"random"}, set())
    assert a("from random import shuffle\nshuffle(deck)").mutated == {"deck"}
    assert st("rng = np.random.default_rng(0)") == (set(), set())
    assert st("torch.manual_seed(0)") == ({"torch.random"}, {"torch.random"})
    assert st("t = torch.randn(3)") == ({"torch.random"}, set())
    assert st("import matplotlib.pyplot as P\nP.plot([1])\nP.show()") == ({"pyplot"}, set())
    assert st("plt.style.use('ggplot')") == (
        {"pyplot", "options:matplotlib"},
        {"pyplot", "options:matplotlib"},
    )
    assert st("sns.set_theme()")[1] == {"pyplot", "options:matplotlib"}
    assert st("sns.histplot(df)") == ({"pyplot"}, set())
    assert st("df.plot(x='a')") == ({"pyplot"}, set())
    assert st("os.chdir('/tmp')") == ({"cwd"}, {"cwd"})
    assert st("os.environ['A'] = '1'") == ({"environ"}, {"environ"})
    assert st("os.putenv('A', '1')")[1] == {"environ"} and st("os.environ.update(A='1')")[1] == {"environ"}
    assert st("key = os.environ.get('A')") == ({"environ"}, set())
    assert st("import sys\nsys.path.insert(0, 'src')")[1] == {"sys.path"}
    assert st("pd.set_option('display.width', 200)") == ({"options:pandas"}, {"options:pandas"})
    assert st("pd.options.display.max_rows = 5")[1] == {"options:pandas"}
    assert st("np.set_printoptions(precision=3)")[1] == {"options:numpy"}
    assert st("import matplotlib as mpl\nmpl.rcParams['lines.linewidth'] = 2")[1] == {
        "options:matplotlib",
        "pyplot",
    }
    assert st("matplotlib.rc('font', size=8)")[1] == {"options:matplotlib", "pyplot"}


def test_file_labels():
    assert st("with open('data/in.csv') as fh:\n    t = fh.read()") == ({"file:data/in.csv"}, set())
    assert st("with open('out.txt', 'w') as fh:\n    fh.write('x')") == ({"file:out.txt"}, {"file:out.txt"})
    assert st("df = pd.read_csv('./raw.csv')") == ({"file:raw.csv"}, set())
    assert st("df.to_csv('clean.csv')") == ({"file:clean.csv"}, {"file:clean.csv"})
    assert st("np.save('a.npy', arr)")[1] == {"file:a.npy"} and st("b = np.load('a.npy')")[0] == {
        "file:a.npy"
    }
    assert st("fig.savefig('plot.png')")[1] == {"file:plot.png"}
    assert st("plt.savefig('plot.png')") == ({"pyplot", "file:plot.png"}, {"file:plot.png"})
    assert st("p = Path('data')") == ({"file:data"}, set())
    assert st("Path('out.txt').write_text('x')")[1] == {"file:out.txt"}
    assert st("print('saved to out.csv')") == (set(), set())
    assert st("s2 = s.rename('departures')") == (set(), set())  # a pandas method, not os.rename
    assert st("Path('out').mkdir()")[1] == {"file:out"}
    assert st("df = pd.read_csv('https://example.org/x.csv')") == (set(), set())


def test_state_through_a_called_function():
    assert st("def setup():\n    np.random.seed(0)\nsetup()")[1] == {"numpy.random"}
    assert st("def setup():\n    np.random.seed(0)") == (set(), set())


# -- warnings --------------------------------------------------------------------------------
def test_exec_eval_globals_warn():
    r = a("exec(code)")
    assert "cannot see dependencies inside exec/eval strings" in r.warnings[0]
    r = a("exec('y = x + 1')")
    assert r.inputs == {"x"} and "y" in r.outputs and "x, y" in r.warnings[0]
    r = a("globals()['made'] = 1\nv = locals()['other']")
    assert "globals() (line 1)" in r.warnings[0] and "locals() (line 2)" in r.warnings[1]
    assert not a("y = x + 1").warnings


# -- public API -----------------------------------------------------------------------------
def test_public_analyse():
    r = nbsteps.analyse("df2 = df.dropna()")
    assert r.inputs == {"df"} and r.outputs == {"df2"} and r.mutated == set()
    assert isinstance(r.inputs, set) and r.state == set() and r.effects == set() and r.warnings == ()
    r = analyse("%%step clean --retry 2\n%time y = f(x)\n!ls {d}")
    assert r.inputs == {"f", "x", "d"} and r.outputs == {"y"}
    with pytest.raises(StepDefinitionError):
        analyse("x = (")


def test_import_nbsteps_does_not_import_ipython():
    code = "import sys, nbsteps; nbsteps.analyse; print('IPython' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
