"""Baselines Robust Privacy is compared with: DP-SGD training (with its accountant) and label
releases (randomized response, random abstention, output noise)."""

from rpjax._src.baselines.dpsgd import (
    DPSGDConfig,
    calibrate_noise_multiplier,
    dpsgd_epsilon,
    fit_dpsgd,
)
from rpjax._src.baselines.labels import (
    output_noise_release,
    random_abstain_release,
    randomized_response_release,
)

__all__ = [
    "DPSGDConfig",
    "calibrate_noise_multiplier",
    "dpsgd_epsilon",
    "fit_dpsgd",
    "output_noise_release",
    "random_abstain_release",
    "randomized_response_release",
]
