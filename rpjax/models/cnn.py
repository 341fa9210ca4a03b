"""A small face-identity CNN (the target model of the model-inversion experiment)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


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

    def features(self, x: jax.Array) -> jax.Array:
        """Penultimate features `[b, dense]`."""
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return jax.nn.relu(self.fc(x.reshape(x.shape[0], -1)))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.out(self.features(jnp.asarray(x)))
