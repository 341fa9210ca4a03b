"""rpjax.stats against independent references (statsmodels, scipy) and by simulation."""

import warnings

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportion_confint

from rpjax._src import stats


def _random_cases(seed, size=400):
    rng = np.random.default_rng(seed)
    n = rng.integers(1, 200_000, size=size)
    n[:20] = rng.integers(1, 20, size=20)
    k = rng.integers(0, n + 1)
    k[::7] = 0  # edge cases k = 0 and k = n are included on purpose
    k[3::7] = n[3::7]
    alpha = 10 ** rng.uniform(-6, -0.5, size=size)
    return k, n, alpha


def test_lower_agrees_with_statsmodels():
    k, n, alpha = _random_cases(0)
    ours = stats.clopper_pearson_lower(k, n, alpha)
    # statsmodels' two-sided 'beta' interval at level 2*alpha has one-sided lower tail alpha
    ref = np.array([proportion_confint(int(a), int(b), alpha=2 * c, method="beta")[0]
                    for a, b, c in zip(k, n, alpha, strict=True)])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)
    assert np.all(ours[k == 0] == 0.0)


def test_upper_agrees_with_statsmodels():
    k, n, alpha = _random_cases(1)
    ours = stats.clopper_pearson_upper(k, n, alpha)
    ref = np.array([proportion_confint(int(a), int(b), alpha=2 * c, method="beta")[1]
                    for a, b, c in zip(k, n, alpha, strict=True)])
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-10)


def test_all_agree_is_alpha_to_one_over_n():
    n = np.array([1, 10, 100, 1000, 10_000, 100_000])
    np.testing.assert_allclose(stats.clopper_pearson_lower(n, n, 1e-3), 1e-3 ** (1 / n),
                               rtol=1e-12)


@pytest.mark.parametrize("alpha", [1e-3, 0.05])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
@pytest.mark.parametrize("n", [10, 100, 1_000])
def test_lower_bound_covers_p(n, p, alpha):
    """P(lower > p) <= alpha, by simulation, with a 4-standard-error slack."""
    trials = 200_000
    k = np.random.default_rng(0).binomial(n, p, size=trials)
    miss = np.mean(stats.clopper_pearson_lower(k, n, alpha) > p)
    assert miss <= (alpha + 4 * np.sqrt(alpha * (1 - alpha) / trials))


@pytest.mark.parametrize("k,n", [(-1, 10), (11, 10), (1, 0), (0.5, 10)])
def test_bad_counts(k, n):
    with pytest.raises((ValueError, TypeError), match="k|n"):
        stats.clopper_pearson_lower(k, n, 0.01)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, float("nan")])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        stats.clopper_pearson_lower(5, 10, alpha)


def test_agrees_with_scipy_binomtest():
    rng = np.random.default_rng(2)
    n = rng.integers(1, 3000, size=300)
    k = rng.integers(0, n + 1)
    ours = stats.binomial_test_pvalue(k, n, 0.5)
    ref = [sps.binomtest(int(a), int(b), 0.5).pvalue for a, b in zip(k, n, strict=True)]
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-300)


def test_asymmetric_null():
    ours = stats.binomial_test_pvalue([3, 40, 77], [100, 100, 100], 0.3)
    ref = [sps.binomtest(k, 100, 0.3).pvalue for k in (3, 40, 77)]
    np.testing.assert_allclose(ours, ref, rtol=1e-12)


def test_radius_agrees_with_scipy():
    rng = np.random.default_rng(3)
    pa = np.concatenate([rng.uniform(0, 1, 500), 1 - 10 ** rng.uniform(-12, -1, 100)])
    for sigma in (0.1, 1.0, 3.0):
        ref = np.where(pa > 0.5, sigma * sps.norm.ppf(pa), 0.0)
        np.testing.assert_allclose(stats.certified_radius(pa, sigma), ref, rtol=1e-10,
                                   atol=1e-12)


def test_radius_from_counts_matches_reference_chain():
    k, n, alpha = _random_cases(4)
    lower = np.array([proportion_confint(int(a), int(b), alpha=2 * c, method="beta")[0]
                      for a, b, c in zip(k, n, alpha, strict=True)])
    ref = np.where(lower > 0.5, 0.7 * sps.norm.ppf(lower), 0.0)
    ours = stats.certified_radius(stats.clopper_pearson_lower(k, n, alpha), 0.7)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-10)


def test_max_radius_paper_values():
    """docs/paper.md: 1.50 sigma at n=100, 2.46 at 1e3, 3.20 at 1e4, 3.81 at 1e5, alpha 1e-3."""
    got = stats.max_radius(np.array([100, 1_000, 10_000, 100_000]), 1e-3, 1.0)
    np.testing.assert_allclose(got, [1.50, 2.46, 3.20, 3.81], atol=0.006)
    ref = sps.norm.ppf(1e-3 ** (1 / np.array([100, 1_000])))
    np.testing.assert_allclose(got[:2], ref, rtol=1e-10)
    assert round(abs(float(stats.max_radius(1000, 1e-3, 2.0)) - (2 * got[1])), 12) == 0


def test_max_radius_is_radius_of_unanimous_vote():
    for n in (12, 500, 77_777):
        pa = stats.clopper_pearson_lower(n, n, 0.01)
        got = float(stats.certified_radius(pa, 0.5))
        assert round(abs(got - float(stats.max_radius(n, 0.01, 0.5))), 9) == 0


def test_bad_sigma():
    with pytest.raises(ValueError, match="sigma"):
        stats.certified_radius(0.9, 0.0)


def test_min_samples_certify():
    n = stats.min_samples(1e-3)
    assert n == 10  # 0.001 ** (1/10) = 0.501 > 1/2; 0.001 ** (1/9) = 0.464
    assert stats.max_radius(n, 1e-3, 1.0) > 0
    assert float(stats.max_radius(n - 1, 1e-3, 1.0)) == 0.0
    m = stats.min_samples(1e-3, radius=2.46, sigma=1.0)
    assert float(stats.max_radius(m, 1e-3, 1.0)) >= 2.46
    assert float(stats.max_radius(m - 1, 1e-3, 1.0)) < 2.46


def test_min_samples_predict():
    n = stats.min_samples(1e-3, mode="predict")
    assert stats.binomial_test_pvalue(n, n) <= 1e-3
    assert stats.binomial_test_pvalue(n - 1, n - 1) > 1e-3


def test_min_samples_refuses_a_radius_for_predict_and_an_unknown_mode():
    with pytest.raises(ValueError, match="mode='certify' only"):
        stats.min_samples(1e-3, mode="predict", radius=0.5, sigma=0.25)
    with pytest.raises(ValueError, match="mode must be 'certify' or 'predict'"):
        stats.min_samples(1e-3, mode="always_label")


def test_warns_on_the_all_abstain_trap():
    with pytest.warns(stats.SampleSizeWarning, match="every input abstains"):
        assert not stats.check_sample_size(9, 1e-3)
    with pytest.warns(stats.SampleSizeWarning, match="largest certifiable radius"):
        assert not stats.check_sample_size(100, 1e-3, sigma=1.0, radius=2.0)
    with pytest.warns(stats.SampleSizeWarning, match="PREDICT"):
        assert not stats.check_sample_size(10, 1e-3, mode="predict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert stats.check_sample_size(1000, 1e-3, sigma=1.0, radius=2.0)
