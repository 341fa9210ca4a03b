"""Label-release baselines, pluggable wherever a `LabelRelease` is queried (e.g. `brep_mi`).

Each wraps the undefended model's argmax with fresh randomness per answer, on the release
protocol of `rpjax.privacy` (`keyed_release`, as Robust Privacy's traced release): answer
number t draws from a key derived from the release's own `Secret` and t, never from anything
the caller passes in, so a querier cannot choose, repeat or predict it.

- `randomized_response_release`: keep the label with probability p, else release a label drawn
  uniformly from all classes (which may be the true one again);
- `random_abstain_release`: abstain (-1) with probability q, else release the label;
- `output_noise_release`: add N(0, scale^2) to every logit before the argmax.

Every `fn(params, x [M, ...], state)` returns `(labels [M] int32, state advanced by M)`. The
float setting (p, q, scale) is a traced entry of `params`, so releases that differ only in it
(or in their secret) share one compiled program. All cost one base-model forward pass per
query.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import rpjax
from rpjax._src import validate as _validate
from rpjax.privacy import LabelRelease, Secret, keyed_release


def _probability(name: str, value: Any) -> float:
    value = _validate.real(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {name}={value!r}.")
    return value


def _row_keys(pairs: jax.Array) -> jax.Array:
    """`[M]` typed keys from the answers' `[M, 2]` uint32 key pairs."""
    return jax.random.wrap_key_data(pairs, impl="threefry2x32")


def _base_labels(apply_fn, params, x):
    return jnp.argmax(apply_fn(params["model"], x), axis=-1).astype(jnp.int32)


@dataclasses.dataclass(frozen=True)
class _RandomizedResponse:
    apply_fn: Callable
    num_classes: int

    def __call__(self, params, x, pairs):
        label = _base_labels(self.apply_fn, params, x)

        def row(key, label):
            k_keep, k_label = jax.random.split(key)
            u = jax.random.uniform(k_keep)
            keep = u < params["p"].astype(u.dtype)
            return jnp.where(keep, label,
                             jax.random.randint(k_label, (), 0, self.num_classes, jnp.int32))

        return jax.vmap(row)(_row_keys(pairs), label)


@dataclasses.dataclass(frozen=True)
class _RandomAbstain:
    apply_fn: Callable

    def __call__(self, params, x, pairs):
        label = _base_labels(self.apply_fn, params, x)
        u = jax.vmap(jax.random.uniform)(_row_keys(pairs))
        return jnp.where(u < params["q"].astype(u.dtype), rpjax.ABSTAIN, label)


@dataclasses.dataclass(frozen=True)
class _OutputNoise:
    apply_fn: Callable

    def __call__(self, params, x, pairs):
        logits = self.apply_fn(params["model"], x)
        k = logits.shape[1]
        z = jax.vmap(lambda key: jax.random.normal(key, (k,), logits.dtype))(_row_keys(pairs))
        scale = params["scale"].astype(logits.dtype)
        return jnp.argmax(logits + scale * z, axis=-1)


def randomized_response_release(apply_fn: Callable[[Any, Any], Any], params: Any, *, p: float,
                                num_classes: int,
                                secret: Secret | None = None) -> LabelRelease:
    """Randomized response on labels: the base label with probability p, else uniform.

    The released label differs from the base label with probability
    (1 - p) * (num_classes - 1) / num_classes.

    Args:
      apply_fn, params: the base model (`apply_fn(params, x [M, ...]) -> logits [M, K]`).
      p: probability of keeping the base label, in [0, 1] (traced: `params["p"]`).
      num_classes: K, the number of labels the uniform draw ranges over.
      secret: the release's `Secret`; its randomness comes from it and the answer counter,
        never from the caller (None: `Secret.generate()`).
    """
    p = _probability("p", p)
    num_classes = _validate.integer("num_classes", num_classes, minimum=2)
    return keyed_release("randomized_response", _RandomizedResponse(apply_fn, num_classes),
                         params={"model": params, "p": np.float64(p)}, secret=secret,
                         forward_passes=1)


def random_abstain_release(apply_fn: Callable[[Any, Any], Any], params: Any, *, q: float,
                           secret: Secret | None = None) -> LabelRelease:
    """Random abstention: abstain (-1) with probability q, independently of the input.

    Args:
      apply_fn, params: the base model.
      q: abstention probability, in [0, 1] (traced: `params["q"]`).
      secret: the release's `Secret` (the source of its randomness, with the answer counter;
        None: `Secret.generate()`).
    """
    q = _probability("q", q)
    return keyed_release("abstain", _RandomAbstain(apply_fn),
                         params={"model": params, "q": np.float64(q)}, secret=secret,
                         forward_passes=1)


def output_noise_release(apply_fn: Callable[[Any, Any], Any], params: Any, *, scale: float,
                         secret: Secret | None = None) -> LabelRelease:
    """Output noise: the argmax of the logits plus N(0, scale^2) noise per logit.

    Args:
      apply_fn, params: the base model.
      scale: noise standard deviation in logit units (> 0; traced: `params["scale"]`).
      secret: the release's `Secret` (the source of its noise, with the answer counter;
        None: `Secret.generate()`).
    """
    scale = _validate.positive("scale", scale)
    return keyed_release("output_noise", _OutputNoise(apply_fn),
                         params={"model": params, "scale": np.float64(scale)}, secret=secret,
                         forward_passes=1)
