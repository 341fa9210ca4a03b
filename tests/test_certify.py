"""CERTIFY / PREDICT / always-label: soundness on analytic ground truth and semantics."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as sps

import rpjax

from _models import linear_apply, linear_truth, plan, points_at_distances, random_linear

_D = 5
_W, _B = random_linear(_D, seed=5)


def _points_at_distances(dist, seed):
    return points_at_distances((_W, _B), dist, seed)


def _truth(xs):
    return linear_truth((_W, _B), xs)


# Soundness: over many certifications, wrong certificates occur at most at rate alpha.
_SIGMA, _ALPHA, _N, _COUNT = 0.5, 0.05, 400, 2_400


def _certify():
    rng = np.random.default_rng(11)
    # distances where the true p_A ranges from ~0.6 to ~0.999: hard and easy cases
    dist = rng.uniform(0.1, 1.5, _COUNT) * rng.choice([-1, 1], _COUNT)
    xs = _points_at_distances(dist * _SIGMA, seed=12)
    cert = rpjax.certify(linear_apply, (_W, _B), xs, 0, num_classes=2,
                         config=rpjax.SmoothingConfig(sigma=_SIGMA, n0=50, n=_N, alpha=_ALPHA))
    return xs, cert


def _error_rate_ok(wrong):
    # one-sided binomial test of H0: error rate <= alpha
    p = sps.binomtest(int(wrong.sum()), wrong.size, _ALPHA, alternative="greater").pvalue
    return p > 1e-3, p


def test_wrong_certificates_within_alpha():
    xs, cert = _certify()
    label, dist = _truth(xs)
    released = cert.label != rpjax.ABSTAIN
    wrong = released & ((cert.label != label) | (cert.radius > dist * (1 + 1e-6)))
    ok, p = _error_rate_ok(wrong)
    assert ok, f"{wrong.sum()} wrong of {wrong.size} (p={p:.2e})"
    assert released.mean() > 0.9  # the test is not passed by abstaining


@pytest.mark.slow
def test_the_check_has_power():
    """Negative control: radii from the point estimate (no confidence bound) fail it."""
    xs, cert = _certify()
    label, dist = _truth(xs)
    top = cert.selection_counts.argmax(axis=1)
    p_hat = np.clip(cert.counts[np.arange(len(top)), top] / _N, 0, 1 - 1e-9)
    naive = rpjax.stats.certified_radius(p_hat, _SIGMA)
    wrong = (p_hat > 0.5) & ((top != label) | (naive > dist * (1 + 1e-6)))
    assert not _error_rate_ok(wrong)[0]


@pytest.mark.slow
def test_radii_approach_the_truth_as_n_grows():
    dist = np.full(16, 0.3)
    xs = _points_at_distances(dist, seed=3)
    gaps = []
    for n in (100, 1_000, 10_000, 100_000):
        cert = rpjax.certify(linear_apply, (_W, _B), xs, n, num_classes=2,
                             config=rpjax.SmoothingConfig(sigma=0.5, n=n, alpha=1e-3))
        gaps.append(float(np.mean(0.3 - cert.radius)))
    assert all(g >= 0 for g in gaps), gaps
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 0.02


def test_certificates_fields():
    xs = _points_at_distances(np.array([2.0, -2.0, 0.0]), seed=0)
    cert = rpjax.certify(linear_apply, (_W, _B), xs, 1, num_classes=2,
                         config=rpjax.SmoothingConfig(sigma=0.5, n=1000, alpha=1e-3))
    label, _ = _truth(xs)
    np.testing.assert_array_equal(cert.label[:2], label[:2])
    assert cert.label[2] == rpjax.ABSTAIN  # on the boundary: p_A = 1/2
    assert cert.radius[2] == 0.0
    np.testing.assert_array_equal(cert.n, 1000)
    np.testing.assert_array_equal(cert.counts.sum(axis=1), 1000)
    np.testing.assert_array_equal(cert.selection_counts.sum(axis=1), 100)
    assert cert.radius.dtype == np.float64
    assert cert.pa_lower.dtype == np.float64
    # Cohen's radius less the bound on the floating-point rounding of the noisy inputs
    # (docs/guarantee.md, section 1b): about 1e-6 here
    from rpjax._src import smoothing

    rounding = smoothing.rounding_radius(jnp.asarray(xs), 0.5, (jnp.dtype(jnp.float32),))
    assert np.all(rounding > 0) and np.all(rounding < 1e-5)
    expect = rpjax.stats.certified_radius(cert.pa_lower, 0.5) - rounding
    np.testing.assert_allclose(cert.radius[:2], expect[:2], rtol=1e-12)


def test_selection_and_estimation_use_independent_noise():
    xs = _points_at_distances(np.array([0.01]), seed=0)
    cert = rpjax.certify(linear_apply, (_W, _B), xs, 1, num_classes=2,
                         config=rpjax.SmoothingConfig(sigma=0.5, n0=1000, n=1000, alpha=1e-3))
    assert not np.array_equal(cert.counts, cert.selection_counts)


def test_predict_and_always_label():
    xs = _points_at_distances(np.array([1.0, -1.0, 0.0]), seed=1)
    label, _ = _truth(xs)
    pred = rpjax.predict(linear_apply, (_W, _B), xs, 2, num_classes=2,
                         config=rpjax.SmoothingConfig(sigma=0.5, n=1000, alpha=1e-3))
    assert isinstance(pred, rpjax.Prediction)
    np.testing.assert_array_equal(pred.label[:2], label[:2])
    assert pred.label[2] == rpjax.ABSTAIN
    np.testing.assert_array_equal(pred.certified, [True, True, False])
    n_a, n_b = pred.counts.max(axis=1), pred.counts.min(axis=1)
    ref = [sps.binomtest(int(a), int(a + b), 0.5).pvalue for a, b in zip(n_a, n_b,
                                                                        strict=True)]
    np.testing.assert_allclose(pred.pvalue, ref, rtol=1e-10)
    cfg = rpjax.SmoothingConfig(sigma=0.5, n=1000, alpha=1e-3)
    via_config = rpjax.predict(linear_apply, (_W, _B), xs, 2, config=cfg, num_classes=2)
    for field in ("label", "counts", "pvalue", "certified"):
        np.testing.assert_array_equal(getattr(via_config, field), getattr(pred, field))
    always = rpjax.always_label(linear_apply, (_W, _B), xs, 2, num_classes=2,
                                config=rpjax.SmoothingConfig(sigma=0.5, n=1000))
    assert rpjax.ABSTAIN not in always.label.tolist()
    assert not always.certified.any()
    assert np.isnan(always.pvalue).all()
    np.testing.assert_array_equal(always.counts, pred.counts)  # same noise stream


@pytest.mark.slow
def test_predict_abstention_controls_error():
    """PREDICT's wrong-label rate is at most alpha, even right at the boundary."""
    xs = _points_at_distances(np.full(600, 0.02), seed=2)  # p_A just above 1/2
    label, _ = _truth(xs)
    pred = rpjax.predict(linear_apply, (_W, _B), xs, 9, num_classes=2,
                         config=rpjax.SmoothingConfig(sigma=0.5, n=200, alpha=0.05)).label
    wrong = (pred != rpjax.ABSTAIN) & (pred != label)
    p = sps.binomtest(int(wrong.sum()), wrong.size, 0.05, alternative="greater").pvalue
    assert p > 1e-3


@pytest.mark.slow
def test_too_small_n_warns():
    xs = _points_at_distances(np.array([3.0]), seed=0)
    with pytest.warns(rpjax.stats.SampleSizeWarning):
        cert = rpjax.certify(linear_apply, (_W, _B), xs, 0, num_classes=2,
                             config=rpjax.SmoothingConfig(sigma=0.5, n=9, alpha=1e-3))
    assert cert.label[0] == rpjax.ABSTAIN
    with pytest.warns(rpjax.stats.SampleSizeWarning):
        rpjax.predict(linear_apply, (_W, _B), xs, 0, num_classes=2,
                      config=rpjax.SmoothingConfig(sigma=0.5, n=5, alpha=1e-3))


def test_smoothing_config_round_trips():
    """A config rebuilt from its dict gives the same certificates."""
    cfg = rpjax.SmoothingConfig(sigma=0.5, n0=50, n=500, alpha=0.01)
    xs = _points_at_distances(np.array([1.0, 0.1, -0.4]), seed=0)
    again = rpjax.SmoothingConfig(**{**cfg.to_dict(), "distribution": rpjax.GAUSSIAN})
    assert again == cfg
    cert = rpjax.certify(linear_apply, (_W, _B), xs, 0, num_classes=2, config=again)
    assert cert.n[0] == 500
    via_config = rpjax.certify(linear_apply, (_W, _B), xs, 0, num_classes=2, config=cfg)
    for a, b in zip(cert, via_config, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="alpha"):
        rpjax.SmoothingConfig(sigma=0.5, alpha=1.5)


def test_the_statistics_have_one_way_in():
    """The old keyword settings are gone: config= is required and the keywords are refused."""
    cfg = rpjax.SmoothingConfig(sigma=0.5, n=500)
    xs = _points_at_distances(np.array([1.0]), seed=0)
    for fn in (rpjax.certify, rpjax.predict, rpjax.always_label, rpjax.sample_counts):
        with pytest.raises(TypeError, match="unexpected keyword argument 'sigma'"):
            fn(linear_apply, (_W, _B), xs, 0, num_classes=2, config=cfg, sigma=0.5)
        with pytest.raises(TypeError, match="config"):
            fn(linear_apply, (_W, _B), xs, 0, num_classes=2)


def test_common_noise_means_the_same_everywhere():
    """common_noise on predict / always_label: every input gets the noise of id 0."""
    xs = _points_at_distances(np.array([0.05, 0.05, -0.3]), seed=4)
    kw = dict(sigma=0.5, n=300, num_classes=2)
    common = rpjax.always_label(linear_apply, (_W, _B), xs, 3, **plan(common_noise=True, **kw))
    for i in range(3):
        alone = rpjax.always_label(linear_apply, (_W, _B), xs[i:i + 1], 3, **plan(**kw))
        np.testing.assert_array_equal(common.counts[i], alone.counts[0])
    pred = rpjax.predict(linear_apply, (_W, _B), xs, 3,
                         **plan(common_noise=True, alpha=1e-3, **kw))
    np.testing.assert_array_equal(pred.counts, common.counts)


def test_gaussian_distribution_gives_the_certificate_radius():
    xs = _points_at_distances(np.array([1.0, -1.0]), seed=0)
    cert = rpjax.certify(
        linear_apply, (_W, _B), xs, 1, num_classes=2,
        config=rpjax.SmoothingConfig(sigma=0.5, n=1000, alpha=1e-3, distribution=rpjax.GAUSSIAN))
    # Cohen's radius, less the bound on the rounding of the noisy inputs (about 1e-6 here)
    np.testing.assert_allclose(cert.radius, rpjax.GAUSSIAN.radius_from_pa(cert.pa_lower, 0.5),
                               rtol=0, atol=1e-5)
    assert np.all(cert.radius < rpjax.GAUSSIAN.radius_from_pa(cert.pa_lower, 0.5))
    assert rpjax.GAUSSIAN.norm == "l2"
