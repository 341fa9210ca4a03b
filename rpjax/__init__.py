"""rpjax: a JAX certification engine for Robust Privacy (randomized smoothing at inference).

The public API is what this package and its public subpackages (`rpjax.stats`,
`rpjax.privacy`, `rpjax.attacks`, `rpjax.baselines`, `rpjax.models`, `rpjax.data`,
`rpjax.experiments`) list in their `__all__`; everything under `rpjax._src` is private and may
change. See `docs/design.md`.

One certification is one typed plan: a `SmoothingConfig` (the statistics), a rule (`Fixed()`,
`DecideAt(radius)`, `RadiusBudget(price)`: the question) and a `Placement` (devices, chunk
and batch sizes, progress: speed only).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names, for type checkers; at run time they are imported on first use
    from rpjax import stats
    from rpjax._src.certify import (
        ABSTAIN,
        Certificates,
        Prediction,
        always_label,
        certify,
        predict,
    )
    from rpjax._src.noise import GAUSSIAN, NoiseDistribution, noise_samples
    from rpjax._src.plan import DecideAt, Fixed, Placement, RadiusBudget, SmoothingConfig
    from rpjax._src.smoothing import (
        AffineFirst,
        RowDependenceError,
        counting_program,
        sample_counts,
    )

__version__ = "0.1.0"

# where each public name lives: imported on first access (PEP 562), so that `import rpjax`,
# and the `rpjax` command's help, do not pay for JAX and SciPy until a name is used
_LAZY = {
    **dict.fromkeys(("ABSTAIN", "Certificates", "Prediction", "always_label", "certify",
                     "predict"), "rpjax._src.certify"),
    **dict.fromkeys(("GAUSSIAN", "NoiseDistribution", "noise_samples"), "rpjax._src.noise"),
    **dict.fromkeys(("DecideAt", "Fixed", "Placement", "RadiusBudget", "SmoothingConfig"),
                    "rpjax._src.plan"),
    **dict.fromkeys(("AffineFirst", "RowDependenceError", "counting_program", "sample_counts"),
                    "rpjax._src.smoothing"),
}


def __getattr__(name: str) -> Any:
    if name == "stats":
        value: Any = importlib.import_module("rpjax.stats")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'rpjax' has no attribute {name!r}")
    globals()[name] = value  # later accesses are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
