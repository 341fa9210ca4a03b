"""MI-Face: white-box gradient model inversion (Fredrikson, Jha and Ristenpart, CCS 2015).

The attacker knows the model and its gradients and descends the cost

    c(x) = 1 - softmax(f(x))[target] + reg * aux(x)

from an initial image. Against Robust Privacy (randomized smoothing with Gaussian noise of std
`sigma`) the attacker follows the gradient of the Monte Carlo *expected softmax under noise*,

    c(x) = 1 - (1 / m) sum_j softmax(f(x + sigma * eps_j))[target] + reg * aux(x),

with fresh `eps_j ~ N(0, I)` on every evaluation. Two parameterizations share one engine:
pixel space (`mi_face_pixels`: the image itself, projected to [0, 1] after each step) and the
latent space of a generator (`mi_face_latent`: `x = decode(z)`, latents clipped to
[-latent_clip, latent_clip]).

All targets run together in one compiled `lax.while_loop`; each target has its own stopping
rule and is frozen (no further updates, no further queries counted) once it stops.

Stopping rule, per target. Pass 0 evaluates the cost c_0 (and its gradient) at the projected
initial point x_0; iteration i >= 1 takes one optimizer step x_i = proj(x_{i-1} - lr * grad)
(plain gradient descent with the default `optimizer="sgd"`) and evaluates c_i. The reference
cost `ref` starts at c_0; iteration i is an *improvement* iff c_i < ref - gamma, and then
`ref = c_i` (otherwise `ref` is kept, as in Keras' EarlyStopping with `min_delta=gamma`). After
evaluating c_i (i >= 0) the target stops, with the first reason that holds:

1. `STOP_MIN_COST`: c_i <= min_cost (at i = 0 this stops before any step);
2. `STOP_PATIENCE`: the last `beta` iterations were all non-improvements (so a target whose
   cost never changes stops with exactly `beta` iterations);
3. `STOP_MAX_ITERS`: i == max_iters.

`iterations` is the final i (steps taken). Each evaluation costs `m` forward passes per target
(1 when undefended) and one backward pass, so a target spends `m * (iterations + 1)` forward
passes. The returned image is the iterate with the lowest evaluated cost (the first one on
ties), as in Fredrikson et al.'s Algorithm 1 (`return_best=False`: the last iterate).

Noise: evaluation k (k = 0 at the start, k = i after step i) of the t-th target (its position
in `targets`) uses the engine's counter-mode Gaussian stream (`rpjax.noise_samples`) keyed by
`fold_in(fold_in(fold_in(key, 0), k), t)`, samples 0..m-1; the cost and the gradient of one
evaluation share their draw. Results are a pure function of the key and the arguments.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rpjax
from rpjax._src import validate as _validate

PyTree = Any
STOP_MAX_ITERS = 0
STOP_PATIENCE = 1
STOP_MIN_COST = 2
_OPTIMIZERS = {"sgd": optax.sgd, "adam": optax.adam}
_REGULARIZERS = ("tv", "l2")


def _nonnegative(name: str, value: Any) -> float:
    value = _validate.real(name, value)
    if value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {name}={value!r}.")
    return value


def _choice(name: str, value: Any, options) -> None:
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {name}={value!r}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class MIFaceConfig:
    """MI-Face settings (defaults: plain gradient descent, undefended model).

    Attributes:
      max_iters: at most this many gradient steps per target (>= 0).
      lr: step size (> 0), in units of the optimized variable (pixels or latent units) per
        unit of cost gradient.
      gamma: improvement threshold (>= 0), in cost units; see the module docstring.
      beta: patience (>= 1): a target stops after `beta` consecutive non-improving iterations.
      min_cost: a target stops once its cost is <= min_cost (cost units; 1 - probability).
      m: noise samples per cost evaluation when `sigma > 0` (ignored when undefended).
      sigma: std of the smoothing noise in pixel units ([0, 1] images); None or 0 attacks
        the undefended base model.
      latent_clip: latents are clipped to [-latent_clip, latent_clip] (latent mode only).
      reg: weight (>= 0) of the auxiliary term added to the cost.
      regularizer: "tv" (mean absolute difference of vertically and horizontally adjacent
        pixels, summed over the two directions; images must be [T, H, W, C]) or "l2" (mean
        square of the optimized variable: pixels, or latents as a Gaussian prior).
      optimizer: "sgd" (plain gradient descent, `optax.sgd(lr)`) or "adam" (`optax.adam(lr)`).
      return_best: return the lowest-cost iterate (Fredrikson et al.) rather than the last.
        When defended the costs are Monte Carlo estimates, so both this selection and the
        patience rule favour lucky noise draws; raise `m` or return the last iterate.

    Only `m`, whether sigma > 0, `optimizer`, `regularizer` and whether reg > 0 are compiled
    in; the other fields are traced, so sweeping them (e.g. sigma) reuses the program.
    """

    max_iters: int = 500
    lr: float = 0.1
    gamma: float = 1e-4
    beta: int = 50
    min_cost: float = 0.0
    m: int = 16
    sigma: float | None = None
    latent_clip: float = 1.5
    reg: float = 0.0
    regularizer: str = "tv"
    optimizer: str = "sgd"
    return_best: bool = True

    def __post_init__(self):
        _validate.integer("max_iters", self.max_iters, minimum=0)
        _validate.positive("lr", self.lr)
        _nonnegative("gamma", self.gamma)
        _validate.integer("beta", self.beta, minimum=1)
        _validate.real("min_cost", self.min_cost)
        _validate.integer("m", self.m, minimum=1)
        if self.sigma is not None:
            _nonnegative("sigma", self.sigma)
        _validate.positive("latent_clip", self.latent_clip)
        _nonnegative("reg", self.reg)
        _choice("regularizer", self.regularizer, _REGULARIZERS)
        _choice("optimizer", self.optimizer, _OPTIMIZERS)
        if not isinstance(self.return_best, bool):
            raise TypeError(f"return_best must be a bool, got return_best={self.return_best!r}.")

    @property
    def defended(self) -> bool:
        """Whether the cost is the expected softmax under noise (sigma > 0)."""
        return self.sigma is not None and self.sigma > 0

    @property
    def passes_per_eval(self) -> int:
        """Forward passes per target per cost evaluation: m if defended, else 1."""
        return self.m if self.defended else 1


class MIFaceResult(NamedTuple):
    """Per-target outcome of MI-Face (leading axis T, NumPy arrays).

    Attributes:
      images: `[T, *image_shape]` float32 reconstructions (pixels): the lowest-cost iterate
        of each target, or the last one with `return_best=False`.
      latents: `[T, k]` their latents (latent mode), or None (pixel mode).
      cost: `[T]` float32, the cost of `images` re-evaluated after the attack on the same
        objective (same sigma and m) with fresh noise: an unbiased estimate when defended,
        equal to `best_cost` when undefended with `return_best`. Not counted in
        `forward_passes`.
      best_cost: `[T]` float32, the lowest cost evaluated during the attack (the cost of the
        best iterate when it was visited; a minimum over noisy estimates when defended, hence
        biased low).
      iterations: `[T]` int32 gradient steps taken.
      stop_reason: `[T]` int32, STOP_MAX_ITERS, STOP_PATIENCE or STOP_MIN_COST.
      forward_passes: `[T]` int64 forward passes of the base model spent by the attack,
        `passes_per_eval * (iterations + 1)`; each comes with its share of one backward pass.
    """

    images: np.ndarray
    latents: np.ndarray | None
    cost: np.ndarray
    best_cost: np.ndarray
    iterations: np.ndarray
    stop_reason: np.ndarray
    forward_passes: np.ndarray


class _Static(NamedTuple):
    """The settings compiled into the program (the rest are traced, see `_Hyper`)."""

    m: int  # noise samples per evaluation; 0 when undefended
    optimizer: str
    regularizer: str | None  # None when reg == 0


class _Hyper(NamedTuple):
    """Traced scalars: changing them (e.g. sweeping sigma) reuses the compiled program."""

    lr: jax.Array
    gamma: jax.Array
    beta: jax.Array
    min_cost: jax.Array
    max_iters: jax.Array
    sigma: jax.Array
    latent_clip: jax.Array
    reg: jax.Array
    return_best: jax.Array


def _split(config: MIFaceConfig) -> tuple[_Static, _Hyper]:
    static = _Static(m=config.m if config.defended else 0, optimizer=config.optimizer,
                     regularizer=config.regularizer if config.reg > 0 else None)
    f32, i32 = np.float32, np.int32
    hyper = _Hyper(
        lr=f32(config.lr), gamma=f32(config.gamma), beta=i32(config.beta),
        min_cost=f32(config.min_cost), max_iters=i32(config.max_iters),
        sigma=f32(config.sigma or 0.0), latent_clip=f32(config.latent_clip),
        reg=f32(config.reg), return_best=np.bool_(config.return_best),
    )
    return static, hyper


def _aux(regularizer, image, u):
    if regularizer == "l2":
        return jnp.mean(u.reshape(u.shape[0], -1) ** 2, axis=1)
    dh = jnp.abs(jnp.diff(image, axis=1)).mean(axis=(1, 2, 3))
    dw = jnp.abs(jnp.diff(image, axis=2)).mean(axis=(1, 2, 3))
    return dh + dw


def _costs(apply_fn, decode, static, hyper, params, targets, u, key):
    """`[T]` costs at `u` (the noise of target t comes from `fold_in(key, t)`)."""
    image = u if decode is None else decode(u)
    num, shape = image.shape[0], image.shape[1:]
    if static.m:
        eps = rpjax.noise_samples(key, jnp.arange(num, dtype=jnp.uint32),
                                  jnp.arange(static.m, dtype=jnp.uint32), shape,
                                  dtype=image.dtype)
        noisy = image[:, None] + hyper.sigma.astype(image.dtype) * eps
        logits = apply_fn(params, noisy.reshape(num * static.m, *shape))
        probs = jax.nn.softmax(logits, axis=-1).reshape(num, static.m, -1).mean(axis=1)
    else:
        probs = jax.nn.softmax(apply_fn(params, image), axis=-1)
    cost = 1.0 - jnp.take_along_axis(probs, targets[:, None], axis=1)[:, 0]
    if static.regularizer is not None:
        cost = cost + hyper.reg * _aux(static.regularizer, image, u)
    return cost


def _attack(apply_fn, decode, static, params, targets, u0, key, hyper):
    """The compiled loop; returns (u, image, cost, best_cost, iterations, stop_reason)."""
    num = u0.shape[0]
    lo, hi = (0.0, 1.0) if decode is None else (-hyper.latent_clip, hyper.latent_clip)
    loop_key, eval_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
    tx = _OPTIMIZERS[static.optimizer](hyper.lr)
    costs = functools.partial(_costs, apply_fn, decode, static, hyper, params, targets)

    def value_and_grad(u, k):
        def total(v):
            c = costs(v, jax.random.fold_in(loop_key, k))
            return jnp.sum(c), c

        (_, c), g = jax.value_and_grad(total, has_aux=True)(u)
        return c, g

    def rows(mask, new, old):
        return jnp.where(mask.reshape(-1, *([1] * (new.ndim - 1))), new, old)

    def cond(s):
        return ~jnp.all(s["done"])

    def body(s):
        active = ~s["done"]
        updates, opt = tx.update(s["g"], s["opt"], s["u"])
        u = rows(active, jnp.clip(optax.apply_updates(s["u"], updates), lo, hi), s["u"])
        c, g = value_and_grad(u, s["k"] + 1)
        iters = s["iters"] + active
        improved = active & (c < s["ref"] - hyper.gamma)
        stale = jnp.where(improved, 0, s["stale"] + active)
        better = active & (c < s["best_c"])
        hit_min, hit_pat = active & (c <= hyper.min_cost), active & (stale >= hyper.beta)
        hit_max = active & (iters >= hyper.max_iters)
        reason = jnp.where(hit_min, STOP_MIN_COST, jnp.where(
            hit_pat, STOP_PATIENCE, jnp.where(hit_max, STOP_MAX_ITERS, s["reason"])))
        return dict(
            k=s["k"] + 1, u=u, g=rows(active, g, s["g"]), opt=opt,
            ref=jnp.where(improved, c, s["ref"]), stale=stale, iters=iters, reason=reason,
            best_u=rows(better, u, s["best_u"]), best_c=jnp.where(better, c, s["best_c"]),
            done=s["done"] | hit_min | hit_pat | hit_max,
        )

    u0 = jnp.clip(u0, lo, hi)
    c0, g0 = value_and_grad(u0, 0)
    at_min = c0 <= hyper.min_cost
    zeros = jnp.zeros(num, jnp.int32)
    state = dict(
        k=jnp.int32(0), u=u0, g=g0, opt=tx.init(u0), ref=c0, stale=zeros, iters=zeros,
        reason=jnp.where(at_min, STOP_MIN_COST, STOP_MAX_ITERS).astype(jnp.int32),
        best_u=u0, best_c=c0, done=at_min | (hyper.max_iters == 0),
    )
    s = jax.lax.while_loop(cond, body, state)
    u = jnp.where(hyper.return_best, s["best_u"], s["u"])
    image = u if decode is None else decode(u)
    return u, image, costs(u, eval_key), s["best_c"], s["iters"], s["reason"]


_ATTACK = jax.jit(_attack, static_argnums=(0, 1, 2))


@functools.lru_cache(maxsize=64)
def _cached_eval_shape(fn, treedef, specs):
    args = jax.tree.unflatten(treedef, [jax.ShapeDtypeStruct(s, d) for s, d in specs])
    return jax.eval_shape(fn, *args)


def _eval_shape(fn, *args):
    """`jax.eval_shape`, cached on the function and the arguments' shapes (no retrace)."""
    leaves, treedef = jax.tree.flatten(args)
    specs = tuple((tuple(np.shape(x)), jnp.result_type(x)) for x in leaves)
    try:
        return _cached_eval_shape(fn, treedef, specs)
    except TypeError as err:
        if "unhashable" not in str(err):
            raise
        return jax.eval_shape(fn, *args)


def _check_targets(targets: Any) -> np.ndarray:
    arr = np.asarray(targets)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise ValueError(f"targets must be a non-empty [T] vector, got shape {arr.shape}.")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"targets must be integer class indices, got dtype {arr.dtype}.")
    return arr


def _check_start(name: str, value: Any, num: int) -> jax.Array:
    start = _validate.inputs(name, value)
    if start.shape[0] != num:
        raise ValueError(f"{name} must have one row per target, shape [T={num}, ...], got "
                         f"shape {tuple(start.shape)}; broadcast a shared start with "
                         f"jnp.broadcast_to(x, (T, *x.shape)).")
    return start


def _run(apply_fn, decode, params, targets, key, config, start, latent):
    if not callable(apply_fn):
        raise TypeError(f"apply_fn must be callable, got {type(apply_fn).__name__}.")
    if not isinstance(config, MIFaceConfig):
        raise TypeError(f"config must be an MIFaceConfig, got {type(config).__name__}.")
    key = _validate.key("key", key)
    targets = _check_targets(targets)
    image = start if decode is None else _eval_shape(decode, start)
    logits = _eval_shape(apply_fn, params, jax.ShapeDtypeStruct(image.shape, image.dtype))
    if len(logits.shape) != 2 or logits.shape[0] != image.shape[0]:
        raise ValueError(f"apply_fn must return logits [b, num_classes], got shape "
                         f"{logits.shape} for a batch of {image.shape[0]}.")
    if targets.min() < 0 or targets.max() >= logits.shape[1]:
        raise ValueError(f"targets must lie in [0, num_classes={logits.shape[1]}), got min "
                         f"{targets.min()} and max {targets.max()}.")
    if config.reg > 0 and config.regularizer == "tv" and len(image.shape) != 4:
        raise ValueError(f"regularizer='tv' needs images [T, H, W, C], got shape {image.shape}; "
                         "use regularizer='l2' or reg=0.")
    static, hyper = _split(config)
    u, image, cost, best, iters, reason = _ATTACK(
        apply_fn, decode, static, params, jnp.asarray(targets, jnp.int32), start, key, hyper)
    iters = np.asarray(iters)
    return MIFaceResult(
        images=np.asarray(image),
        latents=np.asarray(u) if latent else None, cost=np.asarray(cost),
        best_cost=np.asarray(best), iterations=iters, stop_reason=np.asarray(reason),
        forward_passes=config.passes_per_eval * (iters.astype(np.int64) + 1),
    )


def mi_face_pixels(
    apply_fn: Callable[[PyTree, jax.Array], jax.Array],
    params: PyTree,
    targets: jax.typing.ArrayLike,
    key: jax.Array | int,
    config: MIFaceConfig = MIFaceConfig(),
    *,
    init: jax.typing.ArrayLike,
) -> MIFaceResult:
    """MI-Face in pixel space for every target at once (one compiled program).

    Args:
      apply_fn: pure `apply_fn(params, x [b, *image_shape]) -> logits [b, num_classes]`; rows
        of the batch must not interact (the gradient of the summed cost is taken per row).
        Static under `jit`: pass the same function object to reuse the compiled program.
      params: the model parameters (a pytree).
      targets: `[T]` integer class indices in [0, num_classes).
      key: typed key or int seed. Evaluation k (0 = the start) draws its noise from
        `fold_in(fold_in(key, 0), k)`, target t from `fold_in(that, t)`; the final cost
        re-evaluation uses `fold_in(key, 1)`. Unused when undefended.
      config: attack settings.
      init: `[T, *image_shape]` floating start images, pixels in [0, 1] (e.g. zeros,
        mid-gray or a mean face broadcast to T rows).

    Returns:
      `MIFaceResult` with `latents=None`; `images` are in [0, 1].

    Raises:
      TypeError, ValueError: on bad arguments, naming them.

    Examples:
      >>> w = jnp.stack([jnp.ones(4), -jnp.ones(4)], axis=1)  # [D=4, K=2]
      >>> apply_fn = lambda w, x: 4.0 * (x.reshape(x.shape[0], -1) - 0.5) @ w
      >>> res = mi_face_pixels(apply_fn, w, [0, 1], 0, MIFaceConfig(max_iters=20, lr=1.0),
      ...                      init=jnp.full((2, 2, 2, 1), 0.5))  # mid-gray start
      >>> res.images[:, 0, 0, 0], res.iterations
      (array([1., 0.], dtype=float32), array([20, 20], dtype=int32))
    """
    start = _check_start("init", init, _check_targets(targets).shape[0])
    if float(jnp.min(start)) < 0.0 or float(jnp.max(start)) > 1.0:
        raise ValueError(f"init must hold pixels in [0, 1], got values in "
                         f"[{float(jnp.min(start))}, {float(jnp.max(start))}].")
    return _run(apply_fn, None, params, targets, key, config, start, latent=False)


def mi_face_latent(
    apply_fn: Callable[[PyTree, jax.Array], jax.Array],
    params: PyTree,
    targets: jax.typing.ArrayLike,
    key: jax.Array | int,
    config: MIFaceConfig = MIFaceConfig(),
    *,
    decode: Callable[[jax.Array], jax.Array],
    z_init: jax.typing.ArrayLike,
) -> MIFaceResult:
    """MI-Face in the latent space of a generator, for every target at once.

    The attack descends the cost of `decode(z)` over z, clipping z to
    [-latent_clip, latent_clip] (the start included) after every step. Smoothing noise is
    added to the decoded image, in pixel units.

    Args:
      apply_fn: pure `apply_fn(params, x [b, *image_shape]) -> logits [b, num_classes]`
        (see `mi_face_pixels`).
      params: the model parameters (a pytree).
      targets: `[T]` integer class indices in [0, num_classes).
      key: typed key or int seed (see `mi_face_pixels`).
      config: attack settings.
      decode: pure, differentiable `decode(z [b, k]) -> images [b, *image_shape]` (e.g.
        `lambda z: pca.decode(z, clip=False)`); static under `jit`.
      z_init: `[T, k]` floating start latents (e.g. zeros, the prior's mean).

    Returns:
      `MIFaceResult`: `latents` `[T, k]` and `images = decode(latents)`.

    Raises:
      TypeError, ValueError: on bad arguments, naming them.
    """
    if not callable(decode):
        raise TypeError(f"decode must be callable, got {type(decode).__name__}.")
    start = _check_start("z_init", z_init, _check_targets(targets).shape[0])
    if start.ndim != 2:
        raise ValueError(f"z_init must have shape [T, k], got shape {tuple(start.shape)}.")
    return _run(apply_fn, decode, params, targets, key, config, start, latent=True)

