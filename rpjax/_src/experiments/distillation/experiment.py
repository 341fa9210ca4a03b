"""The distillation boundary (docs/paper.md, v2): RP does not stop function-level extraction.

An extractor with no access to the private training images queries a release for labels on a
query set of its own, trains a student on the answers, and is judged by how often the student
agrees with the target on the private held-out images and by the student's own accuracy
there. The query set (budget B) is built only from what the attacker has: half are the
public identities' images with augmentation (horizontal flips, brightness and contrast jitter,
Gaussian pixel noise of std 0.05), half are samples of the attacker's generator prior fitted
on those public images. The private held-out images are never queried: they are the test set.

Releases: the undefended target (argmax) and RP PREDICT at each (sigma, n) of the config;
abstentions are dropped from the student's training set (their count is reported). Each RP
release's noise comes from its own secret (derived from the config's seed and the release's
settings, `rpjax.privacy.experiment_secret`, for reproducibility); the extractor's
query set is answered as the first `budget` answers of a fresh release.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rpjax._src import validate as _validate
from rpjax._src.experiments import common, paper
from rpjax._src.experiments.context import Context, context
from rpjax._src.experiments.faces import Faces, FacesConfig
from rpjax._src.experiments.inversion import experiment as inversion
from rpjax.models import FaceCNN, TrainConfig, fit_classifier
from rpjax.privacy import base_release, initial_state

QUERY_SET = ("public identities' images (flips, brightness/contrast jitter, N(0, 0.05^2) pixel "
             "noise) and generator-prior samples, half each")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistillationConfig:
    """Settings of the distillation experiment.

    Attributes:
      faces: the faces setup (data split, target, evaluator, prior) this runs on; by default
        the inversion experiment's (`InversionConfig().faces`).
      budget: label queries the extractor spends (the query-set size).
      sigmas, n: the RP releases attacked (noise std in pixels, samples per query); the first
        sigma is the headline setting (`agreement_rp`, `student_accuracy_rp`).
      student_steps: training steps of each student (target architecture, another seed).
      alpha: the RP releases' failure probability.
      seed: query-set and student seed.
    """

    faces: FacesConfig = inversion.InversionConfig().faces
    budget: int = 2000
    sigmas: tuple[float, ...] = (0.1, 0.25, 0.5)
    n: int = 100
    student_steps: int = 1500
    alpha: float = 0.01
    seed: int = 7

    def __post_init__(self):
        _validate.integer("budget", self.budget, minimum=2)
        if not self.sigmas:
            raise ValueError("sigmas must be non-empty.")
        for s in self.sigmas:
            _validate.positive("sigmas", s)
        _validate.integer("n", self.n, minimum=1)
        _validate.integer("student_steps", self.student_steps, minimum=1)
        _validate.open_unit_interval("alpha", self.alpha)
        if not isinstance(self.faces, FacesConfig):
            raise TypeError(f"faces must be a FacesConfig, got {type(self.faces).__name__}.")

    @classmethod
    def tiny(cls, **overrides: Any) -> DistillationConfig:
        """Seconds on 2 CPU cores, to test the pipeline end to end: its numbers mean nothing."""
        base = dict(faces=inversion.InversionConfig.tiny().faces, budget=60, sigmas=(0.1,),
                    n=10, student_steps=30)
        return cls(**{**base, **overrides})

    @classmethod
    def quick(cls, **overrides: Any) -> DistillationConfig:
        """A small setting for CI and a first look."""
        base = dict(faces=inversion.InversionConfig.quick().faces, budget=600, sigmas=(0.1,),
                    n=20, student_steps=600)
        return cls(**{**base, **overrides})


def query_set(ctx: Faces, budget: int, seed: int) -> np.ndarray:
    """`[budget, H, W, 1]` float32 queries from public images (augmented) and prior samples."""
    rng = np.random.default_rng(seed)
    public = ctx.public
    m = budget // 2
    x = public[rng.integers(0, len(public), m)]
    flip = rng.random(m) < 0.5
    x = np.where(flip[:, None, None, None], x[:, :, ::-1], x)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    contrast = rng.uniform(0.8, 1.2, (m, 1, 1, 1))
    bright = rng.uniform(-0.1, 0.1, (m, 1, 1, 1))
    x = (x - mean) * contrast + mean + bright + 0.05 * rng.standard_normal(x.shape)
    z = rng.standard_normal((budget - m, ctx.config.prior_k)).astype(np.float32)
    z = np.clip(z, -ctx.config.brep.latent_clip, ctx.config.brep.latent_clip)
    samples = np.asarray(ctx.prior.decode(jnp.asarray(z)))
    return np.clip(np.concatenate([x, samples]), 0.0, 1.0).astype(np.float32)


def _student(ctx, xq, yq, config):
    c = ctx.config
    model = FaceCNN(ctx.num_classes, channels=c.target_channels, dense=c.target_dense,
                    image_size=c.image_size, rngs=nnx.Rngs(config.seed + 1))
    res = fit_classifier(model, xq, yq, config.seed + 2,
                         TrainConfig(steps=config.student_steps, batch_size=32))
    return res.apply_fn, res.params


def _measure(ctx, release, xq, config, target_labels):
    answers, _ = release(jnp.asarray(xq), initial_state())
    answers = np.asarray(answers)
    keep = answers >= 0
    if keep.sum() < 2:
        return {"answered": int(keep.sum()), "agreement": float("nan"),
                "student_accuracy": float("nan")}
    apply_fn, params = _student(ctx, xq[keep], answers[keep].astype(np.int32), config)
    pred = np.asarray(jnp.argmax(jax.jit(apply_fn)(params, jnp.asarray(ctx.xte)), -1))
    return {"answered": int(keep.sum()), "queries": int(len(xq)),
            "forward_passes": int(len(xq) * release.forward_passes),
            "agreement": float(np.mean(pred == target_labels)),
            "student_accuracy": float(np.mean(pred == ctx.yte))}


@dataclasses.dataclass(frozen=True, kw_only=True)
class DistillationResult:
    """What `run` measured. `summary()` is the JSON of `summary.json`.

    Attributes:
      agreement_undefended, agreement_rp: share of the private held-out images on which the
        student trained on undefended (RP, the first sigma) labels agrees with the target.
      student_accuracy_undefended, student_accuracy_rp: those students' accuracy there.
      target_accuracy, chance: the target's accuracy and 1 / identities.
      undefended: the undefended release's record; rp: one record per sigma.
      config: the configuration as JSON; seconds, versions: run time and numerical stack.
    """

    agreement_undefended: float
    agreement_rp: float
    student_accuracy_undefended: float
    student_accuracy_rp: float
    target_accuracy: float
    chance: float
    undefended: dict[str, Any]
    rp: list[dict[str, Any]]
    config: dict[str, Any]
    seconds: float
    versions: dict[str, Any]

    paper: ClassVar[str] = paper.DISTILLATION
    query_set: ClassVar[str] = QUERY_SET

    def summary(self) -> dict[str, Any]:
        """The JSON-ready result."""
        return {"experiment": "distillation",
                "agreement_undefended": self.agreement_undefended,
                "agreement_rp": self.agreement_rp,
                "student_accuracy_undefended": self.student_accuracy_undefended,
                "student_accuracy_rp": self.student_accuracy_rp,
                "target_accuracy": self.target_accuracy, "chance": self.chance,
                "undefended": self.undefended, "rp": self.rp, "paper": self.paper,
                "query_set": self.query_set, "config": self.config, "seconds": self.seconds,
                "versions": self.versions}

    def headline(self) -> dict[str, Any]:
        """The numbers `rpjax reproduce` puts in its own summary."""
        return {"agreement_undefended": self.agreement_undefended,
                "agreement_rp": self.agreement_rp,
                "student_accuracy_undefended": self.student_accuracy_undefended,
                "student_accuracy_rp": self.student_accuracy_rp,
                "target_accuracy": self.target_accuracy, "undefended": self.undefended,
                "rp": self.rp}


def run(config: DistillationConfig = DistillationConfig(),
        ctx: Context | None = None) -> DistillationResult:
    """Trains students on undefended and RP labels.

    Args:
      config: the settings.
      ctx: progress bars and the faces setup of `config.faces` (`ctx.faces`, shared with the
        inversion when its settings are the same); None: a fresh `Context()`.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    ctx = context(ctx)
    fx = ctx.faces(config.faces)
    apply_fn, params = fx.target
    target_labels = np.asarray(jnp.argmax(jax.jit(apply_fn)(params, jnp.asarray(fx.xte)), -1))
    xq = query_set(fx, config.budget, config.seed)
    bar = tqdm(total=1 + len(config.sigmas), desc="distillation", unit="student",
               disable=not ctx.progress)
    undefended = _measure(fx, base_release(apply_fn, params), xq, config, target_labels)
    bar.update(1)
    rp = []
    for sigma in config.sigmas:
        release = inversion._release_for(apply_fn, params, sigma, config.n,
                                         config.alpha, fx.num_classes,
                                         seed=config.seed, name="distillation/rp_predict")
        rp.append({"sigma": sigma, "n": config.n,
                   **_measure(fx, release, xq, config, target_labels)})
        bar.update(1)
    bar.close()
    head = rp[0]
    return DistillationResult(
        agreement_undefended=undefended["agreement"], agreement_rp=head["agreement"],
        student_accuracy_undefended=undefended["student_accuracy"],
        student_accuracy_rp=head["student_accuracy"],
        target_accuracy=float(np.mean(target_labels == fx.yte)), chance=1.0 / fx.num_classes,
        undefended=undefended, rp=rp,
        config=dataclasses.asdict(config),
        seconds=time.perf_counter() - t0, versions=common.versions())
