"""The one optax training loop, and the base classifiers' training on top of it.

`optimize` is the loop every model of rpjax is trained with (the base classifiers, DP-SGD in
`rpjax.baselines`, the attacker's VAE prior in `rpjax.attacks`): one compiled `lax.scan` over
steps, each step asks a pluggable gradient step `grad_step(params, batch, key) -> (loss,
grads)` for its gradient and applies an optax update: `jax.value_and_grad(loss)` is the plain
step; DP-SGD (`rpjax.baselines.fit_dpsgd`) supplies a clipped and noised one.

`fit_classifier` trains any NNX classifier with softmax cross-entropy, an optional parameter
penalty (e.g. an l1 penalty on selected first-layer weights) and optional Gaussian noise
augmentation at the smoothing sigma.
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


GradStep = Callable[[Any, Any, jax.Array], tuple[jax.Array, Any]]
"""`grad_step(params, batch, key) -> (loss, grads)`: one step's scalar loss and gradient."""


def optimize(params: Any, grad_step: GradStep, optimizer: optax.GradientTransformation,
             key: jax.Array, *, batches: Any = None, steps: int | None = None
             ) -> tuple[Any, jax.Array]:
    """The training loop: `steps` optax updates in one compiled `lax.scan`.

    Step t (0-based) calls `grad_step(params, batches[t], jax.random.fold_in(key, t))` (the
    batch is `t` itself when `batches` is None) and applies `optimizer`'s update to the
    gradient; the optimizer state starts at `optimizer.init(params)`.

    Args:
      params: the initial parameters (pytree).
      grad_step: `(params, batch, key) -> (loss scalar, grads like params)`; e.g.
        `jax.value_and_grad(loss)`, or DP-SGD's clipped and noised step (the one
        `rpjax.baselines.fit_dpsgd` trains with).
      optimizer: the optax transformation (e.g. `optax.adam(1e-3)`).
      key: typed PRNG key of the per-step keys.
      batches: a pytree whose leaves have leading axis `steps` (e.g. `[steps, B]` example
        indices), or None.
      steps: the number of steps when `batches` is None (else their leading axis).

    Returns:
      `(params, losses)`: the trained parameters and the `[steps]` losses.
    """
    if (batches is None) == (steps is None):
        raise ValueError(f"give exactly one of batches and steps, got steps={steps!r} and "
                         f"batches {'None' if batches is None else 'given'}.")
    if steps is not None:
        steps = _validate.integer("steps", steps, minimum=1)

    @jax.jit
    def run(params, batches, key):
        def step(carry, inp):
            p, opt = carry
            batch, t = inp
            loss, grads = grad_step(p, t if batch is None else batch, jax.random.fold_in(key, t))
            updates, opt = optimizer.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), loss

        num = steps if batches is None else jax.tree.leaves(batches)[0].shape[0]
        (params, _), losses = jax.lax.scan(
            step, (params, optimizer.init(params)), (batches, jnp.arange(num)))
        return params, losses

    return run(params, batches, key)


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

    def grad_step(p, idx, k):
        xb = x[idx]
        if config.noise_sigma > 0:
            xb = xb + config.noise_sigma * jax.random.normal(k, xb.shape, xb.dtype)
        return jax.value_and_grad(loss_fn)(p, xb, y[idx])

    params, losses = optimize(params, grad_step, tx, jax.random.fold_in(key, 1),
                              batches=batches)
    return TrainResult(apply_fn=apply_fn, params=params, losses=np.asarray(losses))


def accuracy(apply_fn: Callable, params: Any, x: jax.typing.ArrayLike,
             y: jax.typing.ArrayLike) -> float:
    """Top-1 accuracy of the base classifier on `(x, y)`, as a Python float in [0, 1]."""
    pred = jnp.argmax(jax.jit(apply_fn)(params, jnp.asarray(x)), axis=-1)
    return float(jnp.mean(pred == jnp.asarray(y)))
