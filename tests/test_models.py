"""Model implementation details that must not change the function."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import rpjax
from rpjax._src.models import cnn, train
from rpjax.models import TabularMLP, TrainConfig, as_apply_fn, fit_classifier, optimize


@pytest.mark.slow
@pytest.mark.parametrize("size,channels", [(31, 3), (8, 32), (32, 1), (8, 4), (5, 2)])
def test_im2col_first_layer_equals_nnx_conv(size, channels):
    conv = nnx.Conv(channels, 8, (3, 3), strides=2, rngs=nnx.Rngs(0))
    conv.bias[...] = jax.random.normal(jax.random.key(1), conv.bias.shape)  # test the bias too
    x = jax.random.uniform(jax.random.key(2), (3, size, size, channels))
    want = conv(x)
    got = cnn._conv3x3_s2_im2col(x, conv.kernel[...], conv.bias[...])  # noqa: SLF001
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


@pytest.mark.slow
def test_face_cnn_im2col_layers_equal_nnx_conv(monkeypatch):
    model = cnn.FaceCNN(4, in_channels=3, channels=(16, 32, 8), image_size=16,
                        rngs=nnx.Rngs(0))
    x = jnp.ones((2, 16, 16, 3)) * 0.3
    fast = model(x)  # im2col for the 3- and 32-channel inputs, nnx.Conv for the 16-channel one
    monkeypatch.setattr(cnn, "_IM2COL_MAX_IN_CHANNELS", 0)
    monkeypatch.setattr(cnn, "_IM2COL_MIN_IN_CHANNELS", 10**6)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(fast), atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("make,shape", [
    (lambda: TabularMLP(11, 2, rngs=nnx.Rngs(0)), (11,)),
    (lambda: TabularMLP(5, 3, hidden=(), rngs=nnx.Rngs(0)), (5,)),
    (lambda: cnn.FaceCNN(4, in_channels=1, channels=(8, 16), image_size=16,
                         rngs=nnx.Rngs(0)), (16, 16, 1)),
])
def test_models_split_into_an_affine_first_layer_and_the_rest(make, shape):
    model = make()
    apply_fn, params = as_apply_fn(model)
    assert isinstance(apply_fn, rpjax.AffineFirst)
    x = jax.random.normal(jax.random.key(0), (6, *shape))
    np.testing.assert_allclose(np.asarray(apply_fn(params, x)), np.asarray(model(x)), atol=1e-5)
    xs = x[:3]
    rpjax._src.smoothing.check_affine(apply_fn, params, xs)  # raises if first is not affine
    plain = lambda p, x: apply_fn(p, x)  # noqa: E731 - same function, no split
    kw = dict(num_classes=4, config=rpjax.SmoothingConfig(sigma=0.5, n=400, common_noise=True))
    split = np.asarray(rpjax.sample_counts(apply_fn, params, xs, 0, **kw))
    ref = np.asarray(rpjax.sample_counts(plain, params, xs, 0, **kw))
    np.testing.assert_array_equal(split.sum(axis=1), 400)
    assert np.abs(split - ref).max() <= 2  # equal up to votes flipped by float rounding


def test_optimize_applies_each_steps_gradient_with_its_own_key_and_batch():
    key = jax.random.key(3)
    batches = jnp.arange(12.0).reshape(4, 3)  # [steps, B]
    seen_keys = []

    def grad_step(params, batch, k):
        seen_keys.append(k)  # traced once inside the scan
        loss = jax.random.uniform(k) + jnp.sum(batch)
        return loss, {"w": batch}  # the gradient is the batch itself

    params, losses = optimize({"w": jnp.zeros(3)}, grad_step, optax.sgd(0.5), key,
                              batches=batches)
    # plain SGD with gradient g_t = batch t: w = -0.5 * sum_t batch_t
    np.testing.assert_allclose(np.asarray(params["w"]), -0.5 * np.asarray(batches).sum(0))
    want = [float(jax.random.uniform(jax.random.fold_in(key, t)) + batches[t].sum())
            for t in range(4)]
    np.testing.assert_allclose(np.asarray(losses), want, rtol=1e-6)
    assert len(seen_keys) == 1  # one compiled scan, not a Python loop over steps


def test_optimize_without_batches_hands_each_step_its_index():
    def grad_step(params, t, k):
        del k
        return t.astype(jnp.float32), jax.tree.map(lambda p: jnp.ones_like(p) * t, params)

    params, losses = optimize(jnp.zeros(()), grad_step, optax.sgd(1.0), jax.random.key(0),
                              steps=5)
    np.testing.assert_array_equal(np.asarray(losses), [0, 1, 2, 3, 4])
    assert float(params) == -10.0
    with pytest.raises(ValueError, match="steps"):
        optimize(jnp.zeros(()), grad_step, optax.sgd(1.0), jax.random.key(0))
    with pytest.raises(ValueError, match="steps"):
        optimize(jnp.zeros(()), grad_step, optax.sgd(1.0), jax.random.key(0),
                 batches=jnp.zeros((2, 1)), steps=2)


@pytest.mark.slow
def test_fit_classifier_is_the_loop_with_a_cross_entropy_step():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    model = TabularMLP(3, 2, hidden=(8,), rngs=nnx.Rngs(0))
    config = TrainConfig(steps=30, batch_size=16, learning_rate=1e-2, noise_sigma=0.1)
    got = fit_classifier(model, x, y, 4, config)
    # the same run written against `optimize` directly
    key = jax.random.key(4)
    apply_fn, params = as_apply_fn(model)
    batches = train._batch_indices(jax.random.fold_in(key, 0), 64, 16, 30)  # noqa: SLF001

    xj, yj = jnp.asarray(x), jnp.asarray(y)

    def grad_step(p, idx, k):
        xb = xj[idx] + 0.1 * jax.random.normal(k, (16, 3), jnp.float32)
        return jax.value_and_grad(lambda q: optax.softmax_cross_entropy_with_integer_labels(
            apply_fn(q, xb), yj[idx]).mean())(p)

    params, losses = optimize(params, grad_step, optax.adamw(1e-2, weight_decay=0.0),
                              jax.random.fold_in(key, 1), batches=batches)
    np.testing.assert_allclose(got.losses, np.asarray(losses), rtol=1e-5)
    chex.assert_trees_all_close(got.params, params, rtol=1e-5, atol=1e-6)
    assert got.losses[-5:].mean() < got.losses[:5].mean()  # it learns
