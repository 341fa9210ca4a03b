"""optax training loops for the base classifiers.

`fit_classifier` trains any NNX classifier with softmax cross-entropy, an optional parameter
penalty (e.g. an l1 penalty on selected first-layer weights) and optional Gaussian noise
augmentation at the smoothing sigma. The whole run is one compiled `lax.scan` over steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from rpjax._src import validate as _validate
from rpjax._src.models.functional import as_apply_fn


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Settings of `fit_classifier`.

    Attributes:
      steps: optimizer steps.
      batch_size: examples per step (sampled without replacement within an epoch).
      learning_rate: Adam learning rate.
      weight_decay: decoupled weight decay (AdamW); 0 for plain Adam.
      noise_sigma: if > 0, add N(0, noise_sigma^2) to every training input (Gaussian
        augmentation, in input units), as Cohen et al. train base models for smoothing.
    """

    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    noise_sigma: float = 0.0

    def __post_init__(self):
        _validate.integer("steps", self.steps, minimum=1)
        _validate.integer("batch_size", self.batch_size, minimum=1)
        _validate.positive("learning_rate", self.learning_rate)
        if _validate.real("weight_decay", self.weight_decay) < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}.")
        if _validate.real("noise_sigma", self.noise_sigma) < 0:
            raise ValueError(f"noise_sigma must be >= 0, got {self.noise_sigma!r}.")


class TrainResult(NamedTuple):
    """A trained classifier as the certifier sees it, and its loss curve."""

    apply_fn: Callable[[Any, jax.Array], jax.Array]
    params: Any
    losses: np.ndarray  # [steps] float32 training loss (cross-entropy + penalty)


def _batch_indices(key, num, batch_size, steps):
    per_epoch = max(1, num // batch_size)
    epochs = -(-steps // per_epoch)
    keys = jax.random.split(key, epochs)
    perms = jax.vmap(lambda k: jax.random.permutation(k, num)[: per_epoch * batch_size])(keys)
    return perms.reshape(-1, batch_size)[:steps]


def fit_classifier(
    model: nnx.Module,
    x: jax.typing.ArrayLike,
    y: jax.typing.ArrayLike,
    key: jax.Array | int,
    config: TrainConfig = TrainConfig(),
    *,
    penalty: Callable[[Any], jax.Array] | None = None,
) -> TrainResult:
    """Trains `model` to predict `y` from `x` with softmax cross-entropy and Adam(W).

    Args:
      model: an NNX classifier `[b, *input_shape] -> [b, num_classes]`; left unchanged.
      x: `[N, *input_shape]` float training inputs.
      y: `[N]` int class labels.
      key: typed key or int seed (batch order and augmentation noise).
      config: the optimization settings.
      penalty: optional `penalty(params) -> scalar` added to the loss (params is the NNX
        state of `model`).

    Returns:
      `TrainResult(apply_fn, params, losses)`.
    """
    x = _validate.inputs("x", x)
    y = jnp.asarray(y)
    if y.shape != (x.shape[0],) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"y must be [N]=({x.shape[0]},) integer labels, got {y.shape} {y.dtype}.")
    key = _validate.key("key", key)
    apply_fn, params = as_apply_fn(model)
    tx = optax.adamw(config.learning_rate, weight_decay=config.weight_decay)
    batches = _batch_indices(jax.random.fold_in(key, 0), x.shape[0], config.batch_size,
                             config.steps)

    def loss_fn(p, xb, yb):
        logits = apply_fn(p, xb)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return loss + (penalty(p) if penalty is not None else 0.0)

    @jax.jit
    def run(params, batches, key):
        def step(carry, inp):
            p, opt = carry
            idx, t = inp
            xb = x[idx]
            if config.noise_sigma > 0:
                xb = xb + config.noise_sigma * jax.random.normal(
                    jax.random.fold_in(key, t), xb.shape, xb.dtype)
            loss, grads = jax.value_and_grad(loss_fn)(p, xb, y[idx])
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), loss

        (params, _), losses = jax.lax.scan(
            step, (params, tx.init(params)), (batches, jnp.arange(batches.shape[0])))
        return params, losses

    params, losses = run(params, batches, jax.random.fold_in(key, 1))
    return TrainResult(apply_fn=apply_fn, params=params, losses=np.asarray(losses))


def accuracy(apply_fn: Callable, params: Any, x: jax.typing.ArrayLike,
             y: jax.typing.ArrayLike) -> float:
    """Top-1 accuracy of the base classifier on `(x, y)`, as a Python float in [0, 1]."""
    pred = jnp.argmax(jax.jit(apply_fn)(params, jnp.asarray(x)), axis=-1)
    return float(jnp.mean(pred == jnp.asarray(y)))
