"""rpjax: a JAX certification engine for Robust Privacy (randomized smoothing at inference).

The public API is what this package and its public subpackages (`rpjax.stats`,
`rpjax.privacy`, `rpjax.attacks`, `rpjax.baselines`, `rpjax.models`, `rpjax.data`,
`rpjax.experiments`) list in their `__all__`; everything under `rpjax._src` is private and may
change. See `docs/design.md`.
"""

from rpjax import stats
from rpjax._src.certify import (
    ABSTAIN,
    Certificates,
    Prediction,
    SequentialCertificates,
    SmoothingConfig,
    always_label,
    certify,
    certify_sequential,
    predict,
)
from rpjax._src.noise import GAUSSIAN, NoiseDistribution, noise_samples
from rpjax._src.sequential import SequentialCounts, StopRule, sequential_counts
from rpjax._src.smoothing import AffineFirst, ApplyFn, counting_program, sample_counts
from rpjax._src.stats import SampleSizeWarning

__version__ = "0.1.0"

__all__ = [
    "ABSTAIN",
    "GAUSSIAN",
    "AffineFirst",
    "ApplyFn",
    "Certificates",
    "NoiseDistribution",
    "Prediction",
    "SampleSizeWarning",
    "SequentialCertificates",
    "SequentialCounts",
    "SmoothingConfig",
    "StopRule",
    "__version__",
    "always_label",
    "certify",
    "certify_sequential",
    "counting_program",
    "noise_samples",
    "predict",
    "sample_counts",
    "sequential_counts",
    "stats",
]
