"""Keys and noise streams.

The noise added to sample `s` of the input with id `i` is a pure function of
`(key, i, s)`. Each input gets a threefry key pair `fold_in(key, i)`; the noise of sample `s`
is made from the threefry2x32 block cipher run in counter mode on the counters
`(w, s)`, `w = 0 .. ceil(d / 2) - 1` (two 32-bit words per counter for an input of `d`
values), then turned into noise by the distribution's transform. Nothing depends on how
samples are chunked, batched or spread over devices, which makes certificates reproducible to
the bit. Counter mode also keeps the compiled program small and fast: one threefry per two
noise values, with no per-sample key derivation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.random import threefry2x32_p

from rpjax import stats as _stats

_MIN_OPEN = np.nextafter(np.float32(-1.0), np.float32(0.0))
_SQRT2 = np.float32(np.sqrt(2.0))


class NoiseDistribution(NamedTuple):
    """A pluggable smoothing distribution: how to draw it and which certificate it gives.

    Attributes:
      name: short name written into reports.
      from_bits: `from_bits(bits)` turns uniform uint32 words into unit-scale float32 noise
        of the same shape; the kernel multiplies it by `sigma`.
      radius_from_pa: `radius_from_pa(pa_lower, sigma)` -> certified radius (float64 numpy).
      norm: the norm in which the radius is certified ("l2").
    """

    name: str
    from_bits: Callable[[jax.Array], jax.Array]
    radius_from_pa: Callable
    norm: str


def gaussian_from_bits(bits: jax.Array) -> jax.Array:
    """Standard normal float32 values from uniform uint32 words (one word per value).

    The transform of `jax.random.normal`: the top 23 bits give a uniform value on the open
    interval (-1, 1), mapped through `sqrt(2) * erfinv`.
    """
    one = jnp.uint32(0x3F800000)
    u = jax.lax.bitcast_convert_type((bits >> 9) | one, jnp.float32) - 1.0  # [0, 1)
    v = jnp.maximum(_MIN_OPEN, 2.0 * u - 1.0)
    return _SQRT2 * jax.lax.erf_inv(v)


GAUSSIAN = NoiseDistribution(
    name="gaussian", from_bits=gaussian_from_bits,
    radius_from_pa=_stats.certified_radius, norm="l2",
)
"""Isotropic Gaussian noise N(0, sigma^2 I); certifies l2 radius sigma * Phi^-1(pA_lower)
(Cohen, Rosenfeld and Kolter, 2019, Theorem 1)."""


def _key_pair(key: jax.Array) -> jax.Array:
    if str(jax.random.key_impl(key)) == "threefry2x32":
        return jax.random.key_data(key)
    return jax.random.bits(key, (2,), jnp.uint32)  # other PRNGs seed a threefry pair


@jax.jit
def example_keys(key: jax.Array, ids: jax.Array) -> jax.Array:
    """Per-example threefry key pairs derived from `fold_in(key, ids[i])`.

    Args:
      key: a typed PRNG key, shape `()` (any implementation).
      ids: `[B]` uint32 example ids.

    Returns:
      `[B, 2]` uint32 key pairs.
    """
    return jax.vmap(lambda i: _key_pair(jax.random.fold_in(key, i)))(ids)


def sample_noise(
    key_pair: jax.Array,
    sample_index: jax.Array,
    input_shape: Sequence[int],
    *,
    dtype: jnp.dtype = jnp.float32,
    distribution: NoiseDistribution = GAUSSIAN,
) -> jax.Array:
    """Unit-scale noise of the given samples of one input: `[m, *input_shape]`.

    Args:
      key_pair: `[2]` uint32, the input's key pair (see `example_keys`).
      sample_index: `[m]` uint32 sample indices `s`; each sample's noise depends only on
        `(key_pair, s)`.
      input_shape: the shape of one input.
      dtype: floating dtype of the result (the noise is made in float32).
      distribution: the smoothing distribution.

    Returns:
      noise with unit scale; multiply by `sigma` to get the smoothing noise.
    """
    size = math.prod(input_shape)
    words = -(-size // 2)
    w = jnp.arange(words, dtype=jnp.uint32)[None, :]
    s = jnp.asarray(sample_index, jnp.uint32)[:, None]
    hi, lo = threefry2x32_p.bind(key_pair[0], key_pair[1], jnp.broadcast_to(w, (s.shape[0],
                                 words)), jnp.broadcast_to(s, (s.shape[0], words)))
    bits = jnp.stack([hi, lo], axis=-1).reshape(s.shape[0], 2 * words)[:, :size]
    noise = distribution.from_bits(bits).astype(dtype)
    return noise.reshape(s.shape[0], *input_shape)
