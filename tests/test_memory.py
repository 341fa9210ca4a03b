"""Peak memory does not grow with n: no [n, *input_shape] array is ever materialized."""

import os
import subprocess
import sys
import textwrap

import pytest

_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from flax import nnx
    import rpjax
    from rpjax.models import TabularMLP, as_apply_fn
    n = int(sys.argv[1])
    apply_fn, params = as_apply_fn(TabularMLP(11, 2, rngs=nnx.Rngs(0)))
    xs = np.random.default_rng(0).normal(size=(8, 11)).astype(np.float32)
    counts = rpjax.sample_counts(apply_fn, params, xs, 0, num_classes=2,
                                 config=rpjax.SmoothingConfig(sigma=1.0, n=n),
                                 placement=rpjax.Placement(chunk_size=1024))
    assert int(np.asarray(counts).sum()) == 8 * n
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB on Linux
""")


def _peak_kib(n: int) -> int:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(n)], capture_output=True,
                          text=True, timeout=900, check=False,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return int(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_independent_of_n():
    """n = 10^4 vs 10^6 (100x) for 8 inputs of 11 features. Materializing the noisy copies
    would need 8 * 10^6 * 11 * 4 B = 352 MB more at the larger n; allow 10% of the baseline."""
    small, large = _peak_kib(10_000), _peak_kib(1_000_000)
    growth = large - small
    assert growth < 0.10 * small, f"peak RSS {small} KiB -> {large} KiB (+{growth} KiB)"
