"""Flax NNX models (among them the ResNets of Cohen et al.'s benchmarks), the bridge from an
NNX module to a pure `apply_fn(params, x)`, and the optax training loop (`optimize`, with a
pluggable gradient step) the base classifiers, DP-SGD and the attacker's VAE prior are trained
with."""

from rpjax._src.models.cnn import FaceCNN
from rpjax._src.models.functional import as_apply_fn
from rpjax._src.models.mlp import TabularMLP
from rpjax._src.models.resnet import cifar_resnet, imagenet_resnet
from rpjax._src.models.train import TrainConfig, accuracy, fit_classifier, optimize

__all__ = [
    "FaceCNN",
    "TabularMLP",
    "TrainConfig",
    "accuracy",
    "as_apply_fn",
    "cifar_resnet",
    "fit_classifier",
    "imagenet_resnet",
    "optimize",
]
