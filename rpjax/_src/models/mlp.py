"""A small tabular MLP (the base model of the attribute-privacy experiment)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx


class TabularMLP(nnx.Module):
    """ReLU MLP over a flat feature vector.

    Args:
      in_features: number of input features (e.g. 11 for the insurance data).
      num_classes: number of output logits.
      hidden: widths of the hidden layers.
      rngs: NNX random streams for initialization.

    Call: `[b, in_features]` float -> `[b, num_classes]` logits.
    """

    def __init__(self, in_features: int, num_classes: int, *, hidden: Sequence[int] = (32, 32),
                 rngs: nnx.Rngs):
        widths = [in_features, *hidden]
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        )
        self.out = nnx.Linear(widths[-1], num_classes, rngs=rngs)

    @property
    def first_layer(self) -> nnx.Linear:
        """The layer whose kernel rows correspond to input features."""
        return self.hidden[0] if len(self.hidden) else self.out

    def first_affine(self, x: jax.Array) -> jax.Array:
        """The first dense layer without its activation: `[b, in]` -> `[b, width]`."""
        return self.first_layer(x)

    def after_first(self, h: jax.Array) -> jax.Array:
        """The rest of the network: `first_affine`'s output -> `[b, num_classes]` logits."""
        if not len(self.hidden):
            return h
        x = jax.nn.relu(h)
        for layer in self.hidden[1:]:
            x = jax.nn.relu(layer(x))
        return self.out(x)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.after_first(self.first_affine(x))
