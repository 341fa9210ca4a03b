"""Certification statistics, in float64 on the host (scipy).

Clopper-Pearson bounds, the two-sided binomial test of Cohen et al.'s PREDICT, the certified
radius, the largest radius a given `n` can certify, and sample-size planning with a pre-flight
check for the "always abstains" trap.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats as _sps

from rpjax._src import validate as _validate

_MAX_PLANNED_SAMPLES = 1e18  # sample sizes beyond this (and any float overflow) are refused


class SampleSizeWarning(UserWarning):
    """`n` is too small to certify what was asked at the given `alpha`."""


def _counts(k, n):
    k = np.asarray(k)
    n = np.asarray(n)
    for name, v in (("k", k), ("n", n)):
        if v.dtype == bool or not np.issubdtype(v.dtype, np.number):
            raise TypeError(f"{name} must be integer counts, got {name}={v!r}.")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} must be finite integer counts, got {name}={v!r}.")
    if not (np.issubdtype(k.dtype, np.integer) and np.issubdtype(n.dtype, np.integer)):
        kf, nf = np.asarray(k, np.float64), np.asarray(n, np.float64)
        if np.any(kf != np.round(kf)) or np.any(nf != np.round(nf)):
            raise TypeError(f"k and n must be integer counts, got k={k!r}, n={n!r}.")
    k = np.asarray(k, np.int64)
    n = np.asarray(n, np.int64)
    if np.any(n < 1):
        raise ValueError(f"n must be >= 1, got n={n!r}.")
    if np.any((k < 0) | (k > n)):
        raise ValueError(f"k must satisfy 0 <= k <= n, got k={k!r}, n={n!r}.")
    return k, n


def _alpha(alpha):
    a = np.asarray(alpha, np.float64)
    if np.any(~np.isfinite(a)) or np.any((a <= 0) | (a >= 1)):
        raise ValueError(f"alpha must lie in the open interval (0, 1), got alpha={alpha!r}.")
    return a


def clopper_pearson_lower(k, n, alpha) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson lower confidence bound on a binomial proportion.

    Args:
      k: successes, integer array-like (broadcasts with `n`, `alpha`).
      n: trials, integer array-like, >= 1.
      alpha: failure probability in (0, 1).

    Returns:
      float64 array: the `alpha` quantile of Beta(k, n - k + 1), and 0 where k = 0.

    Guarantee:
      For X ~ Binomial(n, p), P(clopper_pearson_lower(X, n, alpha) > p) <= alpha.

    Examples:
      >>> float(clopper_pearson_lower(100, 100, 0.001))  # alpha ** (1 / n)
      0.933...
    """
    k, n = _counts(k, n)
    a = _alpha(alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = _sps.beta.ppf(a, np.maximum(k, 1), n - k + 1)
    return np.where(k == 0, 0.0, lower).astype(np.float64)


def clopper_pearson_upper(k, n, alpha) -> np.ndarray:
    """One-sided (1 - alpha) Clopper-Pearson upper confidence bound (1 where k = n)."""
    k, n = _counts(k, n)
    a = _alpha(alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        upper = _sps.beta.isf(a, k + 1, np.maximum(n - k, 1))
    return np.where(k == n, 1.0, upper).astype(np.float64)


def binomial_test_pvalue(k, n, p: float = 0.5) -> np.ndarray:
    """Two-sided exact binomial test p-value of `k` successes in `n` trials at proportion `p`.

    Vectorized equivalent of `scipy.stats.binomtest(k, n, p).pvalue` (the "minlike" rule:
    sum the probabilities of all outcomes no more likely than the observed one).

    Args:
      k: successes, integer array-like.
      n: trials, integer array-like, >= 1.
      p: null proportion in (0, 1).

    Returns:
      float64 p-values in [0, 1].
    """
    k, n = _counts(k, n)
    p = _validate.open_unit_interval("p", p)
    k, n = np.broadcast_arrays(k, n)
    if p == 0.5:  # symmetric null: the two tails are mirror images
        tail = _sps.binom.cdf(np.minimum(k, n - k), n, 0.5)
        return np.minimum(1.0, 2.0 * tail).astype(np.float64)
    out = np.empty(k.shape, np.float64)
    for idx in np.ndindex(k.shape):
        out[idx] = _sps.binomtest(int(k[idx]), int(n[idx]), p).pvalue
    return out


def certified_radius(pa_lower, sigma: float) -> np.ndarray:
    """Certified l2 radius `sigma * Phi^-1(pa_lower)`, and 0 where `pa_lower <= 1/2`.

    Args:
      pa_lower: lower confidence bound on the top-class probability, array-like in [0, 1].
      sigma: Gaussian noise standard deviation, in input units.

    Returns:
      float64 radii, in the units of the input (same as `sigma`).
    """
    sigma = _validate.positive("sigma", sigma)
    pa = np.asarray(pa_lower, np.float64)
    if np.any(~np.isfinite(pa)) or np.any((pa < 0) | (pa > 1)):
        raise ValueError(f"pa_lower must lie in [0, 1], got pa_lower={pa_lower!r}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        # Phi^-1(p) = -Phi^-1(1 - p) = isf(1 - p); isf keeps precision near p = 1.
        r = sigma * _sps.norm.isf(1.0 - pa)
    return np.where(pa > 0.5, r, 0.0)


def max_radius(n, alpha, sigma: float) -> np.ndarray:
    """The largest radius `n` samples can certify: `sigma * Phi^-1(alpha ** (1 / n))`.

    With all `n` samples agreeing, the Clopper-Pearson lower bound is `alpha ** (1 / n)`; no
    count gives a larger radius. Computed as `sigma * isf(-expm1(log(alpha) / n))` for
    precision near 1. Returns 0 where even a unanimous vote cannot exceed 1/2.

    Examples:
      >>> round(float(max_radius(1000, 0.001, 1.0)), 2)
      2.46
    """
    sigma = _validate.positive("sigma", sigma)
    a = _alpha(alpha)
    n_in = np.asarray(n)
    if n_in.dtype == bool or not np.issubdtype(n_in.dtype, np.number):
        raise TypeError(f"n must be a number of samples, got n={n!r}.")
    n = n_in.astype(np.float64)
    if not np.all(np.isfinite(n)) or np.any(n < 1):
        raise ValueError(f"n must be finite and >= 1, got n={n_in!r}.")
    q = -np.expm1(np.log(a) / n)  # 1 - alpha ** (1 / n)
    r = sigma * _sps.norm.isf(q)
    return np.where(q < 0.5, r, 0.0)


_MODES = ("certify", "predict")


def _mode(mode: str) -> str:
    if mode not in _MODES:
        raise ValueError(f"mode must be 'certify' or 'predict', got mode={mode!r}.")
    return mode


def min_samples(alpha: float, *, mode: str = "certify", radius: float = 0.0,
                sigma: float = 1.0) -> int:
    """Smallest sample count `n` that can give an answer at level `alpha`.

    Args:
      alpha: failure probability (CERTIFY) or test level (PREDICT), in (0, 1).
      mode: "certify": the smallest `n` for which a unanimous vote certifies more than
        `radius`, solving `alpha ** (1 / n) > Phi(radius / sigma)` (with `radius = 0`, the
        smallest `n` that can avoid abstaining at all); "predict": the smallest `n` for which
        PREDICT can answer at all, `2 * 0.5 ** n <= alpha`.
      radius: l2 radius in input units, >= 0 (mode "certify" only).
      sigma: noise std in input units, > 0 (mode "certify" only).

    Returns:
      `n` (estimation samples per input).

    Raises:
      ValueError: on a bad argument, a radius given with mode "predict", or a radius that no
        feasible `n` (at most 1e18) certifies.
    """
    alpha = _validate.open_unit_interval("alpha", alpha)
    if _mode(mode) == "predict":
        if radius != 0.0 or sigma != 1.0:
            raise ValueError("radius and sigma apply to mode='certify' only; PREDICT "
                             "certifies no radius.")
        return max(1, int(math.ceil(math.log2(2.0 / alpha))))
    sigma = _validate.positive("sigma", sigma)
    radius = _validate.real("radius", radius)
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got radius={radius!r}.")
    log_p = float(_sps.norm.logcdf(radius / sigma))  # log Phi(r / sigma) <= 0
    need = math.log(alpha) / log_p if log_p < 0 else math.inf
    if not need < _MAX_PLANNED_SAMPLES:
        raise ValueError(
            f"radius={radius!r} at sigma={sigma!r} (radius / sigma = {radius / sigma:.3g}) needs "
            f"more than {_MAX_PLANNED_SAMPLES:.0e} samples at alpha={alpha!r}; no run can "
            "certify it. Ask for a smaller radius / sigma.")
    return int(math.floor(need)) + 1


def check_sample_size(
    n: int,
    alpha: float,
    *,
    sigma: float | None = None,
    radius: float | None = None,
    mode: str = "certify",
) -> bool:
    """Pre-flight check: warns (`SampleSizeWarning`) when `n` cannot give what is asked.

    Args:
      n: estimation samples per input.
      alpha: failure probability.
      sigma: noise level (needed with `radius`).
      radius: a radius the run hopes to certify (input units), optional.
      mode: "certify" (Clopper-Pearson > 1/2) or "predict" (binomial test <= alpha).

    Returns:
      True if `n` suffices, False (after warning) if not.
    """
    n = _validate.integer("n", n, minimum=1)
    alpha = _validate.open_unit_interval("alpha", alpha)
    if _mode(mode) == "predict":
        need = min_samples(alpha, mode="predict")
        if n < need:
            warnings.warn(
                f"n={n} can never pass PREDICT's binomial test at alpha={alpha}: every input "
                f"will abstain. Use n >= {need}.", SampleSizeWarning, stacklevel=2)
            return False
        return True
    need = min_samples(alpha)
    if n < need:
        warnings.warn(
            f"n={n} cannot certify anything at alpha={alpha}: even a unanimous vote gives "
            f"pA_lower = alpha**(1/n) = {alpha ** (1 / n):.3f} <= 1/2, so every input abstains. "
            f"Use n >= {need}.", SampleSizeWarning, stacklevel=2)
        return False
    if radius is not None:
        if sigma is None:
            raise ValueError("sigma is required when radius is given.")
        radius = _validate.real("radius", radius)
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got radius={radius!r}.")
        ceiling = float(max_radius(n, alpha, sigma))
        if ceiling < radius:
            need = min_samples(alpha, radius=radius, sigma=sigma)
            warnings.warn(
                f"n={n} cannot certify radius {radius} at sigma={sigma}, alpha={alpha}: the "
                f"largest certifiable radius is {ceiling:.4f}. Use n >= {need}.",
                SampleSizeWarning, stacklevel=2)
            return False
    return True
