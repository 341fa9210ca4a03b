"""Flax NNX models, the bridge from an NNX module to a pure `apply_fn(params, x)`, and the optax
training loop (`optimize`, with a pluggable gradient step) the base classifiers, DP-SGD and the
attacker's VAE prior are trained with."""

from rpjax._src.models.cnn import FaceCNN
from rpjax._src.models.functional import as_apply_fn
from rpjax._src.models.mlp import TabularMLP
from rpjax._src.models.train import (
    GradStep,
    TrainConfig,
    TrainResult,
    accuracy,
    fit_classifier,
    optimize,
)

__all__ = [
    "FaceCNN",
    "GradStep",
    "TabularMLP",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "as_apply_fn",
    "fit_classifier",
    "optimize",
]
