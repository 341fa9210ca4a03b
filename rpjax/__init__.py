"""rpjax: a JAX certification engine for Robust Privacy (randomized smoothing at inference).

The public API is what this package and its public subpackages (`rpjax.stats`,
`rpjax.privacy`, `rpjax.attacks`, `rpjax.baselines`, `rpjax.models`, `rpjax.data`,
`rpjax.experiments`) list in their `__all__`; everything under `rpjax._src` is private and may
change. See `docs/design.md`.

One certification is one typed plan: a `SmoothingConfig` (the statistics), a rule (`Fixed()`,
`DecideAt(radius)`, `RadiusBudget(tolerance)`: the question) and a `Placement` (devices, chunk
and batch sizes, progress: speed only).
"""

from rpjax import stats
from rpjax._src.certify import ABSTAIN, Certificates, Prediction, always_label, certify, predict
from rpjax._src.noise import GAUSSIAN, NoiseDistribution, noise_samples
from rpjax._src.plan import DecideAt, Fixed, Placement, RadiusBudget, SmoothingConfig
from rpjax._src.smoothing import (
    AffineFirst,
    RowDependenceError,
    counting_program,
    sample_counts,
)

__version__ = "0.1.0"

__all__ = [
    "ABSTAIN",
    "GAUSSIAN",
    "AffineFirst",
    "Certificates",
    "DecideAt",
    "Fixed",
    "NoiseDistribution",
    "Placement",
    "Prediction",
    "RadiusBudget",
    "RowDependenceError",
    "SmoothingConfig",
    "__version__",
    "always_label",
    "certify",
    "counting_program",
    "noise_samples",
    "predict",
    "sample_counts",
    "stats",
]
