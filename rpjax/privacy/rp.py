"""(R, alpha)-Robust Privacy releases and certificates.

A release maps inputs to a label (or an abstention) and a certified radius. Under
`smoothed_release`, an input whose release carries radius R has (R, alpha)-Robust Privacy:
with probability at least 1 - alpha over the noise the released label is the smoothed
classifier's label at every x' with ||x' - x||_2 < R, and any adversary who sees the release
has advantage at most alpha / 2 in telling x from any such x' (PAPER.md section 1).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rpjax import _validate
from rpjax.certify import always_label, certify, predict
from rpjax.smoothing import ApplyFn

MODES = ("certify", "predict", "always_label")


def distinguishing_advantage_bound(alpha: float) -> float:
    """Largest advantage of any adversary between x and x' inside the certified ball: alpha/2."""
    return 0.5 * _validate.open_unit_interval("alpha", alpha)


def base_release(apply_fn: ApplyFn, params: Any):
    """The undefended model: labels are the base argmax, radii are 0 (no certificate)."""
    fn = jax.jit(apply_fn)

    def release(xs: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        del ids
        labels = np.asarray(jnp.argmax(fn(params, jnp.asarray(xs)), axis=-1))
        return labels.astype(np.int64), np.zeros(labels.shape, np.float64)

    return release


def smoothed_release(
    apply_fn: ApplyFn,
    params: Any,
    key: jax.Array | int,
    *,
    sigma: float,
    n: int,
    alpha: float,
    num_classes: int,
    n0: int = 100,
    mode: str = "certify",
    batch_size: int | None = 4096,
    chunk_size: int | None = None,
):
    """A Robust Privacy release built on `certify` (default), `predict` or `always_label`.

    Args:
      apply_fn, params: the base model.
      key: typed key or int seed; each call uses it with the caller's ids.
      sigma, n, alpha, num_classes, n0: smoothing settings (see `rpjax.certify`).
      mode: "certify" (label and radius), "predict" (label, radius 0) or "always_label"
        (Monte Carlo top class, uncertified, radius 0).
      batch_size: inputs per compiled call (padding keeps one compilation).
      chunk_size: noisy copies per input per step (see `rpjax.sample_counts`).

    Returns:
      `release(xs [M, d], ids [M]) -> (labels [M] int64, radii [M] float64 input units)`.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got mode={mode!r}.")
    common = dict(sigma=sigma, n=n, num_classes=num_classes, chunk_size=chunk_size)

    def release(xs: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bs = None if batch_size is None else min(batch_size, len(xs))
        if mode == "certify":
            cert = certify(apply_fn, params, xs, key, alpha=alpha, n0=n0, ids=ids,
                           batch_size=bs, **common)
            return cert.label.astype(np.int64), cert.radius
        if mode == "predict":
            labels = predict(apply_fn, params, xs, key, alpha=alpha, ids=ids, batch_size=bs,
                             **common)
        else:
            labels = always_label(apply_fn, params, xs, key, ids=ids, batch_size=bs,
                                  **common).label
        return np.asarray(labels, np.int64), np.zeros(len(xs), np.float64)

    return release
