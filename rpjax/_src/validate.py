"""Argument checks for the public boundary.

Every check raises `TypeError` (wrong kind of value) or `ValueError` (right kind, bad value)
with a message that names the parameter and shows the offending value.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import numpy as np


def integer(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Returns `value` as a Python int; rejects bools, floats and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer, got {name}={value!r} ({type(value).__name__}).")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value}.")
    return value


def real(name: str, value: Any) -> float:
    """Returns `value` as a finite Python float; rejects bools and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number, got {name}={value!r} ({type(value).__name__}).")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {name}={value!r}.")
    return value


def positive(name: str, value: Any) -> float:
    """Returns `value` as a float after checking it is finite and > 0."""
    value = real(name, value)
    if not value > 0:
        raise ValueError(f"{name} must be finite and > 0, got {name}={value!r}.")
    return value


def open_unit_interval(name: str, value: Any) -> float:
    """Returns `value` as a float after checking 0 < value < 1."""
    value = real(name, value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie in the open interval (0, 1), got {name}={value!r}.")
    return value


def inputs(name: str, value: Any) -> jax.Array:
    """Checks a floating batch `[B, *input_shape]` with B >= 1 and finite entries.

    The finiteness check runs where the data lives (on device for a `jax.Array`: one scalar
    comes back); the offending batch indices are computed only on the error path.
    """
    return inputs_and_max_abs(name, value)[0]


def inputs_and_max_abs(name: str, value: Any) -> tuple[jax.Array, float]:
    """`inputs`, also returning `max |value|` (a float, finite), from the same reduction."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be an array of shape [B, *input_shape], got {value!r}.")
    try:
        arr = np.asarray(value) if not isinstance(value, jax.Array) else value
    except Exception as err:  # noqa: BLE001 - reported with the parameter's name
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}: {err}") from err
    if not np.issubdtype(arr.dtype, np.floating) and arr.dtype != jax.numpy.bfloat16:
        raise TypeError(
            f"{name} must have a floating dtype (inputs are perturbed by Gaussian noise), "
            f"got dtype {arr.dtype}; cast it, e.g. {name}.astype(np.float32)."
        )
    if arr.ndim < 1:
        raise ValueError(f"{name} must have a leading batch axis [B, *input_shape], got a scalar.")
    if arr.shape[0] == 0:
        raise ValueError(
            f"{name} is an empty batch (shape {tuple(arr.shape)}); pass at least one input.")
    arr = jax.numpy.asarray(arr)
    max_abs = float(jax.numpy.max(jax.numpy.abs(arr)))  # NaN if any NaN: one scalar back
    if not math.isfinite(max_abs):
        finite = np.isfinite(np.asarray(arr, dtype=np.float32))  # error path only
        bad = np.argwhere(~finite.reshape(arr.shape[0], -1).all(axis=1)).ravel()
        raise ValueError(
            f"{name} contains non-finite values (NaN or inf) in the inputs at batch indices "
            f"{bad[:10].tolist()}{' ...' if bad.size > 10 else ''}."
        )
    return arr, max_abs


RESOLUTION_ULPS = 8.0
"""The smallest usable sigma, in units of the grid spacing (ulp) of the dtype at the inputs'
largest magnitude: noise of 8 ulp moves a coordinate of that magnitude off its grid point with
probability P(|eps| >= 1/16) = 0.95 (eps standard normal)."""


def spacing(value: float, dtype: Any) -> float:
    """The gap between `|value|` and the next larger number of `dtype` (its ulp there), as a
    Python float (the smallest normal number's ulp at 0)."""
    dt = jax.numpy.dtype(dtype)
    v = jax.numpy.asarray(max(abs(float(value)), float(jax.numpy.finfo(dt).tiny)), dt)
    up = jax.numpy.nextafter(v, jax.numpy.asarray(np.inf, dt))
    return float(np.asarray(up).astype(np.float64) - np.asarray(v).astype(np.float64))


def noise_resolves(name: str, sigma: float, max_abs: float, dtypes: Any) -> None:
    """Checks that noise of std `sigma` is resolvable at the inputs' largest magnitude
    `max_abs` in each floating dtype of `dtypes` (the inputs' and the model's): `sigma` at
    least `RESOLUTION_ULPS` grid spacings there. Below it the noise mostly rounds away and the
    votes count the rounded input, not the smoothed classifier.

    Raises:
      ValueError naming `name`, the dtype and the smallest usable sigma.
    """
    for dtype in dtypes:
        smallest = RESOLUTION_ULPS * spacing(max_abs, dtype)
        if not sigma >= smallest:
            raise ValueError(
                f"{name}={sigma!r} is below the resolution of dtype "
                f"{jax.numpy.dtype(dtype).name} at the inputs' largest magnitude "
                f"{max_abs:.3g} (grid spacing {smallest / RESOLUTION_ULPS:.3g}): the noise "
                f"would mostly round away. The smallest usable {name} is {smallest:.3g} "
                f"({RESOLUTION_ULPS:g} spacings); use a larger {name}, a wider dtype, or "
                "inputs of smaller magnitude.")


def noise_fits(name: str, sigma: float, max_abs: float, dtype: Any, *,
               max_noise: float) -> None:
    """Checks that inputs of magnitude up to `max_abs` plus noise up to `max_noise * sigma`
    stay finite in `dtype` (and in float32, in which `sigma` reaches the device), and that
    `sigma` is not below the smallest normal number of `dtype` (noise that rounds away)."""
    info = jax.numpy.finfo(dtype)
    largest = min(float(info.max), float(np.finfo(np.float32).max))
    if not max_abs + max_noise * sigma < largest:
        raise ValueError(
            f"{name}={sigma!r} is too large for inputs of dtype {np.dtype(dtype).name}: the "
            f"noise reaches about {max_noise:g} * {name} and max |xs| is {max_abs:.3g}, which "
            f"overflows the largest finite value {largest:.3g}. Use a smaller {name} (in the "
            "units of xs) or a wider dtype.")
    if sigma < float(info.tiny):
        raise ValueError(
            f"{name}={sigma!r} is below the smallest normal number of dtype "
            f"{np.dtype(dtype).name} ({float(info.tiny):.3g}): the noise would round away.")


def ids(name: str, value: Any, batch: int) -> np.ndarray:
    """Checks per-example ids: `[batch]` non-negative integers below 2**32."""
    arr = np.asarray(value)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be integers, got dtype {arr.dtype}.")
    if arr.shape != (batch,):
        raise ValueError(f"{name} must have shape [B]=({batch},), got shape {arr.shape}.")
    if arr.size and (arr.min() < 0 or arr.max() >= 2**32):
        raise ValueError(f"{name} must lie in [0, 2**32), got min {arr.min()} and max {arr.max()}.")
    return arr.astype(np.uint32)


def key(name: str, value: Any) -> jax.Array:
    """Canonicalizes an int seed, a typed key or a raw uint32[2] key to a typed key.

    Int seeds must lie in [0, 2**64) and keep all their bits: seeds below 2**32 give
    `jax.random.key(seed)`; wider ones the threefry key (seed >> 32, seed & 0xFFFFFFFF).
    Negative seeds are refused (JAX would map -1 to the key of 2**32 - 1).
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a jax.random.key(...) or an int seed, got {value!r}.")
    if isinstance(value, numbers.Integral):
        seed = int(value)
        if not 0 <= seed < 2**64:
            raise ValueError(
                f"{name} as an int seed must lie in [0, 2**64), got {name}={seed}; negative or "
                "wider seeds would be cut to 32 bits and collide with other seeds.")
        if seed < 2**32:
            return jax.random.key(seed)
        # keep all 64 bits (jax.random.key would keep only the low 32 without x64): the
        # threefry key words (high, low), as jax.random.key(seed) gives with x64 enabled
        words = np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32)
        return jax.random.wrap_key_data(words, impl="threefry2x32")
    if isinstance(value, jax.Array) and jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        if value.shape != ():
            raise ValueError(f"{name} must be a single key (shape ()), got shape {value.shape}.")
        return value
    arr = np.asarray(value) if not isinstance(value, jax.Array) else value
    if arr.dtype == np.uint32 and arr.shape == (2,):
        return jax.random.wrap_key_data(arr)
    raise TypeError(
        f"{name} must be a jax.random.key(...) or an int seed, got {type(value).__name__} "
        f"with value {value!r}."
    )
