"""pytest: run the notebooks (nbmake) on their small settings; the kernels inherit this.

The notebooks are marked `slow` here (nbmake items cannot take decorators), so
`pytest -m "not slow"` skips them; the full run (`.ci/run`) executes them.

The notebooks reuse the models that `rpjax reproduce all --quick` (tests/test_reproduce.py)
trains: both cache trained models under `RPJAX_CACHE`, set below to one folder per test run
(shared by the pytest-xdist workers of the run, and by the notebook kernels, which inherit the
environment), and both are put in the xdist group "quick-models", which runs on one worker in
collection order: `tests/` first, then `notebooks/` (run with `--dist loadgroup`, as `.ci/run`
does; without it they still pass, training what the cache lacks).
"""

import os
import tempfile

import pytest

os.environ.setdefault("RPJAX_NOTEBOOK_QUICK", "1")
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"pid{os.getpid()}")
os.environ.setdefault("RPJAX_CACHE", os.path.join(tempfile.gettempdir(),
                                                  f"rpjax-test-models-{_RUN}"))

QUICK_MODELS = "quick-models"

# a model module that exits when imported (tests/test_runs.py checks that `rpjax certify`
# reports it): never imported by the doctest collection
collect_ignore = ["tests/_run_models_exit.py"]

# The slow tests carry `@pytest.mark.slow` (or `pytest.param(..., marks=pytest.mark.slow)`)
# themselves. The one node id below cannot: a doctest (no decorator; its source is in rpjax/),
# which took >= 1.8 s in `pytest -n 2 -m "not slow" --durations=0` on 2 cores.
MARKED_SLOW = frozenset({
    "rpjax/_src/attacks/mi_face.py::rpjax._src.attacks.mi_face.mi_face_pixels",
})


def pytest_collection_modifyitems(config, items):
    """Marks every notebook item (a `.ipynb` file run by nbmake) slow and puts it in the
    "quick-models" xdist group; marks the tests of `MARKED_SLOW` slow."""
    for item in items:
        if item.nodeid in MARKED_SLOW:
            item.add_marker(pytest.mark.slow)
        if str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.xdist_group(QUICK_MODELS))
