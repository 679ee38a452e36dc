"""What the corpus needed to read and compare xarray's user guide (tests/corpus: ``xr_*``).

- its pages are MyST notebooks whose front matter gives ``kernelspec`` without the
  ``display_name`` nbformat requires, and whose cells the page's build runs expecting an error
  are tagged ``raises-exception``: ``harness.myst_cells`` reads the one and leaves the other out
  (as the IPython directive's ``:okexcept:``);
- xarray's objects keep their state in slots, so the value digest (``collect.py``) saw only their
  class: a Dataset holding other numbers was "the same". They are now digested by their
  variables' dims, values and attrs, their own attrs and name, a DataTree node by node.
"""

import pytest

from tests.conftest import ROOT, collected_values, module_from_file

harness = module_from_file("nbsteps_corpus_harness_reader", ROOT / "tests" / "corpus" / "harness.py")

PAGE = """\
---
file_format: mystnb
kernelspec:
  name: python3
---

# A page

```{code-cell}
:tags: [remove-input, remove-output]

import numpy as np
```

Text.

```{code-cell}
x = np.arange(3)
x
```

```{code-cell}
:tags: [raises-exception]

x[5]
```

```{code-cell}
y = x + 1
```
"""


def test_myst_cells_of_a_page_whose_kernelspec_has_no_display_name():
    pytest.importorskip("jupytext")
    assert harness.myst_cells(PAGE) == ["import numpy as np", "x = np.arange(3)\nx", "y = x + 1"]


def test_xarray_values_are_digested_by_their_data_and_attrs():
    np = pytest.importorskip("numpy")
    xr = pytest.importorskip("xarray")
    ds = xr.Dataset({"foo": (("x", "y"), np.arange(6.0).reshape(3, 2))}, coords={"x": [10, 20, 30]})
    ns = {"ds": ds, "da": ds["foo"], "tree": xr.DataTree.from_dict({"/": ds, "/child": ds})}
    before = collected_values(harness, ns)
    assert collected_values(harness, ns) == before  # the same values: the same digest
    ds["foo"].values[0, 0] = 99.0  # in place, through the DataArray (the tree shares the memory)
    after = collected_values(harness, ns)
    assert all(after[k] != before[k] for k in ("ds", "da", "tree"))
    ds.attrs["units"] = "m"
    assert collected_values(harness, ns)["ds"] != after["ds"]
    ns["tree"]["child"].attrs["source"] = "model"
    assert collected_values(harness, ns)["tree"] != after["tree"]
