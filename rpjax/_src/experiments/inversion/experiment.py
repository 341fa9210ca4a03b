"""Experiment B: model inversion against Robust Privacy on the Olivetti faces (docs/paper.md).

Private identities train the target classifier and a stronger evaluation classifier; the
public identities train the attacker's PCA generator prior. BREP-MI (label-only) and MI-Face
(white-box, gradient of the expected softmax under the smoothing noise) attack every private
identity at once, against the undefended target and against RP releases for each
(sigma, n), over several attack seeds. Utility is measured on held-out private images.

Each RP release is the deployed protocol (`rpjax.privacy.LabelRelease`, traced): its noise comes
from its own secret and answer counter, never from the attacker. For reproducibility the
secret is derived from the experiment's seed and the release's settings
(`rpjax.privacy.experiment_secret`); the attack seeds drive only the attacker's
sampling, and the seeds' attacks run one after another against the same release (the answer
counter carries over from one to the next, as for a deployed release).

The data, the target, the evaluator and the prior are the shared faces setup
(`rpjax._src.experiments.faces`), which `rpjax reproduce` builds once for this experiment, the
frontier and the distillation. Sigma is in pixel units ([0, 1]).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import rpjax
from rpjax._src import validate as _validate
from rpjax._src.experiments import common, paper
from rpjax._src.experiments.context import Context, context
from rpjax._src.experiments.faces import Faces, FacesConfig, aggregate_runs
from rpjax.attacks import BrepConfig, MIFaceConfig, mi_face_pixels
from rpjax.privacy import (
    Budget,
    ReleaseConfig,
    RobustPrivacyRelease,
    base_release,
    experiment_secret,
    initial_state,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class InversionConfig:
    """Settings of the model-inversion experiment (units stated).

    Attributes:
      num_private: private identities (attacked); the rest are public (prior).
      held_out: held-out images per private identity (utility).
      image_size: side of the (average-pooled) images, pixels; 64 = the bundled resolution.
      target_channels, target_dense, target_steps: the target CNN and its training.
      evaluator_channels, evaluator_dense, evaluator_steps, evaluator_noise: the evaluation
        classifier (wider, another seed, Gaussian augmentation of this std in pixels).
      augment_at_sigma: also attack, at each RP sigma, a target trained with Gaussian noise
        augmentation at that sigma (records under `rp_augmented`); the paper smooths the
        undefended target (records under `rp`).
      prior_k: latent dimension of the prior (principal directions of the PCA prior).
      prior: "pca" (fast default) or "vae" (a learned dense VAE decoder, Gaussian latent).
      sigmas: RP noise stds (pixels); ns: samples per query; alpha: PREDICT's level per query
        (0.01: at n = 10 only a unanimous vote is released; at alpha = 0.001 PREDICT can never
        answer with n = 10, see `rpjax.stats.min_samples(alpha, mode="predict")`).
      seeds: attack seeds.
      brep: BREP-MI settings (paper defaults with a CPU iteration cap).
      mi_face_iters, mi_face_lr: MI-Face budget in latent space.
      mi_face_m: Monte Carlo samples per expected-softmax evaluation of MI-Face against RP.
        The white-box attacker differentiates the smoothed model itself, so its result does
        not depend on the release's n: it runs once per (target model, sigma) and its record
        is repeated for each n (whose utility differs).
      seed: data split and model initialization.
      cache_dir: where trained models are cached (None: no cache).
    """

    num_private: int = 20
    held_out: int = 3
    image_size: int = 32
    target_channels: tuple[int, ...] = (8, 16, 32)
    target_dense: int = 64
    target_steps: int = 1500
    evaluator_channels: tuple[int, ...] = (16, 32, 64)
    evaluator_dense: int = 128
    evaluator_steps: int = 2000
    evaluator_noise: float = 0.05
    augment_at_sigma: bool = True
    augment_ns: tuple[int, ...] | None = (10,)
    prior_k: int = 40
    prior: str = "pca"
    sigmas: tuple[float, ...] = (0.03, 0.1, 0.25, 0.5, 1.0)
    ns: tuple[int, ...] = (10, 100)
    alpha: float = 0.01
    seeds: tuple[int, ...] = (0, 1, 2)
    brep: BrepConfig = BrepConfig(max_iters=40, patience=20, init_candidates=1000)
    mi_face_iters: int = 200
    mi_face_lr: float = 0.1
    mi_face_m: int = 32
    seed: int = 0
    cache_dir: str | None = None

    @property
    def faces(self) -> FacesConfig:
        """The settings of the shared faces setup this experiment runs on."""
        return FacesConfig(**{f.name: getattr(self, f.name)
                              for f in dataclasses.fields(FacesConfig)})

    def __post_init__(self):
        _validate.integer("num_private", self.num_private, minimum=2)
        if self.image_size not in (16, 32, 64):
            raise ValueError(f"image_size must be 16, 32 or 64, got {self.image_size}.")
        for s in self.sigmas:
            _validate.positive("sigmas", s)
        for n in self.ns:
            _validate.integer("ns", n, minimum=1)
        for n in self.augment_ns or ():
            _validate.integer("augment_ns", n, minimum=1)
        _validate.open_unit_interval("alpha", self.alpha)
        if not self.seeds:
            raise ValueError("seeds must be non-empty.")
        if self.prior not in ("pca", "vae"):
            raise ValueError(f"prior must be 'pca' or 'vae', got prior={self.prior!r}.")

    @classmethod
    def tiny(cls, **overrides: Any) -> InversionConfig:
        """Seconds on 2 CPU cores, to test the pipeline end to end: its numbers mean nothing."""
        base = dict(image_size=16, sigmas=(0.5,), ns=(10,), seeds=(0,), target_steps=60,
                    evaluator_steps=60, augment_at_sigma=False, prior_k=8,
                    brep=BrepConfig(max_iters=2, patience=2, init_candidates=50),
                    mi_face_iters=3, mi_face_m=4)
        return cls(**{**base, **overrides})

    @classmethod
    def quick(cls, **overrides: Any) -> InversionConfig:
        """A small setting for CI and a first look (a few minutes on 2 CPU cores)."""
        base = dict(sigmas=(0.1, 0.5), ns=(10,), seeds=(0, 1, 2), target_steps=800,
                    augment_at_sigma=False,
                    evaluator_steps=1000, brep=BrepConfig(max_iters=20, patience=10,
                                                          init_candidates=500),
                    mi_face_iters=60)
        return cls(**{**base, **overrides})

    @classmethod
    def full(cls, **overrides: Any) -> InversionConfig:
        """The paper's attack budget at the bundled resolution (for GPU users)."""
        base = dict(image_size=64, ns=(10, 100, 1000), seeds=(0, 1, 2, 3, 4), augment_ns=None,
                    brep=BrepConfig(max_iters=5000, patience=1000, init_candidates=5000),
                    mi_face_iters=1500)
        return cls(**{**base, **overrides})


def _release_for(apply_fn, params, sigma, n, alpha, num_classes, *, seed, name):
    """The undefended argmax (sigma None) or RP PREDICT with the reproducible secret
    `experiment_secret(seed, name, sigma, n)` (a deployment draws `Secret.generate()`)."""
    if sigma is None:
        return base_release(apply_fn, params)
    config = ReleaseConfig(smoothing=rpjax.SmoothingConfig(sigma=sigma, n=n, alpha=alpha),
                           num_classes=num_classes)
    return RobustPrivacyRelease(apply_fn, params, config, budget=Budget.unlimited(),
                                secret=experiment_secret(seed, name, sigma, n)).traced()


class Grid(NamedTuple):
    """The reconstructions of the first attack seed in one setting (for the image grids)."""

    attack: str  # "brep_mi" or "mi_face"
    target: str  # the target model: "undefended" or "augmented"
    sigma: float | None  # None: the undefended release
    n: int | None
    images: np.ndarray  # [T, H, W, 1], one per attacked class
    success: np.ndarray | None = None  # [T] the evaluator's top-1 hit of each image
    direction: np.ndarray | None = None  # [T] the judge-free hit (faces.direction_identity)


class IdentitySuccess(NamedTuple):
    """One attacked identity's success rate over the seeds in one setting."""

    attack: str
    target_model: str
    sigma: float | None
    n: int | None
    identity: int  # the Olivetti identity
    cls: int  # its class in the target (written as `class`)
    success_rate: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class InversionResult:
    """What `run` measured. `summary()` is the JSON of `summary.json`.

    Attributes:
      config: the configuration as JSON (`config_dict`).
      num_identities, chance_asr: private identities and 1 / that.
      target_accuracy, target_paper_accuracy, evaluator_accuracy: held-out utilities.
      attacks: per attack (`brep_mi`, `mi_face`), the records `undefended`, `rp` (a list over
        the sweep) and those of augmented targets (`rp_augmented`, ...), and `mi_face_pixels`.
      seconds, versions: run time and the numerical stack.
      faces: the faces setup's settings (the frontier attacks the same target).
      grids: the first seed's reconstructions of every setting; per_identity: success rate
        of every identity in every setting; private_images, private_labels: the held-out
        private images and classes (the grids' first column); reference_image: the attacks'
        start (the prior's mean face), from which the grids show each reconstruction's
        deviation (None: the mean private image).
      judge_controls: images that carry no identity (the mean private face, the start, the
        mean face plus noise, random prior samples) scored by every measure of the records
        (`faces.Judge.controls`): what chance looks like to the evaluator and to the
        judge-free `asr_direction` / `asr_pixel_nn`.
    """

    config: dict[str, Any]
    num_identities: int
    target_accuracy: float
    target_paper_accuracy: float | None
    evaluator_accuracy: float
    chance_asr: float
    attacks: dict[str, Any]
    seconds: float
    versions: dict[str, Any]
    faces: FacesConfig
    grids: tuple[Grid, ...]
    per_identity: tuple[IdentitySuccess, ...]
    private_images: np.ndarray
    private_labels: np.ndarray
    reference_image: np.ndarray | None = None
    judge_controls: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    paper: ClassVar[dict[str, Any]] = paper.INVERSION

    def summary(self) -> dict[str, Any]:
        """The JSON-ready result (images and per-identity rows left out)."""
        return {"experiment": "inversion", "config": self.config,
                "num_identities": self.num_identities, "target_accuracy": self.target_accuracy,
                "target_paper_accuracy": self.target_paper_accuracy,
                "evaluator_accuracy": self.evaluator_accuracy, "chance_asr": self.chance_asr,
                "attacks": self.attacks, "judge_controls": self.judge_controls,
                "paper": self.paper, "seconds": self.seconds, "versions": self.versions}

    def headline(self) -> dict[str, Any]:
        """The numbers `rpjax reproduce` puts in its own summary."""
        return {"target_accuracy": self.target_accuracy,
                "evaluator_accuracy": self.evaluator_accuracy,
                "num_identities": self.num_identities, "chance_asr": self.chance_asr,
                "attacks": self.attacks, "judge_controls": self.judge_controls}


def run(config: InversionConfig = InversionConfig(),
        ctx: Context | None = None) -> InversionResult:
    """Runs both attacks over the sweep.

    Args:
      config: the settings.
      ctx: progress bars and the faces setup of `config.faces` (`ctx.faces`, prepared there
        on first use and shared with the frontier and distillation); None: a fresh
        `Context()`.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    ctx = context(ctx)
    fx = ctx.faces(config.faces)
    split, xte, yte, target = fx.split, fx.xte, fx.yte, fx.target
    evaluator, num_classes, targets = fx.evaluator, fx.num_classes, fx.targets

    def utility(apply_fn, params, sigma, n):
        labels = None if sigma is None else rpjax.predict(
            apply_fn, params, xte, config.seed, num_classes=num_classes,
            config=rpjax.SmoothingConfig(sigma=sigma, n=n, alpha=config.alpha)).label
        return fx.utility(apply_fn, params, labels)

    settings = [(None, None)] + [(s, n) for n in config.ns for s in config.sigmas]
    jobs = [("undefended", s, n) for s, n in settings]
    if config.augment_at_sigma:
        aug_ns = config.ns if config.augment_ns is None else config.augment_ns
        jobs += [("augmented", s, n) for s, n in settings[1:] if n in aug_ns]
    augmented: dict[float, Any] = {}

    def model_for(tname, sigma):
        if tname == "undefended":
            return target
        if sigma not in augmented:
            augmented[sigma] = fx.train_target("olivetti-target-aug", sigma)
        return augmented[sigma]

    attacks: dict[str, Any] = {"brep_mi": {}, "mi_face": {}}
    grids: list[Grid] = []
    per_identity: list[IdentitySuccess] = []
    face_cache: dict[tuple, Any] = {}
    bar = tqdm(total=len(jobs) * len(config.seeds), desc="attacks", unit="run",
               disable=not ctx.progress)
    for tname, sigma, n in jobs:
        t_job = time.perf_counter()
        apply_fn, params = model_for(tname, sigma)
        util = utility(apply_fn, params, sigma, n)
        release = _release_for(apply_fn, params, sigma, n, config.alpha, num_classes,
                               seed=config.seed, name=f"inversion/{tname}/rp_predict")
        brep_runs, face_runs = [], []
        release_state = initial_state()  # the seeds attack one deployed release in turn
        for seed in config.seeds:
            bar.set_postfix(target=tname, sigma=sigma, n=n, seed=seed)
            (record,), release_state = fx.brep(release, (seed,), release_state=release_state)
            brep_runs.append(record)
            face_key = (tname, sigma, seed)
            if face_key not in face_cache:
                face_cache[face_key] = fx.mi_face(apply_fn, params, sigma, seed)
            face_runs.append(face_cache[face_key])
            bar.update(1)
        for name, runs in (("brep_mi", brep_runs), ("mi_face", face_runs)):
            rec = {"sigma": sigma, "n": n, "target": tname, **aggregate_runs(runs),
                   "accuracy": util["accuracy"], "abstain_rate": util["abstain_rate"],
                   "paper_accuracy": util.get("paper_accuracy"),
                   "seconds": time.perf_counter() - t_job}
            if sigma is None:
                attacks[name].setdefault("undefended" if tname == "undefended"
                                         else f"undefended_{tname}", rec)
            else:
                attacks[name].setdefault("rp" if tname == "undefended"
                                         else f"rp_{tname}", []).append(rec)
            grids.append(Grid(name, tname, sigma, n, runs[0].images, runs[0].success,
                              runs[0].direction))
            success = np.mean([r.success for r in runs], axis=0)
            per_identity += [
                IdentitySuccess(name, tname, sigma, n, int(split.private_identities[t]), int(t),
                                float(success[t])) for t in targets]
    bar.close()
    attacks["mi_face_pixels"] = {"undefended": _mi_face_pixels(fx, config)}
    base_util = utility(*target, None, None)
    return InversionResult(
        config=config_dict(config),
        num_identities=num_classes,
        target_accuracy=base_util["accuracy"],
        target_paper_accuracy=base_util.get("paper_accuracy"),
        evaluator_accuracy=float(np.mean(np.asarray(
            jnp.argmax(evaluator(jnp.asarray(xte)), -1)) == yte)),
        chance_asr=1.0 / num_classes,
        attacks=attacks,
        seconds=time.perf_counter() - t0,
        versions=common.versions(),
        faces=config.faces,
        grids=tuple(grids),
        per_identity=tuple(per_identity),
        private_images=xte,
        private_labels=yte,
        reference_image=fx.judge.reference,
        judge_controls=fx.judge.controls(
            len(targets), fx.decode(jax.random.normal(jax.random.key(config.seed),
                                                      (10 * len(targets), config.prior_k))),
            seed=config.seed),
    )


def _mi_face_pixels(ctx: Faces, config: InversionConfig) -> dict[str, float]:
    """Pixel-space MI-Face on the undefended target, judged raw and projected on the prior."""
    prior, judge, targets = ctx.prior, ctx.judge, ctx.targets
    cfg = MIFaceConfig(max_iters=config.mi_face_iters, lr=config.mi_face_lr)
    start = jnp.broadcast_to(prior.decode(jnp.zeros(config.prior_k)),
                             (len(targets), *prior.image_shape))
    runs = []
    for seed in config.seeds:
        res = mi_face_pixels(*ctx.target, targets, seed, cfg, init=start)
        raw = judge.score(res.images, targets)
        projected = judge.score(prior.decode(prior.encode(res.images)),
                                targets)
        runs.append({"asr": float(raw["top1"].mean()),
                     "asr_projected": float(projected["top1"].mean()),
                     "distance": float(raw["distance"].mean()),
                     "distance_projected": float(projected["distance"].mean())})
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    out["asr_std"] = common.spread([r["asr"] for r in runs])
    return out


def config_dict(config: InversionConfig) -> dict[str, Any]:
    """The configuration as JSON-ready values (`brep` as a dict)."""
    out = dataclasses.asdict(config)
    out["brep"] = dataclasses.asdict(config.brep)
    return out
