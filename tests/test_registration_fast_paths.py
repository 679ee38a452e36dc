"""Registering a ``%%step`` cell takes shortcuts for the usual case (issue 26, target 6): a name
alone, no options, nothing observed or hinted. Each shortcut gives what the general path gives."""

from __future__ import annotations

import itertools

from conftest import run_ok

from nbsteps.ipython import session
from nbsteps.model.analysis import analyse_cell
from nbsteps.model.step import Step, cell_step

CELLS = [
    ("load", "x = 1\ny = [x, 2]"),
    ("use", "y.append(x)\nz = sorted(y)\nz"),
    ("draw", "import numpy as np\nrng = np.random.default_rng(0)\nv = rng.normal(size=3)\nv.sum()"),
    ("plot", "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot(v)"),
]


def _registered(shell, line_options: str) -> dict:
    session.new_plan()
    run_ok(shell, "%steps mode plan")
    for name, body in CELLS:
        run_ok(shell, f"%%step {name}{line_options}\n{body}")
    plan = session.current()
    return {
        name: (
            {k: v for k, v in vars(step).items() if k != "analysis"},
            step.analysis,
            step.static_digest,
            step.inputs,
            step.outputs,
            step.mutated,
            plan.dependencies(name),
        )
        for name, step in plan.steps.items()
    }


def test_a_name_alone_registers_the_step_its_options_spelled_out_register(shell):
    """``%%step NAME`` skips argparse and the options' checks: the same Step, fingerprint and
    edges as ``%%step NAME`` with every option at its default written out (the checked path)."""
    alone = _registered(shell, "")
    spelled = _registered(shell, " --retry 0 --retry-delay 1.0")
    assert alone == spelled
    assert all(a[2] for a in alone.values())  # a static digest each


def test_a_cell_step_without_options_is_the_dataclass_built_with_them():
    source = "\nq = p * 2\nq"
    fast = cell_step("fast", source)
    full = Step(name="fast", source=source, analysis=analyse_cell("fast", source))
    full.static_digest = f"{full.analysis.digest}|after=[]"
    # (the fast path's digest is computed when first read: the same)
    assert fast.static_digest == full.static_digest
    assert vars(fast) == vars(full)
    assert fast.hints is not cell_step("fast", source).hints  # a dict of its own


def test_step_properties_shortcuts_match_the_general_expressions():
    """``outputs``, ``changes`` and ``mutated`` return the analysis' own values when nothing
    else (linked, observed, hinted, unchanged, assumed) adds to them: the same as computed."""
    base = analyse_cell("props", "a.append(1)\nb = a[0]\nc.plot()\nd.sort()\n")
    assert base.assumed and base.mutated
    plain = analyse_cell("props2", "b = a[0] + 1\n")
    names = frozenset({"a", "b", "c", "d", "e"})
    for analysis in (base, plain):
        for linked, observed, unchanged, hints in itertools.product(
            (frozenset(), frozenset({"e"})),
            (frozenset(), frozenset({"a", "e"})),
            (frozenset(), frozenset({"c"}), frozenset({"a", "d"})),
            ({}, {"c": "pandas.Series.plot"}),
        ):
            s = Step(name="props", source=analysis.source, analysis=analysis, hints=dict(hints))
            s.linked, s.observed, s.unchanged = linked, observed, unchanged
            a = analysis
            hinted = frozenset(s.hints) - unchanged if s.hints else frozenset()
            changes = ((a.mutated | a.assumed) - unchanged) | observed | hinted
            outs = tuple(n for n in a.outputs if n not in unchanged) if unchanged else a.outputs
            extra = linked | observed | hinted | (a.assumed - unchanged)
            outputs = outs + tuple(sorted(extra - set(outs))) if extra else outs
            assert s.changes == changes and s.changes <= names
            assert s.mutated == changes | linked
            assert s.outputs == outputs


def test_a_cell_steps_digests_read_later_are_the_ones_made_at_registration():
    """A cell step registered without options gets its code digest (the analysis' ``digest``, the
    Step's ``static_digest``) when first read, not when registered: the same text as computed
    from its compiled code at once, for a result, a function, a class, a set literal; equal
    analyses stay equal (the digest is a field), and a digest set on a step is kept."""
    from nbsteps.model.analysis import CellAnalysis
    from nbsteps.model.fingerprint import code_digest

    sources = [
        "\nx = 1",
        "\nq = p * 2\nq",
        "\ndef f(a):\n    return a in {'u', 'v'}\nclass C:\n    k = lambda self: 2\nf(1)",
        "\nimport os\nos.getcwd();",
    ]
    for i, source in enumerate(sources):
        step = cell_step(f"lazy{i}", source)
        a = step.analysis
        want = code_digest(a.body) + (code_digest(a.result) if a.result is not None else "")
        assert step.static_digest == f"{want}|after=[]"
        assert a.digest == want
        built = CellAnalysis(**{f: getattr(a, f) for f in CellAnalysis.__dataclass_fields__})
        assert built == a and hash(built) == hash(a)
        fresh = cell_step(f"lazy{i}", source)  # (the same analysis, from the cache)
        assert fresh.static_digest == step.static_digest
        fresh.static_digest = "set"
        assert fresh.static_digest == "set" and Step.static_digest == ""
