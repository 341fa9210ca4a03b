"""Keys and noise streams.

The noise added to sample `s` of the input with id `i` is a pure function of
`(key, i, s)`. Each input gets a threefry key pair `fold_in(key, i)`; the noise of sample `s`
is made from the threefry2x32 block cipher run in counter mode: value `j` (row-major) of
sample `s` of an input of `d` values takes the first output word for the 64-bit counter
`s * d + j`, turned into noise by the distribution's transform. Nothing depends on how
samples are chunked, batched or spread over devices, which makes certificates reproducible to
the bit. Counter mode also keeps the compiled program small and fast: consecutive samples have
consecutive counters, so a chunk's noise is one flat, vectorizable run of threefry (unrolled,
see `threefry2x32`) with no per-sample key derivation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rpjax._src import stats as _stats

_MIN_OPEN = np.nextafter(np.float32(-1.0), np.float32(0.0))
_SQRT2 = np.float32(np.sqrt(2.0))
MAX_ABS_UNIT_NOISE = 6.0
"""A bound on |value| of the unit-scale noise (`gaussian_from_bits` reaches 5.42 at most): the
noise added to an input never exceeds `MAX_ABS_UNIT_NOISE * sigma` in magnitude."""


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


def _rotl(x: jax.Array, d: int) -> jax.Array:
    return (x << jnp.uint32(d)) | (x >> jnp.uint32(32 - d))


def threefry2x32(k0: jax.Array, k1: jax.Array, x0: jax.Array,
                 x1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The threefry2x32 block cipher (20 rounds), bit-identical to JAX's `threefry2x32_p`.

    Written out with its rounds unrolled so that XLA fuses the whole cipher, and the noise
    transform after it, into one elementwise loop: JAX lowers its primitive on CPU with rolled
    loops, which materializes every round's words in memory (about 4x slower here). A test
    checks the equality with the primitive.

    Args:
      k0, k1: uint32 key words (broadcastable to the counters); x0, x1: uint32 counters.

    Returns:
      The two uint32 output words, shaped like the counters.
    """
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for i in range(5):
        for r in rotations[i % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotl(x1, r)
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x0, x1


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


def _mul64(a: jax.Array, b: int) -> tuple[jax.Array, jax.Array]:
    """(low, high) uint32 words of the 64-bit product of uint32 `a` and a Python int b < 2^32."""
    a0, a1 = a & jnp.uint32(0xFFFF), a >> jnp.uint32(16)
    b0, b1 = jnp.uint32(b & 0xFFFF), jnp.uint32(b >> 16)
    p00, p01, p10, p11 = a0 * b0, a0 * b1, a1 * b0, a1 * b1  # each < 2^32, exact
    mid_lo = (p01 & jnp.uint32(0xFFFF)) + (p10 & jnp.uint32(0xFFFF))  # < 2^17
    mid_hi = (p01 >> jnp.uint32(16)) + (p10 >> jnp.uint32(16))
    shifted = mid_lo << jnp.uint32(16)
    lo = p00 + shifted
    carry = (lo < p00).astype(jnp.uint32)
    hi = p11 + mid_hi + (mid_lo >> jnp.uint32(16)) + carry
    return lo, hi


def _add64(lo: jax.Array, hi: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    out = lo + x
    return out, hi + (out < lo).astype(jnp.uint32)


def _noise_from_counters(key_pair, lo, hi, dtype, distribution):
    word, _ = threefry2x32(key_pair[0], key_pair[1], lo, hi)
    return distribution.from_bits(word).astype(dtype)


def sample_noise(
    key_pair: jax.Array,
    sample_index: jax.Array,
    input_shape: Sequence[int],
    *,
    dtype: jnp.dtype = jnp.float32,
    distribution: NoiseDistribution = GAUSSIAN,
) -> jax.Array:
    """Unit-scale noise of the given samples of one input: `[m, *input_shape]`.

    Value `j` (row-major) of sample `s` comes from the first output word of threefry2x32
    under the input's key pair on the 64-bit counter `s * d + j` (d values per input).

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
    s = jnp.asarray(sample_index, jnp.uint32)
    row_lo, row_hi = _mul64(s, size)
    lo, hi = _add64(row_lo[:, None], row_hi[:, None], jnp.arange(size, dtype=jnp.uint32))
    noise = _noise_from_counters(key_pair, lo, hi, dtype, distribution)
    return noise.reshape(s.shape[0], *input_shape)


def sample_noise_flat(
    key_pair: jax.Array,
    first: jax.Array | int,
    count: int,
    size: int,
    *,
    dtype: jnp.dtype = jnp.float32,
    distribution: NoiseDistribution = GAUSSIAN,
) -> jax.Array:
    """`[count * size]`: the noise of samples `first .. first + count - 1` of an input of
    `size` values, flattened (row-major); `sample_noise_range` reshaped.

    The counters of consecutive samples are consecutive, so the values are one flat run of
    `count * size` counters from `first * size`: a single vectorizable loop with no per-row
    index arithmetic.
    """
    if count * size >= 2**32:
        raise ValueError(f"count * input size must be < 2^32, got {count} * {size}.")
    base_lo, base_hi = _mul64(jnp.asarray(first).astype(jnp.uint32), size)
    lo, hi = _add64(base_lo, base_hi, jnp.arange(count * size, dtype=jnp.uint32))
    return _noise_from_counters(key_pair, lo, hi, dtype, distribution)


def sample_noise_range(
    key_pair: jax.Array,
    first: jax.Array | int,
    count: int,
    input_shape: Sequence[int],
    *,
    dtype: jnp.dtype = jnp.float32,
    distribution: NoiseDistribution = GAUSSIAN,
) -> jax.Array:
    """`sample_noise` of the contiguous samples `first .. first + count - 1`, bit-identical:
    `[count, *input_shape]` (see `sample_noise_flat`).

    Args:
      key_pair: `[2]` uint32 key pair; first: the first sample index (traced uint32/int32);
      count: number of samples (static); input_shape, dtype, distribution: as `sample_noise`.
    """
    flat = sample_noise_flat(key_pair, first, count, math.prod(input_shape), dtype=dtype,
                             distribution=distribution)
    return flat.reshape(count, *input_shape)


def noise_samples(
    key: jax.Array,
    ids: jax.typing.ArrayLike,
    samples: jax.typing.ArrayLike,
    input_shape: Sequence[int],
    *,
    dtype: jnp.dtype = jnp.float32,
    distribution: NoiseDistribution = GAUSSIAN,
) -> jax.Array:
    """The engine's unit-scale noise: `[len(ids), len(samples), *input_shape]`.

    Entry `[i, s]` is the noise `rpjax.sample_counts` (and `certify`, `predict`) adds, divided
    by sigma, to sample `samples[s]` of the input with id `ids[i]` under `key`. Traceable
    (e.g. for a white-box attack that differentiates through the smoothed model).

    Args:
      key: a typed PRNG key, shape `()`.
      ids: `[B]` example ids (uint32 range); samples: `[m]` sample indices (uint32 range).
      input_shape: the shape of one input.
      dtype: floating dtype of the result (the noise is made in float32).
      distribution: the smoothing distribution.
    """
    pairs = example_keys(key, jnp.asarray(ids, jnp.uint32))
    samples = jnp.asarray(samples, jnp.uint32)
    return jax.vmap(lambda pair: sample_noise(pair, samples, tuple(input_shape), dtype=dtype,
                                              distribution=distribution))(pairs)
