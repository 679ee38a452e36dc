"""Count the names nbsteps lists by hand to decide what a call changes (issue 23 item 3).

Every module-level table (a frozenset, set, tuple or dict of names) and every compiled regex
in the analysis' rule modules is counted: a table by its entries (a dict: its keys), a regex by
its alternatives (``a|b|c``: three). Tables keyed by type (``nbsteps.model.hints.HINTS``) are
counted apart: they are resolved on the actual object, not on how a variable or method is spelt.

    .venv/bin/python scripts/count_rules.py          # a table
    .venv/bin/python scripts/count_rules.py --json   # the same as JSON
"""

from __future__ import annotations

import importlib
import json
import re
import sys

MODULES = (
    "nbsteps.model.rules",
    "nbsteps.model.aliases",
    "nbsteps.model.state",
    "nbsteps.model.hints",
    "nbsteps.run.upstream_caches",
)
#: tables keyed by the qualified type of the object a call is made on
TYPE_KEYED = {"nbsteps.model.hints.HINTS"}
#: not hand-listed names: derived from other tables or from Python (``dir(builtins)``), or regexes of
#: syntax (paths, ``{expr}``/``$name``) rather than of names
NOT_LISTED = (
    "nbsteps.model.rules.LOAD_RULES",
    "nbsteps.model.rules._NOT_INPUTS",
    "nbsteps.model.rules._EXPAND_RE",
    "nbsteps.model.rules._PATH_RE",
    "nbsteps.model.hints._BY_TYPE",
)
#: regexes that decide by how a variable is spelt (none should be left)
VARIABLE_NAME_REGEXES = {"nbsteps.model.rules._RNG_NAME", "nbsteps.model.rules._AX_NAME"}


def _alternatives(pattern: str) -> int:
    return len(re.findall(r"(?<!\\)\|", pattern)) + 1


def _size(value) -> "int | None":
    if isinstance(value, re.Pattern):
        return _alternatives(value.pattern)
    if isinstance(value, (frozenset, set, dict)) and all(isinstance(k, str) for k in value):
        return len(value) if value else None
    if isinstance(value, dict) and value:
        return sum(len(v) if isinstance(v, (dict, frozenset, set, tuple)) else 1 for v in value.values())
    return None


def count() -> dict:
    """``{"tables": {qualified name: entries}, "name_listed": n, "type_keyed": n,
    "variable_name_regexes": [names]}`` for the rule modules that exist."""
    tables = {}
    for modname in MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError:
            continue
        for attr, value in vars(mod).items():
            if attr.startswith("__") or not attr.lstrip("_").isupper() and not isinstance(value, re.Pattern):
                continue
            n = _size(value)
            if n:
                tables[f"{modname}.{attr}"] = n
    # MUTATING_METHODS includes IN_PLACE_NONE: count its own names only
    both = ("nbsteps.model.rules.MUTATING_METHODS", "nbsteps.model.rules.IN_PLACE_NONE")
    if all(k in tables for k in both):
        rules = importlib.import_module("nbsteps.model.rules")
        tables[both[0]] = len(rules.MUTATING_METHODS - rules.IN_PLACE_NONE)
    for derived in NOT_LISTED:
        tables.pop(derived, None)
    typed = sum(v for k, v in tables.items() if k in TYPE_KEYED)
    return {
        "tables": dict(sorted(tables.items())),
        "name_listed": sum(tables.values()) - typed,
        "type_keyed": typed,
        "variable_name_regexes": sorted(k for k in tables if k in VARIABLE_NAME_REGEXES),
    }


def main(argv=None) -> int:
    c = count()
    if "--json" in (argv if argv is not None else sys.argv[1:]):
        print(json.dumps(c, indent=1))
        return 0
    for k, v in c["tables"].items():
        print(f"{v:5d}  {k}")
    print(f"{c['name_listed']:5d}  names and regex alternatives listed by hand (not keyed by type)")
    print(f"{c['type_keyed']:5d}  type-keyed hints")
    print(f"variable-name regexes: {', '.join(c['variable_name_regexes']) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
