"""BREP-MI: label-only boundary-repulsion model inversion (Kahla et al., CVPR 2022).

The attacker searches the latent space of a generator prior for an input the target releases
as a given identity, then walks away from the class boundary: each iteration samples points
on a sphere of radius r around the current latent, queries their released labels, and steps
towards the sphere points labelled as the target and away from the others (an estimate of
the direction of increasing class membership). When more than 75% of the sphere is inside the
class the radius grows by 1.3; a target stops after `patience` iterations without growth or
at the total cap. All targets run together in one compiled `lax.while_loop`; every label
comes from a pluggable `LabelRelease` (the base model, Robust Privacy, a baseline), and an
abstention counts as "not the target".

The release protocol is `rpjax.privacy.LabelRelease`: the release's noise comes from its own
secret and its answer counter, which the attack threads through the initial search and the
loop carry (`release.fn(release.params, x, state) -> (labels, state)`). The attacker's `key`
drives only the attacker's own sampling (candidate latents, sphere directions) and never
reaches the release. `brep_mi` starts from `release_state` (default: a fresh release) and
returns the counter after its queries, so several attacks can be chained against one
deployed release.

The compiled loop takes `release.fn` as a static argument and `release.params` as a traced
one, so releases that differ only in their float settings or secret (a sweep over sigma)
share one compiled program.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rpjax._src import validate as _validate
from rpjax.privacy import LabelRelease, initial_state


@dataclasses.dataclass(frozen=True, kw_only=True)
class BrepConfig:
    """BREP-MI settings; the defaults are the paper's, except the CPU-friendly caps.

    Attributes:
      num_points: sphere points per iteration (32).
      r0: initial sphere radius in latent units (2).
      growth: radius growth factor (1.3) when more than `inside_fraction` (0.75) of the sphere
        is released as the target.
      max_step: step size is min(r / 3, max_step) (3).
      latent_clip: latents are clipped to [-latent_clip, latent_clip] (1.5).
      patience: a target stops after this many iterations without growth (1000 in the paper).
      max_iters: total iteration cap (for CPU runs).
      init_candidates: random latents queried to find each target's initial point.
    """

    num_points: int = 32
    r0: float = 2.0
    growth: float = 1.3
    inside_fraction: float = 0.75
    max_step: float = 3.0
    latent_clip: float = 1.5
    patience: int = 1000
    max_iters: int = 200
    init_candidates: int = 1000

    def __post_init__(self):
        _validate.integer("num_points", self.num_points, minimum=1)
        _validate.positive("r0", self.r0)
        if _validate.real("growth", self.growth) <= 1.0:
            raise ValueError(f"growth must be > 1, got growth={self.growth}.")
        _validate.open_unit_interval("inside_fraction", self.inside_fraction)
        _validate.positive("max_step", self.max_step)
        _validate.positive("latent_clip", self.latent_clip)
        _validate.integer("patience", self.patience, minimum=1)
        _validate.integer("max_iters", self.max_iters, minimum=0)
        _validate.integer("init_candidates", self.init_candidates, minimum=1)


class BrepResult(NamedTuple):
    """Per-target outcome of `brep_mi` (leading axis T, NumPy arrays).

    Attributes:
      latents: `[T, k]` final latents; initial: `[T, k]` the initial points.
      found: `[T]` bool, whether an initial point released as the target was found.
      radius: `[T]` final sphere radius; iterations: `[T]` iterations run.
      queries: `[T]` label queries spent (initial search shared equally); forward_passes:
        `[T]` base-model forward passes (queries x the release's cost).
      release_state: uint32 `[2]` the release's answer counter after the attack (pass it as
        `release_state` to the next attack on the same release). It counts every query sent,
        including the sphere points of targets that have already stopped.
    """

    latents: np.ndarray
    initial: np.ndarray
    found: np.ndarray
    radius: np.ndarray
    iterations: np.ndarray
    queries: np.ndarray
    forward_passes: np.ndarray
    release_state: np.ndarray


def _initial_points(query, release_params, targets, key, config, k, batch, release_state):
    """Queries `init_candidates` random latents (in batches; exactly those, no padding)."""
    z = jax.random.normal(jax.random.fold_in(key, 0), (config.init_candidates, k))
    z = jnp.clip(z, -config.latent_clip, config.latent_clip)
    labels = []
    for start in range(0, config.init_candidates, batch):
        out, release_state = query(release_params, z[start : start + batch], release_state)
        labels.append(out)
    labels = jnp.concatenate(labels)
    hit = labels[None, :] == targets[:, None]  # [T, N0]
    found = hit.any(axis=1)
    first = jnp.argmax(hit, axis=1)
    return jnp.where(found[:, None], z[first], 0.0), found, release_state


def _walk(release_fn, decode, release_params, targets, z0, found, key, release_state, config):
    num, k = z0.shape
    p = config.num_points

    def cond(carry):
        it, _, _, _, done, _, _, _ = carry
        return (it < config.max_iters) & ~jnp.all(done)

    def body(carry):
        it, z, r, stale, done, iters, queries, rstate = carry
        kt = jax.random.fold_in(key, it)
        d = jax.random.normal(jax.random.fold_in(kt, 0), (num, p, k))
        d = d / jnp.linalg.norm(d, axis=-1, keepdims=True)
        sphere = jnp.clip(z[:, None] + r[:, None, None] * d, -config.latent_clip,
                          config.latent_clip)
        sphere_labels, rstate = release_fn(release_params, decode(sphere.reshape(num * p, k)),
                                           rstate)
        inside = sphere_labels.reshape(num, p) == targets[:, None]
        phi = jnp.where(inside, 1.0, -1.0)
        g = jnp.mean(phi[..., None] * d, axis=1)
        g = g / jnp.maximum(jnp.linalg.norm(g, axis=-1, keepdims=True), 1e-12)
        step = jnp.minimum(r / 3.0, config.max_step)
        cand = jnp.clip(z + step[:, None] * g, -config.latent_clip, config.latent_clip)
        cand_labels, rstate = release_fn(release_params, decode(cand), rstate)
        keep = cand_labels == targets
        active = ~done
        z = jnp.where((active & keep)[:, None], cand, z)
        grow = active & (inside.mean(axis=1) > config.inside_fraction)
        r = jnp.where(grow, r * config.growth, r)
        stale = jnp.where(grow, 0, stale + active.astype(jnp.int32))
        iters = iters + active.astype(jnp.int32)
        queries = queries + active.astype(jnp.int32) * (p + 1)
        done = done | (stale >= config.patience)
        return it + 1, z, r, stale, done, iters, queries, rstate

    zeros = jnp.zeros(num, jnp.int32)
    carry = (0, z0, jnp.full(num, config.r0, jnp.float32), zeros, ~found, zeros, zeros,
             release_state)
    _, z, r, _, _, iters, queries, release_state = jax.lax.while_loop(cond, body, carry)
    return z, r, iters, queries, release_state


_WALK = jax.jit(_walk, static_argnums=(0, 1, 8))


@functools.lru_cache(maxsize=32)
def _query(release_fn, decode):
    return jax.jit(lambda params, z, state: release_fn(params, decode(z), state))


def _release_state(value) -> jax.Array:
    if value is None:
        return initial_state()
    arr = np.asarray(value)
    if arr.shape != (2,) or arr.dtype != np.uint32:
        raise ValueError(f"release_state must be a uint32 [2] answer counter (from "
                         f"initial_state() or a previous BrepResult.release_state), got "
                         f"dtype {arr.dtype} and shape {arr.shape}.")
    return jnp.asarray(arr)


def brep_mi(
    release: LabelRelease,
    decode: Callable[[jax.Array], jax.Array],
    targets: jax.typing.ArrayLike,
    key: jax.Array | int,
    config: BrepConfig = BrepConfig(),
    *,
    latent_dim: int,
    init_batch: int = 250,
    release_state: jax.typing.ArrayLike | None = None,
) -> BrepResult:
    """Runs BREP-MI against `release` for every target identity at once.

    Args:
      release: what the attacker can query (label only; -1 = abstain = not the target).
      decode: the generator, `decode(z [b, latent_dim]) -> images [b, *input_shape]`; pure.
      targets: `[T]` target class indices.
      key: typed key or int seed of the attacker's own sampling (candidate latents, sphere
        directions). It never reaches the release: the release's noise comes from its secret
        and its answer counter.
      config: attack settings.
      latent_dim: the generator's latent dimension k.
      init_batch: latents per release call while searching initial points.
      release_state: the release's answer counter before the attack, uint32 `[2]` (None:
        `initial_state()`, a release that has answered nothing). Pass the previous attack's
        `BrepResult.release_state` to keep querying the same deployed release.

    Returns:
      `BrepResult`; decode `latents` to get the reconstructions.
    """
    key = _validate.key("key", key)
    latent_dim = _validate.integer("latent_dim", latent_dim, minimum=1)
    targets = jnp.asarray(targets, jnp.int32)
    if targets.ndim != 1 or targets.shape[0] == 0:
        raise ValueError(f"targets must be a non-empty [T] vector, got shape {targets.shape}.")
    init_batch = _validate.integer("init_batch", init_batch, minimum=1)
    state = _release_state(release_state)
    query = _query(release.fn, decode)
    z0, found, state = _initial_points(query, release.params, targets,
                                       jax.random.fold_in(key, 0), config, latent_dim,
                                       init_batch, state)
    z, r, iters, queries, state = _WALK(release.fn, decode, release.params, targets, z0, found,
                                        jax.random.fold_in(key, 1), state, config)
    init_queries = config.init_candidates / targets.shape[0]
    queries = np.asarray(queries, np.float64) + init_queries
    return BrepResult(
        latents=np.asarray(z), initial=np.asarray(z0), found=np.asarray(found),
        radius=np.asarray(r), iterations=np.asarray(iters), queries=queries,
        forward_passes=queries * release.forward_passes,
        release_state=np.asarray(state),
    )
