"""Label releases an attacker can query, as traceable functions (usable inside `jit`).

A `LabelRelease` maps a batch of inputs and a key to released labels (-1 = abstain). The
label-only attacks call it inside their compiled loop. The Robust Privacy releases run the
engine's counting kernel (`rpjax.smoothing.counts_traced`) on each query; PREDICT's exact
two-sided binomial test is applied in-graph through a table of the smallest passing top count
for every total, computed on the host in float64 with `rpjax.stats` (so the decisions are
exactly those of `rpjax.predict`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats as _sps

from rpjax import _validate, noise, smoothing, stats

ABSTAIN = -1


class LabelRelease(NamedTuple):
    """A queryable release.

    Attributes:
      name: short name for reports ("none", "rp_predict", "rp_always", ...).
      fn: `fn(x [M, *input_shape], key) -> labels [M] int32` (-1 = abstain); traceable.
      forward_passes: base-model forward passes per released label.
      params: the release's settings, for reports.
    """

    name: str
    fn: Callable[[jax.Array, jax.Array], jax.Array]
    forward_passes: int
    params: dict[str, Any]


def base_release(apply_fn: smoothing.ApplyFn, params: Any) -> LabelRelease:
    """The undefended model: the argmax label, one forward pass per query."""

    def fn(x, key):
        del key
        return jnp.argmax(apply_fn(params, x), axis=-1).astype(jnp.int32)

    return LabelRelease("none", fn, 1, {})


def predict_threshold_table(n: int, alpha: float) -> np.ndarray:
    """`[n + 1]` int32: for each total m = n_A + n_B, the smallest n_A that passes PREDICT.

    PREDICT releases the top class iff the two-sided binomial test of n_A successes in m
    trials at p = 1/2 has p-value <= alpha; entries of m + 1 mean "never passes".
    """
    n = _validate.integer("n", n, minimum=1)
    alpha = _validate.open_unit_interval("alpha", alpha)
    m = np.arange(n + 1)
    # largest tail j with 2 * cdf(j, m) <= alpha, from the quantile, then checked exactly
    j = _sps.binom.ppf(alpha / 2, np.maximum(m, 1), 0.5).astype(np.int64)
    table = np.full(n + 1, 0, np.int64)
    for i, mi in enumerate(m):
        if mi == 0:
            table[i] = 1  # no votes for either class: never passes
            continue
        best = mi + 1
        for cand in range(max(0, j[i] - 2), min(mi, j[i] + 2) + 1):
            k = mi - cand
            if 2 * k >= mi and stats.binomial_test_pvalue(k, mi) <= alpha:
                best = min(best, k)
        table[i] = best
    return table.astype(np.int32)


def _smoothed_counts(apply_fn, params, x, key, sigma, n, num_classes):
    pairs = noise.example_keys(key, jnp.arange(x.shape[0], dtype=jnp.uint32))
    chunk = smoothing.resolve_chunk_size(None, n, x.shape[0], math.prod(x.shape[1:]))
    return smoothing.counts_traced(apply_fn, params, x, pairs, sigma, n=n,
                                   num_classes=num_classes, chunk=chunk)


def rp_predict_release(apply_fn: smoothing.ApplyFn, params: Any, *, sigma: float, n: int,
                       alpha: float, num_classes: int) -> LabelRelease:
    """Robust Privacy via PREDICT: n noisy passes per query, abstain (-1) unless significant.

    Args:
      apply_fn, params: the base model.
      sigma: noise std in input units (pixels in [0, 1] for images).
      n: samples per query; alpha: the test's level; num_classes: length of the counts.
    """
    sigma = _validate.positive("sigma", sigma)
    table = jnp.asarray(predict_threshold_table(n, alpha))

    def fn(x, key):
        counts = _smoothed_counts(apply_fn, params, x, key, sigma, n, num_classes)
        top, idx = jax.lax.top_k(counts, 2)
        passes = top[:, 0] >= table[top[:, 0] + top[:, 1]]
        return jnp.where(passes, idx[:, 0], ABSTAIN).astype(jnp.int32)

    return LabelRelease("rp_predict", fn, n, {"sigma": sigma, "n": n, "alpha": alpha})


def rp_always_release(apply_fn: smoothing.ApplyFn, params: Any, *, sigma: float, n: int,
                      num_classes: int) -> LabelRelease:
    """Robust Privacy, always-label mode: the Monte Carlo top class, never abstains (no
    certificate)."""
    sigma = _validate.positive("sigma", sigma)

    def fn(x, key):
        counts = _smoothed_counts(apply_fn, params, x, key, sigma, n, num_classes)
        return jnp.argmax(counts, axis=-1).astype(jnp.int32)

    return LabelRelease("rp_always", fn, n, {"sigma": sigma, "n": n})
