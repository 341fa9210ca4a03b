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
import scipy.stats

from rpjax._src import confseq as _confseq
from rpjax._src import decision as _decision
from rpjax._src import noise as _noise
from rpjax._src import sequential as _sequential
from rpjax._src import smoothing as _smoothing
from rpjax._src import stats as _stats
from rpjax._src import validate as _validate

ABSTAIN = _decision.ABSTAIN
_SELECTION, _ESTIMATION, _PREDICTION = (_decision.SELECTION, _decision.ESTIMATION,
                                        _decision.PREDICTION)


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
    method: str = "cohen",
    radius: float | None = None,
    tolerance: float | None = None,
    slots: int | None = None,
) -> Certificates | SequentialCertificates:
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
      method: "cohen" (the default: every input uses n samples, as described here) or
        "sequential": `certify_sequential` with n as n_max, each input stopping as soon as it
        is decided (then `batch_size` and `common_noise` are not offered).
      radius, tolerance, slots: options of `certify_sequential` (method "sequential" only).

    Returns:
      `Certificates` (NumPy arrays, leading axis B); `SequentialCertificates` with method
      "sequential".

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
    if method == "sequential":
        if batch_size is not None or common_noise:
            raise ValueError("certify(method='sequential') takes neither batch_size nor "
                             "common_noise (the scheduler bounds memory itself).")
        return certify_sequential(
            apply_fn, params, xs, key, num_classes=num_classes, sigma=sigma, n=n, alpha=alpha,
            n0=n0, chunk_size=chunk_size, config=config, radius=radius, tolerance=tolerance,
            slots=slots, ids=ids, devices=devices, progress=progress, distribution=distribution)
    if method != "cohen":
        raise ValueError(f"method must be 'cohen' or 'sequential', got method={method!r}.")
    given = [k for k, v in (("radius", radius), ("tolerance", tolerance), ("slots", slots))
             if v is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: options of method='sequential', not of "
                         "method='cohen'.")
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
    top, pa_lower, certified = _decision.certify_statistics(counts0, counts, n, alpha)
    certified = certified & ~bad
    radius = np.where(certified, distribution.radius_from_pa(pa_lower, sigma), 0.0)
    label = np.where(certified, top, ABSTAIN).astype(np.int32)
    return Certificates(
        label=label, radius=radius.astype(np.float64), pa_lower=pa_lower, counts=counts,
        n=np.full(label.shape, n, np.int64), selection_counts=counts0,
    )


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
    top, pvalue, ok = _decision.predict_statistics(counts, alpha)
    ok = ok & ~bad
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
    label = np.where(bad, ABSTAIN, _decision.always_label_statistics(counts)).astype(np.int32)
    return Prediction(
        label=label, counts=counts, pvalue=np.full(label.shape, np.nan),
        certified=np.zeros(label.shape, bool),
    )


class SequentialCertificates(NamedTuple):
    """Result of `certify_sequential` (and `certify(method="sequential")`).

    The first six fields are those of `Certificates`, with the same meaning; every field but
    `forward_passes` has leading axis B (NumPy arrays).

    Attributes:
      label: `[B]` int32; the certified class, or `ABSTAIN` (-1) where `pa_lower <= 1/2`.
      radius: `[B]` float64; certified radius (input units, `distribution.norm`), 0 when
        abstaining. With `radius=r` asked, `radius >= r` exactly where `decision == 1`.
      pa_lower: `[B]` float64; the (1 - alpha) lower bound on p_A at the input's stopping
        time, valid whatever the stopping time (`sequential_bounds`).
      counts: `[B, num_classes]` int32; votes among the estimation samples the input used.
      n: `[B]` int64; estimation samples the input used (its stopping time, <= n_max).
      selection_counts: `[B, num_classes]` int32; votes among the n0 selection samples.
      pa_upper: `[B]` float64; the (1 - alpha) upper bound on p_A (of the selected class) at
        the stopping time, likewise.
      decision: `[B]` int8. Decision at a radius r: 1 = certified at r (`radius >= r`),
        0 = not certified at r (the input stopped because `pa_upper` fell below the p_A that r
        needs, or used all n_max samples), -1 = abstain (`label == ABSTAIN`: no certificate
        at any radius). Radius with a budget: 1 where certified (`label != ABSTAIN`), else -1.
      forward_passes: int; base-model forward passes of the whole call: `B * n0` for the
        selection plus every noisy sample the scheduler evaluated (samples past an input's
        stopping point included; `>= n0 * B + n.sum()`).
    """

    label: np.ndarray
    radius: np.ndarray
    pa_lower: np.ndarray
    counts: np.ndarray
    n: np.ndarray
    selection_counts: np.ndarray
    pa_upper: np.ndarray
    decision: np.ndarray
    forward_passes: int


CERTIFIED, NOT_CERTIFIED, ABSTAINED = 1, 0, -1
_DEFAULT_TOLERANCE = 0.02


def pa_for_radius(radius: float, sigma: float,
                  distribution: _noise.NoiseDistribution = _noise.GAUSSIAN) -> float:
    """The smallest p_A (to float64 precision, rounded up) whose certified radius is >= radius.

    Bisection on `distribution.radius_from_pa(p, sigma)` (increasing in p); for `GAUSSIAN`
    this is `Phi(radius / sigma)`, and 1/2 for radius 0.
    """
    if radius == 0.0:
        return 0.5
    if distribution is _noise.GAUSSIAN:  # closed form, nudged up to a p that does reach r
        p = float(scipy.stats.norm.cdf(radius / sigma))
        while p < 1.0 and float(distribution.radius_from_pa(p, sigma)) < radius:
            p = float(np.nextafter(p, 1.0))
        if p < 1.0:
            return p
    lo, hi = 0.5, 1.0
    if float(distribution.radius_from_pa(np.nextafter(1.0, 0.0), sigma)) < radius:
        raise ValueError(f"radius={radius} cannot be certified at sigma={sigma} by any p_A < 1 "
                         f"({distribution.name} noise).")
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        if float(distribution.radius_from_pa(mid, sigma)) >= radius:
            hi = mid
        else:
            lo = mid
    return hi


def stop_rule(*, n_max: int, alpha: float, sigma: float, radius: float | None = None,
              tolerance: float = _DEFAULT_TOLERANCE,
              distribution: _noise.NoiseDistribution = _noise.GAUSSIAN) -> _sequential.StopRule:
    """The `StopRule` `certify_sequential` runs for a total error `alpha` (see there): the
    sequential test of p_A > `pa_for_radius(radius)` at level alpha / 2 with `radius`, else
    the staged budget rule with `tolerance` (`rpjax.stats.staged_budget_table` on
    `staged_looks(n_max)`)."""
    if radius is not None:
        p_star = pa_for_radius(radius, sigma, distribution)
        reject, accept = _confseq.decision_table(p_star, alpha / 2, n_max)
        return _sequential.StopRule.thresholds(accept, reject)
    unit_radius = (None if distribution is _noise.GAUSSIAN else
                   functools.partial(_unit_radius, distribution.radius_from_pa))
    hopeless, band_lo, band_hi = _confseq.staged_budget_table(
        alpha, n_max, tolerance, looks=_confseq.staged_looks(n_max), radius_from_pa=unit_radius)
    never = np.arange(1, n_max + 2, dtype=np.int32)
    return _sequential.StopRule(lo=np.asarray(hopeless, np.int32), hi=never,
                                band_lo=np.asarray(band_lo, np.int32),
                                band_hi=np.asarray(band_hi, np.int32))


def _unit_radius(radius_from_pa, p):
    return radius_from_pa(p, 1.0)


def sequential_bounds(n_c, m, n_max: int, alpha: float, *,
                      looks=None) -> tuple[np.ndarray, np.ndarray]:
    """The (1 - alpha) lower and upper bounds on p_A `certify_sequential` reports after `m`
    samples (its stopping time) with `n_c` votes for the selected class.

    Without `looks` (decision at a radius, any stopping time): below n_max,
    `rpjax.stats.mixture_bound` at level alpha / 2; at m = n_max, the tighter of that and the
    fixed-n Clopper-Pearson bound at level alpha / 2. Each side is wrong with probability at
    most alpha / 2 + alpha / 2 = alpha at any stopping time <= n_max: it can only be wrong if
    the anytime bound fails at some sample count (probability <= alpha / 2, Ville) or the one
    fixed-n bound at n_max fails (probability <= alpha / 2).

    With `looks` (radius with a budget, which stops only at its J looks):
    `rpjax.stats.staged_clopper_pearson`, Clopper-Pearson at level alpha / J at the look where
    the input stopped; wrong with probability at most alpha over all looks (union bound).
    Every `m` must be one of the looks.
    """
    n_c, m = np.asarray(n_c), np.asarray(m)
    if looks is not None:
        looks = np.asarray(looks)
        if not np.isin(m, looks).all():
            raise RuntimeError("an input stopped between the looks of the staged rule.")
        level = alpha / looks.size
        return (_stats.clopper_pearson_lower(n_c, m, level),
                _stats.clopper_pearson_upper(n_c, m, level))
    half = alpha / 2
    lower = _confseq.mixture_bound(n_c, m, half, side="lower")
    upper = _confseq.mixture_bound(n_c, m, half, side="upper")
    end = m == n_max
    lower = np.where(end, np.maximum(lower, _stats.clopper_pearson_lower(n_c, m, half)), lower)
    upper = np.where(end, np.minimum(upper, _stats.clopper_pearson_upper(n_c, m, half)), upper)
    return lower, upper


def certify_sequential(
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
    radius: float | None = None,
    tolerance: float | None = None,
    slots: int | None = None,
    ids: jax.typing.ArrayLike | None = None,
    devices: Sequence[jax.Device] | None = None,
    progress: bool | str = False,
    distribution: _noise.NoiseDistribution = _noise.GAUSSIAN,
) -> SequentialCertificates:
    """Sequential CERTIFY: each input stops as soon as its question is decided.

    As in `certify`, `n0` samples (key `fold_in(key, 0)`) choose the top class `c`; then the
    estimation samples (key `fold_in(key, 1)`, the same noise `certify` uses) are drawn by the
    on-device scheduler (`rpjax.sequential_counts`), which stops each input at the first
    sample count where its stopping rule holds, at most `n` (= n_max). Two questions:

    - **decision at a radius** (`radius=r`): is the smoothed classifier robust at r? The
      stopping rule is the sequential test of `p_A > p* = pa_for_radius(r)` at level alpha / 2
      (`rpjax.stats.decision_table`: stop when the anytime lower bound passes p*, or the
      anytime upper bound falls below it);
    - **radius with a budget** (`radius=None`): the largest certifiable radius, looking only
      at J = 6 sample counts (`rpjax.stats.staged_looks`: n_max / 32, n_max / 16, ...,
      n_max); at a look an input stops when it cannot be certified at all (upper bound
      <= 1/2: abstain early), or when its radius now is within the fraction `tolerance` of the
      radius it would reach at n_max if its observed rate held
      (`rpjax.stats.staged_budget_table`).

    The certificate is the lower bound at the stopping time m (`sequential_bounds`). Decision:
    `rpjax.stats.mixture_bound(n_c, m, alpha / 2)` (valid at every m at once), and at
    m = n_max the tighter of it and the fixed-n Clopper-Pearson bound at alpha / 2 (so an input
    that uses the whole budget loses little against fixed-n CERTIFY). Budget: Clopper-Pearson
    at alpha / J at the look where it stopped (`rpjax.stats.staged_clopper_pearson`). Then
    `label = c` and `radius = distribution.radius_from_pa(pa_lower, sigma)` where
    `pa_lower > 1/2`, else `ABSTAIN`.

    Args:
      apply_fn, params, xs, key, num_classes, sigma, alpha, n0, config, ids, devices,
        distribution: as in `certify` (`common_noise` and `batch_size` are not offered: the
        scheduler already bounds memory).
      n: n_max, the most estimation samples any input may use.
      chunk_size: lanes, noisy samples evaluated per compiled step over all inputs under test
        (see `rpjax.sequential_counts`); speed only.
      radius: the radius of the decision question (input units, >= 0), or None for the
        radius with a budget.
      tolerance: the budget rule's fraction of radius, in (0, 1) (default 0.02); only
        without `radius`.
      slots: inputs under test at once (see `rpjax.sequential_counts`); speed only.
      progress: a progress bar over finished inputs.

    Returns:
      `SequentialCertificates`; `n` holds the samples each input used and `forward_passes`
      the cost of the call.

    Guarantee:
      For each input, with probability at least 1 - alpha over the sampling noise, either the
      label is `ABSTAIN` or `g(x') = label` for every `||x' - x|| < radius`. The selection
      samples are independent of the estimation samples. Decision: the mixture bound holds at
      every sample count at once (Ville's inequality) except with probability alpha / 2, and
      the one fixed-n bound at n_max except with probability alpha / 2. Budget: the J
      Clopper-Pearson bounds at alpha / J all hold except with probability alpha (union
      bound), and the input stops at one of them. So `pa_lower <= p_A` at the stopping time,
      whatever rule chose it, except with probability alpha; Cohen et al.'s Theorem 1 turns
      it into the radius. The stopping rules only decide how many samples are
      spent. `decision == 1` is this same event at radius r. Likewise `pa_upper >= p_A`
      except with probability alpha, so `decision == 0` decided by `pa_upper < p*` is wrong
      with probability at most alpha; a budget that ran out decides nothing.

    Results depend only on the key, the ids and the model: not on `chunk_size`, `slots`, the
    order of the inputs or the devices. The stopping time reveals p_A: never release what
    this function returns, or its cost, to a querier (see `docs/guarantee.md`).
    """
    cfg = _settings("certify_sequential", config, sigma=sigma, n=n, alpha=alpha, n0=n0,
                    chunk_size=chunk_size)
    n_max, n0, alpha, sigma = cfg.n, cfg.n0, cfg.alpha, cfg.sigma
    if radius is not None:
        radius = _validate.real("radius", radius)
        if not (np.isfinite(radius) and radius >= 0):
            raise ValueError(f"radius must be finite and >= 0, got radius={radius}.")
        if tolerance is not None:
            raise ValueError("tolerance applies to the radius with a budget (radius=None); "
                             "the decision at a radius has none.")
    tolerance = _DEFAULT_TOLERANCE if tolerance is None else _validate.open_unit_interval(
        "tolerance", tolerance)
    if not isinstance(distribution, _noise.NoiseDistribution):
        raise TypeError(f"distribution must be a rpjax.NoiseDistribution, got {distribution!r}.")
    _stats.check_sample_size(n_max, alpha, mode="certify")
    counts0, invalid0 = _count(
        apply_fn, params, xs, _sub_key(key, _SELECTION), n0, sigma=sigma,
        num_classes=num_classes, chunk_size=None, ids=ids, devices=devices,
        progress=_bar(progress, f"selection (n0={n0})"), distribution=distribution)
    top = counts0.argmax(axis=1).astype(np.int32)
    rule = stop_rule(n_max=n_max, alpha=alpha, sigma=sigma, radius=radius, tolerance=tolerance,
                     distribution=distribution)
    est = _sequential.sequential_counts(
        apply_fn, params, xs, _sub_key(key, _ESTIMATION), top, rule, sigma=sigma,
        num_classes=num_classes, chunk_size=cfg.chunk_size, slots=slots, ids=ids,
        devices=devices, progress=_bar(progress, f"estimation (n_max={n_max})"),
        distribution=distribution)
    bad = _warn_invalid("certify_sequential", invalid0 + est.invalid, n0 + n_max)
    n_top = np.take_along_axis(est.counts, top[:, None], axis=1)[:, 0]
    looks = None if radius is not None else _confseq.staged_looks(n_max)
    pa_lower, pa_upper = sequential_bounds(n_top, est.n, n_max, alpha, looks=looks)
    certified = (pa_lower > 0.5) & ~bad
    radii = np.where(certified, distribution.radius_from_pa(pa_lower, sigma), 0.0)
    label = np.where(certified, top, ABSTAIN).astype(np.int32)
    if radius is None:
        decision = np.where(certified, CERTIFIED, ABSTAINED)
    else:
        at_r = certified & (pa_lower >= pa_for_radius(radius, sigma, distribution))
        decision = np.where(at_r, CERTIFIED, np.where(certified, NOT_CERTIFIED, ABSTAINED))
    return SequentialCertificates(
        label=label, radius=radii.astype(np.float64), pa_lower=pa_lower, counts=est.counts,
        n=est.n, selection_counts=counts0, pa_upper=pa_upper, decision=decision.astype(np.int8),
        forward_passes=int(np.shape(xs)[0]) * n0 + est.forward_passes)
