"""CERTIFY, PREDICT and always-label (Cohen, Rosenfeld and Kolter, 2019): the owner's tools.

These put the counting kernel (`rpjax._src.smoothing`) and the statistics (`rpjax.stats`)
together. Counts come from the device; every statistic is computed in float64 on the host, and
results are NumPy arrays (`Certificates`, `Prediction`) whose fields all have leading axis B.

Key use: CERTIFY draws its n0 selection samples from `fold_in(key, 0)` and its n estimation
samples from `fold_in(key, 1)` (independent streams, as the guarantee requires); PREDICT and
always-label draw from `fold_in(key, 2)`.

All three take the same arguments with the same meanings and defaults (`sigma`, `n`,
`chunk_size`, or one `SmoothingConfig` instead; `ids`, `devices`, `batch_size`, `progress`,
`common_noise`, `distribution`). A sample whose logits contain NaN or +inf votes for no class;
an input with any such sample abstains (`ABSTAIN`, also from `always_label`), with a
`RuntimeWarning` naming `apply_fn` and the inputs (the model is broken or overflows there: its
votes say nothing).

These are certification tools for whoever holds the model: they take the key and the example
ids from their caller (the same key and id give the same noise) and return counts and radii.
Never expose them to a querier; a deployed release is `rpjax.privacy.RobustPrivacyRelease`
(label only, the owner's secret noise, per-subject budgets; see `docs/guarantee.md`).
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from rpjax._src import noise as _noise
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
      radius: `[B]` float64; certified radius in the units of the inputs, in the norm of the
        noise distribution (`distribution.norm`: l2 for `GAUSSIAN`); 0 when abstaining.
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
    """Result of `predict` and `always_label`; leading axis B (NumPy arrays).

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
    """Monte Carlo settings of one run; `certify`, `predict` and `always_label` accept it as
    `config=` instead of the separate keywords (write it verbatim into reports).

    Attributes:
      sigma: std of the isotropic Gaussian noise, in the units of the model input.
      n0: selection samples per input (`certify` only).
      n: estimation samples per input (`certify`); samples per input (`predict`,
        `always_label`).
      alpha: failure probability of each certificate, in (0, 1) (unused by `always_label`).
      chunk_size: noisy copies per compiled step (None: automatic); speed and memory only.
    """

    sigma: float
    n0: int = 100
    n: int = 100_000
    alpha: float = 1e-3
    chunk_size: int | None = None

    def __post_init__(self):  # canonical Python numbers, so the config serializes as given
        put = functools.partial(object.__setattr__, self)
        put("sigma", _validate.positive("sigma", self.sigma))
        put("n0", _validate.integer("n0", self.n0, minimum=1))
        put("n", _validate.integer("n", self.n, minimum=1))
        put("alpha", _validate.open_unit_interval("alpha", self.alpha))
        if self.chunk_size is not None:
            put("chunk_size", _validate.integer("chunk_size", self.chunk_size, minimum=1))


_DEFAULT_N0 = 100


def _settings(entry: str, config: SmoothingConfig | None, **given: Any) -> SmoothingConfig:
    """The run's settings: `config`, or the keywords; never both. `given` holds the keywords
    this entry point takes (None = not given)."""
    passed = sorted(k for k, v in given.items() if v is not None)
    if config is not None:
        if not isinstance(config, SmoothingConfig):
            raise TypeError(f"config must be a rpjax.SmoothingConfig, got {config!r}.")
        if passed:
            raise ValueError(
                f"{entry}: give either config= or the settings {', '.join(passed)}, not both "
                f"(config already holds sigma, n, alpha, n0 and chunk_size).")
    else:
        required = [k for k in ("sigma", "n", "alpha") if k in given and given[k] is None]
        if required:
            raise TypeError(f"{entry}() needs {', '.join(required)} "
                            "(or config=SmoothingConfig(...)).")
        n0 = given.get("n0")
        config = SmoothingConfig(
            sigma=given["sigma"],
            n=given["n"],
            alpha=given.get("alpha", 0.5),  # entry points without a test: any valid value
            n0=_DEFAULT_N0 if n0 is None else n0,
            chunk_size=given.get("chunk_size"),
        )
    for name in ("n", "n0"):  # before any sampling, not after the first pass
        if getattr(config, name) > _smoothing.MAX_N:
            raise ValueError(f"{name} must be <= 2**30, got {name}={getattr(config, name)}; "
                             "split the work over several keys.")
    return config


def _sub_key(key: Any, purpose: int) -> jax.Array:
    return jax.random.fold_in(_validate.key("key", key), purpose)


def _bar(progress: bool | str, label: str) -> bool | str:
    return label if progress is True else progress


def _count(apply_fn, params, xs, key, n, **kw) -> tuple[np.ndarray, np.ndarray]:
    counts, invalid = _smoothing.sample_counts_and_invalid(apply_fn, params, xs, key, n=n, **kw)
    return np.asarray(counts), np.asarray(invalid)


def _warn_invalid(entry: str, invalid: np.ndarray, n: int) -> np.ndarray:
    """Inputs with any NaN / +inf sample (a `[B]` bool mask), with a warning if there are any."""
    bad = invalid > 0
    if bad.any():
        warnings.warn(
            f"{entry}: {_smoothing.nonfinite_message(np.flatnonzero(bad), invalid[bad], n)} "
            "These inputs abstain.", RuntimeWarning, stacklevel=3)
    return bad


def certify(
    apply_fn: _smoothing.ApplyFn,
    params: Any,
    xs: jax.typing.ArrayLike,
    key: jax.Array | int,
    *,
    num_classes: int,
    sigma: float | None = None,
    n: int | None = None,
    alpha: float | None = None,
    n0: int | None = None,
    chunk_size: int | None = None,
    config: SmoothingConfig | None = None,
    ids: jax.typing.ArrayLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    batch_size: int | None = None,
    progress: bool | str = False,
    common_noise: bool = False,
    distribution: _noise.NoiseDistribution = _noise.GAUSSIAN,
) -> Certificates:
    """CERTIFY: a label and a radius on which the smoothed classifier is constant.

    The smoothed classifier is `g(x) = argmax_c P(f(x + eps) = c)`, `eps ~ N(0, sigma^2 I)`.
    `n0` samples choose the top class `c`; `n` fresh samples count `n_c`; `pa_lower` is the
    one-sided (1 - alpha) Clopper-Pearson lower bound on `n_c / n`; the input abstains if
    `pa_lower <= 1/2`, else `c` is released with radius
    `distribution.radius_from_pa(pa_lower, sigma)` (`sigma * Phi^-1(pa_lower)`, l2, for
    `GAUSSIAN`).

    Args:
      apply_fn: pure, hashable `apply_fn(params, x) -> logits`, x `[b, *input_shape]`, logits
        `[b, C]` with `2 <= C <= num_classes`.
      params: the base model's parameters.
      xs: `[B, *input_shape]` floating, finite inputs.
      key: typed key or int seed (selection and estimation use independent sub-keys).
      num_classes: number of classes (>= the model's number of logits).
      sigma: noise std, in the units of `xs` (> 0; with the noise, `xs` must stay finite in
        its dtype). sigma, n and alpha are required unless `config` is given.
      n: estimation samples per input.
      alpha: failure probability of each certificate, in (0, 1).
      n0: selection samples per input (default 100).
      chunk_size: see `sample_counts`.
      config: a `SmoothingConfig` instead of sigma, n, alpha, n0 and chunk_size (giving both
        is a ValueError).
      ids, devices, batch_size, progress: see `sample_counts`.
      common_noise: the same noise draws for every input (see `sample_counts`): each
        certificate keeps its guarantee; certificates of different inputs become dependent.
      distribution: the smoothing distribution; its `radius_from_pa` gives the radius, in its
        `norm`.

    Returns:
      `Certificates` (NumPy arrays, leading axis B).

    Guarantee:
      For each input, with probability at least 1 - alpha over the sampling noise, either
      the label is `ABSTAIN` or `g(x') = label` for every `||x' - x|| < radius` (in
      `distribution.norm`).

    Warns:
      `rpjax.stats.SampleSizeWarning` if `n` is too small to ever avoid abstaining;
      `RuntimeWarning` if `apply_fn` gave NaN / +inf logits (those inputs abstain).

    References:
      Cohen, Rosenfeld, Kolter. Certified Adversarial Robustness via Randomized Smoothing.
      ICML 2019, Algorithm CERTIFY.
    """
    cfg = _settings("certify", config, sigma=sigma, n=n, alpha=alpha, n0=n0,
                    chunk_size=chunk_size)
    n, n0, alpha, sigma = cfg.n, cfg.n0, cfg.alpha, cfg.sigma
    _stats.check_sample_size(n, alpha, mode="certify")
    kw = dict(sigma=sigma, num_classes=num_classes, chunk_size=cfg.chunk_size, ids=ids,
              devices=devices, batch_size=batch_size, progress=progress,
              common_noise=common_noise, distribution=distribution)
    counts0, invalid0 = _count(apply_fn, params, xs, _sub_key(key, _SELECTION), n0,
                               **{**kw, "progress": _bar(progress, f"selection (n0={n0})")})
    counts, invalid = _count(apply_fn, params, xs, _sub_key(key, _ESTIMATION), n,
                             **{**kw, "progress": _bar(progress, f"estimation (n={n})")})
    bad = _warn_invalid("certify", invalid0 + invalid, n0 + n)
    top = counts0.argmax(axis=1)
    n_top = np.take_along_axis(counts, top[:, None], axis=1)[:, 0]
    pa_lower = _stats.clopper_pearson_lower(n_top, n, alpha)
    certified = (pa_lower > 0.5) & ~bad
    radius = np.where(certified, distribution.radius_from_pa(pa_lower, sigma), 0.0)
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
    num_classes: int,
    sigma: float | None = None,
    n: int | None = None,
    alpha: float | None = None,
    chunk_size: int | None = None,
    config: SmoothingConfig | None = None,
    ids: jax.typing.ArrayLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    batch_size: int | None = None,
    progress: bool | str = False,
    common_noise: bool = False,
    distribution: _noise.NoiseDistribution = _noise.GAUSSIAN,
) -> Prediction:
    """PREDICT: the smoothed classifier's label, or `ABSTAIN`, from `n` samples.

    The top two counts `n_A >= n_B` are tested with a two-sided exact binomial test of
    `n_A` successes in `n_A + n_B` trials at p = 1/2; the input abstains if the p-value
    exceeds `alpha`, else the top class is released.

    Args:
      apply_fn, params, xs, key, num_classes, sigma, chunk_size, config: as in `certify`
        (`config.n0` is unused).
      n: samples per input.
      alpha: the test's level, in (0, 1).
      ids, devices, batch_size, progress, common_noise, distribution: as in `certify`.

    Returns:
      `Prediction` (labels, -1 = abstain; counts; p-values; `certified`).

    Guarantee:
      For each input, the probability of releasing a label other than `g(x)` is at most
      `alpha` (Cohen et al., Theorem 2).

    Warns:
      `rpjax.stats.SampleSizeWarning` if `n` can never pass the test; `RuntimeWarning` if
      `apply_fn` gave NaN / +inf logits (those inputs abstain).
    """
    cfg = _settings("predict", config, sigma=sigma, n=n, alpha=alpha, chunk_size=chunk_size)
    n, alpha = cfg.n, cfg.alpha
    _stats.check_sample_size(n, alpha, mode="predict")
    counts, invalid = _count(apply_fn, params, xs, _sub_key(key, _PREDICTION), n,
                             sigma=cfg.sigma, num_classes=num_classes, chunk_size=cfg.chunk_size,
                             ids=ids, devices=devices, batch_size=batch_size, progress=progress,
                             common_noise=common_noise, distribution=distribution)
    bad = _warn_invalid("predict", invalid, n)
    top, n_a, n_b = _top_two(counts)
    pvalue = _stats.binomial_test_pvalue(n_a, np.maximum(n_a + n_b, 1), 0.5)
    ok = (pvalue <= alpha) & ~bad
    label = np.where(ok, top, ABSTAIN).astype(np.int32)
    return Prediction(label=label, counts=counts, pvalue=pvalue, certified=ok)


def always_label(
    apply_fn: _smoothing.ApplyFn,
    params: Any,
    xs: jax.typing.ArrayLike,
    key: jax.Array | int,
    *,
    num_classes: int,
    sigma: float | None = None,
    n: int | None = None,
    chunk_size: int | None = None,
    config: SmoothingConfig | None = None,
    ids: jax.typing.ArrayLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    batch_size: int | None = None,
    progress: bool | str = False,
    common_noise: bool = False,
    distribution: _noise.NoiseDistribution = _noise.GAUSSIAN,
) -> Prediction:
    """Always return a label: the Monte Carlo top class of `n` samples, with no test.

    This is the paper's "always return a label" mode (v1, section 7.2). It carries no
    certificate: `certified` is all False and `pvalue` is NaN. Report it apart from the
    certified modes. It abstains only on inputs where `apply_fn` gave NaN / +inf logits.

    Args:
      apply_fn, params, xs, key, num_classes, sigma, chunk_size, config: as in `certify`
        (`config.n0` and `config.alpha` are unused).
      n: samples per input.
      ids, devices, batch_size, progress, common_noise, distribution: as in `certify`.

    Returns:
      `Prediction` with the top class of the counts (ties: lowest class index).
    """
    cfg = _settings("always_label", config, sigma=sigma, n=n, chunk_size=chunk_size)
    n = cfg.n
    counts, invalid = _count(apply_fn, params, xs, _sub_key(key, _PREDICTION), n,
                             sigma=cfg.sigma, num_classes=num_classes, chunk_size=cfg.chunk_size,
                             ids=ids, devices=devices, batch_size=batch_size, progress=progress,
                             common_noise=common_noise, distribution=distribution)
    bad = _warn_invalid("always_label", invalid, n)
    label = np.where(bad, ABSTAIN, counts.argmax(axis=1)).astype(np.int32)
    return Prediction(
        label=label, counts=counts, pvalue=np.full(label.shape, np.nan),
        certified=np.zeros(label.shape, bool),
    )
