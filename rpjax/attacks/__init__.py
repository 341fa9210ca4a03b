"""Model-inversion attacks (MI-Face, white box, in pixel or latent space; BREP-MI, label only),
the attacker's generator priors (fitted on public identities; `prior.decode(z)`,
`prior.encode(images)`, `prior.sample(key, num)`), attack metrics, and the best adaptive
attacker on a linear model (the reference the adaptive leakage bound is tested against). The
releases an attack queries are in `rpjax.privacy` (`LabelRelease`) and `rpjax.baselines`."""

from rpjax._src.attacks.adaptive import best_adaptive_advantage
from rpjax._src.attacks.brep_mi import BrepConfig, brep_mi
from rpjax._src.attacks.metrics import attack_success, nearest_private_distance, release_utility
from rpjax._src.attacks.mi_face import MIFaceConfig, mi_face_latent, mi_face_pixels
from rpjax._src.attacks.prior import fit_pca_prior, fit_vae_prior

__all__ = [
    "BrepConfig",
    "MIFaceConfig",
    "attack_success",
    "best_adaptive_advantage",
    "brep_mi",
    "fit_pca_prior",
    "fit_vae_prior",
    "mi_face_latent",
    "mi_face_pixels",
    "nearest_private_distance",
    "release_utility",
]
