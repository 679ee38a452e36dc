"""Steps calling one function a decorated ``def`` made keep notebook order (nbsteps.model.dependencies).

A decorator may make an object that keeps state across calls: joblib's ``Memory.cache`` (its user
guide: cell7 ``b = h(a)`` computes and prints, cell8 ``b2 = h(a)`` finds it cached and prints nothing),
``functools.lru_cache``, a counter. Two steps calling it only read it; in plan mode they ran in either
order, or at once, so the second call's output depended on which ran first.
"""

from __future__ import annotations

from conftest import run_ok

import nbsteps

MAKE = """%%step make
def remembered(f):
    def wrapper(x):
        wrapper.calls.append(x)
        return f(x)
    wrapper.calls = []
    return wrapper
@remembered
def h(x):
    return 2 * x
"""
FIRST = "%%step first\nimport time\ntime.sleep(0.3)\nb = h(1)"
SECOND = "%%step second\nb2 = h(2)"


def test_calls_of_a_decorated_function_keep_notebook_order_in_plan_mode(shell):
    run_ok(shell, "%steps mode plan")
    for cell in (MAKE, FIRST, SECOND):
        run_ok(shell, cell)
    assert nbsteps.current().context.dependencies("second").get("first") == "order"
    run_ok(shell, "%steps run --workers 4")
    assert shell.user_ns["h"].calls == [1, 2]  # as in Run All: first's call, then second's


def test_calls_of_a_plain_function_stay_parallel(shell):
    run_ok(shell, "%steps mode plan")
    for cell in ("%%step make\ndef h(x):\n    return 2 * x", FIRST, SECOND):
        run_ok(shell, cell)
    assert "first" not in nbsteps.current().context.dependencies("second")
