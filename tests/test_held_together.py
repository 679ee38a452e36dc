"""Names that share objects with a value a step changes in place (nbsteps.run.attempt.together)
see the change, as in Run All.

A step that changes an input works on a private copy of it (the version above stays intact), or,
when the change was not predicted, the step above is made again. Either way another name that
shares objects with the changed value was left on the old objects:
``pipe = make_pipeline(scaler, clf)`` then ``pipe.fit(X, y)`` left ``scaler`` unfitted;
``user_table = Table("user", metadata)`` then
``Table("address", metadata)`` left ``user_table.metadata`` another object with one table
(SQLAlchemy's tutorial in the corpus). Those names are now copied with the changed value and
written by the step; the second case (a change not predicted, no copy) is a known gap.
"""

from __future__ import annotations

import pytest

from tests.conftest import run_steps
from tests.test_semantics import run_all


def _steps(cells):
    return [f"%%step c{i}\n{body}" for i, body in enumerate(cells)]


PIPE = [
    "import numpy as np\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.pipeline import make_pipeline\n"
    "from sklearn.preprocessing import StandardScaler\n"
    "X = np.random.RandomState(0).rand(40, 3)\ny = (X[:, 0] > 0.5).astype(int)",
    "scaler = StandardScaler()\npipe = make_pipeline(scaler, LogisticRegression())",
    "pipe.fit(X, y)",
    "m = scaler.mean_.round(6).tolist()",
]


@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_an_estimator_inside_a_pipeline_fitted_in_place_is_fitted(shell, mode):
    pytest.importorskip("sklearn")
    run_steps(shell, _steps(PIPE), mode)
    ns = shell.user_ns
    assert ns["m"] == run_all(PIPE)["m"]
    assert ns["scaler"] is ns["pipe"].steps[0][1]


TABLES = '''
class MetaData:
    def __init__(self):
        self.tables = {}

class Table:
    """Registers itself in the MetaData it is given (as SQLAlchemy's Table does)."""
    def __init__(self, name, metadata):
        self.name, self.metadata = name, metadata
        metadata.tables[name] = self
'''


@pytest.fixture
def tables(module_from_source):
    return module_from_source("tableslib", TABLES)


META = [
    "from tableslib import MetaData, Table\nmd = MetaData()\nusers = Table('users', md)",
    "addresses = Table('addresses', md)",  # changes md, which the code does not show
    "names = sorted(users.metadata.tables)",
]


@pytest.mark.xfail(
    strict=True,
    reason="known gap: a change not predicted rebuilds the step above, whose other names are new objects; "
    "making them writes of the changing step (as the same objects) made SQLAlchemy's tutorial execute "
    "its INSERT steps again (docs/usage.md)",
)
@pytest.mark.parametrize("mode", ["interactive", "plan"])
def test_an_object_holding_a_value_changed_unseen_holds_the_changed_value(shell, tables, mode):
    run_steps(shell, _steps(META), mode)
    ns = shell.user_ns
    assert ns["names"] == run_all(META)["names"] == ["addresses", "users"]
    assert ns["users"].metadata is ns["md"] and ns["addresses"].metadata is ns["md"]
