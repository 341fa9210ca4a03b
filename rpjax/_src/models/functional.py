"""From a Flax NNX module to the pure function the certifier sees."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

from rpjax._src.smoothing import AffineFirst


@functools.lru_cache(maxsize=64)
def _apply_for(graphdef: Any, split: bool) -> Callable[[Any, jax.Array], jax.Array]:
    if split:
        def first(state: Any, x: jax.Array) -> jax.Array:
            return nnx.merge(graphdef, state).first_affine(x)

        def rest(state: Any, h: jax.Array) -> jax.Array:
            return nnx.merge(graphdef, state).after_first(h)

        return AffineFirst(first, rest)

    def apply_fn(state: Any, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef, state)(x)

    return apply_fn


def as_apply_fn(model: nnx.Module) -> tuple[Callable[[Any, jax.Array], jax.Array], Any]:
    """Splits an NNX module into `(apply_fn, state)` with `apply_fn(state, x) -> logits`.

    The same `apply_fn` object is returned for every module with the same graph definition,
    so certifying a retrained model of the same architecture does not recompile. A module
    with `first_affine(x)` (its first layer, affine in x) and `after_first(h)` methods, such
    as `TabularMLP` and `FaceCNN`, gives an `rpjax.AffineFirst`, which the engine splits
    when called with `common_noise=True`; it is an ordinary `apply_fn` otherwise.

    Args:
      model: a Flax NNX module mapping `[b, *input_shape]` to `[b, num_classes]` logits.

    Returns:
      `(apply_fn, state)`; pass both to `rpjax.certify` / `rpjax.sample_counts`.

    Raises:
      TypeError: if `model` is not an `nnx.Module`.
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"model must be a flax.nnx.Module, got {type(model).__name__}.")
    graphdef, state = nnx.split(model)
    split = callable(getattr(model, "first_affine", None)) and callable(
        getattr(model, "after_first", None))
    return _apply_for(graphdef, split), state
