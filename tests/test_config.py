"""nbsteps.config: one place, one rule for booleans, errors that name the variable."""

from __future__ import annotations

import pytest

from nbsteps import config
from nbsteps.errors import ConfigError


@pytest.mark.parametrize(
    "value,expected",
    [
        ("1", True),
        ("TRUE", True),
        ("yes", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", None),
        ("  ", None),
    ],
)
def test_one_rule_for_booleans(monkeypatch, value, expected):
    monkeypatch.setenv("NBSTEPS_WIDGETS", value)
    assert config.widgets() is expected


def test_unset_means_default(monkeypatch):
    monkeypatch.delenv("NBSTEPS_YES", raising=False)
    monkeypatch.delenv("NBSTEPS_WORKERS", raising=False)
    assert config.yes() is False and config.workers() is None


def test_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("NBSTEPS_YES", "maybe")
    with pytest.raises(ConfigError, match="NBSTEPS_YES='maybe'"):
        config.yes()
    monkeypatch.setenv("NBSTEPS_WORKERS", "0")
    with pytest.raises(ConfigError, match="NBSTEPS_WORKERS='0'.*at least 1"):
        config.workers()
    monkeypatch.setenv("NBSTEPS_WORKERS", " 4 ")
    assert config.workers() == 4
