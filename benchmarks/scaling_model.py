"""The model and data of `bench_scaling.py` (`rpjax certify --model
benchmarks/scaling_model.py:mlp`).

A fixed-seed ten-class MLP on `[DIM]` inputs (DIM -> HIDDEN -> HIDDEN -> CLASSES, ReLU), in
plain JAX: about 0.6 MFLOP per forward pass, enough compute per noisy sample that the overhead
of splitting the samples over devices or processes is visible beside it, and small enough that
the full benchmark runs in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

DIM = 64
HIDDEN = 512
CLASSES = 10
SEED = 0


def _params() -> dict[str, jnp.ndarray]:
    """He-initialized weights from `numpy.random.default_rng(SEED)` (fixed: every process that
    imports the factory builds the same model)."""
    rng = np.random.default_rng(SEED)
    sizes = (DIM, HIDDEN, HIDDEN, CLASSES)
    params = {}
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        params[f"w{i}"] = jnp.asarray(rng.normal(size=(a, b)) * np.sqrt(2.0 / a), jnp.float32)
        params[f"b{i}"] = jnp.zeros((b,), jnp.float32)
    return params


def mlp_apply(params: dict[str, jnp.ndarray], x: jnp.ndarray) -> jnp.ndarray:
    """Logits `[b, CLASSES]` of inputs `x` `[b, DIM]`."""
    h = x.reshape(x.shape[0], -1)
    h = jax.nn.relu(h @ params["w0"] + params["b0"])
    h = jax.nn.relu(h @ params["w1"] + params["b1"])
    return h @ params["w2"] + params["b2"]


def mlp() -> tuple:
    """`(apply_fn, params)` of the fixed-seed MLP (the `rpjax certify` factory)."""
    return mlp_apply, _params()


def write_data(path: str, num: int, *, seed: int = 1) -> str:
    """Writes `num` standard-normal inputs `x` `[num, DIM]` (float32) and the model's own clean
    predictions as labels `y` `[num]` to the .npz `path`; returns `path`."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num, DIM)).astype(np.float32)
    y = np.asarray(jnp.argmax(mlp_apply(_params(), jnp.asarray(x)), axis=1), np.int64)
    np.savez(path, x=x, y=y)
    return path
