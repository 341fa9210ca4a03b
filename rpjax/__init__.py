"""rpjax: a JAX certification engine for Robust Privacy (randomized smoothing at inference).

Public API (see DESIGN.md): `sample_counts`, `certify`, `predict`, `always_label`, the result
types `Certificates` and `Prediction`, `ABSTAIN`, and the `stats` module.
"""

from rpjax import noise, smoothing, stats
from rpjax.certify import (
    ABSTAIN,
    Certificates,
    Prediction,
    SmoothingConfig,
    always_label,
    certify,
    predict,
)
from rpjax.smoothing import AffineFirst, ApplyFn, sample_counts
from rpjax.stats import SampleSizeWarning

__version__ = "0.1.0"

__all__ = [
    "ABSTAIN",
    "AffineFirst",
    "ApplyFn",
    "Certificates",
    "Prediction",
    "SampleSizeWarning",
    "SmoothingConfig",
    "__version__",
    "always_label",
    "certify",
    "noise",
    "predict",
    "sample_counts",
    "smoothing",
    "stats",
]
