"""CERTIFY, PREDICT and always-label releases (Cohen, Rosenfeld and Kolter, 2019).

These put the counting kernel (`rpjax._src.smoothing`) and the statistics (`rpjax.stats`)
together. Counts come from the device; every statistic is computed in float64 on the host, and
results are NumPy arrays (`Certificates`, `Prediction`) whose fields all have leading axis B.

Key use: CERTIFY draws its n0 selection samples from `fold_in(key, 0)` and its n estimation
samples from `fold_in(key, 1)` (independent streams, as the guarantee requires); PREDICT and
always-label draw from `fold_in(key, 2)`.

These are certification tools for whoever holds the model: they take the key and the example
ids from their caller (the same key and id give the same noise) and return counts and radii.
Never expose them to a querier; a deployed release is `rpjax.privacy.RobustPrivacyRelease`
(label only, the owner's secret noise, per-subject budgets; see `docs/guarantee.md`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from rpjax._src import smoothing as _smoothing
from rpjax._src import stats as _stats
from rpjax._src import validate as _validate

ABSTAIN = -1
"""Label released when the smoothed classifier abstains."""

_SELECTION, _ESTIMATION, _PREDICTION = 0, 1, 2


class Certificates(NamedTuple):
    """Result of `certify`; every field has leading axis B (NumPy arrays).

    Attributes:
      label: `[B]` int32; the certified class, or `ABSTAIN` (-1) where `pa_lower <= 1/2`.
      radius: `[B]` float64; certified l2 radius in the units of the inputs; 0 when abstaining.
      pa_lower: `[B]` float64; one-sided (1 - alpha) Clopper-Pearson lower bound on p_A.
      counts: `[B, num_classes]` int32; votes among the n estimation samples.
      n: `[B]` int64; estimation samples per input.
      selection_counts: `[B, num_classes]` int32; votes among the n0 selection samples.
    """

    label: np.ndarray
    radius: np.ndarray
    pa_lower: np.ndarray
    counts: np.ndarray
    n: np.ndarray
    selection_counts: np.ndarray


class Prediction(NamedTuple):
    """Result of `predict(..., details=True)` and `always_label`; leading axis B.

    Attributes:
      label: `[B]` int32; the released class, or `ABSTAIN` (-1).
      counts: `[B, num_classes]` int32 votes among the n samples.
      pvalue: `[B]` float64; two-sided binomial test of the top two counts (NaN when no test
        was run, i.e. for `always_label`).
      certified: `[B]` bool; True where the label carries PREDICT's guarantee. Always False
        for `always_label`, whose labels are only the Monte Carlo top class.
    """

    label: np.ndarray
    counts: np.ndarray
    pvalue: np.ndarray
    certified: np.ndarray


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmoothingConfig:
    """Monte Carlo settings of one certification run (write it verbatim into reports).

    Attributes:
      sigma: std of the isotropic Gaussian noise, in the units of the model input.
      n0: selection samples per input.
      n: estimation samples per input.
      alpha: failure probability of each certificate, in (0, 1).
      chunk_size: noisy copies per compiled step (None: automatic); speed and memory only.
    """

    sigma: float
    n0: int = 100
    n: int = 100_000
    alpha: float = 1e-3
    chunk_size: int | None = None

    def __post_init__(self):
        _validate.positive("sigma", self.sigma)
        _validate.integer("n0", self.n0, minimum=1)
        _validate.integer("n", self.n, minimum=1)
        _validate.open_unit_interval("alpha", self.alpha)
        if self.chunk_size is not None:
            _validate.integer("chunk_size", self.chunk_size, minimum=1)


def _sub_key(key: Any, purpose: int) -> jax.Array:
    return jax.random.fold_in(_validate.key("key", key), purpose)


def _bar(progress: bool | str, label: str) -> bool | str:
    return label if progress is True else progress


def _count(apply_fn, params, xs, key, n, **kw) -> np.ndarray:
    return np.asarray(_smoothing.sample_counts(apply_fn, params, xs, key, n=n, **kw))


def certify(
    apply_fn: _smoothing.ApplyFn,
    params: Any,
    xs: jax.typing.ArrayLike,
    key: jax.Array | int,
    *,
    sigma: float,
    n: int,
    alpha: float,
    num_classes: int,
    n0: int = 100,
    chunk_size: int | None = None,
    ids: jax.typing.ArrayLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    batch_size: int | None = None,
    progress: bool | str = False,
    common_noise: bool = False,
) -> Certificates:
    """CERTIFY: a label and an l2 radius on which the smoothed classifier is constant.

    The smoothed classifier is `g(x) = argmax_c P(f(x + eps) = c)`, `eps ~ N(0, sigma^2 I)`.
    `n0` samples choose the top class `c`; `n` fresh samples count `n_c`; `pa_lower` is the
    one-sided (1 - alpha) Clopper-Pearson lower bound on `n_c / n`; the input abstains if
    `pa_lower <= 1/2`, else `c` is released with radius `sigma * Phi^-1(pa_lower)`.

    Args:
      apply_fn: pure `apply_fn(params, x) -> logits`, x `[b, *input_shape]`.
      params: the base model's parameters.
      xs: `[B, *input_shape]` floating, finite inputs.
      key: typed key or int seed (selection and estimation use independent sub-keys).
      sigma: noise std, in the units of `xs` (> 0).
      n: estimation samples per input.
      alpha: failure probability of each certificate, in (0, 1).
      num_classes: number of classes (>= the model's number of logits).
      n0: selection samples per input.
      chunk_size, ids, devices, batch_size, progress: see `sample_counts`.
      common_noise: the same noise draws for every input (see `sample_counts`): each
        certificate keeps its guarantee; certificates of different inputs become dependent.

    Returns:
      `Certificates` (NumPy arrays, leading axis B).

    Guarantee:
      For each input, with probability at least 1 - alpha over the sampling noise, either
      the label is `ABSTAIN` or `g(x') = label` for every `||x' - x||_2 < radius`.

    Warns:
      `rpjax.stats.SampleSizeWarning` if `n` is too small to ever avoid abstaining.

    References:
      Cohen, Rosenfeld, Kolter. Certified Adversarial Robustness via Randomized Smoothing.
      ICML 2019, Algorithm CERTIFY.
    """
    n = _validate.integer("n", n, minimum=1)
    n0 = _validate.integer("n0", n0, minimum=1)
    alpha = _validate.open_unit_interval("alpha", alpha)
    _stats.check_sample_size(n, alpha, mode="certify")
    kw = dict(sigma=sigma, num_classes=num_classes, chunk_size=chunk_size, ids=ids,
              devices=devices, batch_size=batch_size, progress=progress,
              common_noise=common_noise)
    counts0 = _count(apply_fn, params, xs, _sub_key(key, _SELECTION), n0,
                     **{**kw, "progress": _bar(progress, f"selection (n0={n0})")})
    counts = _count(apply_fn, params, xs, _sub_key(key, _ESTIMATION), n,
                    **{**kw, "progress": _bar(progress, f"estimation (n={n})")})
    top = counts0.argmax(axis=1)
    n_top = np.take_along_axis(counts, top[:, None], axis=1)[:, 0]
    pa_lower = _stats.clopper_pearson_lower(n_top, n, alpha)
    certified = pa_lower > 0.5
    radius = np.where(certified, _stats.certified_radius(pa_lower, sigma), 0.0)
    label = np.where(certified, top, ABSTAIN).astype(np.int32)
    return Certificates(
        label=label, radius=radius.astype(np.float64), pa_lower=pa_lower, counts=counts,
        n=np.full(label.shape, n, np.int64), selection_counts=counts0,
    )


def _top_two(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(-counts, axis=1, kind="stable")
    top = order[:, 0]
    n_a = np.take_along_axis(counts, order[:, :1], axis=1)[:, 0]
    n_b = np.take_along_axis(counts, order[:, 1:2], axis=1)[:, 0]
    return top, n_a, n_b


def predict(
    apply_fn: _smoothing.ApplyFn,
    params: Any,
    xs: jax.typing.ArrayLike,
    key: jax.Array | int,
    *,
    sigma: float,
    n: int,
    alpha: float,
    num_classes: int,
    details: bool = False,
    chunk_size: int | None = None,
    ids: jax.typing.ArrayLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    batch_size: int | None = None,
    progress: bool | str = False,
) -> np.ndarray | Prediction:
    """PREDICT: the smoothed classifier's label, or `ABSTAIN`, from `n` samples.

    The top two counts `n_A >= n_B` are tested with a two-sided exact binomial test of
    `n_A` successes in `n_A + n_B` trials at p = 1/2; the input abstains if the p-value
    exceeds `alpha`, else the top class is released.

    Args:
      apply_fn, params, xs, key, sigma, num_classes: as in `certify`.
      n: samples per input.
      alpha: the test's level, in (0, 1).
      details: return a `Prediction` (counts, p-values) instead of the labels alone.
      chunk_size, ids, devices, batch_size, progress: see `sample_counts`.

    Returns:
      `[B]` int32 labels (-1 = abstain) as NumPy, or a `Prediction` if `details`.

    Guarantee:
      For each input, the probability of releasing a label other than `g(x)` is at most
      `alpha` (Cohen et al., Theorem 2).
    """
    n = _validate.integer("n", n, minimum=1)
    alpha = _validate.open_unit_interval("alpha", alpha)
    _stats.check_sample_size(n, alpha, mode="predict")
    counts = _count(apply_fn, params, xs, _sub_key(key, _PREDICTION), n, sigma=sigma,
                    num_classes=num_classes, chunk_size=chunk_size, ids=ids, devices=devices,
                    batch_size=batch_size, progress=progress)
    top, n_a, n_b = _top_two(counts)
    pvalue = _stats.binomial_test_pvalue(n_a, np.maximum(n_a + n_b, 1), 0.5)
    ok = pvalue <= alpha
    label = np.where(ok, top, ABSTAIN).astype(np.int32)
    if not details:
        return label
    return Prediction(label=label, counts=counts, pvalue=pvalue, certified=ok)


def always_label(
    apply_fn: _smoothing.ApplyFn,
    params: Any,
    xs: jax.typing.ArrayLike,
    key: jax.Array | int,
    *,
    sigma: float,
    n: int,
    num_classes: int,
    chunk_size: int | None = None,
    ids: jax.typing.ArrayLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    batch_size: int | None = None,
    progress: bool | str = False,
) -> Prediction:
    """Always return a label: the Monte Carlo top class of `n` samples, with no test.

    This is the paper's "always return a label" mode (v1, section 7.2). It never abstains
    and carries no certificate: `certified` is all False and `pvalue` is NaN. Report it apart
    from the certified modes.

    Returns:
      `Prediction` with the top class of the counts (ties: lowest class index).
    """
    n = _validate.integer("n", n, minimum=1)
    counts = _count(apply_fn, params, xs, _sub_key(key, _PREDICTION), n, sigma=sigma,
                    num_classes=num_classes, chunk_size=chunk_size, ids=ids, devices=devices,
                    batch_size=batch_size, progress=progress)
    label = counts.argmax(axis=1).astype(np.int32)
    return Prediction(
        label=label, counts=counts, pvalue=np.full(label.shape, np.nan),
        certified=np.zeros(label.shape, bool),
    )
