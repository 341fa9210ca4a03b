"""CERTIFY, PREDICT and always-label (Cohen, Rosenfeld and Kolter, 2019): the owner's tools.

These put the counting kernels (`rpjax._src.smoothing`, `rpjax._src.sequential`) and the
statistics (`rpjax.stats`, `rpjax._src.decision`) together. Each takes one typed plan: a
`SmoothingConfig` (the statistics), for `certify` a rule (`Fixed()`, `DecideAt(radius)`,
`RadiusBudget(price)`: the question), and a `Placement` (devices, chunk and batch sizes,
progress: speed only). The plan is checked once (`rpjax._src.plan.resolve`,
`rpjax._src.smoothing.prepare`) and passed inward as it is. Counts come from the device; every
statistic is computed in float64 on the host, and results are NumPy arrays whose fields all
have leading axis B (`forward_passes` aside).

Key use: CERTIFY draws its n0 selection samples from `fold_in(key, 0)` and its estimation
samples from `fold_in(key, 1)` (independent streams, as the guarantee requires; the sequential
rules draw the same estimation noise as `Fixed()`); PREDICT and always-label draw from
`fold_in(key, 2)`.

A sample whose logits contain NaN or +inf or are all -inf votes for no class, and so do all
the samples of an input whose every sample ties every class; an input with any such sample
abstains (`ABSTAIN`, also from `always_label`), with a `RuntimeWarning` naming `apply_fn` and
the inputs (the model is broken or overflows there: its votes say nothing).

These are certification tools for whoever holds the model: they take the key and the example
ids from their caller (the same key and id give the same noise) and return counts and radii.
Never expose them to a querier; a deployed release is `rpjax.privacy.RobustPrivacyRelease`
(label only, the owner's secret noise, per-subject budgets; see `docs/guarantee.md`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from rpjax._src import confseq as _confseq
from rpjax._src import decision as _decision
from rpjax._src import noise as _noise
from rpjax._src import plan as _plan
from rpjax._src import sequential as _sequential
from rpjax._src import smoothing as _smoothing
from rpjax._src import stats as _stats

ABSTAIN = _decision.ABSTAIN
CERTIFIED, NOT_CERTIFIED, ABSTAINED = 1, 0, -1
UNDECIDED = ABSTAINED  # DecideAt: neither answer reached within n samples


class Certificates(NamedTuple):
    """Result of `certify`, for every rule; every field but `forward_passes` has leading axis B
    (NumPy arrays).

    Attributes:
      label: `[B]` int32; the certified class, or `ABSTAIN` (-1) where `pa_lower <= 1/2` (with
        `DecideAt`, where `decision != 1`).
      radius: `[B]` float64; certified radius in the units of the inputs, in the norm of the
        noise distribution (`distribution.norm`: l2 for `GAUSSIAN`); 0 when abstaining. For
        `GAUSSIAN` it is `sigma * Phi^-1(pa_lower)` less a bound on how far floating-point
        rounding moves the noisy inputs (`docs/guarantee.md`, section 1b), and an input whose
        radius would not stay positive abstains. With
        `DecideAt(r)`, r where `decision == 1`, else 0.
      pa_lower: `[B]` float64; the (1 - alpha) lower bound on p_A of the selected class:
        Clopper-Pearson with `Fixed()` and on the planned sample count with `RadiusBudget`;
        with `DecideAt`, the p* the input was tested at where certified, else 0.
      counts: `[B, num_classes]` int32; votes among the estimation samples the input used.
      n: `[B]` int64; estimation samples the input used (`config.n` with `Fixed()`; its
        stopping time, <= `config.n`, with a sequential rule).
      selection_counts: `[B, num_classes]` int32; votes among the n0 selection samples.
      pa_upper: `[B]` float64; the (1 - alpha) upper bound on p_A of the selected class
        (one-sided Clopper-Pearson with `Fixed()` and `RadiusBudget`); with `DecideAt`, the
        tested p* where the input gave up (a (1 - futility) bound), else 1.
      decision: `[B]` int8. With `DecideAt(r)`: 1 = certified at r (label, radius r), 0 = not
        robust at r (the futility test stopped it: p_A < p*, wrong with probability at most
        `futility`), -1 = undecided (n samples without either answer, or invalid samples);
        only 1 carries a label. With `Fixed()` and `RadiusBudget`: 1 where certified, else -1
        (no radius was asked, so 0 never occurs).
      forward_passes: int; base-model forward passes of the whole call: `B * n0` for the
        selection plus every noisy estimation sample evaluated (with a sequential rule,
        samples past an input's stopping point included: `>= n0 * B + n.sum()`).
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


def _count(apply_fn, params, prepared: _smoothing.Prepared, purpose: int, n: int,
           plan: _plan.Plan, label: str) -> tuple[np.ndarray, np.ndarray]:
    counts, invalid = _smoothing.count(apply_fn, params, prepared.xs, prepared.key_pairs(purpose),
                                       n, _plan.with_progress(plan, label))
    return np.asarray(counts), np.asarray(invalid)


def _warn_invalid(entry: str, invalid: np.ndarray, n: int) -> np.ndarray:
    """Inputs with any NaN / +inf sample (a `[B]` bool mask), with a warning if there are any."""
    bad = invalid > 0
    if bad.any():
        warnings.warn(
            f"{entry}: {_smoothing.nonfinite_message(np.flatnonzero(bad), invalid[bad], n)} "
            "These inputs abstain.", RuntimeWarning, stacklevel=3)
    return bad


def certify(apply_fn: _smoothing.ApplyFn, params: Any, xs: jax.typing.ArrayLike,
            key: jax.Array | int, *, num_classes: int, config: _plan.SmoothingConfig,
            rule: _plan.Rule | None = None, placement: _plan.Placement | None = None,
            ids: jax.typing.ArrayLike | None = None) -> Certificates:
    """CERTIFY: a label and a radius on which the smoothed classifier is constant.

    The smoothed classifier is `g(x) = argmax_c P(f(x + eps) = c)`, `eps ~ N(0, sigma^2 I)`.
    `config.n0` samples choose the top class `c`; fresh estimation samples count `n_c`; the
    lower bound `pa_lower` on `p_A = P(f(x + eps) = c)` decides: the input abstains if
    `pa_lower <= 1/2`, else `c` is released with radius
    `distribution.radius_from_pa(pa_lower, sigma)` (`sigma * Phi^-1(pa_lower)`, l2, for
    `GAUSSIAN`, less the rounding bound of `docs/guarantee.md` section 1b; an input whose
    radius would not stay positive abstains). A sigma below 8 grid spacings of the inputs'
    (or the parameters' coarser) dtype at the inputs' largest magnitude is refused. The rule
    says how many estimation samples each input spends:

    - `Fixed()` (default): `config.n` for every input; `pa_lower` is the one-sided
      (1 - alpha) Clopper-Pearson bound (Cohen et al.'s CERTIFY).
    - `DecideAt(r, futility)`: is the smoothed classifier robust at r? Each input runs a
      sequential test of `p_A > p* = pa_for_radius(r + margin)` (margin: its rounding
      radius, rounded up to a power of two, at least 2^-12 sigma) whose mixing prior is a
      Beta centred on its own selection count (`rpjax._src.confseq.selection_prior`),
      restricted to p > p* for the certificate (level alpha) and to p < p* for giving up
      (level `futility`, default alpha); the on-device scheduler stops it at the first
      sample count where either side decides, at most `config.n` (= n_max)
      (`rpjax._src.confseq.beta_decision_table`). Only a certificate at r is reported
      (label, radius r); see `decision`.
    - `RadiusBudget(price)`: the largest certifiable radius with a planned sample count per
      input: from its selection votes alone, each input gets the n (of about 33 counts up to
      `config.n`) that maximizes its expected radius minus `price * n`
      (`rpjax._src.confseq.planned_sample_sizes`); then exactly n fresh estimation samples
      and the one-sided Clopper-Pearson bound at alpha, as with `Fixed()`.

    Args:
      apply_fn: pure, hashable `apply_fn(params, x) -> logits`, x `[b, *input_shape]`, logits
        `[b, C]` with `2 <= C <= num_classes`.
      params: the base model's parameters.
      xs: `[B, *input_shape]` floating, finite inputs (with the noise, `xs` must stay finite in
        its dtype).
      key: typed key or int seed in [0, 2**64) (selection and estimation use independent
        sub-keys).
      num_classes: number of classes (>= the model's number of logits).
      config: the statistics (`sigma`, `n0`, `n`, `alpha`, `distribution`, `common_noise`; see
        `SmoothingConfig`).
      rule: `Fixed()` (default), `DecideAt(radius)` or `RadiusBudget(price)`.
      placement: devices, chunk and batch sizes, progress bar, the row-independence check
        (see `Placement`); never changes a result.
      ids: `[B]` non-negative example ids (default `0..B-1`): the noise of input i is keyed by
        `(key, ids[i])`, so an input gets the same certificate alone or in any batch.

    Returns:
      `Certificates` (NumPy arrays, leading axis B); `n` holds the samples each input used and
      `forward_passes` the cost of the call.

    Guarantee:
      For each input, with probability at least 1 - alpha over the sampling noise, either
      the label is `ABSTAIN` or `g(x') = label` for every `||x' - x|| < radius` (in
      `distribution.norm`). The selection samples are independent of the estimation samples.
      With a sequential rule `pa_lower <= p_A` holds at the stopping time, whatever rule chose
      it, except with probability alpha: `DecideAt`, because the prior and p* are fixed
      functions of the selection counts and x, the selection samples are independent of the
      estimation samples, and given them the restricted mixture's likelihood ratio against p*
      is a nonnegative supermartingale whenever p_A <= p*, which by Ville's inequality ever
      reaches 1/alpha with probability <= alpha; `RadiusBudget`, because each input's sample
      count is a fixed function of its selection counts, so given it the n estimation
      samples are i.i.d. and Clopper-Pearson at alpha holds as for a fixed n.
      The stopping rules only decide how many samples are spent. With `DecideAt`,
      `decision == 0` is wrong (p_A >= p*) with probability at most `futility`
      (`docs/sequential.md`). With `common_noise` each certificate keeps its guarantee;
      certificates of different inputs become dependent.
      A sequential rule's stopping time reveals p_A: never release what this returns, or its
      cost, to a querier (see `docs/guarantee.md`).

    Raises:
      rpjax.RowDependenceError: if `apply_fn` fails the row-independence probe (run once per
        model and input signature before anything is counted; `Placement(check_rows=False)`
        skips it; `rpjax._src.smoothing.check_rows`).

    Warns:
      `rpjax.stats.SampleSizeWarning` if `config.n` is too small to ever avoid abstaining;
      `RuntimeWarning` if `apply_fn` gave NaN / +inf logits, or logits that decide nothing
      (all -inf, or every class tied in every sample; those inputs abstain).

    References:
      Cohen, Rosenfeld, Kolter. Certified Adversarial Robustness via Randomized Smoothing.
      ICML 2019, Algorithm CERTIFY.
    """
    plan = _plan.resolve(config, num_classes=num_classes, rule=rule, placement=placement)
    prepared = _smoothing.prepare(apply_fn, params, xs, key, ids, plan)
    _smoothing.check_rows(apply_fn, params, prepared, plan)
    n, n0, alpha, sigma, distribution = plan.n, plan.n0, plan.alpha, plan.sigma, plan.distribution
    _stats.check_sample_size(n, alpha, mode="certify")
    selection_plan = plan._replace(chunk_size=None, batch_size=None) if plan.sequential else plan
    counts0, invalid0 = _count(apply_fn, params, prepared, _decision.SELECTION, n0,
                               selection_plan, f"selection (n0={n0})")
    batch = counts0.shape[0]
    if not plan.sequential:
        counts, invalid = _count(apply_fn, params, prepared, _decision.ESTIMATION, n, plan,
                                 f"estimation (n={n})")
        bad = _warn_invalid("certify", invalid0 + invalid, n0 + n)
        top, pa_lower, certified = _decision.certify_statistics(counts0, counts, n, alpha)
        n_top = np.take_along_axis(counts, top[:, None], axis=1)[:, 0]
        pa_upper = _stats.clopper_pearson_upper(n_top, n, alpha)
        used = np.full(batch, n, np.int64)
        passes = batch * (n0 + n)
    else:
        top = counts0.argmax(axis=1).astype(np.int32)
        k0 = np.take_along_axis(counts0, top[:, None], axis=1)[:, 0]
        if isinstance(plan.rule, _plan.DecideAt):
            margin = (prepared.rounding_radius(sigma) if distribution is _noise.GAUSSIAN
                      else np.zeros(batch))
            rule, rows, p_star, (host_lo, host_hi) = decision_rule(
                plan.rule, k0, n0=n0, n_max=n, alpha=alpha, sigma=sigma,
                distribution=distribution, margin=margin)
        else:
            planned = planned_sizes(plan.rule, k0, n0=n0, n_max=n, alpha=alpha,
                                    distribution=distribution)
            rule, rows = _planned_rule(n), np.searchsorted(_confseq.allocation_grid(n), planned)
        est = _sequential.run(
            apply_fn, params, prepared.xs, prepared.key_pairs(_decision.ESTIMATION), top,
            rule, _plan.with_progress(plan, f"estimation (n_max={n})"), rows=rows)
        counts, used, passes = est.counts, est.n, batch * n0 + est.forward_passes
        bad = _warn_invalid("certify", invalid0 + est.invalid, n0 + n)
        n_top = np.take_along_axis(counts, top[:, None], axis=1)[:, 0]
        if isinstance(plan.rule, _plan.DecideAt):
            return _decided(plan.rule, top, n_top, used, rows, p_star, host_lo, host_hi, bad,
                            counts=counts, counts0=counts0, passes=passes)
        if not np.array_equal(used, planned):
            raise RuntimeError("an input stopped before its planned sample count.")
        pa_lower = _stats.clopper_pearson_lower(n_top, used, alpha)
        pa_upper = _stats.clopper_pearson_upper(n_top, used, alpha)
        certified = pa_lower > 0.5
    certified = certified & ~bad
    radius = distribution.radius_from_pa(pa_lower, sigma)
    if distribution is _noise.GAUSSIAN:  # the floating-point rounding of the noisy inputs
        radius = radius - prepared.rounding_radius(sigma)
        certified = certified & (radius > 0)
    radius = np.where(certified, radius, 0.0)
    label = np.where(certified, top, ABSTAIN).astype(np.int32)
    decision = np.where(certified, CERTIFIED, ABSTAINED)
    return Certificates(
        label=label, radius=radius.astype(np.float64), pa_lower=pa_lower, counts=counts,
        n=used, selection_counts=counts0, pa_upper=np.asarray(pa_upper, np.float64),
        decision=decision.astype(np.int8), forward_passes=int(passes))


def _prediction_counts(entry: str, apply_fn, params, xs, key, ids,
                       plan: _plan.Plan) -> tuple[np.ndarray, np.ndarray]:
    """PREDICT's and always-label's `config.n` votes per input (the prediction stream) and
    the mask of inputs whose logits were NaN / +inf (warned)."""
    prepared = _smoothing.prepare(apply_fn, params, xs, key, ids, plan)
    counts, invalid = _count(apply_fn, params, prepared, _decision.PREDICTION, plan.n, plan,
                             "sampling")
    return counts, _warn_invalid(entry, invalid, plan.n)


def predict(apply_fn: _smoothing.ApplyFn, params: Any, xs: jax.typing.ArrayLike,
            key: jax.Array | int, *, num_classes: int, config: _plan.SmoothingConfig,
            placement: _plan.Placement | None = None,
            ids: jax.typing.ArrayLike | None = None) -> Prediction:
    """PREDICT: the smoothed classifier's label, or `ABSTAIN`, from `config.n` samples.

    The top two counts `n_A >= n_B` are tested with a two-sided exact binomial test of
    `n_A` successes in `n_A + n_B` trials at p = 1/2; the input abstains if the p-value
    exceeds `config.alpha`, else the top class is released.

    Args:
      apply_fn, params, xs, key, num_classes, placement, ids: as in `certify`.
      config: the statistics (`n` samples per input, `alpha` the test's level; `n0` unused).

    Returns:
      `Prediction` (labels, -1 = abstain; counts; p-values; `certified`).

    Guarantee:
      For each input, the probability of releasing a label other than `g(x)` is at most
      `alpha` (Cohen et al., Theorem 2).

    Warns:
      `rpjax.stats.SampleSizeWarning` if `n` can never pass the test; `RuntimeWarning` if
      `apply_fn` gave NaN / +inf logits, or logits that decide nothing (all -inf, or every
      class tied in every sample; those inputs abstain).
    """
    plan = _plan.resolve(config, num_classes=num_classes, placement=placement)
    _stats.check_sample_size(plan.n, plan.alpha, mode="predict")
    counts, bad = _prediction_counts("predict", apply_fn, params, xs, key, ids, plan)
    top, pvalue, ok = _decision.predict_statistics(counts, plan.alpha)
    ok = ok & ~bad
    label = np.where(ok, top, ABSTAIN).astype(np.int32)
    return Prediction(label=label, counts=counts, pvalue=pvalue, certified=ok)


def always_label(apply_fn: _smoothing.ApplyFn, params: Any, xs: jax.typing.ArrayLike,
                 key: jax.Array | int, *, num_classes: int, config: _plan.SmoothingConfig,
                 placement: _plan.Placement | None = None,
                 ids: jax.typing.ArrayLike | None = None) -> Prediction:
    """Always return a label: the Monte Carlo top class of `config.n` samples, with no test.

    This is the paper's "always return a label" mode (v1, section 7.2). It carries no
    certificate: `certified` is all False and `pvalue` is NaN. Report it apart from the
    certified modes. It abstains only on inputs where `apply_fn` gave invalid logits
    (NaN / +inf, all -inf, or every class tied in every sample).

    Args:
      apply_fn, params, xs, key, num_classes, placement, ids: as in `certify`.
      config: the statistics (`n` samples per input; `n0` and `alpha` unused).

    Returns:
      `Prediction` with the top class of the counts (ties: lowest class index).
    """
    plan = _plan.resolve(config, num_classes=num_classes, placement=placement)
    counts, bad = _prediction_counts("always_label", apply_fn, params, xs, key, ids, plan)
    label = np.where(bad, ABSTAIN, _decision.always_label_statistics(counts)).astype(np.int32)
    return Prediction(
        label=label, counts=counts, pvalue=np.full(label.shape, np.nan),
        certified=np.zeros(label.shape, bool),
    )


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


_MARGIN_FLOOR = 2.0 ** -12  # in units of sigma


def _tested_p_star(radius: float, margin: np.ndarray, sigma: float,
                   distribution: _noise.NoiseDistribution) -> np.ndarray:
    """`[B]` float64: the p_A each input's test is run at, `pa_for_radius(r + m)`, m its
    rounding margin rounded up to a power of two and to at least `2^-12 sigma` (0 stays 0),
    so that a certificate at the tested p_A holds at r after the rounding reduction, and a
    batch needs few tables (float32 inputs of moderate size all share the floor)."""
    margin = np.asarray(margin, np.float64)
    with np.errstate(divide="ignore"):
        up = np.exp2(np.ceil(np.log2(np.maximum(margin, 1e-300))))
    up = np.where(margin > 0, np.maximum(up, _MARGIN_FLOOR * sigma), 0.0)
    levels, where = np.unique(up, return_inverse=True)
    return np.array([pa_for_radius(radius + float(v), sigma, distribution)
                     for v in levels])[where.reshape(-1)]


def decision_rule(rule: _plan.DecideAt, k0: np.ndarray, *, n0: int, n_max: int, alpha: float,
                  sigma: float, distribution: _noise.NoiseDistribution = _noise.GAUSSIAN,
                  margin: np.ndarray | None = None,
                  ) -> tuple[_sequential.StopRule, np.ndarray, np.ndarray,
                             tuple[np.ndarray, np.ndarray]]:
    """The selection-informed sequential test `certify` runs with `DecideAt(r)`: for each
    input, the prior `rpjax._src.confseq.selection_prior(k0, n0)` of its selection count
    `k0`, restricted to `(p*, 1)` for the certificate (level alpha) and to `(0, p*)` for
    giving up (level `rule.futility`, default alpha), `p* = pa_for_radius(r + margin)`
    (`rpjax._src.confseq.beta_decision_table`). Each (p*, prior)'s tables are built once and
    kept on the device (`_device_tables`): a call only stacks the rows it needs.

    Args:
      margin: `[B]` the inputs' rounding radii (`docs/guarantee.md` 1b; None: 0), added to r
        (rounded up to a power of two, at least 2^-12 sigma) before p* is computed.

    Returns:
      `(StopRule with one row per distinct (p*, prior) (device arrays), [B] row of each
      input, [B] the p* each input is tested at, (accept, reject): [rows, n_max + 1] the
      tables on the host)`.
    """
    a, b = _confseq.selection_prior(k0, n0)
    margin = np.zeros(np.shape(k0)) if margin is None else margin
    p_star = _tested_p_star(rule.radius, margin, sigma, distribution)
    tests, rows = np.unique(np.stack([p_star, a, b], axis=1), axis=0, return_inverse=True)
    keys = tuple((float(p), float(pa), float(pb), alpha, rule.futility, n_max)
                 for p, pa, pb in tests)
    stop, host = _stacked_tables(keys)
    return stop, rows.reshape(-1).astype(np.int32), p_star, host


@functools.lru_cache(maxsize=32)
def _stacked_tables(keys: tuple) -> tuple[_sequential.StopRule, tuple[np.ndarray, np.ndarray]]:
    """The scheduler's rule for the tests `keys` (device arrays, rows padded to a power of
    two so that batches with another number of distinct tests reuse the compiled scheduler)
    and `(accept, reject)` on the host; built once per set of tests, the tables of new tests
    in threads (SciPy's special functions release the GIL)."""
    workers = min(len(keys), os.cpu_count() or 1, 8)
    if workers > 1:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda key: _device_tables(*key), keys))
    device = [_device_tables(*key) for key in keys]
    device += device[:1] * ((1 << (len(device) - 1).bit_length()) - len(device))
    lo = jnp.stack([accept for accept, _ in device])
    hi = jnp.stack([reject for _, reject in device])
    host = [_confseq.beta_decision_table(p, pa, pb, al, n, futility=fu)
            for p, pa, pb, al, fu, n in keys]
    host_lo = np.stack([accept for _, accept in host])
    host_hi = np.stack([reject for reject, _ in host])
    for table in (host_lo, host_hi):
        table.flags.writeable = False
    return (_sequential.StopRule(lo=lo, hi=hi, band_lo=jnp.full_like(lo, _sequential._NEVER),
                                 band_hi=jnp.full_like(lo, -1)), (host_lo, host_hi))


@functools.lru_cache(maxsize=256)
def _device_tables(p_star, a, b, alpha, futility, n_max) -> tuple[jax.Array, jax.Array]:
    """`(accept, reject)` of `beta_decision_table` as int32 device arrays, built once."""
    reject, accept = _confseq.beta_decision_table(p_star, a, b, alpha, n_max, futility=futility)
    return jnp.asarray(accept, jnp.int32), jnp.asarray(reject, jnp.int32)


def _decided(rule: _plan.DecideAt, top, n_top, used, rows, p_star, host_lo, host_hi, bad, *,
             counts, counts0, passes) -> Certificates:
    """`DecideAt`'s certificates from where each input stopped: certified at r where its
    count reached the certify table, not certified where it reached the futility table,
    undecided where it used all n samples without either (or had invalid samples)."""
    sure = (n_top >= host_hi[rows, used]) & ~bad
    gave_up = (n_top <= host_lo[rows, used]) & ~bad
    decision = np.where(sure, CERTIFIED, np.where(gave_up, NOT_CERTIFIED, UNDECIDED))
    return Certificates(
        label=np.where(sure, top, ABSTAIN).astype(np.int32),
        radius=np.where(sure, float(rule.radius), 0.0),
        pa_lower=np.where(sure, p_star, 0.0), counts=counts, n=used, selection_counts=counts0,
        pa_upper=np.where(gave_up, p_star, 1.0), decision=decision.astype(np.int8),
        forward_passes=int(passes))


def planned_sizes(rule: _plan.RadiusBudget, k0: np.ndarray, *, n0: int, n_max: int,
                  alpha: float, distribution: _noise.NoiseDistribution = _noise.GAUSSIAN,
                  ) -> np.ndarray:
    """`[B]` int64: the estimation samples `certify` gives each input with
    `RadiusBudget(price)`, from its top-class selection votes `k0`
    (`rpjax._src.confseq.planned_sample_sizes`, radius in units of sigma)."""
    unit_radius = (None if distribution is _noise.GAUSSIAN else
                   functools.partial(_unit_radius, distribution.radius_from_pa))
    return _confseq.planned_sample_sizes(k0, n0, n_max, alpha, rule.price,
                                         unit_radius=unit_radius)


@functools.lru_cache(maxsize=8)
def _planned_rule(n_max: int) -> _sequential.StopRule:
    """The scheduler's rule of the planned sample sizes, on the device, built once per n_max:
    row j stops every input at exactly `allocation_grid(n_max)[j]` samples."""
    grid = _confseq.allocation_grid(n_max)
    m = np.arange(n_max + 1, dtype=np.int32)
    at = m[None, :] == grid[:, None]
    return _sequential.StopRule(
        lo=jnp.full(at.shape, -1, jnp.int32), hi=jnp.asarray(np.broadcast_to(m + 1, at.shape)),
        band_lo=jnp.asarray(np.where(at, 0, _sequential._NEVER).astype(np.int32)),
        band_hi=jnp.asarray(np.where(at, m[None, :], -1).astype(np.int32)))


def _unit_radius(radius_from_pa, p):
    return radius_from_pa(p, 1.0)
