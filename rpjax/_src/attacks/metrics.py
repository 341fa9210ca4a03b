"""Attack and utility metrics for model inversion.

- Attack success rate (ASR): the evaluation classifier's top-1 (and top-5) label of each
  reconstruction equals the attacked identity.
- Nearest-private-image distance: l2 distance, in the evaluator's feature space, from a
  reconstruction to the closest private training image of the attacked identity (a second
  measure, since an evaluator also accepts adversarial noise).
- Utility of a release on held-out images: accuracy with abstentions counted as errors, the
  abstention rate, and the paper's metric (the single most confident image per identity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def top_k_hits(logits: jax.typing.ArrayLike, targets: jax.typing.ArrayLike, k: int) -> np.ndarray:
    """`[T]` bool: whether `targets[t]` is among the k largest of `logits[t]` ([T, C])."""
    logits = np.asarray(logits)
    targets = np.asarray(targets)
    if logits.ndim != 2 or targets.shape != (logits.shape[0],):
        raise ValueError(f"logits must be [T, C] and targets [T], got {logits.shape} and "
                         f"{targets.shape}.")
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == targets[:, None]).any(axis=1)


def attack_success(evaluator: Callable[[jax.Array], jax.Array], images: jax.typing.ArrayLike,
                   targets: jax.typing.ArrayLike, *,
                   valid: jax.typing.ArrayLike | None = None) -> dict[str, np.ndarray]:
    """Top-1 and top-5 success of reconstructions under the evaluation classifier.

    Args:
      evaluator: `evaluator(images [T, ...]) -> logits [T, C]`.
      images: `[T, ...]` reconstructions.
      targets: `[T]` attacked identities (in the evaluator's label space).
      valid: optional `[T]` bool; False (e.g. no initial point was found) counts as failure.

    Returns:
      `{"top1": [T] bool, "top5": [T] bool}`.
    """
    logits = np.asarray(evaluator(jnp.asarray(images)))
    top1, top5 = top_k_hits(logits, targets, 1), top_k_hits(logits, targets, 5)
    if valid is not None:
        valid = np.asarray(valid, bool)
        top1, top5 = top1 & valid, top5 & valid
    return {"top1": top1, "top5": top5}


def nearest_private_distance(features: Callable[[jax.Array], jax.Array],
                             images: jax.typing.ArrayLike, targets: jax.typing.ArrayLike,
                             private_images: jax.typing.ArrayLike,
                             private_labels: jax.typing.ArrayLike) -> np.ndarray:
    """`[T]` l2 distance in feature space to the nearest private image of each target."""
    f_rec = np.asarray(features(jnp.asarray(images)), np.float64)
    f_priv = np.asarray(features(jnp.asarray(private_images)), np.float64)
    labels = np.asarray(private_labels)
    out = np.empty(len(f_rec))
    for t, (f, target) in enumerate(zip(f_rec, np.asarray(targets), strict=True)):
        own = f_priv[labels == target]
        out[t] = np.sqrt(((own - f) ** 2).sum(axis=1)).min() if len(own) else np.nan
    return out


def release_utility(labels: jax.typing.ArrayLike, true: jax.typing.ArrayLike,
                    confidence: jax.typing.ArrayLike | None = None) -> dict[str, Any]:
    """Accuracy of released labels (-1 = abstain) on held-out images.

    Args:
      labels: `[N]` released labels; true: `[N]` identities.
      confidence: optional `[N]` base-model confidence in the true class; with it, the paper's
        metric is reported too: accuracy on the single most confident image per identity.

    Returns:
      `accuracy` (abstentions count as errors), `abstain_rate`, `accuracy_released`, and
      `paper_accuracy` when `confidence` is given.
    """
    labels, true = np.asarray(labels), np.asarray(true)
    released = labels != -1
    out = {
        "accuracy": float(np.mean(labels == true)),
        "abstain_rate": float(np.mean(~released)),
        "accuracy_released": float(np.mean(labels[released] == true[released]))
        if released.any() else float("nan"),
    }
    if confidence is not None:
        confidence = np.asarray(confidence)
        best = [np.flatnonzero(true == c)[np.argmax(confidence[true == c])]
                for c in np.unique(true)]
        out["paper_accuracy"] = float(np.mean(labels[best] == true[best]))
    return out
