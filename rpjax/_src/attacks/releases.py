"""Label releases an attacker can query, as traceable functions (usable inside `jit`).

The protocol is `rpjax._src.privacy.release`: a `LabelRelease` maps a batch of inputs and the
release's answer counter to released labels (-1 = abstain) and the advanced counter,
`fn(x [M, ...], state) -> (labels [M] int32, state)`. A release's noise comes from its own
`Secret` and the counter, never from the querier: there is no key argument. The label-only
attacks carry the counter through their compiled loops (start from `initial_state()`).

The Robust Privacy releases here are `RobustPrivacyRelease(...).traced()`, so an attack
against them gets exactly the answers the deployed release (`RobustPrivacyRelease.query`)
gives for the same secret and the same sequence of queries.
"""

from __future__ import annotations

import hashlib
from typing import Any

import jax.numpy as jnp

from rpjax._src import smoothing
from rpjax._src.privacy.release import (
    ABSTAIN,
    LabelRelease,
    ReleaseConfig,
    RobustPrivacyRelease,
    Secret,
    advance,
    initial_state,
    predict_threshold_table,
    row_keys,
)

__all__ = [
    "ABSTAIN",
    "LabelRelease",
    "Secret",
    "advance",
    "base_release",
    "experiment_secret",
    "initial_state",
    "predict_threshold_table",
    "rp_always_release",
    "rp_certify_release",
    "row_keys",
    "rp_predict_release",
]


def experiment_secret(*parts: Any) -> Secret:
    """A `Secret` derived deterministically from `parts` (e.g. seed, name, sigma, n).

    For reproducible experiments only: anyone who knows the parts knows the secret. A
    deployment uses `Secret.generate()` (256 bits from the OS).

    Example: `experiment_secret(0, "rp_predict", 0.1, 10)` is
    `Secret(sha256(b"rpjax-experiment/0/rp_predict/0.1/10").digest())`.
    """
    text = "/".join(["rpjax-experiment", *(str(p) for p in parts)])
    return Secret(hashlib.sha256(text.encode()).digest())


def base_release(apply_fn: smoothing.ApplyFn, params: Any) -> LabelRelease:
    """The undefended model: the argmax label, one forward pass per query (no randomness;
    the counter is advanced like any release's)."""

    def fn(x, state):
        labels = jnp.argmax(apply_fn(params, x), axis=-1).astype(jnp.int32)
        return labels, advance(state, x.shape[0])

    return LabelRelease("none", fn, 1, {})


def _rp(apply_fn, params, name, secret, **config) -> LabelRelease:
    release = RobustPrivacyRelease(apply_fn, params, ReleaseConfig(**config), secret=secret)
    return release.traced(name)


def rp_predict_release(apply_fn: smoothing.ApplyFn, params: Any, *, sigma: float, n: int,
                       alpha: float, num_classes: int, secret: Secret | None = None,
                       noise: str = "fresh") -> LabelRelease:
    """Robust Privacy via PREDICT: n noisy passes per query, abstain (-1) unless significant.

    `RobustPrivacyRelease(apply_fn, params, ReleaseConfig(mode="predict", ...),
    secret=secret).traced("rp_predict")`.

    Args:
      apply_fn, params: the base model.
      sigma: noise std in input units (pixels in [0, 1] for images).
      n: samples per query; alpha: the test's level; num_classes: length of the counts.
      secret: the release's noise secret (None: `Secret.generate()`, from the OS).
      noise: "fresh" (new noise for every answer) or "consistent" (keyed by the input).
    """
    return _rp(apply_fn, params, "rp_predict", secret, sigma=sigma, n=n, alpha=alpha,
               num_classes=num_classes, mode="predict", noise=noise)


def rp_always_release(apply_fn: smoothing.ApplyFn, params: Any, *, sigma: float, n: int,
                      num_classes: int, secret: Secret | None = None,
                      noise: str = "fresh") -> LabelRelease:
    """Robust Privacy, always-label mode: the Monte Carlo top class, never abstains (no
    certificate). Arguments as `rp_predict_release`."""
    return _rp(apply_fn, params, "rp_always", secret, sigma=sigma, n=n,
               num_classes=num_classes, mode="always_label", noise=noise)


def rp_certify_release(apply_fn: smoothing.ApplyFn, params: Any, *, sigma: float, n: int,
                       n0: int, alpha: float, num_classes: int, secret: Secret | None = None,
                       noise: str = "fresh") -> LabelRelease:
    """Robust Privacy via CERTIFY: n0 selection and n estimation samples per query; the
    selected class if its certificate holds at level alpha, else abstain (-1). The radius is
    not released. Other arguments as `rp_predict_release`."""
    return _rp(apply_fn, params, "rp_certify", secret, sigma=sigma, n=n, n0=n0, alpha=alpha,
               num_classes=num_classes, mode="certify", noise=noise)
