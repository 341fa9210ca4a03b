"""What a Robust Privacy certificate says, and the labelling functions RAP sweeps analyse.

What holds (Cohen et al. 2019, Theorem 1, with CERTIFY's Clopper-Pearson bound): with
probability at least 1 - alpha over the sampling noise, the *ideal* smoothed classifier
`g(x) = argmax_c P(f(x + eps) = c)` is constant on the l2 ball of the certified radius around
x. So g's label cannot tell x apart from any point of that ball.

What does not hold: that a *release* built on Monte Carlo estimates of g (PREDICT,
always-label, CERTIFY with or without its radius) cannot tell them apart. Its answers are
random, and their distribution depends on the class probabilities, which vary inside the
ball: abstentions, repeated fresh-noise answers and released radii all locate x. The paper's
"advantage at most alpha / 2" does not hold for such a release. `rpjax.privacy.advantage_bound`
computes a bound that does (the TV distance between the answers at x and at any x' within
delta), and `rpjax.privacy.RobustPrivacyRelease` is the hardened release (label only, secret
noise key, per-subject budget). `docs/guarantee.md` says what each covers.

The two functions here are analysis tools of the model owner (the RAP / APE intervals of
`rpjax.privacy.attribute_intervals`), not releases: they do not follow the release protocol
(`rpjax.privacy.LabelRelease`: noise from the release's secret and answer counter), since
`certified_labels` takes its key and example ids from its caller and returns certified radii.
Never expose them to a querier; to release labels use `RobustPrivacyRelease` (or its
`traced()` form for attack loops).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rpjax._src import decision as _decision
from rpjax._src.certify import always_label, certify, predict
from rpjax._src.plan import Placement, SmoothingConfig
from rpjax._src.smoothing import ApplyFn

MODES = _decision.MODES


def base_labels(apply_fn: ApplyFn, params: Any):
    """The undefended model as an owner's labelling function: base argmax labels, radii 0.

    An analysis tool for attribute sweeps, not a release (the undefended model as a release is
    `rpjax.privacy.base_release`).

    Returns:
      `labels_fn(xs [M, d], ids [M]) -> (labels [M] int64, radii [M] float64 zeros)`.
    """
    fn = jax.jit(apply_fn)

    def labels_fn(xs: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        del ids
        labels = np.asarray(jnp.argmax(fn(params, jnp.asarray(xs)), axis=-1))
        return labels.astype(np.int64), np.zeros(labels.shape, np.float64)

    return labels_fn


def certified_labels(
    apply_fn: ApplyFn,
    params: Any,
    key: jax.Array | int,
    *,
    num_classes: int,
    config: SmoothingConfig,
    mode: str = "certify",
    placement: Placement | None = None,
):
    """The smoothed classifier's Monte Carlo labels (and radii) as an owner's analysis function.

    Passing one id per person for every point of an attribute sweep gives common random
    numbers along the sweep (a deterministic, piecewise-constant function that bisection can
    refine). This is not a release: the caller chooses the key and ids and sees the radii; see
    `rpjax.privacy.RobustPrivacyRelease`.

    Args:
      apply_fn, params: the base model.
      key: typed key or int seed, used with the caller's ids.
      num_classes, config: as in `rpjax.certify`.
      mode: "certify" (label and radius), "predict" (label, radius 0) or "always_label"
        (Monte Carlo top class, uncertified, radius 0).
      placement: as in `rpjax.certify` (default `Placement(batch_size=4096)`: inputs per
        compiled call, padding keeps one compilation); never changes a label.

    Returns:
      `labels_fn(xs [M, d], ids [M]) -> (labels [M] int64, radii [M] float64 input units)`.
    """
    _decision.mode(mode)
    placement = Placement(batch_size=4096) if placement is None else placement
    entry = {"certify": certify, "predict": predict, "always_label": always_label}[mode]

    def labels_fn(xs: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        batch = placement.batch_size
        place = placement if batch is None else dataclasses.replace(
            placement, batch_size=min(batch, len(xs)))
        out = entry(apply_fn, params, xs, key, num_classes=num_classes, config=config,
                    placement=place, ids=ids)
        radii = out.radius if mode == "certify" else np.zeros(len(xs), np.float64)
        return np.asarray(out.label, np.int64), radii

    return labels_fn
