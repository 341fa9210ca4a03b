"""Small analytic base classifiers shared by the tests."""

import jax.numpy as jnp
import numpy as np


def linear_apply(params, x):
    """Two-class linear classifier: class 1 iff w.x + b > 0. params = (w [d], b [])."""
    w, b = params
    z = x @ w + b
    return jnp.stack([-z, z], axis=-1)


def bucket_apply(edges, x):
    """Class k = number of `edges` below x[:, 0]: a histogram of the noise, one bin a class."""
    k = jnp.sum(x[:, :1] > edges[None, :], axis=1)
    return -jnp.abs(k[:, None] - jnp.arange(edges.shape[0] + 1)[None, :]).astype(jnp.float32)


def random_linear(d, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d).astype(np.float32)
    return jnp.asarray(w), jnp.float32(rng.normal())


def linear_first(params, x):
    """The affine part of `linear_apply`: z = w.x + b, `[b, 1]`."""
    w, b = params
    return (x @ w + b)[:, None]


def linear_rest(params, z):
    """The rest of `linear_apply`: logits (-z, z)."""
    del params
    return jnp.concatenate([-z, z], axis=-1)


def relu_first(params, x):
    """Not affine: ReLU(w.x + b). Must be rejected as an `AffineFirst.first`."""
    return jnp.maximum(linear_first(params, x), 0.0)
