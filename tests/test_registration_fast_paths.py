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
