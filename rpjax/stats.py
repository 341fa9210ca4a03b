"""Statistics of randomized smoothing, in float64 on the host: Clopper-Pearson bounds, the
binomial test, certified radii, the radius ceiling of a sample size, sample-size planning, and
anytime-valid bounds that hold at every look of a sequential run (`betting_bound`,
`mixture_bound`, `staged_clopper_pearson`, `sequential_test_table`) and the tables of the
sequential tests and stopping rules built on them (`decision_table`, `budget_table`,
`staged_budget_table` on `staged_looks`)."""

from rpjax._src.confseq import (
    betting_bound,
    budget_table,
    decision_table,
    mixture_bound,
    sequential_test_table,
    staged_budget_table,
    staged_clopper_pearson,
    staged_looks,
)
from rpjax._src.stats import (
    SampleSizeWarning,
    binomial_test_pvalue,
    certified_radius,
    check_sample_size,
    clopper_pearson_lower,
    clopper_pearson_upper,
    max_radius,
    min_samples_certify,
    min_samples_predict,
)

__all__ = [
    "SampleSizeWarning",
    "betting_bound",
    "binomial_test_pvalue",
    "budget_table",
    "certified_radius",
    "check_sample_size",
    "clopper_pearson_lower",
    "clopper_pearson_upper",
    "decision_table",
    "max_radius",
    "min_samples_certify",
    "min_samples_predict",
    "mixture_bound",
    "sequential_test_table",
    "staged_budget_table",
    "staged_clopper_pearson",
    "staged_looks",
]
