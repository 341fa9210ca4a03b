"""The paper's numbers the experiments are compared with, defined once.

Every value is what the paper reports; the experiments' reports and plots cite them from here
and `summary.json` records them under each experiment's `paper` key.
"""

from __future__ import annotations

from typing import Any

# Experiment A (insurance, RAP): mean certified radius (standardized units) per sigma, and the
# median compatible BMI interval (BMI points) of the base model and of the RP release.
RAP: dict[str, Any] = {
    "mean_radius_std": {"1.0": 0.56, "2.0": 0.63, "3.0": 0.65},
    "median_interval_bmi": {"base": 23.50, "rp": 29.96},
}

# The claim the adaptive attackers test (insurance): inside the certified ball an adversary's
# distinguishing advantage is at most alpha / 2 (a formula, no measured number in the paper).
ATTACKS: dict[str, Any] = {"advantage_inside_certified_ball": "alpha/2"}

# Experiment B (CelebA, FaceNet64): BREP-MI attack success, undefended and against RP.
INVERSION: dict[str, Any] = {"undefended_asr": 0.73, "rp": [{"sigma": 0.03, "asr": 0.44},
                                                            {"sigma": 0.1, "asr": 0.04}]}

# The v2 privacy-utility frontier (CelebA): accuracy at a BREP-MI ASR.
FRONTIER_POINTS: list[dict[str, Any]] = [
    {"method": "rp", "label": "paper: RP (CelebA)", "accuracy": 0.984, "asr": 0.21},
    {"method": "dpsgd", "label": "paper: DP-SGD (CelebA)", "accuracy": 0.617, "asr": 0.21},
]

# The v2 scope boundary on distillation (a sentence, no number).
DISTILLATION = ("v2: training a student on the RP model's released labels still copies the "
                "function; RP does not stop function-level extraction.")
