"""The leakage bound of a Monte Carlo release (`rpjax._src.privacy.leakage`).

Reference: a linear base model f(x) = 1[x_0 > 0], whose smoothed class-1 probability at
distance r from the boundary is exactly Phi(r / sigma). The Lipschitz bound on
Phi^-1(p_1) is attained along the normal, so the exact supremum of the TV over x' within
delta is the maximum over p1' in [Phi((r - delta) / sigma), Phi((r + delta) / sigma)],
computed here with scipy independently of the bound's own code: the answer distributions from
their definitions (`rpjax._src.attacks.adaptive`: the binomial test's p-value, Clopper-Pearson's
beta quantile), multinomial enumeration for k answers.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import rpjax
from rpjax._src.attacks.adaptive import _certified_counts, answer_probabilities
from rpjax._src.privacy import leakage

SIGMA = 0.5
SETTINGS = dict(n=100, n0=10, alpha=1e-3)


def _linear(params, x):
    return jnp.stack([-x[:, 0], x[:, 0]], axis=-1) * params


def _independent_probabilities(mode, p1):
    """`[P, O]` answer distributions from the definitions (scipy), not from `leakage`."""
    z = sps.norm.ppf(np.asarray(p1, np.float64))
    if mode != "certify_radius":
        return answer_probabilities(mode, z, **SETTINGS)
    n, n0 = SETTINGS["n"], SETTINGS["n0"]
    ok = np.nonzero(_certified_counts(n, SETTINGS["alpha"]))[0]  # certified counts c
    p = np.asarray(p1, np.float64)[:, None]
    sel1 = sps.binom.sf(n0 // 2, n0, p)  # selection picks class 1 (ties: class 0)
    one = sel1 * sps.binom.pmf(ok[None], n, p)  # (1, c): class-1 count c certified
    zero = (1 - sel1) * sps.binom.pmf(ok[None], n, 1 - p)  # (0, c)
    return np.concatenate([1 - one.sum(1, keepdims=True) - zero.sum(1, keepdims=True),
                           zero, one], axis=1)


def _exact_tv(mode, p, q, k):
    """TV between k fresh answers at p1 = p and at p1 = q, by enumeration (scipy)."""
    a, b = _independent_probabilities(mode, [p, q])
    if k == 1:
        return 0.5 * np.abs(a - b).sum()
    if a.size == 2:
        j = np.arange(k + 1)
        return 0.5 * np.abs(sps.binom.pmf(j, k, a[1]) - sps.binom.pmf(j, k, b[1])).sum()
    if a.size == 3:  # every outcome (i, j, k - i - j), all at once
        x = np.array([[i, j, k - i - j] for i in range(k + 1) for j in range(k + 1 - i)])
        return 0.5 * np.abs(sps.multinomial.pmf(x, k, a) - sps.multinomial.pmf(x, k, b)).sum()
    assert k == 2
    return 0.5 * np.abs(np.outer(a, a) - np.outer(b, b)).sum()


def _exact_sup(mode, r, delta, k):
    z, d = r / SIGMA, delta / SIGMA
    p = sps.norm.cdf(z)
    return max(_exact_tv(mode, p, q, k) for q in sps.norm.cdf(np.linspace(z - d, z + d, 41)))


# The answer distribution the bound assumes is the one the engine produces.
@pytest.mark.parametrize("r", [pytest.param(0.05, marks=pytest.mark.slow), 0.2, 0.4])
def test_engine_matches_outcome_probabilities(r):
    reps = 3000
    xs = np.zeros((reps, 1), np.float32) + r
    p1 = sps.norm.cdf(r / SIGMA)
    runs = {
        "predict": rpjax.predict(
            _linear, 1.0, xs, 7, num_classes=2,
            config=rpjax.SmoothingConfig(sigma=SIGMA, n=100, alpha=1e-3)).label,
        "always_label": rpjax.always_label(_linear, 1.0, xs, 7, num_classes=2,
                                           config=rpjax.SmoothingConfig(sigma=SIGMA, n=100)).label,
        "certify": rpjax.certify(
            _linear, 1.0, xs, 7, num_classes=2,
            config=rpjax.SmoothingConfig(sigma=SIGMA, n0=10, n=100, alpha=1e-3)).label,
    }
    for mode, labels in runs.items():
        probs, outcomes = leakage.outcome_probabilities(mode, [p1], **SETTINGS)
        observed = np.array([np.sum(labels == o) for o in outcomes])
        expected = probs[0] * reps
        keep = expected > 5  # chi-square on the outcomes with enough mass
        assert observed[~keep].sum() <= 10, (mode, observed, expected)
        if keep.sum() >= 2:
            stat = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
            pval = sps.chi2.sf(stat, keep.sum() - 1)
            assert pval > 1e-4, (mode, r, observed, expected)


@pytest.mark.parametrize("k", [1, 5, 20])
@pytest.mark.parametrize("delta", [0.02, 0.1, 0.3])
@pytest.mark.parametrize("r", [0.05, 0.2, 0.5])
@pytest.mark.parametrize("mode", ["predict", "always_label", "certify"])
def test_bound_covers_exact_advantage(mode, r, delta, k):
    """Sound, and tight: ratio bound / exact <= 1.01 for one answer, <= 2.5 for k."""
    exact = _exact_sup(mode, r, delta, k)
    p = float(sps.norm.cdf(r / SIGMA))
    bound = leakage.advantage_bound(mode, sigma=SIGMA, delta=delta, k=k,
                                    p1_interval=(p, p), **SETTINGS).advantage
    assert bound >= (exact - 1e-12)
    if exact > 0.01:
        assert (bound / exact) <= (1.01 if k == 1 else 2.5)


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("delta", [0.02, 0.1, 0.3])
@pytest.mark.parametrize("r", [0.05, 0.3, 1.0])
def test_certify_radius_bound_covers_exact(r, delta, k):
    exact = _exact_sup("certify_radius", r, delta, k)
    p = float(sps.norm.cdf(r / SIGMA))
    bound = leakage.advantage_bound("certify_radius", sigma=SIGMA, delta=delta, k=k,
                                    p1_interval=(p, p), **SETTINGS).advantage
    assert bound >= (exact - 1e-12)
    if exact > 0.01 and r >= 0.3:  # near the boundary (selection a coin flip) it is loose
        assert (bound / exact) <= 1.2


def test_the_papers_alpha_over_two_fails_and_the_bound_holds():
    """x at 1.0 and x' at 0.1 from the boundary, inside x's certified ball (radius
    0.958 at n = 1e4): one PREDICT answer (n = 100) tells them apart with advantage 0.96."""
    p, q = sps.norm.cdf(1.0 / SIGMA), sps.norm.cdf(0.1 / SIGMA)
    exact = _exact_tv("predict", p, q, 1)
    assert abs(exact - 0.96) <= 0.005
    assert exact > (1e-3 / 2 * 100)
    bound = leakage.advantage_bound("predict", sigma=SIGMA, delta=0.9, p1_interval=(p, p),
                                    **SETTINGS).advantage
    assert bound >= (exact - 1e-12)


def test_unknown_p_covers_every_input_and_grows_with_k_and_delta():
    """With nothing known of p1, the bound covers the exact TV at every r."""
    for mode in leakage.MODES:
        prev = 0.0
        for k in (1, 2):
            b = leakage.advantage_bound(mode, sigma=SIGMA, delta=0.05, k=k, **SETTINGS)
            assert b.advantage >= prev
            prev = b.advantage
            for r in (-0.4, 0.0, 0.1, 0.25, 0.6):
                assert b.advantage >= (_exact_sup(mode, r, 0.05, k) - 1e-12)
        small = leakage.advantage_bound(mode, sigma=1.0, delta=0.01, **SETTINGS).advantage
        big = leakage.advantage_bound(mode, sigma=1.0, delta=0.1, **SETTINGS).advantage
        assert small <= big
        assert leakage.advantage_bound(mode, sigma=1.0, delta=0.0,
                                       **SETTINGS).advantage == 0.0


def test_interval_from_counts_covers_with_its_failure_probability():
    """Bound from a (1 - beta) interval >= the exact TV in >= 1 - beta of the draws."""
    rng = np.random.default_rng(0)
    beta, trials, r, delta = 0.2, 300, 0.15, 0.05
    p = float(sps.norm.cdf(r / SIGMA))
    exact = _exact_sup("always_label", r, delta, 1)
    counts = rng.binomial(1000, p, size=trials)
    ok = 0
    for c in counts:
        iv = leakage.p1_interval_from_counts(int(c), 1000, beta)
        b = leakage.advantage_bound("always_label", sigma=SIGMA, delta=delta, n=100,
                                    p1_interval=iv, failure_probability=beta)
        assert b.failure_probability == beta
        ok += b.advantage >= exact
    slack = 3 * np.sqrt(beta * (1 - beta) / trials)
    assert (ok / trials) >= (1 - beta - slack)


def test_composed_advantage():
    assert round(abs(leakage.composed_advantage(0.1, None, 3) - (1 - 0.9**3)), 7) == 0
    assert leakage.composed_advantage(0.1, 0.999, 3) <= (1 - 0.9**3)
    assert leakage.composed_advantage(0.5, None, 0) == 0.0


def test_binomial_tv_against_enumeration():
    for m, p, q in itertools.product([1, 7, 50], [0.0, 0.1, 0.5], [0.05, 0.5, 1.0]):
        j = np.arange(m + 1)
        want = 0.5 * np.abs(sps.binom.pmf(j, m, p) - sps.binom.pmf(j, m, q)).sum()
        assert round(abs(float(leakage.binomial_tv(m, p, q)) - want), 10) == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        leakage.advantage_bound("nope", sigma=1.0, delta=0.1, n=10)
    with pytest.raises(ValueError, match="delta"):
        leakage.advantage_bound("always_label", sigma=1.0, delta=-0.1, n=10)
    with pytest.raises(ValueError, match="p1_interval"):
        leakage.advantage_bound("always_label", sigma=1.0, delta=0.1, n=10,
                                p1_interval=(0.8, 0.2))
    with pytest.raises(TypeError, match="alpha"):
        leakage.advantage_bound("predict", sigma=1.0, delta=0.1, n=10)
    with pytest.raises(TypeError, match="n0"):
        leakage.advantage_bound("certify", sigma=1.0, delta=0.1, n=10, alpha=0.01)
