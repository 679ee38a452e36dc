"""What the corpus needed to read and compare polars' pages (tests/corpus: ``pl_*``).

- polars' documentation is not in any registry's package (its user guide lives only in its
  repository); its API reference is: the docstrings of the 1.44.2 sdist on PyPI, whose examples
  are doctests. ``harness.docstring_cells`` reads the examples of the named classes, functions
  and methods, in the module's order, as the doctest runner runs them;
- polars' objects keep their data in a Rust object (``_df``, ``_s``, ``_ldf``, ``_pyexpr``), so
  the value digest (``collect.py``) saw only their class: a DataFrame holding other numbers was
  "the same". They are now digested by their values (a LazyFrame by its plan and what it
  collects to, an expression by its text), not by their memory layout.
"""

import pytest

from tests.conftest import ROOT, collected_values, module_from_file

harness = module_from_file("nbsteps_corpus_harness_polars", ROOT / "tests" / "corpus" / "harness.py")

MODULE = '''
from typing import overload


class Frame:
    """A frame.

    Examples
    --------
    >>> f = Frame([1, 2])
    >>> f
    Frame([1, 2])
    """

    @overload
    def head(self, n: int) -> "Frame": ...

    def head(self, n=5):
        """The first rows.

        >>> f.head(1)  # doctest: +SKIP
        Frame([1])
        >>> g = f.head(1)
        >>> g.rows
        [1]
        >>> f.head(9)["x"]
        Traceback (most recent call last):
        KeyError: 'x'
        """

    def tail(self, n=5):
        """The last rows.

        >>> f.tail(1)
        Frame([2])
        """


def helper():
    """>>> helper()
    1
    """
'''


def test_docstring_cells_read_the_named_examples_in_module_order():
    cells = harness.docstring_cells(MODULE, ["helper", "Frame.head", "Frame"])
    # module order (the class before its method, the method before the function); an @overload's
    # empty docstring is not the method's; +SKIP and examples shown raising are left out; a cell
    # ends after each example whose output the docstring shows
    assert cells == ["f = Frame([1, 2])\nf", "g = f.head(1)\ng.rows", "helper()"]


def test_docstring_cells_refuse_a_name_the_module_does_not_document():
    with pytest.raises(ValueError, match="Frame.tale"):
        harness.docstring_cells(MODULE, ["Frame", "Frame.tale"])


def test_polars_values_are_digested_by_their_values_not_their_chunks():
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})

    def ns(df):
        return {
            "df": df,
            "s": df["a"],
            "lf": df.lazy().filter(pl.col("a") > 1),
            "e": pl.col("a") * 2,
        }

    before = collected_values(harness, ns(df))
    assert collected_values(harness, ns(df.clone())) == before  # the same values: the same digest
    other = df.with_columns(pl.Series("a", [1, 2, 4]))
    after = collected_values(harness, ns(other))
    assert all(after[k] != before[k] for k in ("df", "s", "lf"))
    assert after["e"] == before["e"]
    assert collected_values(harness, {"e": pl.col("a") * 3})["e"] != before["e"]
    assert collected_values(harness, {"lf": df.lazy().filter(pl.col("a") > 2)})["lf"] != before["lf"]
    # chunked differently, equal in values: the same
    two = pl.concat([df.head(1), df.tail(2)], rechunk=False)
    assert two.n_chunks() == 2
    assert collected_values(harness, {"df": two})["df"] == before["df"]
