"""Flax NNX models, the bridge from an NNX module to a pure `apply_fn(params, x)`, and the optax
training loop."""

from rpjax._src.models.cnn import FaceCNN
from rpjax._src.models.functional import as_apply_fn
from rpjax._src.models.mlp import TabularMLP
from rpjax._src.models.train import TrainConfig, TrainResult, accuracy, fit_classifier

__all__ = [
    "FaceCNN",
    "TabularMLP",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "as_apply_fn",
    "fit_classifier",
]
