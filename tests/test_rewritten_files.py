"""A file a step above writes again makes the steps below that wrote it after it execute again
(SPEC 1, "Files": the same files as Restart & Run All).

Run All writes the files in notebook order: ``a`` writes ``t.csv``, ``b`` below removes it. A
new kernel on the same store executes ``a`` again (it binds the closed file ``fh``, which
cannot be stored); before, it restored ``b``, whose removal is no value that restoring
replays, and ``t.csv`` stayed as ``a`` left it where Run All has none (corpus pd_io_text: a
chunked read of ``tmp.csv`` below then ran again, "file tmp.csv changed"). Two real processes
(two kernels) on one directory store, as the corpus' ``resume`` way.
"""

from conftest import shell_on_store

CELLS = [
    "%%step imports\nimport os",
    "%%step a\nwith open('t.csv', 'w') as fh:\n    fh.write('x')",
    "%%step b\nos.remove('t.csv')",
    "%%step c\nthere = os.path.exists('t.csv')",
    # the same bytes again, then removed again: no value bound, restorable
    "%%step d\nopen('t.csv', 'w').write('x')",
    "%%step e\nos.remove('t.csv')",
]

REPORT = """
import os
def origins():
    return {s: [plan[s].origin, plan[s].reason] for s in plan.steps}
first = origins()
exists = os.path.exists('t.csv')
plan.load()
there = ip.user_ns.get('there')
ip.run_line_magic('steps', 'run')  # the same kernel again: nothing to execute
out.update(first=first, exists=exists, there=there, again=origins(),
           after=os.path.exists('t.csv'))
"""


def executed(origins: dict) -> dict:
    return {s: why for s, (origin, why) in origins.items() if origin == "executed"}


def test_a_removal_below_a_writer_executed_again_executes_again(tmp_path, tmp_key):
    store = tmp_path / "store"
    first = shell_on_store(store, CELLS, tmp_path, REPORT)
    assert first["exists"] is False and first["there"] is False, first
    assert executed(first["again"]) == {}, first["again"]
    second = shell_on_store(store, CELLS, tmp_path, REPORT)
    ran = executed(second["first"])
    assert "cannot be pickled" in ran.get("a", ""), ran
    # before: b restored, t.csv left as a wrote it (exists: True)
    assert ran.get("b") == "file t.csv written again by a above", ran
    assert second["exists"] is False, second
    assert second["there"] is False, second
    # d and e are restored: t.csv is as e, its last writer, left it (restoring them leaves it so)
    assert "d" not in ran and "e" not in ran, ran
    assert second["after"] is False
    # no step executes again in the same kernel: the latest writer of t.csv executed after a
    assert executed(second["again"]) == {}, second["again"]
    assert "imports" not in ran, ran


PLAN_REPORT = """
import os
preview = {r["step"]: [r["action"], r["reason"]] for r in plan.plan().rows}
plan.run()
out.update(preview=preview, ran={s: plan[s].reason for s in plan.steps if plan[s].origin == "executed"},
           exists=os.path.exists('t.csv'))
"""


def test_the_preview_says_which_writers_below_will_run(tmp_path, tmp_key):
    store = tmp_path / "store"
    cells = ["%steps mode plan", *CELLS]
    shell_on_store(store, [*cells, "%steps run"], tmp_path, "")
    second = shell_on_store(store, cells, tmp_path, PLAN_REPORT)
    preview, ran = second["preview"], second["ran"]
    assert preview["b"] == ["run", "file t.csv: a above will write it again"], preview
    assert preview["imports"][0] == "cached", preview
    will = {s for s, (action, _) in preview.items() if action == "run"}
    assert will == set(ran), (preview, ran)  # the preview says what the run does
    assert ran["b"] == "file t.csv written again by a above", ran
    assert second["exists"] is False


APPENDERS = [
    "%%step s1\nwith open('log.txt', 'a') as fh:\n    fh.write('1\\n')",  # fh: not stored
    "%%step s2\nwith open('log.txt', 'a') as g:\n    g.write('2\\n')\ndel g",
    "%%step s3\nwith open('log.txt', 'a') as g:\n    g.write('3\\n')\ndel g",
]

APPEND_REPORT = """
out.update(ran={s: plan[s].reason for s in plan.steps if plan[s].origin == "executed"},
           log=open('log.txt').read())
"""


def test_a_step_above_that_appends_leaves_the_appenders_below_restored(tmp_path, tmp_key):
    """Appending keeps what the steps below appended: they are restored, not appended twice (a
    file outlives the process, as when the first of three appenders is edited in one kernel)."""
    store = tmp_path / "store"
    first = shell_on_store(store, APPENDERS, tmp_path, APPEND_REPORT)
    assert first["log"] == "1\n2\n3\n"
    second = shell_on_store(store, APPENDERS, tmp_path, APPEND_REPORT)
    assert set(second["ran"]) == {"s1"}, second
    assert second["log"] == "1\n2\n3\n1\n"
