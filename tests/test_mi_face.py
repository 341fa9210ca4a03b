"""MI-Face: template recovery, the per-target stopping rule, smoothing, latent mode."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rpjax._src.attacks import mi_face
from rpjax._src.attacks.mi_face import MIFaceConfig, mi_face_latent, mi_face_pixels

_K, _SHAPE = 5, (8, 8, 1)
_D = int(np.prod(_SHAPE))
_TEMPLATES = np.random.default_rng(0).normal(size=(_K, _D)).astype(np.float32)
_W = jnp.asarray((_TEMPLATES - _TEMPLATES.mean(axis=0)).T)  # [D, K]: distinct class patterns
_ALL = np.arange(_K)


def linear_apply(w, x):
    """A linear softmax model on 8x8x1 images; mid-gray (0.5) is the uniform prediction."""
    return 0.5 * (x.reshape(x.shape[0], -1) - 0.5) @ w


def constant_apply(bias, x):
    """Logits that do not depend on x: the cost can never improve."""
    return jnp.zeros((x.shape[0], bias.shape[0])) + bias


def gray(num, value=0.5):
    return np.full((num, *_SHAPE), value, np.float32)


def base_prob(images, targets):
    probs = jax.nn.softmax(linear_apply(_W, jnp.asarray(images)), axis=-1)
    return np.asarray(probs)[np.arange(len(targets)), targets]


def cosines(images):
    """`[T, K]` cosine similarity between (x - 0.5) and each class pattern W[:, c]."""
    v = images.reshape(len(images), -1) - 0.5
    w = np.asarray(_W) / np.linalg.norm(_W, axis=0)
    return (v @ w) / np.linalg.norm(v, axis=1, keepdims=True)


def reference(target, x0, config):
    """The documented algorithm for one target, as a plain Python loop (undefended)."""
    def cost(x):
        return 1.0 - jax.nn.softmax(linear_apply(_W, x[None]))[0, target]

    value_and_grad = jax.jit(jax.value_and_grad(cost))
    x = jnp.asarray(x0)
    c, g = value_and_grad(x)
    best, best_x, ref, stale = c, x, c, 0
    if c <= config.min_cost:
        return 0, mi_face.STOP_MIN_COST, best_x, best
    for i in range(1, config.max_iters + 1):
        x = jnp.clip(x - config.lr * g, 0.0, 1.0)
        c, g = value_and_grad(x)
        if c < ref - config.gamma:
            ref, stale = c, 0
        else:
            stale += 1
        if c < best:
            best, best_x = c, x
        if c <= config.min_cost:
            return i, mi_face.STOP_MIN_COST, best_x, best
        if stale >= config.beta:
            return i, mi_face.STOP_PATIENCE, best_x, best
    return config.max_iters, mi_face.STOP_MAX_ITERS, best_x, best


@pytest.mark.parametrize("optimizer", [pytest.param("sgd", marks=pytest.mark.slow), "adam"])
def test_recovers_each_class_template(optimizer):
    lr = 0.1 if optimizer == "sgd" else 0.05
    config = MIFaceConfig(max_iters=30, lr=lr, optimizer=optimizer)
    res = mi_face_pixels(linear_apply, _W, _ALL, 0, config, init=gray(_K))
    np.testing.assert_array_equal(cosines(res.images).argmax(axis=1), _ALL)
    assert np.all(base_prob(res.images, _ALL) > 0.9)
    assert np.all((res.images >= 0.0) & (res.images <= 1.0))
    assert res.latents is None
    np.testing.assert_allclose(res.cost, 1.0 - base_prob(res.images, _ALL), atol=1e-5)
    np.testing.assert_allclose(res.cost, res.best_cost, atol=1e-6)


def test_sigma_zero_is_the_undefended_attack():
    config = MIFaceConfig(max_iters=10)
    a = mi_face_pixels(linear_apply, _W, _ALL, 0, config, init=gray(_K))
    b = mi_face_pixels(linear_apply, _W, _ALL, 1,
                       dataclasses.replace(config, sigma=0.0, m=8), init=gray(_K))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(b.forward_passes, np.full(_K, 11))  # m is unused


@pytest.mark.slow
def test_tv_regularizer_smooths_the_reconstruction():
    def tv(x):
        return np.abs(np.diff(x, axis=1)).mean() + np.abs(np.diff(x, axis=2)).mean()

    config = MIFaceConfig(max_iters=30)
    plain = mi_face_pixels(linear_apply, _W, _ALL, 0, config, init=gray(_K))
    smooth = mi_face_pixels(linear_apply, _W, _ALL, 0,
                            dataclasses.replace(config, reg=2.0), init=gray(_K))
    assert tv(smooth.images) < (0.8 * tv(plain.images))


@pytest.mark.slow
def test_max_iters_caps_targets_that_never_converge():
    config = MIFaceConfig(max_iters=7, gamma=0.0, min_cost=-1.0)
    res = mi_face_pixels(linear_apply, _W, _ALL, 0, config, init=gray(_K))
    np.testing.assert_array_equal(res.iterations, np.full(_K, 7))
    np.testing.assert_array_equal(res.stop_reason, np.full(_K, mi_face.STOP_MAX_ITERS))
    np.testing.assert_array_equal(res.forward_passes, np.full(_K, 8))
    defended = mi_face_pixels(linear_apply, _W, _ALL, 0,
                              dataclasses.replace(config, sigma=0.1, m=4), init=gray(_K))
    np.testing.assert_array_equal(defended.iterations, np.full(_K, 7))
    np.testing.assert_array_equal(defended.forward_passes, np.full(_K, 4 * 8))


def test_max_iters_zero_returns_the_start():
    res = mi_face_pixels(linear_apply, _W, _ALL, 0, MIFaceConfig(max_iters=0),
                         init=gray(_K, 0.3))
    np.testing.assert_array_equal(res.iterations, np.zeros(_K))
    np.testing.assert_array_equal(res.images, gray(_K, 0.3))


@pytest.mark.parametrize("sigma", [None, 0.5])
@pytest.mark.parametrize("beta", [1, 4])
def test_constant_cost_stops_after_exactly_beta_iterations(beta, sigma):
    bias = jnp.arange(_K, dtype=jnp.float32)
    config = MIFaceConfig(max_iters=100, beta=beta, sigma=sigma, m=4)
    init = np.random.default_rng(1).uniform(size=(3, *_SHAPE)).astype(np.float32)
    res = mi_face_pixels(constant_apply, bias, [0, 2, 4], 0, config, init=init)
    np.testing.assert_array_equal(res.iterations, np.full(3, beta))
    np.testing.assert_array_equal(res.stop_reason, np.full(3, mi_face.STOP_PATIENCE))
    np.testing.assert_array_equal(res.images, init)  # zero gradient, first iterate kept
    expect = 1.0 - np.asarray(jax.nn.softmax(bias))[[0, 2, 4]]
    np.testing.assert_allclose(res.best_cost, expect, rtol=1e-5)


def test_gamma_above_any_possible_improvement_stops_after_beta():
    config = MIFaceConfig(max_iters=100, beta=6, gamma=1.0)  # costs lie in [0, 1]
    res = mi_face_pixels(linear_apply, _W, _ALL, 0, config, init=gray(_K))
    np.testing.assert_array_equal(res.iterations, np.full(_K, 6))
    assert np.all(res.best_cost < 0.8 - 0.1)  # the cost did go down meanwhile


@pytest.mark.slow
@pytest.mark.parametrize("kw", [
    dict(gamma=1e-3, beta=5, min_cost=-1.0),
    dict(gamma=0.0, beta=3, min_cost=0.02),
    dict(gamma=2e-4, beta=10, min_cost=0.0),
])
def test_matches_a_reference_loop_per_target(kw):
    config = MIFaceConfig(max_iters=300, lr=0.1, **kw)
    init = gray(_K)
    init[1] = 0.5 + 0.2 * np.sign(np.asarray(_W[:, 1])).reshape(_SHAPE)
    res = mi_face_pixels(linear_apply, _W, _ALL, 0, config, init=init)
    for t in _ALL:
        iters, reason, best_x, best = reference(t, init[t], config)
        assert res.iterations[t] == iters
        assert res.stop_reason[t] == reason
        np.testing.assert_allclose(res.images[t], best_x, atol=1e-5)
        np.testing.assert_allclose(res.best_cost[t], best, rtol=1e-4, atol=1e-6)
    assert len(set(res.iterations.tolist())) > 1  # targets stop at own times


def test_min_cost_stops_a_target_that_starts_below_it():
    bias = jnp.array([8.0, 0.0, 0.0, 0.0, 0.0])
    apply_fn = lambda b, x: linear_apply(_W, x) + b  # noqa: E731
    config = MIFaceConfig(max_iters=20, min_cost=0.01)
    res = mi_face_pixels(apply_fn, bias, [0, 1], 0, config, init=gray(2))
    assert res.iterations[0] == 0
    assert res.stop_reason[0] == mi_face.STOP_MIN_COST
    assert res.forward_passes[0] == 1
    np.testing.assert_array_equal(res.images[0], gray(1)[0])
    assert res.iterations[1] == 20


@pytest.mark.slow
def test_finished_targets_are_frozen_while_others_continue():
    init = gray(2)
    init[0] = 0.5 + 0.2 * np.sign(np.asarray(_W[:, 0])).reshape(_SHAPE)  # near its optimum
    short, long = (
        mi_face_pixels(linear_apply, _W, [0, 1], 0,
                       MIFaceConfig(max_iters=n, min_cost=0.01, sigma=0.01, m=4), init=init)
        for n in (20, 50))
    assert short.iterations[0] < 20
    assert short.stop_reason[0] == mi_face.STOP_MIN_COST
    np.testing.assert_array_equal(long.iterations, [short.iterations[0], 50])
    np.testing.assert_array_equal(long.images[0], short.images[0])
    np.testing.assert_array_equal(long.best_cost[0], short.best_cost[0])
    np.testing.assert_array_equal(long.forward_passes[0], short.forward_passes[0])
    assert np.abs(long.images[1] - short.images[1]).max() > 1e-3


@pytest.mark.slow
def test_large_sigma_weakens_recovery_on_the_same_budget():
    config = MIFaceConfig(max_iters=30, gamma=0.0, m=16)
    plain = mi_face_pixels(linear_apply, _W, _ALL, 0, config, init=gray(_K))
    smooth = mi_face_pixels(linear_apply, _W, _ALL, 0,
                            dataclasses.replace(config, sigma=4.0), init=gray(_K))
    p_plain, p_smooth = base_prob(plain.images, _ALL), base_prob(smooth.images, _ALL)
    assert np.all(p_smooth < p_plain)
    assert p_smooth.mean() < (p_plain.mean() - 0.3)
    np.testing.assert_array_equal(smooth.forward_passes, np.full(_K, 16 * 31))


@pytest.mark.slow
def test_tiny_sigma_matches_the_undefended_attack():
    config = MIFaceConfig(max_iters=40, m=4)
    plain = mi_face_pixels(linear_apply, _W, _ALL, 0, config, init=gray(_K))
    tiny = mi_face_pixels(linear_apply, _W, _ALL, 0,
                          dataclasses.replace(config, sigma=1e-6), init=gray(_K))
    np.testing.assert_allclose(tiny.images, plain.images, atol=1e-4)
    np.testing.assert_allclose(tiny.cost, plain.cost, atol=1e-4)
    np.testing.assert_array_equal(tiny.iterations, plain.iterations)


@pytest.mark.slow
def test_same_key_same_result_and_no_retrace():
    traces = []

    def counted_apply(w, x):
        traces.append(x.shape)
        return linear_apply(w, x)

    config = MIFaceConfig(max_iters=15, sigma=0.5, m=8)
    a = mi_face_pixels(counted_apply, _W, [0, 1, 2], 3, config, init=gray(3))
    first = len(traces)
    assert first > 0
    b = mi_face_pixels(counted_apply, _W, [0, 1, 2], jax.random.key(3), config,
                       init=gray(3))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    mi_face_pixels(counted_apply, _W, [3, 4, 0], 3, config, init=gray(3))
    mi_face_pixels(counted_apply, _W, [1, 1, 2], 3,
                   dataclasses.replace(config, sigma=2.0, lr=0.3, max_iters=9), init=gray(3))
    assert len(traces) == first  # traced numbers and targets reuse the program
    c = mi_face_pixels(counted_apply, _W, [0, 1, 2], 4, config, init=gray(3))
    assert np.abs(c.images - a.images).max() > 0.0


@pytest.mark.slow
def test_latent_attack_finds_each_class_within_the_clip():
    basis = jnp.asarray(np.asarray(_W).T / np.linalg.norm(_W, axis=0)[:, None])  # [K, D]

    def decode(z):
        return (0.5 + 0.3 * z @ basis).reshape(z.shape[0], *_SHAPE)

    config = MIFaceConfig(max_iters=60, lr=1.0)
    z_init = np.zeros((_K, _K), np.float32)
    z_init[0, 0] = -3.0  # outside the clip: projected before the first step
    res = mi_face_latent(linear_apply, _W, _ALL, 0, config, decode=decode, z_init=z_init)
    assert res.latents.shape == (_K, _K)
    assert np.all(np.abs(res.latents) <= 1.5)
    assert np.any(np.isclose(np.abs(res.latents), 1.5))  # the clip is active
    np.testing.assert_allclose(res.images, decode(jnp.asarray(res.latents)), atol=1e-6)
    logits = np.asarray(linear_apply(_W, jnp.asarray(res.images)))
    np.testing.assert_array_equal(logits.argmax(axis=1), _ALL)
    np.testing.assert_array_equal(res.latents.argmax(axis=1), _ALL)

    tight = mi_face_latent(linear_apply, _W, _ALL, 0,
                           dataclasses.replace(config, latent_clip=0.2),
                           decode=decode, z_init=z_init)
    assert np.all(np.abs(tight.latents) <= 0.2 + 1e-7)


@pytest.mark.parametrize("field,value", [
    ("max_iters", -1), ("lr", 0.0), ("lr", float("nan")), ("gamma", -1e-3), ("beta", 0),
    ("m", 0), ("sigma", -0.5), ("latent_clip", 0.0), ("reg", -1.0), ("min_cost", np.inf),
    ("regularizer", "l1"), ("optimizer", "rmsprop"),
])
def test_bad_config_value_raises_value_error_naming_it(field, value):
    with pytest.raises(ValueError, match=field):
        MIFaceConfig(**{field: value})


@pytest.mark.parametrize("field,value", [("max_iters", 2.5), ("beta", True), ("lr", "0.1"),
                                         ("return_best", 1)])
def test_bad_config_type_raises_type_error_naming_it(field, value):
    with pytest.raises(TypeError, match=field):
        MIFaceConfig(**{field: value})


def test_bad_arguments_name_the_parameter():
    config = MIFaceConfig(max_iters=1)
    cases = [
        (ValueError, "targets", dict(targets=[0, _K], init=gray(2))),
        (ValueError, "targets", dict(targets=[], init=gray(0))),
        (TypeError, "targets", dict(targets=[0.5], init=gray(1))),
        (ValueError, "init", dict(targets=[0, 1], init=gray(3))),
        (ValueError, "init", dict(targets=[0], init=gray(1, 255.0))),
        (TypeError, "key", dict(targets=[0], init=gray(1), key="seed")),
    ]
    for error, name, kw in cases:
        kw = {"key": 0, **kw}
        with pytest.raises(error, match=name):
            mi_face_pixels(linear_apply, _W, kw["targets"], kw["key"], config,
                           init=kw["init"])
    with pytest.raises(ValueError, match="z_init"):
        mi_face_latent(linear_apply, _W, [0], 0, config, decode=lambda z: z,
                       z_init=np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="decode"):
        mi_face_latent(linear_apply, _W, [0], 0, config, decode=None,
                       z_init=np.zeros((1, 3), np.float32))


@pytest.mark.slow
def test_noise_samples_is_the_noise_sample_counts_adds():
    """MI-Face's smoothing noise is `rpjax.noise_samples`: the engine's own stream. With a
    model that votes class 1 iff value 3 of the noisy input is positive, the engine's
    counts at x = 0 are the number of positive noise values there, sample by sample."""
    import rpjax

    def sign_apply(params, x):
        v = x.reshape(x.shape[0], -1)[:, 3]
        return jnp.stack([-v, v], axis=-1) * params

    xs = np.zeros((4, 2, 3, 1), np.float32)
    ids = np.array([0, 7, 2**31, 5], np.uint32)
    key = jax.random.key(11)
    counts = rpjax.sample_counts(sign_apply, 1.0, xs, key, num_classes=2, ids=ids,
                                 config=rpjax.SmoothingConfig(sigma=0.3, n=257))
    eps = rpjax.noise_samples(key, ids, np.arange(257), (2, 3, 1))
    assert eps.shape == (4, 257, 2, 3, 1)
    positive = np.sum(np.asarray(eps).reshape(4, 257, -1)[:, :, 3] > 0, axis=1)
    np.testing.assert_array_equal(np.asarray(counts)[:, 1], positive)
    assert np.all((positive > 50) & (positive < 207))  # not a degenerate stream
