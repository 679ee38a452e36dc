"""A run that uses none of the per-run features (no step forced, replayed or rebuilt, no
fused chains) skips their hooks (``Executor._plain``): the same steps then end with the same
records, values, outputs and events as in a run where one of those features is in use
elsewhere (an unrelated step forced), over first runs, kept steps, a changed upstream and a
changed file."""

from __future__ import annotations

import nbsteps
from nbsteps.run import events as ev

SHOWN = ("status", "origin", "held_from", "reason", "attempts", "attempt_errors", "has_result")
SHOWN += ("stale", "output", "not_stored", "message", "error", "traceback")


def make(tmp_path, which: str) -> nbsteps.Plan:
    (tmp_path / which).mkdir()
    data = tmp_path / which / "data.txt"
    data.write_text("3")
    plan = nbsteps.Plan()
    plan.namespace["path"] = str(data)
    plan.namespace["k"] = 10
    plan.add_cell("a", "with open(path) as f:\n    a = int(f.read())\nprint('read', a)")
    plan.add_cell("b", "b = a * k\nb")  # (its result: what c is given)

    @plan.step
    def c(b):
        print("c of", b)
        return b + 1

    plan.add_cell("z", "z = 1")  # unrelated: forced in one of the two runs
    return plan


def runs(tmp_path, monkeypatch, capsys, which: str, force: tuple) -> list:
    plan = make(tmp_path, which)
    monkeypatch.chdir(tmp_path / which)  # (a reason names a file relative to here)
    seen: list = []

    def listen(e):
        if e.step in ("a", "b", "c"):
            seen.append((e.kind, e.step, e.message, dict(e.info or {})))

    out = []

    def one():
        seen.clear()
        summary = plan.run(workers=1, force=force, listeners=[listen])
        assert summary.ok
        recs = {s: {f: getattr(plan[s], f) for f in SHOWN} for s in ("a", "b", "c")}
        files = {s: sorted(p.rsplit("/", 1)[-1] for p in plan[s].files) for s in ("a", "b", "c")}
        values = {n: plan.namespace.get(n) for n in ("a", "b", "c")}
        shown = capsys.readouterr().out  # what the steps' prints showed as they ran
        out.append((recs, files, values, list(seen), shown, plan["z"].reason))

    one()  # first run: every step executes
    one()  # nothing changed: kept
    plan.namespace["k"] = 20  # b's parameter: b and c run again, a kept
    one()
    (tmp_path / which / "data.txt").write_text("4")  # the file a read: a runs again
    one()
    return out


def test_a_plain_run_ends_as_a_run_with_a_feature_in_use_elsewhere(tmp_path, monkeypatch, capsys):
    plain = runs(tmp_path, monkeypatch, capsys, "plain", ())
    other = runs(tmp_path, monkeypatch, capsys, "forced", ("z",))
    assert [r[5] for r in other] == ["forced"] * 4  # that run forced z: the features' hooks are used
    assert [r[5] for r in plain][1] == "up to date"
    for i, (p, o) in enumerate(zip(plain, other, strict=True)):
        assert p[:5] == o[:5], f"run {i + 1}"
    assert [r[4] for r in plain] == ["read 3\nc of 30\n", "", "c of 60\n", "read 4\nc of 80\n"]
    # and what they are: first run, kept, parameter changed, file changed
    recs, files, values, events = plain[0][:4]
    assert values == {"a": 3, "b": 30, "c": 31}
    assert files["a"] == ["data.txt"] and recs["a"]["reason"] == "never run"
    assert recs["c"]["output"] == (("stdout", "c of 30\n"),) and recs["c"]["attempts"] == 1
    assert [k for k, *_ in events] == [ev.STARTED, ev.COMPLETED] * 3
    assert {s: r["origin"] for s, r in plain[1][0].items()} == {"a": "kept", "b": "kept", "c": "kept"}
    recs, _, values, _ = plain[2][:4]
    assert values == {"a": 3, "b": 60, "c": 61} and recs["a"]["origin"] == "kept"
    assert recs["b"]["reason"] == "parameter k changed" and recs["c"]["reason"] == "upstream b changed"
    recs, _, values, _ = plain[3][:4]
    assert values == {"a": 4, "b": 80, "c": 81}
    assert recs["a"]["reason"] == "file data.txt changed", recs["a"]["reason"]
