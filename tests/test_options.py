"""Defect 5: numeric options are checked when given (magics and Python API),
with a message naming the option and the allowed range. ``--retry-delay nan``
used to spin at 100 % CPU, ``inf`` never ended, ``--timeout nan`` meant no timeout."""

import pytest
from conftest import run_err, run_ok
from IPython.core.error import UsageError

import nbsteps
from nbsteps.errors import StepDefinitionError
from nbsteps.model.step import cell_step

BAD = [
    ("--retry-delay", "nan", "from 0 to 86400"),
    ("--retry-delay", "inf", "from 0 to 86400"),
    ("--retry-delay", "-1", "from 0 to 86400"),
    ("--retry-delay", "86401", "from 0 to 86400"),
    ("--timeout", "nan", "greater than 0"),
    ("--timeout", "inf", "greater than 0"),
    ("--timeout", "0", "greater than 0"),
    ("--timeout", "-5", "greater than 0"),
    ("--retry", "-1", "from 0 to 100"),
    ("--retry", "101", "from 0 to 100"),
    ("--retry", "1.5", "from 0 to 100"),
]


@pytest.mark.parametrize("option,value,allowed", BAD)
def test_magic_refuses_bad_values(shell, option, value, allowed):
    err = run_err(shell, f"%%step s {option} {value}\nx = 1")
    assert isinstance(err, UsageError)
    assert option in str(err) and allowed in str(err) and value in str(err)
    assert "s" not in nbsteps.current().steps  # nothing registered, nothing ran
    assert "x" not in shell.user_ns


@pytest.mark.parametrize("value", ["0", "-2", "nan", "1.5"])
def test_steps_run_refuses_bad_workers(shell, value):
    run_ok(shell, "%steps mode plan\n")
    run_ok(shell, "%%step s\nx = 1")
    err = run_err(shell, f"%steps run --workers {value}")
    assert isinstance(err, UsageError) and "--workers" in str(err) and ">= 1" in str(err)
    assert nbsteps.current()["s"].status == "pending"


def test_magic_accepts_the_edges(shell):
    run_ok(shell, "%%step s --retry 100 --retry-delay 0 --timeout 0.5\nx = 1")
    step = nbsteps.current().steps["s"]
    assert (step.retry, step.retry_delay, step.timeout) == (100, 0.0, 0.5)
    run_ok(shell, "%%step t --retry 0 --retry-delay 86400\ny = 1")


PY_BAD = [
    ({"retry_delay": float("nan")}, "--retry-delay", "from 0 to 86400"),
    ({"retry_delay": float("inf")}, "--retry-delay", "from 0 to 86400"),
    ({"retry_delay": -0.5}, "--retry-delay", "from 0 to 86400"),
    ({"retry_delay": "soon"}, "--retry-delay", "from 0 to 86400"),
    ({"timeout": float("nan")}, "--timeout", "greater than 0"),
    ({"timeout": float("inf")}, "--timeout", "greater than 0"),
    ({"timeout": 0}, "--timeout", "greater than 0"),
    ({"retry": -1}, "--retry", "from 0 to 100"),
    ({"retry": 101}, "--retry", "from 0 to 100"),
    ({"retry": 2.5}, "--retry", "from 0 to 100"),
    ({"retry": True}, "--retry", "from 0 to 100"),
    # equal to the defaults (False == 0, True == 1.0): refused all the same
    ({"retry": False}, "--retry", "from 0 to 100"),
    ({"retry_delay": True}, "--retry-delay", "from 0 to 86400"),
]


@pytest.mark.parametrize("options,option,allowed", PY_BAD)
def test_python_api_refuses_bad_values(options, option, allowed):
    plan = nbsteps.Plan()
    with pytest.raises(StepDefinitionError) as e1:
        plan.step("f", **options)(lambda: 1)
    with pytest.raises(StepDefinitionError) as e2:
        plan.add_cell("c", "x = 1", **options)
    with pytest.raises(StepDefinitionError) as e3:
        cell_step("c", "x = 1", **options)
    for e in (e1, e2, e3):
        assert option in str(e.value) and allowed in str(e.value)
    assert not plan.steps


def test_python_api_accepts_numbers_of_any_kind():
    import numpy as np

    plan = nbsteps.Plan()
    plan.step("f", retry=np.int64(3), retry_delay=np.float32(0.25), timeout=7)(lambda: 1)
    step = plan.steps["f"]
    assert (step.retry, step.retry_delay, step.timeout) == (3, 0.25, 7.0)


def test_plan_run_refuses_bad_workers():
    plan = nbsteps.Plan()
    plan.add_cell("c", "x = 1")
    with pytest.raises(nbsteps.errors.NbstepsError, match="workers"):
        plan.run(workers=0)
    assert plan["c"].status == "pending"


def test_backoff_never_exceeds_a_day():
    from nbsteps.run.attempt import retry

    plan = nbsteps.Plan()
    plan.add_cell("c", "x = 1", retry=100, retry_delay=86400)
    delays = [retry.backoff(plan.steps["c"], n) for n in (1, 2, 50, 100)]
    assert all(0 < d <= 86400 * 1.1 for d in delays)
