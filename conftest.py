"""pytest: run the notebooks (nbmake) on their small settings; the kernels inherit this.

The notebooks are marked `slow` here (nbmake items cannot take decorators), so
`pytest -m "not slow"` skips them; the full run (`.ci/run`) executes them.
"""

import os

import pytest

os.environ.setdefault("RPJAX_NOTEBOOK_QUICK", "1")


def pytest_collection_modifyitems(config, items):
    """Marks every notebook item (a `.ipynb` file run by nbmake) as slow."""
    for item in items:
        if str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
