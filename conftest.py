"""pytest: the notebooks (nbmake) on their tiny settings, shared caches; the kernels and the
subprocesses of the tests inherit this environment.

The notebooks are marked `slow` here (nbmake items cannot take decorators), so
`pytest -m "not slow"` skips them; the full run (`.ci/run`) executes them, on the "tiny"
settings (`RPJAX_NOTEBOOK_PRESET`): every cell runs, in seconds; the quick preset of the
experiments runs once, in tests/test_reproduce.py.

Two caches live in one folder per test run, shared by the pytest-xdist workers, the notebook
kernels and the tests' subprocesses: trained models (`RPJAX_CACHE`) and XLA's compiled
programs (JAX's persistent compilation cache, `JAX_COMPILATION_CACHE_DIR`): the same programs
are compiled by many processes of one run (the CLI's subprocesses, the devices tests, the
notebooks), and a cache hit loads the executable a compilation would have produced.
"""

import os
import tempfile

import pytest

os.environ.setdefault("RPJAX_NOTEBOOK_PRESET", "tiny")
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", f"pid{os.getpid()}")
os.environ.setdefault("RPJAX_CACHE", os.path.join(tempfile.gettempdir(),
                                                  f"rpjax-test-models-{_RUN}"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(),
                                                                f"rpjax-test-xla-{_RUN}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")

import jax  # noqa: E402 - after the environment it reads

jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs",
                  float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))

# a model module that exits when imported (tests/test_runs.py checks that `rpjax certify`
# reports it): never imported by the doctest collection
collect_ignore = ["tests/_run_models_exit.py"]

# The slow tests carry `@pytest.mark.slow` (or `pytest.param(..., marks=pytest.mark.slow)`)
# themselves. The one node id below cannot: a doctest (no decorator; its source is in rpjax/),
# which took >= 1.8 s in `pytest -n 2 -m "not slow" --durations=0` on 2 cores.
MARKED_SLOW = frozenset({
    "rpjax/_src/attacks/mi_face.py::rpjax._src.attacks.mi_face.mi_face_pixels",
})


# The longest tests (minutes each on 2 cores: `reproduce all --quick`, the benchmarks' quick
# runs) go first, so that pytest-xdist's workers share the rest while they run instead of one
# of them starting last and running alone.
LONGEST_FIRST = ("tests/test_reproduce.py::test_reproduce_all_quick", "tests/test_benchmarks.py")


def pytest_collection_modifyitems(config, items):
    """Marks every notebook item (a `.ipynb` file run by nbmake) slow; marks the tests of
    `MARKED_SLOW` slow; puts the `LONGEST_FIRST` tests first (in their order)."""
    items.sort(key=lambda item: next((i for i, prefix in enumerate(LONGEST_FIRST)
                                      if item.nodeid.startswith(prefix)), len(LONGEST_FIRST)))
    for item in items:
        if item.nodeid in MARKED_SLOW:
            item.add_marker(pytest.mark.slow)
        if str(item.path).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
