"""Model-inversion attacks (MI-Face, white box; BREP-MI, label only), the attacker's generator
priors, attack metrics, and the best adaptive attacker on a linear model (the reference the
adaptive leakage bound is tested against). The releases an attack queries are in `rpjax.privacy`
(`LabelRelease`) and `rpjax.baselines`."""

from rpjax._src.attacks import prior
from rpjax._src.attacks.adaptive import best_adaptive_advantage
from rpjax._src.attacks.brep_mi import BrepConfig, BrepResult, brep_mi
from rpjax._src.attacks.metrics import (
    attack_success,
    nearest_private_distance,
    release_utility,
    top_k_hits,
)
from rpjax._src.attacks.mi_face import MIFaceConfig, MIFaceResult, mi_face_latent, mi_face_pixels
from rpjax._src.attacks.prior import PCAPrior, VAEPrior, fit_pca_prior, fit_vae_prior

__all__ = [
    "BrepConfig",
    "BrepResult",
    "MIFaceConfig",
    "MIFaceResult",
    "PCAPrior",
    "VAEPrior",
    "attack_success",
    "best_adaptive_advantage",
    "brep_mi",
    "fit_pca_prior",
    "fit_vae_prior",
    "mi_face_latent",
    "mi_face_pixels",
    "nearest_private_distance",
    "prior",
    "release_utility",
    "top_k_hits",
]
