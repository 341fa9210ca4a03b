"""Keys and noise streams.

The noise that perturbs sample `s` of the input with id `i` is a pure function of
`(key, i, s)`: samples are grouped in fixed *noise blocks* of `noise_block` consecutive sample
indices, and block `j = s // noise_block` of input `i` is drawn from the key
`fold_in(fold_in(key, i), j)`. Nothing depends on how samples are chunked, batched or spread
over devices, which is what makes certificates reproducible to the bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp

from rpjax import stats as _stats

DEFAULT_NOISE_BLOCK = 8
"""Samples per noise block. Part of the definition of the random stream: changing it changes
the noise (and so the counts), never their distribution."""


class NoiseFn(Protocol):
    """Draws `[noise_block, *input_shape]` standard-scale noise from one key."""

    def __call__(self, key: jax.Array, shape: Sequence[int], dtype: jnp.dtype) -> jax.Array: ...


class NoiseDistribution(NamedTuple):
    """A pluggable smoothing distribution: how to draw it and which certificate it gives.

    Attributes:
      name: short name written into reports.
      sample: `sample(key, shape, dtype)` draws unit-scale noise; it is multiplied by `sigma`.
      radius_from_pa: `radius_from_pa(pa_lower, sigma)` -> certified radius (float64 numpy).
      norm: the norm in which the radius is certified ("l2").
    """

    name: str
    sample: NoiseFn
    radius_from_pa: object
    norm: str


def _gaussian_sample(key: jax.Array, shape: Sequence[int], dtype: jnp.dtype) -> jax.Array:
    return jax.random.normal(key, tuple(shape), dtype)


GAUSSIAN = NoiseDistribution(
    name="gaussian", sample=_gaussian_sample, radius_from_pa=_stats.certified_radius, norm="l2"
)
"""Isotropic Gaussian noise N(0, sigma^2 I); certifies l2 radius sigma * Phi^-1(pA_lower)
(Cohen, Rosenfeld and Kolter, 2019, Theorem 1)."""


def example_keys(key: jax.Array, ids: jax.Array) -> jax.Array:
    """Per-example keys `fold_in(key, ids[i])`.

    Args:
      key: a typed PRNG key, shape `()`.
      ids: `[B]` uint32 example ids.

    Returns:
      `[B]` typed keys.
    """
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(ids)


def block_noise(
    example_key: jax.Array,
    block_index: jax.Array,
    input_shape: Sequence[int],
    *,
    noise_block: int = DEFAULT_NOISE_BLOCK,
    dtype: jnp.dtype = jnp.float32,
    distribution: NoiseDistribution = GAUSSIAN,
) -> jax.Array:
    """Unit-scale noise of one noise block: `[noise_block, *input_shape]`.

    Args:
      example_key: the key of one example (see `example_keys`), shape `()`.
      block_index: the block number `j` (uint32 scalar); covers sample indices
        `[j * noise_block, (j + 1) * noise_block)`.
      input_shape: the shape of one input.
      noise_block: samples per block.
      dtype: floating dtype of the noise.
      distribution: the smoothing distribution.

    Returns:
      noise with unit scale; multiply by `sigma` to get the smoothing noise.
    """
    k = jax.random.fold_in(example_key, block_index)
    return distribution.sample(k, (noise_block, *input_shape), dtype)
