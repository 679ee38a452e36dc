"""nbsteps.model.fingerprint: what counts as a change, and what is untracked."""

from __future__ import annotations

import numpy as np
import pandas as pd

from nbsteps.model import fingerprint as F


def compile_cell(src: str, filename: str = "<a>"):
    return compile(src, filename, "exec")


def test_code_digest_ignores_file_names_and_line_numbers_not_code():
    a = F.code_digest(compile_cell("x = 1\ny = x + 1", "<one>"))
    b = F.code_digest(compile_cell("\n\nx = 1\ny = x + 1", "<two>"))
    c = F.code_digest(compile_cell("x = 1\ny = x + 2"))
    assert a == b != c


def test_cheap_values_are_digested_by_content():
    assert F.value_digest(3) == F.value_digest(3) != F.value_digest(3.0)  # type is part of it
    assert F.value_digest([1, {"a": 2}]) == F.value_digest([1, {"a": 2}]) != F.value_digest([1, {"a": 3}])
    assert F.value_digest(np.arange(5)) != F.value_digest(np.arange(5) + 1)
    df = pd.DataFrame({"a": [1, 2]})
    assert F.value_digest(df) == F.value_digest(df.copy())
    assert F.value_digest(df) != F.value_digest(df.assign(a=[1, 3]))


def test_expensive_or_opaque_values_are_untracked():
    assert F.value_digest(np.zeros(F._MAX_BYTES // 8 + 1)) is None
    assert F.value_digest(object()) is None
    assert F.value_digest(list(range(F._MAX_ITEMS + 5))) is None


def test_values_that_raise_when_hashed_are_untracked_not_errors():
    class BadStr(str):
        def __repr__(self):
            raise RuntimeError("broken repr")

    class BadHash:
        def __hash__(self):
            raise RuntimeError("broken hash")

    assert F.value_digest(BadStr("x")) is None
    assert F.value_digest(pd.DataFrame({"a": [BadHash(), BadHash()]})) is None
    params, helpers = F.outside_parts(["s", "n"], {"s": BadStr("x"), "n": 1})
    assert list(params) == ["n"] and helpers == {}


def test_helpers_are_followed_transitively():
    ns: dict = {"__name__": "__main__"}
    exec("def inner(x):\n    return x + 1\ndef outer(x):\n    return inner(x) * 2\n", ns)
    before = F.helper_digest(ns["outer"])
    exec("def inner(x):\n    return x + 2\n", ns)  # edit only the helper's helper
    assert F.helper_digest(ns["outer"]) != before
    params, helpers = F.outside_parts(["outer", "np"], {**ns, "np": np})
    assert set(helpers) == {"outer"} and params == {}


def test_combine_does_not_depend_on_part_order():
    assert F.combine({"a": 1, "b": 2}) == F.combine({"b": 2, "a": 1}) != F.combine({"a": 1, "b": 3})


def test_combine_gives_the_digest_earlier_versions_stored():
    """Checkpoints on disk are found by this digest: its text stays ``repr(sorted(parts.items()))``
    whatever shortcut computes it."""
    import hashlib

    from nbsteps.model.fingerprint import combine

    def stored(parts):
        return hashlib.blake2b(repr(sorted(parts.items())).encode(), digest_size=16).hexdigest()

    usual = {
        "upstream": {"a": "f00:1a2b:3", "b": None},
        "code": "0123|after=['x']",
        "params": {"n": "d1", "quote'\"": "d2"},
        "helpers": {},
    }
    for parts in (
        usual,
        {**usual, "files": {"/tmp/x": "stat:1:2"}},
        {k: v for k, v in usual.items() if k != "helpers"},
        {**usual, "code": 7},
        {"code": "c", "helpers": {}, "params": {}, "other": {}},
        {},
    ):
        assert combine(parts) == stored(parts)
    assert combine(usual) == "12ababa5784560f0c22247c092b9f16e"  # as computed before the shortcut


def test_code_digest_of_a_set_literal_is_the_same_in_every_process():
    """``w in {"apple", "pear", ...}`` compiles to a frozenset constant whose repr follows the
    string hashes of the process (PYTHONHASHSEED): a kernel restarted (or ``nbsteps run``) must
    see the same code, or the cell looks changed and runs again instead of being restored."""
    import subprocess
    import sys

    code = (
        "from nbsteps.model.analysis import analyse_cell\n"
        'src = \'y = [w for w in words if w in {"apple", "pear", "fig", "kiwi", "plum"}]\'\n'
        "print(analyse_cell('a', src).digest)\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in (1, 2, 3, 4)
    }
    assert len(digests) == 1, digests


def test_code_digest_still_tells_set_literals_apart():
    a = F.code_digest(compile_cell("y = x in {'a', 'b'}"))
    b = F.code_digest(compile_cell("y = x in {'b', 'a'}"))
    c = F.code_digest(compile_cell("y = x in {'a', 'c'}"))
    d = F.code_digest(compile_cell("y = x in ('a', 'b')"))
    assert a == b != c
    assert a != d
