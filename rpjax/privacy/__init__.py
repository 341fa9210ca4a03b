"""Privacy: what a release leaks (`leakage`), the deployed release protocol (`release`), what
a certificate says (`rp`) and attribute-level intervals (`rap`)."""

from rpjax.privacy import leakage, rap, release, rp
from rpjax.privacy.leakage import LeakageBound, advantage_bound
from rpjax.privacy.release import (
    Budget,
    BudgetExceededError,
    ReleaseConfig,
    RobustPrivacyRelease,
    Secret,
)

__all__ = [
    "Budget",
    "BudgetExceededError",
    "LeakageBound",
    "ReleaseConfig",
    "RobustPrivacyRelease",
    "Secret",
    "advantage_bound",
    "leakage",
    "rap",
    "release",
    "rp",
]
