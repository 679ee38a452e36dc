"""A new kernel resuming from a directory store decides what a step writes as the kernel that
made the checkpoints did, before it has read the restored values.

``res.plot()`` on a name from another step is *assumed* to change it (it could be an axes)
until its value is known. The first kernel registers each cell with the values above it in
its namespace and finds a read. A second kernel restores those values lazily (nothing is
read until needed): before, it kept the assumption, so the step became a writer of ``res``,
the steps below read ``res`` from it instead of from the step that made it, their upstream
tokens differed from their checkpoints', and they ran again (statsmodels' ARMA tutorial: 10
of 38 steps, ``dta.plot()`` and ``cpi.plot()``). Two real processes on one store.

Reading ``res.total`` binds a private cache dict on ``res`` the first time (statsmodels'
``self.__dict__.setdefault("_summary_statistics_cache", {})`` when ``res.aic`` is read): no
change of ``res`` (before, the reading step became a writer of it and stored it again).
"""

from conftest import shell_on_store

REPORT = """
origins = {s: [plan[s].origin, plan[s].reason] for s in plan.steps}
plan.load()  # what was restored and not read yet
out.update(origins=origins, outputs={s: list(plan.steps[s].outputs) for s in plan.steps},
           values=[ip.user_ns.get("doubled")])
"""

MODULE = '''

class Results:
    """A fitted model's results: statistics computed on first read, kept in a private cache."""

    def __init__(self, data):
        self.data = list(data)

    def _cached(self, key, compute):
        cache = self.__dict__.setdefault("_stats_cache", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    @property
    def total(self):
        return self._cached("total", lambda: sum(self.data))

    def plot(self):
        print("plotting", self.data)
'''

CELLS = [
    "%%step imports\nfrom results import Results",
    "%%step fit\nres = Results([1, 2, 3])",
    "%%step show\nres.plot()",  # assumed to change res until res is known: no axes, a read
    "%%step stats\nprint(res.total)",
    "%%step more\ndoubled = res.total * 2",
]


def kernel(store, cwd) -> dict:
    return shell_on_store(store, CELLS, cwd, REPORT)


def test_a_new_kernel_restores_every_step_below_an_assumed_write_that_was_a_read(tmp_path, tmp_key):
    (tmp_path / "results.py").write_text(MODULE)
    store = tmp_path / "store"
    first = kernel(store, tmp_path)
    assert "res" not in first["outputs"]["show"], first
    # reading res.total binds res._stats_cache the first time: a cache a read made, no write of res
    assert "res" not in first["outputs"]["stats"], first
    second = kernel(store, tmp_path)
    executed = {s: why for s, (origin, why) in second["origins"].items() if origin == "executed"}
    assert executed == {}, executed  # before: stats ("upstream show changed"), more
    assert second["outputs"] == first["outputs"]  # the same graph
    assert second["values"] == first["values"]
