"""Privacy: what a Monte Carlo release leaks (the leakage bound), the deployed release protocol
(label only, the owner's secret noise, per-subject budgets) and its traceable form for attack
loops (`LabelRelease`, with the Robust Privacy and undefended releases and `keyed_release` for
others), what a certificate covers and attribute-level intervals (RAP / APE)."""

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
    base_release,
    experiment_secret,
    initial_state,
    keyed_release,
    predict_threshold_table,
    rp_always_release,
    rp_certify_release,
    rp_predict_release,
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
    "base_release",
    "binomial_tv",
    "certified_labels",
    "composed_advantage",
    "experiment_secret",
    "initial_state",
    "keyed_release",
    "outcome_probabilities",
    "p1_interval_from_counts",
    "predict_threshold_table",
    "rp_always_release",
    "rp_certify_release",
    "rp_predict_release",
]
