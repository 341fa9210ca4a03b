"""Privacy: what a Monte Carlo release leaks (the leakage bound), the deployed release protocol
(label only, the owner's secret noise, per-subject budgets) and its traceable form for attack
loops (`LabelRelease`: `RobustPrivacyRelease(...).traced()`, the undefended `base_release`, and
`keyed_release` for other releases), and attribute-level intervals (RAP / APE) with the
owner's labelling functions they sweep; `audit`, which runs all of these for one model, its
people and their sensitive attributes."""

from rpjax._src.privacy.audit import AuditConfig, AuditResult, CategoricalAttribute, audit
from rpjax._src.privacy.leakage import (
    advantage_bound,
    outcome_probabilities,
    p1_interval_from_counts,
)
from rpjax._src.privacy.rap import READINGS, AttributeSweep, Intervals, attribute_intervals
from rpjax._src.privacy.release import (
    Budget,
    BudgetExceededError,
    LabelRelease,
    ReleaseConfig,
    RobustPrivacyRelease,
    Secret,
    base_release,
    experiment_secret,
    initial_state,
    keyed_release,
)
from rpjax._src.privacy.rp import base_labels, certified_labels

__all__ = [
    "AttributeSweep",
    "AuditConfig",
    "AuditResult",
    "Budget",
    "BudgetExceededError",
    "CategoricalAttribute",
    "Intervals",
    "LabelRelease",
    "READINGS",
    "ReleaseConfig",
    "RobustPrivacyRelease",
    "Secret",
    "advantage_bound",
    "attribute_intervals",
    "audit",
    "base_labels",
    "base_release",
    "certified_labels",
    "experiment_secret",
    "initial_state",
    "keyed_release",
    "outcome_probabilities",
    "p1_interval_from_counts",
]
