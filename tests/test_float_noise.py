"""Noise in the model's floating-point dtype (issue 26, item 1): sigma below the dtype's
resolution is refused, and the certified radius is reduced by a bound on how far rounding
moves the noisy inputs, so that certificates of a linear model are correct at sigma just
above the refusal threshold in float32, float16 and bfloat16 (and are not without the
reduction)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as sps

import rpjax
from rpjax._src import smoothing
from rpjax._src import validate as _validate


def _step(center):
    """Two-class linear model on the first coordinate: class 1 iff x_0 > center (computed
    in the inputs' dtype). Its smoothed classifier in exact arithmetic has label 1 iff
    x_0 > center and certified radius |x_0 - center|."""

    def apply_fn(params, x):
        s = x[:, 0] - jnp.asarray(center, x.dtype)
        return jnp.stack([-s, s], axis=-1)

    return apply_fn


@pytest.mark.parametrize(("dtype", "x", "sigma"), [
    (jnp.float32, 1.0, 1e-9), (jnp.float16, 1000.0, 0.01), (jnp.bfloat16, 1.0, 1e-3),
    (jnp.float32, 1.0, 1e-30)])
def test_noise_below_the_dtype_resolution_is_refused(dtype, x, sigma):
    """The cases of the issue: each was certified from counts [[1000, 0]] at an input whose
    exact p_A is 1/2; now a ValueError naming sigma, the dtype and the smallest sigma."""
    xs = jnp.full((2, 1), x, dtype)
    name = jnp.dtype(dtype).name
    smallest = _validate.RESOLUTION_ULPS * _validate.spacing(x, dtype)
    with pytest.raises(ValueError, match=rf"sigma={sigma!r} is below the resolution of dtype "
                                         rf"{name}.*smallest usable sigma is {smallest:.3g}"):
        rpjax.certify(_step(x), None, xs, 0, num_classes=2,
                      config=rpjax.SmoothingConfig(sigma=sigma, n=1000))
    # at the smallest usable sigma it runs
    rpjax.certify(_step(x), None, xs, 0, num_classes=2,
                  config=rpjax.SmoothingConfig(sigma=smallest, n=100))


def test_a_coarser_model_dtype_counts():
    """float32 inputs into a bfloat16 model: the bfloat16 grid decides."""
    def apply_fn(w, x):
        s = (x[:, :1].astype(jnp.bfloat16) - 1) * w
        return jnp.concatenate([-s, s], axis=-1).astype(jnp.float32)

    w = jnp.ones((1, 1), jnp.bfloat16)
    with pytest.raises(ValueError, match="dtype bfloat16"):
        rpjax.certify(apply_fn, w, jnp.ones((2, 1)), 0, num_classes=2,
                      config=rpjax.SmoothingConfig(sigma=1e-3, n=100))


@pytest.mark.parametrize(("dtype", "center"), [
    (jnp.float32, 1.0), (jnp.float16, 1000.0), (jnp.bfloat16, 1.0)])
def test_certificates_just_above_the_threshold_are_sound(dtype, center):
    """2,000 inputs around the boundary at sigma = 1.05 x the smallest usable one: wrong
    certificates (label, or a radius beyond the exact one) at most at rate alpha. Without
    the rounding reduction (Cohen's radius as is) the same check fails."""
    b, alpha = 2000, 0.01
    sigma = 1.05 * _validate.RESOLUTION_ULPS * _validate.spacing(center * 1.1, dtype)
    xs = jnp.asarray((center + np.linspace(-2.5, 2.5, b) * sigma)[:, None], dtype)
    x0 = np.asarray(xs.astype(jnp.float32), np.float64)[:, 0]
    cert = rpjax.certify(_step(center), None, xs, 0, num_classes=2,
                         config=rpjax.SmoothingConfig(sigma=float(sigma), n=2000, alpha=alpha))
    label, exact = (x0 > center).astype(int), np.abs(x0 - center)

    def wrong_rate_ok(radius, released):
        wrong = released & ((cert.label != label) | (radius > exact))
        return sps.binomtest(int(wrong.sum()), b, alpha, alternative="greater").pvalue > 1e-3

    released = cert.label != rpjax.ABSTAIN
    assert released.mean() > 0.85
    assert wrong_rate_ok(cert.radius, released)
    # the negative control: Cohen's radius of the same counts, without the reduction
    top = cert.selection_counts.argmax(axis=1)
    cohen = rpjax.stats.certified_radius(cert.pa_lower, float(sigma))
    assert not wrong_rate_ok(cohen, cert.pa_lower > 0.5)
    assert np.all(top[released] == cert.label[released])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16, jnp.bfloat16])
def test_the_rounding_radius_bounds_the_rounding_of_the_sampled_points(dtype):
    """Against a float64 reference: the points `x + sigma * eps` the engine evaluates
    (`fl(x + fl(sigma * eps))` in the dtype) lie within `rounding_radius` of the exact
    float64 ones, for 2,000 noise draws of each of 8 inputs of mixed magnitudes; and the bound
    equals its float64 formula, sqrt(sum_j u_j^2) with u_j the dtype's spacing at
    |x_j| + 6 sigma."""
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.normal(size=(8, 5)) * np.array([0.1, 1, 3, 30, 100]), dtype)
    sigma = 0.5
    bound = smoothing.rounding_radius(xs, sigma, (jnp.dtype(dtype),))
    # float32 unit noise as the sampler gives it (|eps| <= 5.42 < MAX_ABS_UNIT_NOISE)
    eps = np.clip(rng.standard_normal((2000, 5)), -5.42, 5.42).astype(np.float32)
    x64 = np.asarray(xs.astype(jnp.float32), np.float64)
    for i in range(8):
        noise = jnp.asarray(sigma * eps, jnp.float32).astype(dtype)  # fl(sigma * eps)
        sampled = np.asarray((xs[i] + noise).astype(jnp.float32), np.float64)
        exact = x64[i] + sigma * eps.astype(np.float64)
        moved = np.sqrt(((sampled - exact) ** 2).sum(axis=1))
        assert moved.max() <= bound[i], (i, moved.max(), bound[i])
    info = jnp.finfo(dtype)
    reach = np.abs(x64) + 6.0 * sigma
    u = 2.0 ** (np.floor(np.log2(reach)) - info.nmant)  # the spacing at that magnitude
    np.testing.assert_allclose(bound, np.sqrt((u ** 2).sum(axis=1)), rtol=1e-5)
