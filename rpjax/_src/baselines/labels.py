"""Label-release baselines, pluggable wherever a `LabelRelease` is queried (e.g. `brep_mi`).

Each wraps the undefended model's argmax with fresh randomness per answer. The randomness
comes from the release's own `Secret` and its answer counter (`state`), as in
`rpjax._src.privacy.release`: answer number t draws from `row_keys(secret, t)`, never from anything
the caller passes in, so a querier cannot choose, repeat or predict it.

- `randomized_response_release`: keep the label with probability p, else release a label drawn
  uniformly from all classes (which may be the true one again);
- `random_abstain_release`: abstain (-1) with probability q, else release the label;
- `output_noise_release`: add N(0, scale^2) to every logit before the argmax.

Every `fn(x [M, ...], state)` returns `(labels [M] int32, advance(state, M))`. All cost one
base-model forward pass per query.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from rpjax._src import smoothing
from rpjax._src import validate as _validate
from rpjax._src.attacks.releases import ABSTAIN, LabelRelease, Secret, advance, row_keys


def _probability(name: str, value: Any) -> float:
    value = _validate.real(name, value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {name}={value!r}.")
    return value


def _secret(secret: Secret | None) -> Secret:
    if secret is None:
        return Secret.generate()
    if not isinstance(secret, Secret):
        raise TypeError(f"secret must be a rpjax._src.privacy.release.Secret, got "
                        f"{type(secret).__name__}; keys and integer seeds are refused.")
    return secret


def randomized_response_release(apply_fn: smoothing.ApplyFn, params: Any, *, p: float,
                                num_classes: int,
                                secret: Secret | None = None) -> LabelRelease:
    """Randomized response on labels: the base label with probability p, else uniform.

    The released label differs from the base label with probability
    (1 - p) * (num_classes - 1) / num_classes.

    Args:
      apply_fn, params: the base model (`apply_fn(params, x [M, ...]) -> logits [M, K]`).
      p: probability of keeping the base label, in [0, 1].
      num_classes: K, the number of labels the uniform draw ranges over.
      secret: the release's `Secret`; its randomness comes from it and the answer counter,
        never from the caller (None: `Secret.generate()`).
    """
    p = _probability("p", p)
    num_classes = _validate.integer("num_classes", num_classes, minimum=2)
    secret = _secret(secret)

    def row(key, label):
        k_keep, k_label = jax.random.split(key)
        keep = jax.random.uniform(k_keep) < p
        return jnp.where(keep, label, jax.random.randint(k_label, (), 0, num_classes, jnp.int32))

    def fn(x, state):
        label = jnp.argmax(apply_fn(params, x), axis=-1).astype(jnp.int32)
        m = label.shape[0]
        return jax.vmap(row)(row_keys(secret, state, m), label), advance(state, m)

    return LabelRelease("randomized_response", fn, 1, {"p": p})


def random_abstain_release(apply_fn: smoothing.ApplyFn, params: Any, *, q: float,
                           secret: Secret | None = None) -> LabelRelease:
    """Random abstention: abstain (-1) with probability q, independently of the input.

    Args:
      apply_fn, params: the base model.
      q: abstention probability, in [0, 1].
      secret: the release's `Secret` (the source of its randomness, with the answer counter;
        None: `Secret.generate()`).
    """
    q = _probability("q", q)
    secret = _secret(secret)

    def fn(x, state):
        label = jnp.argmax(apply_fn(params, x), axis=-1).astype(jnp.int32)
        m = label.shape[0]
        u = jax.vmap(jax.random.uniform)(row_keys(secret, state, m))
        return jnp.where(u < q, ABSTAIN, label).astype(jnp.int32), advance(state, m)

    return LabelRelease("abstain", fn, 1, {"q": q})


def output_noise_release(apply_fn: smoothing.ApplyFn, params: Any, *, scale: float,
                         secret: Secret | None = None) -> LabelRelease:
    """Output noise: the argmax of the logits plus N(0, scale^2) noise per logit.

    Args:
      apply_fn, params: the base model.
      scale: noise standard deviation in logit units (> 0).
      secret: the release's `Secret` (the source of its noise, with the answer counter;
        None: `Secret.generate()`).
    """
    scale = _validate.positive("scale", scale)
    secret = _secret(secret)

    def fn(x, state):
        logits = apply_fn(params, x)
        m, k = logits.shape
        z = jax.vmap(lambda key: jax.random.normal(key, (k,), logits.dtype))(
            row_keys(secret, state, m))
        return jnp.argmax(logits + scale * z, axis=-1).astype(jnp.int32), advance(state, m)

    return LabelRelease("output_noise", fn, 1, {"scale": scale})
