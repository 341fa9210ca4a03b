"""Model implementation details that must not change the function."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import rpjax
from rpjax._src.models import cnn
from rpjax.models import TabularMLP, as_apply_fn


@pytest.mark.parametrize("size,channels", [
    (31, 3), (8, 32),
    *(pytest.param(s, c, marks=pytest.mark.slow) for s, c in [(32, 1), (8, 4), (5, 2)]),
])
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


@pytest.mark.parametrize("make,shape", [
    (lambda: TabularMLP(11, 2, rngs=nnx.Rngs(0)), (11,)),
    (lambda: TabularMLP(5, 3, hidden=(), rngs=nnx.Rngs(0)), (5,)),
    pytest.param(lambda: cnn.FaceCNN(4, in_channels=1, channels=(8, 16), image_size=16,
                                     rngs=nnx.Rngs(0)), (16, 16, 1), marks=pytest.mark.slow),
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
    kw = dict(sigma=0.5, n=400, num_classes=4, common_noise=True)
    split = np.asarray(rpjax.sample_counts(apply_fn, params, xs, 0, **kw))
    ref = np.asarray(rpjax.sample_counts(plain, params, xs, 0, **kw))
    np.testing.assert_array_equal(split.sum(axis=1), 400)
    assert np.abs(split - ref).max() <= 2  # equal up to votes flipped by float rounding
