"""Model implementation details that must not change the function."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rpjax.models import cnn


@pytest.mark.parametrize("size,channels", [(32, 1), (31, 3), (8, 4), (5, 2)])
def test_im2col_first_layer_equals_nnx_conv(size, channels):
    conv = nnx.Conv(channels, 8, (3, 3), strides=2, rngs=nnx.Rngs(0))
    conv.bias[...] = jax.random.normal(jax.random.key(1), conv.bias.shape)  # test the bias too
    x = jax.random.uniform(jax.random.key(2), (3, size, size, channels))
    want = conv(x)
    got = cnn._conv3x3_s2_im2col(x, conv.kernel[...], conv.bias[...])  # noqa: SLF001
    assert got.shape == want.shape
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_face_cnn_uses_it_only_for_few_input_channels(monkeypatch):
    model = cnn.FaceCNN(4, in_channels=3, image_size=16, rngs=nnx.Rngs(0))
    x = jnp.ones((2, 16, 16, 3)) * 0.3
    fast = model(x)
    monkeypatch.setattr(cnn, "_IM2COL_MAX_IN_CHANNELS", 0)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(fast), atol=1e-5)
