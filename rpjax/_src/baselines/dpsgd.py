"""DP-SGD (Abadi et al. 2016) with a real accountant, as a baseline defence.

Per-example gradients are clipped by `jax_privacy.clipped_grad`, Gaussian noise of std
`noise_multiplier * l2_clip_norm` is added to their sum, and the sum is divided by the expected
batch size. Batches are Poisson-sampled (each example independently with probability
`q = expected_batch_size / N`, `jax_privacy.batch_selection.CyclicPoissonSampling`), which is
what the accountant assumes: `dp_accounting`'s RDP (default) or PLD accountant composes
`steps` Poisson-subsampled Gaussian mechanisms under add/remove-one adjacency. When a target
epsilon is given, the noise multiplier is calibrated by the same accountant
(`dp_accounting.calibrate_dp_mechanism`); the epsilon reported is always the accountant's for
the noise actually used.

Variable Poisson batches are padded (with zero-weight examples, whose clipped gradient is
zero) to one fixed size, so the whole run is one compiled `lax.scan`: the training loop is
`rpjax.models.optimize`, with `dp_grad_step` as its pluggable gradient step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import dp_accounting
import jax
import jax.numpy as jnp
import jax_privacy
import numpy as np
import optax
from flax import nnx
from jax_privacy import batch_selection

from rpjax._src import validate as _validate
from rpjax.models import as_apply_fn, optimize


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPSGDConfig:
    """Settings of `fit_dpsgd`.

    Attributes:
      target_epsilon: calibrate the noise multiplier to reach this epsilon at `delta` (None:
        use `noise_multiplier` as given).
      noise_multiplier: Gaussian noise std / clip norm, used when `target_epsilon` is None.
      delta: the DP delta (1e-5).
      l2_clip_norm: per-example gradient clip norm C.
      expected_batch_size: Poisson sampling rate q = expected_batch_size / N.
      steps: optimizer steps (= sampled batches).
      learning_rate: Adam learning rate.
      accountant: "rdp" or "pld" (dp_accounting).
    """

    target_epsilon: float | None = 4.0
    noise_multiplier: float | None = None
    delta: float = 1e-5
    l2_clip_norm: float = 1.0
    expected_batch_size: int = 32
    steps: int = 1000
    learning_rate: float = 1e-3
    accountant: str = "rdp"

    def __post_init__(self):
        if (self.target_epsilon is None) == (self.noise_multiplier is None):
            raise ValueError("give exactly one of target_epsilon and noise_multiplier, got "
                             f"target_epsilon={self.target_epsilon!r}, "
                             f"noise_multiplier={self.noise_multiplier!r}.")
        if self.target_epsilon is not None:
            _validate.positive("target_epsilon", self.target_epsilon)
        if self.noise_multiplier is not None:
            _validate.positive("noise_multiplier", self.noise_multiplier)
        _validate.open_unit_interval("delta", self.delta)
        _validate.positive("l2_clip_norm", self.l2_clip_norm)
        _validate.integer("expected_batch_size", self.expected_batch_size, minimum=1)
        _validate.integer("steps", self.steps, minimum=1)
        _validate.positive("learning_rate", self.learning_rate)
        if self.accountant not in ("rdp", "pld"):
            raise ValueError(f"accountant must be 'rdp' or 'pld', got {self.accountant!r}.")


def _event(noise_multiplier: float, sampling_prob: float, steps: int):
    return dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(
            sampling_prob, dp_accounting.GaussianDpEvent(noise_multiplier)), steps)


@contextlib.contextmanager
def _quiet_absl():
    # the RDP accountant logs a warning for every order whose series does not converge
    # (that order is then excluded, which is sound); keep them out of the reports
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _accountant(name: str):
    if name == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    return dp_accounting.pld.PLDAccountant()


def dpsgd_epsilon(noise_multiplier: float, sampling_prob: float, steps: int, delta: float,
                  accountant: str = "rdp") -> float:
    """The accountant's epsilon of `steps` Poisson-subsampled Gaussian steps at `delta`.

    Args:
      noise_multiplier: noise std / clip norm (> 0).
      sampling_prob: Poisson sampling probability q in (0, 1].
      steps: number of steps; delta: target delta in (0, 1).
      accountant: "rdp" or "pld".
    """
    noise_multiplier = _validate.positive("noise_multiplier", noise_multiplier)
    sampling_prob = _validate.real("sampling_prob", sampling_prob)
    if not 0.0 < sampling_prob <= 1.0:
        raise ValueError(f"sampling_prob must be in (0, 1], got {sampling_prob!r}.")
    steps = _validate.integer("steps", steps, minimum=1)
    delta = _validate.open_unit_interval("delta", delta)
    acc = _accountant(accountant)
    with _quiet_absl():
        acc.compose(_event(noise_multiplier, sampling_prob, steps))
        return float(acc.get_epsilon(delta))


def calibrate_noise_multiplier(target_epsilon: float, sampling_prob: float, steps: int,
                               delta: float, accountant: str = "rdp") -> float:
    """The smallest noise multiplier whose accountant epsilon is <= `target_epsilon`."""
    target_epsilon = _validate.positive("target_epsilon", target_epsilon)
    with _quiet_absl():
        return float(dp_accounting.calibrate_dp_mechanism(
            lambda: _accountant(accountant),
            lambda nm: _event(nm, sampling_prob, steps),
            target_epsilon, delta,
            # PLD discretization explodes at tiny multipliers; 0.25 is below any useful one
            bracket_interval=dp_accounting.ExplicitBracketInterval(
                1e-3 if accountant == "rdp" else 0.25, 1e3),
            tol=1e-4))


def dp_gradient(loss: Callable[..., jax.Array], params: Any, x: jax.Array, y: jax.Array,
                weight: jax.Array, key: jax.Array, *, l2_clip_norm: float,
                noise_multiplier: float, denominator: float) -> Any:
    """One DP-SGD gradient: (sum of clipped per-example gradients + noise) / denominator.

    Args:
      loss: `loss(params, x [1, ...], y [1], w [1]) -> scalar`, the loss of one example
        (weighted by w; padding examples have w = 0).
      params: the parameters (pytree); x, y, weight: the (padded) batch, leading axis B.
      key: the noise key; l2_clip_norm: C; noise_multiplier: noise std / C;
      denominator: the expected batch size (Poisson sampling) the sum is divided by.

    Returns:
      The privatized gradient, a pytree like `params`. Without noise its norm is at most
      B * C / denominator, whatever the examples.
    """
    grad_fn = jax_privacy.clipped_grad(loss, l2_clip_norm=l2_clip_norm, batch_argnums=(1, 2, 3))
    summed = grad_fn(params, x, y, weight)
    leaves, treedef = jax.tree.flatten(summed)
    keys = jax.random.split(key, len(leaves))
    noisy = [g + noise_multiplier * l2_clip_norm * jax.random.normal(k, g.shape, g.dtype)
             for g, k in zip(leaves, keys, strict=True)]
    return jax.tree.map(lambda g: g / denominator, jax.tree.unflatten(treedef, noisy))


def dp_grad_step(example_loss: Callable[..., jax.Array], x: jax.Array, y: jax.Array, *,
                 l2_clip_norm: float, noise_multiplier: float,
                 denominator: float) -> Callable[[Any, Any, jax.Array], tuple[jax.Array, Any]]:
    """DP-SGD as a gradient step of `rpjax.models.optimize`.

    Args:
      example_loss: `loss(params, x [B, ...], y [B], w [B]) -> scalar`, the weighted sum of
        the examples' losses (padding examples have w = 0).
      x: `[N, ...]` inputs; y: `[N]` labels; the step's batch is `[B]` indices into them,
        -1 for padding.
      l2_clip_norm, noise_multiplier, denominator: as in `dp_gradient`.

    Returns:
      `grad_step(params, idx [B], key) -> (loss, grads)`: the privatized gradient
      (`dp_gradient` with the step's key) and the batch's mean loss (not private;
      diagnostics).
    """

    def grad_step(p, idx, key):
        w = (idx >= 0).astype(jnp.float32)
        safe = jnp.maximum(idx, 0)
        g = dp_gradient(example_loss, p, x[safe], y[safe], w, key, l2_clip_norm=l2_clip_norm,
                        noise_multiplier=noise_multiplier, denominator=denominator)
        loss = example_loss(p, x[safe], y[safe], w) / jnp.maximum(w.sum(), 1.0)
        return loss, g

    return grad_step


class DPSGDResult(NamedTuple):
    """A DP-SGD-trained classifier and its privacy accounting."""

    apply_fn: Callable[[Any, jax.Array], jax.Array]
    params: Any
    losses: np.ndarray  # [steps] mean loss of each sampled batch (not private; diagnostics)
    epsilon: float  # the accountant's epsilon at `delta`
    delta: float
    noise_multiplier: float
    sampling_prob: float
    steps: int


def _poisson_batches(num: int, config: DPSGDConfig, seed: int) -> tuple[np.ndarray, float]:
    q = min(1.0, config.expected_batch_size / num)
    strategy = batch_selection.CyclicPoissonSampling(sampling_prob=q, iterations=config.steps)
    batches = list(strategy.batch_iterator(num, rng=seed))
    width = max(8, -(-max(len(b) for b in batches) // 8) * 8)
    out = np.full((config.steps, width), -1, np.int64)
    for i, b in enumerate(batches):
        out[i, : len(b)] = b
    return out, q


def fit_dpsgd(model: nnx.Module, x: jax.typing.ArrayLike, y: jax.typing.ArrayLike,
              key: jax.Array | int, config: DPSGDConfig = DPSGDConfig()) -> DPSGDResult:
    """Trains `model` with DP-SGD (softmax cross-entropy, Adam on the privatized gradient).

    Args:
      model: an NNX classifier `[b, *input_shape] -> [b, num_classes]`; left unchanged.
      x: `[N, *input_shape]` float inputs; y: `[N]` int labels.
      key: typed key or int seed (batch sampling and the DP noise).
      config: the DP-SGD settings.

    Returns:
      `DPSGDResult` with the accountant's epsilon.
    """
    x = _validate.inputs("x", x)
    y = jnp.asarray(y)
    if y.shape != (x.shape[0],) or not jnp.issubdtype(y.dtype, jnp.integer):
        raise ValueError(f"y must be [N]=({x.shape[0]},) integer labels, got {y.shape} {y.dtype}.")
    key = _validate.key("key", key)
    num = x.shape[0]
    seed = int(jax.random.randint(jax.random.fold_in(key, 0), (), 0, 2**31 - 1))
    batches, q = _poisson_batches(num, config, seed)
    if config.target_epsilon is not None:
        nm = calibrate_noise_multiplier(config.target_epsilon, q, config.steps, config.delta,
                                        config.accountant)
    else:
        nm = float(config.noise_multiplier)
    epsilon = dpsgd_epsilon(nm, q, config.steps, config.delta, config.accountant)
    apply_fn, params = as_apply_fn(model)
    tx = optax.adam(config.learning_rate)

    def example_loss(p, xb, yb, wb):
        ce = optax.softmax_cross_entropy_with_integer_labels(apply_fn(p, xb), yb)
        return jnp.sum(wb * ce)

    step = dp_grad_step(example_loss, x, y, l2_clip_norm=config.l2_clip_norm,
                        noise_multiplier=nm, denominator=q * num)
    params, losses = optimize(params, step, tx, jax.random.fold_in(key, 1),
                              batches=jnp.asarray(batches))
    return DPSGDResult(apply_fn=apply_fn, params=params, losses=np.asarray(losses),
                       epsilon=epsilon, delta=config.delta, noise_multiplier=nm,
                       sampling_prob=q, steps=config.steps)
