"""Label-release baselines, pluggable wherever a `LabelRelease` is queried (e.g. `brep_mi`).

Each wraps the undefended model's argmax with fresh randomness per query (from the key the
attacker's loop passes in, one independent draw per row):

- `randomized_response_release`: keep the label with probability p, else release a label drawn
  uniformly from all classes (which may be the true one again);
- `random_abstain_release`: abstain (-1) with probability q, else release the label;
- `output_noise_release`: add N(0, scale^2) to every logit before the argmax.

All cost one base-model forward pass per query.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rpjax import _validate, smoothing
from rpjax.attacks.releases import ABSTAIN, LabelRelease


def _probability(name: str, value: Any) -> float:
    value = _validate.real(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {name}={value!r}.")
    return value


def randomized_response_release(apply_fn: smoothing.ApplyFn, params: Any, *, p: float,
                                num_classes: int) -> LabelRelease:
    """Randomized response on labels: the base label with probability p, else uniform.

    The released label differs from the base label with probability
    (1 - p) * (num_classes - 1) / num_classes.

    Args:
      apply_fn, params: the base model (`apply_fn(params, x [M, ...]) -> logits [M, K]`).
      p: probability of keeping the base label, in [0, 1].
      num_classes: K, the number of labels the uniform draw ranges over.
    """
    p = _probability("p", p)
    num_classes = _validate.integer("num_classes", num_classes, minimum=2)

    def fn(x, key):
        label = jnp.argmax(apply_fn(params, x), axis=-1).astype(jnp.int32)
        k_keep, k_label = jax.random.split(key)
        keep = jax.random.uniform(k_keep, label.shape) < p
        other = jax.random.randint(k_label, label.shape, 0, num_classes, jnp.int32)
        return jnp.where(keep, label, other)

    return LabelRelease("randomized_response", fn, 1, {"p": p})


def random_abstain_release(apply_fn: smoothing.ApplyFn, params: Any, *,
                           q: float) -> LabelRelease:
    """Random abstention: abstain (-1) with probability q, independently of the input.

    Args:
      apply_fn, params: the base model.
      q: abstention probability, in [0, 1].
    """
    q = _probability("q", q)

    def fn(x, key):
        label = jnp.argmax(apply_fn(params, x), axis=-1).astype(jnp.int32)
        return jnp.where(jax.random.uniform(key, label.shape) < q, ABSTAIN, label)

    return LabelRelease("abstain", fn, 1, {"q": q})


def output_noise_release(apply_fn: smoothing.ApplyFn, params: Any, *,
                         scale: float) -> LabelRelease:
    """Output noise: the argmax of the logits plus N(0, scale^2) noise per logit.

    Args:
      apply_fn, params: the base model.
      scale: noise standard deviation in logit units (> 0).
    """
    scale = _validate.positive("scale", scale)

    def fn(x, key):
        logits = apply_fn(params, x)
        noisy = logits + scale * jax.random.normal(key, logits.shape, logits.dtype)
        return jnp.argmax(noisy, axis=-1).astype(jnp.int32)

    return LabelRelease("output_noise", fn, 1, {"scale": scale})
