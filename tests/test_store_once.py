"""Stored once (issue 26, target 4), for values passed on: a step that holds an
upstream value (in a container, under another name) stores a reference to it,
not a copy, so editing and re-running a middle cell ten times leaves the store at
about one full set of checkpoints plus what really changed."""

from __future__ import annotations

import nbsteps


def _store_bytes(root) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and ".locks" not in p.parts)


def test_ten_edits_of_a_middle_cell_do_not_copy_the_big_upstream_value(tmp_path, tmp_key):
    store = tmp_path / "s"
    plan = nbsteps.Plan(store=store)
    plan.add_cell(
        "big", "import numpy as np\nimport pandas as pd\ndf = pd.DataFrame({'a': np.arange(2_000_000.0)})"
    )
    plan.add_cell("middle", "k = 0\nbundle = {'data': df, 'k': k}\nsame = df")
    plan.add_cell("last", "total = bundle['k'] + len(same)")
    plan.run()
    one_set = _store_bytes(store)
    assert one_set > 16_000_000
    for k in range(1, 11):
        plan.add_cell("middle", f"k = {k}\nbundle = {{'data': df, 'k': k}}\nsame = df")
        summary = plan.run()
        assert summary.executed == ["middle", "last"]
        assert (
            plan.namespace["total"] == k + 2_000_000
            and plan.namespace["bundle"]["data"] is plan.namespace["df"]
        )
    assert _store_bytes(store) <= 1.1 * one_set  # 11 versions of middle and last kept, each a few KB
    restored = nbsteps.Plan(store=store)
    restored.add_cell(
        "big", "import numpy as np\nimport pandas as pd\ndf = pd.DataFrame({'a': np.arange(2_000_000.0)})"
    )
    restored.add_cell("middle", "k = 10\nbundle = {'data': df, 'k': k}\nsame = df")
    restored.add_cell("last", "total = bundle['k'] + len(same)")
    assert restored.run().executed == []
    ns = restored.namespace
    assert ns["bundle"]["data"] is ns["df"] and ns["same"] is ns["df"] and ns["total"] == 2_000_010
