"""Privacy: what a Monte Carlo release leaks (the leakage bound), the deployed release protocol
(label only, the owner's secret noise, per-subject budgets), what a certificate covers and
attribute-level intervals (RAP / APE)."""

from rpjax._src.privacy.leakage import (
    LeakageBound,
    advantage_bound,
    binomial_tv,
    composed_advantage,
    outcome_probabilities,
    p1_interval_from_counts,
)
from rpjax._src.privacy.rap import (
    READINGS,
    AttributeSweep,
    Intervals,
    ape_union,
    attribute_intervals,
)
from rpjax._src.privacy.release import (
    AuditRecord,
    Budget,
    BudgetExceededError,
    LabelRelease,
    ReleaseConfig,
    RobustPrivacyRelease,
    Secret,
    advance,
    answers_allowed,
    initial_state,
    predict_threshold_table,
    row_keys,
)
from rpjax._src.privacy.rp import base_labels, certified_labels

__all__ = [
    "AttributeSweep",
    "AuditRecord",
    "Budget",
    "BudgetExceededError",
    "Intervals",
    "LabelRelease",
    "LeakageBound",
    "READINGS",
    "ReleaseConfig",
    "RobustPrivacyRelease",
    "Secret",
    "advance",
    "advantage_bound",
    "answers_allowed",
    "ape_union",
    "attribute_intervals",
    "base_labels",
    "binomial_tv",
    "certified_labels",
    "composed_advantage",
    "initial_state",
    "outcome_probabilities",
    "p1_interval_from_counts",
    "predict_threshold_table",
    "row_keys",
]
