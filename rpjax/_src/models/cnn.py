"""A small face-identity CNN (the target model of the model-inversion experiment)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

_IM2COL_MAX_IN_CHANNELS = 4  # im2col below this many input channels (a first layer) ...
_IM2COL_MIN_IN_CHANNELS = 32  # ... and from this many (patch rows long enough for a fast dot)


def _conv3x3_s2_im2col(x: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """A 3x3, stride-2, SAME convolution computed as one matmul over image patches.

    Same function as `nnx.Conv(..., (3, 3), strides=2)` (XLA's SAME padding: the smaller half
    before); on a CPU it is about twice as fast for a first layer with 1-3 input channels,
    where XLA's direct convolution vectorizes poorly.
    """
    n, h, w, c = x.shape
    oh, ow = -(-h // 2), -(-w // 2)
    ph, pw = max((oh - 1) * 2 + 3 - h, 0), max((ow - 1) * 2 + 3 - w, 0)
    xp = jnp.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    cols = [xp[:, i : i + 2 * oh - 1 : 2, j : j + 2 * ow - 1 : 2, :]
            for i in range(3) for j in range(3)]
    patches = jnp.concatenate(cols, axis=-1).reshape(n * oh * ow, 9 * c)
    out = jnp.dot(patches, kernel.reshape(9 * c, -1).astype(x.dtype),
                  preferred_element_type=jnp.float32) + bias
    return out.astype(x.dtype).reshape(n, oh, ow, -1)


class FaceCNN(nnx.Module):
    """Strided-convolution classifier for small grayscale images.

    Args:
      num_classes: number of output logits.
      in_channels: channels of the input images.
      channels: output channels of the 3x3, stride-2 convolutions.
      dense: width of the dense layer before the logits.
      image_size: height (= width) of the input images, in pixels.
      rngs: NNX random streams.

    Call: `[b, H, W, C]` float (pixels in [0, 1]) -> `[b, num_classes]` logits.
    """

    def __init__(self, num_classes: int, *, in_channels: int = 1,
                 channels: Sequence[int] = (16, 32, 64), dense: int = 128,
                 image_size: int = 64, rngs: nnx.Rngs):
        chans = [in_channels, *channels]
        self.convs = nnx.List([
            nnx.Conv(a, b, (3, 3), strides=2, rngs=rngs)
            for a, b in zip(chans[:-1], chans[1:], strict=True)
        ])
        side = image_size
        for _ in channels:
            side = -(-side // 2)
        self.fc = nnx.Linear(side * side * chans[-1], dense, rngs=rngs)
        self.out = nnx.Linear(dense, num_classes, rngs=rngs)

    @staticmethod
    def _conv(conv: nnx.Conv, x: jax.Array) -> jax.Array:
        c = conv.in_features
        if c <= _IM2COL_MAX_IN_CHANNELS or c >= _IM2COL_MIN_IN_CHANNELS:
            return _conv3x3_s2_im2col(x, conv.kernel[...], conv.bias[...])
        return conv(x)

    def first_affine(self, x: jax.Array) -> jax.Array:
        """The first convolution without its activation: `[b, H, W, C]` -> `[b, H/2, W/2, c1]`."""
        return self._conv(self.convs[0], jnp.asarray(x))

    def features_after_first(self, h: jax.Array) -> jax.Array:
        """Penultimate features `[b, dense]` from `first_affine`'s output."""
        x = jax.nn.relu(h)
        for conv in self.convs[1:]:
            x = jax.nn.relu(self._conv(conv, x))
        return jax.nn.relu(self.fc(x.reshape(x.shape[0], -1)))

    def features(self, x: jax.Array) -> jax.Array:
        """Penultimate features `[b, dense]`."""
        return self.features_after_first(self.first_affine(x))

    def after_first(self, h: jax.Array) -> jax.Array:
        """The rest of the network: `first_affine`'s output -> `[b, num_classes]` logits."""
        return self.out(self.features_after_first(h))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.after_first(self.first_affine(x))
