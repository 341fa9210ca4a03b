"""Flax NNX models and the bridge from an NNX module to a pure `apply_fn(params, x)`."""

from rpjax.models._functional import as_apply_fn
from rpjax.models.cnn import FaceCNN
from rpjax.models.mlp import TabularMLP

__all__ = ["FaceCNN", "TabularMLP", "as_apply_fn"]
