"""Statistics of randomized smoothing, in float64 on the host.

Clopper-Pearson bounds, the binomial test, certified radii, the radius ceiling of a sample
size, and sample-size planning (`rpjax.certify` and `rpjax.predict` warn with
`SampleSizeWarning` when `n` can never avoid abstaining). The anytime-valid bounds behind
`rpjax.DecideAt` and `rpjax.RadiusBudget` are internal (`docs/sequential.md`); their
certificates report `pa_lower` and `pa_upper`.
"""

from rpjax._src.stats import (
    SampleSizeWarning,
    binomial_test_pvalue,
    certified_radius,
    clopper_pearson_lower,
    clopper_pearson_upper,
    max_radius,
    min_samples,
)

__all__ = [
    "SampleSizeWarning",
    "binomial_test_pvalue",
    "certified_radius",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "max_radius",
    "min_samples",
]
