"""Experiment B: model inversion against Robust Privacy on the Olivetti faces (docs/paper.md).

Private identities train the target classifier and a stronger evaluation classifier; the
public identities train the attacker's PCA generator prior. BREP-MI (label-only) and MI-Face
(white-box, gradient of the expected softmax under the smoothing noise) attack every private
identity at once, against the undefended target and against RP releases for each
(sigma, n), over several attack seeds. Utility is measured on held-out private images.

Each RP release is the deployed protocol (`rpjax._src.privacy.release`, traced): its noise comes
from its own secret and answer counter, never from the attacker. For reproducibility the
secret is derived from the experiment's seed and the release's settings
(`rpjax._src.attacks.releases.experiment_secret`); the attack seeds drive only the attacker's
sampling, and the seeds' attacks run one after another against the same release (the answer
counter carries over from one to the next, as for a deployed release).

CPU scale: images are average-pooled to `image_size` (32 by default; 64 in `full`), which
makes noise generation and the base model 4x cheaper. Sigma is in pixel units ([0, 1]).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rpjax._src import checkpoint, report
from rpjax._src import validate as _validate
from rpjax._src.attacks import metrics
from rpjax._src.attacks import prior as prior_lib
from rpjax._src.attacks.brep_mi import BrepConfig, brep_mi
from rpjax._src.attacks.releases import (
    base_release,
    experiment_secret,
    initial_state,
    rp_predict_release,
)
from rpjax._src.certify import predict
from rpjax._src.data import olivetti
from rpjax._src.models.train import TrainConfig, fit_classifier
from rpjax.models import FaceCNN, as_apply_fn

PAPER = {"undefended_asr": 0.73, "rp": [{"sigma": 0.03, "asr": 0.44},
                                        {"sigma": 0.1, "asr": 0.04}]}


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
        answer with n = 10, see `rpjax.stats.min_samples_predict`).
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


def _pool(images: np.ndarray, size: int) -> np.ndarray:
    f = images.shape[1] // size
    n, h, w, c = images.shape
    return images.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4)).astype(np.float32)


def _train(config, name, channels, dense, steps, noise, x, y, seed):
    model = FaceCNN(int(y.max()) + 1, channels=channels, dense=dense,
                    image_size=config.image_size, rngs=nnx.Rngs(seed))
    apply_fn, template = as_apply_fn(model)
    tcfg = TrainConfig(steps=steps, batch_size=32, learning_rate=1e-3, noise_sigma=noise)
    tag = {"name": name, "data": olivetti.SHA256, "channels": list(channels), "dense": dense,
           "train": dataclasses.asdict(tcfg), "seed": seed, "num_private": config.num_private,
           "held_out": config.held_out, "image_size": config.image_size,
           "split_seed": config.seed, "jax": jax.__version__}
    params, _ = checkpoint.load_or_train(
        config.cache_dir, tag, template,
        lambda: fit_classifier(model, x, y, seed, tcfg).params)
    return apply_fn, params


class _Judge(NamedTuple):
    """The evaluation classifier and the private images the reconstructions are judged by."""

    logits: Any
    features: Any
    private_x: np.ndarray
    private_y: np.ndarray

    def score(self, images, targets, valid=None) -> dict[str, np.ndarray]:
        out = metrics.attack_success(self.logits, images, targets, valid=valid)
        out["distance"] = metrics.nearest_private_distance(
            self.features, images, targets, self.private_x, self.private_y)
        return out


def _features_fn(config, channels, dense, params):
    graphdef = nnx.split(FaceCNN(config.num_private, channels=channels, dense=dense,
                                 image_size=config.image_size, rngs=nnx.Rngs(0)))[0]
    return jax.jit(lambda x: nnx.merge(graphdef, params).features(x))


def _release_for(apply_fn, params, sigma, n, alpha, num_classes, *, seed, name):
    """The undefended argmax (sigma None) or RP PREDICT with the reproducible secret
    `experiment_secret(seed, name, sigma, n)` (a deployment draws `Secret.generate()`)."""
    if sigma is None:
        return base_release(apply_fn, params)
    return rp_predict_release(apply_fn, params, sigma=sigma, n=n, alpha=alpha,
                              num_classes=num_classes,
                              secret=experiment_secret(seed, name, sigma, n))


def _brep_runs(release, decode, targets, seeds, config):
    """BREP-MI against one release for each attack seed in turn, the release's answer
    counter carried from one attack to the next; the `BrepResult`s."""
    state, out = initial_state(), []
    for seed in seeds:
        res = brep_mi(release, decode, targets, seed, config.brep, latent_dim=config.prior_k,
                      release_state=state)
        state = res.release_state
        out.append(res)
    return out


def _brep_record(res, judge, decode, targets, config):
    images = decode(jnp.asarray(res.latents))
    final = judge.score(images, targets, valid=res.found)
    initial = metrics.attack_success(judge.logits, decode(jnp.asarray(res.initial)), targets,
                                     valid=res.found)
    found = res.found
    return {
        "distance": float(np.mean(final["distance"])),
        "asr": float(final["top1"].mean()),
        "asr_top5": float(final["top5"].mean()),
        "asr_initial": float(initial["top1"].mean()),
        "initial_found": int(found.sum()),
        "asr_among_found": float(final["top1"][found].mean()) if found.any() else 0.0,
        "queries": float(res.queries.mean()),
        "forward_passes": float(res.forward_passes.mean()),
        "success": final["top1"], "images": np.asarray(images),
    }


def aggregate_runs(records: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("asr", "asr_top5", "asr_initial", "initial_found", "asr_among_found", "queries",
            "forward_passes", "distance")
    out: dict[str, Any] = {}
    for k in keys:
        vals = [r[k] for r in records if k in r]
        if vals:
            out[k] = float(np.mean(vals))
            if k == "asr":
                out["asr_std"] = float(np.std(vals))
                out["asr_per_seed"] = [float(v) for v in vals]
    return out


class Context(NamedTuple):
    """Everything the attacks need, built once per configuration by `prepare`."""

    config: InversionConfig
    split: olivetti.FaceSplit
    xtr: np.ndarray
    ytr: np.ndarray
    xte: np.ndarray
    yte: np.ndarray
    target: tuple[Any, Any]  # (apply_fn, params) of the undefended target
    evaluator: Any  # jitted x -> logits of the evaluation classifier
    judge: _Judge
    prior: Any
    decode: Any  # jitted z [b, k] -> images
    targets: np.ndarray  # [T] the attacked classes

    @property
    def num_classes(self) -> int:
        return self.config.num_private

    def train_target(self, name: str, noise: float = 0.0) -> tuple[Any, Any]:
        """A target-architecture model trained on the private images (cached)."""
        c = self.config
        return _train(c, name, c.target_channels, c.target_dense, c.target_steps, noise,
                      self.xtr, self.ytr, c.seed)

    def utility(self, apply_fn, params, labels=None) -> dict[str, Any]:
        """Held-out accuracy (and the paper's metric) of released `labels` (default: the
        base argmax); the confidence ranking is always the base model's."""
        probs = jax.nn.softmax(jax.jit(apply_fn)(params, jnp.asarray(self.xte)))
        conf = np.asarray(probs)[np.arange(len(self.yte)), self.yte]
        if labels is None:
            labels = np.asarray(jnp.argmax(probs, axis=-1))
        return metrics.release_utility(labels, self.yte, conf)

    def release_utility(self, apply_fn, params, release) -> dict[str, Any]:
        """Utility of a `LabelRelease` queried once on every held-out image (a fresh
        release: its answers 0 .. N - 1; the noise is the release's own)."""
        labels, _ = jax.jit(release.fn)(jnp.asarray(self.xte), initial_state())
        return self.utility(apply_fn, params, np.asarray(labels))

    def brep(self, release, seeds) -> list[dict[str, Any]]:
        """BREP-MI against `release`, one record per attack seed; the seeds attack the one
        release in turn (its answer counter carries over)."""
        c = self.config
        return [_brep_record(res, self.judge, self.decode, self.targets, c)
                for res in _brep_runs(release, self.decode, self.targets, seeds, c)]

    def mi_face(self, apply_fn, params, sigma, seed) -> dict[str, Any]:
        """MI-Face in the prior's latent space against the model (smoothed when sigma)."""
        from rpjax._src.attacks import mi_face
        return _mi_face_record(mi_face, apply_fn, params, sigma, seed, self.decode, self.judge,
                               self.targets, self.config)


def prepare(config: InversionConfig = InversionConfig()) -> Context:
    """Loads and splits the faces, trains (or loads) the target and the evaluator, fits the
    attacker's prior on the public identities."""
    data = olivetti.load_olivetti()
    images = _pool(data.images, config.image_size)
    split = olivetti.split_identities(data.labels, num_private=config.num_private,
                                      held_out_per_identity=config.held_out, seed=config.seed)
    y = split.relabel[data.labels]
    xtr, ytr = images[split.train_idx], y[split.train_idx]
    xte, yte = images[split.test_idx], y[split.test_idx]
    target = _train(config, "olivetti-target", config.target_channels, config.target_dense,
                    config.target_steps, 0.0, xtr, ytr, config.seed)
    ev_fn, ev_params = _train(config, "olivetti-evaluator", config.evaluator_channels,
                              config.evaluator_dense, config.evaluator_steps,
                              config.evaluator_noise, xtr, ytr, config.seed + 1000)
    evaluator = jax.jit(lambda x: ev_fn(ev_params, x))
    judge = _Judge(evaluator, _features_fn(config, config.evaluator_channels,
                                           config.evaluator_dense, ev_params), xtr, ytr)
    public = images[split.public_idx]
    prior = (prior_lib.fit_pca_prior(public, config.prior_k) if config.prior == "pca" else
             prior_lib.fit_vae_prior(public, config.prior_k, config.seed))
    decode = jax.jit(lambda z: prior_lib.decode(prior, z))
    return Context(config, split, xtr, ytr, xte, yte, target, evaluator, judge, prior, decode,
                   np.arange(config.num_private))


def public_images(ctx: Context) -> np.ndarray:
    """The public identities' images at the experiment's resolution (the attacker's data)."""
    data = olivetti.load_olivetti()
    return _pool(data.images, ctx.config.image_size)[ctx.split.public_idx]


def run(config: InversionConfig = InversionConfig(), *, progress: bool = True) -> dict[str, Any]:
    """Trains the models, runs both attacks over the sweep; returns the summary dict."""
    from tqdm.auto import tqdm

    from rpjax._src.attacks import mi_face

    t0 = time.perf_counter()
    ctx = prepare(config)
    split, xte, yte, target = ctx.split, ctx.xte, ctx.yte, ctx.target
    evaluator, judge, prior, decode = ctx.evaluator, ctx.judge, ctx.prior, ctx.decode
    num_classes, targets = ctx.num_classes, ctx.targets

    def utility(apply_fn, params, sigma, n):
        labels = None if sigma is None else predict(
            apply_fn, params, xte, config.seed, sigma=sigma, n=n, alpha=config.alpha,
            num_classes=num_classes)
        return ctx.utility(apply_fn, params, labels)

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
            augmented[sigma] = ctx.train_target("olivetti-target-aug", sigma)
        return augmented[sigma]

    attacks: dict[str, Any] = {"brep_mi": {}, "mi_face": {}}
    grids: dict[str, np.ndarray] = {}
    per_identity: list[dict[str, Any]] = []
    face_cache: dict[tuple, dict[str, Any]] = {}
    bar = tqdm(total=len(jobs) * len(config.seeds), desc="attacks", unit="run",
               disable=not progress)
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
            res = brep_mi(release, decode, targets, seed, config.brep,
                          latent_dim=config.prior_k, release_state=release_state)
            release_state = res.release_state
            brep_runs.append(_brep_record(res, judge, decode, targets, config))
            face_key = (tname, sigma, seed)
            if face_key not in face_cache:
                face_cache[face_key] = _mi_face_record(mi_face, apply_fn, params, sigma, seed,
                                                       decode, judge, targets, config)
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
            grids[f"{name}/{tname}/sigma={sigma}/n={n}"] = runs[0]["images"]
            success = np.mean([r["success"] for r in runs], axis=0)
            per_identity += [
                {"attack": name, "target_model": tname, "sigma": sigma, "n": n,
                 "identity": int(split.private_identities[t]), "class": int(t),
                 "success_rate": float(success[t])} for t in targets]
    bar.close()
    attacks["mi_face_pixels"] = {"undefended": _mi_face_pixels(
        mi_face, target, prior, judge, targets, config)}
    base_util = utility(*target, None, None)
    return {
        "experiment": "inversion",
        "config": config_dict(config),
        "num_identities": num_classes,
        "target_accuracy": base_util["accuracy"],
        "target_paper_accuracy": base_util.get("paper_accuracy"),
        "evaluator_accuracy": float(np.mean(np.asarray(
            jnp.argmax(evaluator(jnp.asarray(xte)), -1)) == yte)),
        "chance_asr": 1.0 / num_classes,
        "attacks": attacks,
        "paper": PAPER,
        "seconds": time.perf_counter() - t0,
        "versions": report.versions(),
        "_grids": grids,
        "_per_identity": per_identity,
        "_private": {"images": xte, "labels": yte},
    }


def _mi_face_record(mi_face, apply_fn, params, sigma, seed, decode, judge, targets, config):
    cfg = mi_face.MIFaceConfig(max_iters=config.mi_face_iters, lr=config.mi_face_lr,
                               sigma=sigma, m=config.mi_face_m,
                               latent_clip=config.brep.latent_clip)
    z0 = jnp.zeros((len(targets), config.prior_k))
    res = mi_face.mi_face_latent(apply_fn, params, targets, seed, cfg, decode=decode, z_init=z0)
    images = decode(jnp.asarray(res.latents))
    final = judge.score(images, targets)
    start = metrics.attack_success(judge.logits, decode(z0), targets)
    return {"asr": float(final["top1"].mean()), "asr_top5": float(final["top5"].mean()),
            "distance": float(np.mean(final["distance"])),
            "asr_initial": float(start["top1"].mean()), "initial_found": len(targets),
            "queries": float(np.mean(res.iterations + 1)),
            "forward_passes": float(np.mean(res.forward_passes)), "images": np.asarray(images),
            "success": final["top1"]}


def _mi_face_pixels(mi_face, target, prior, judge, targets, config):
    """Pixel-space MI-Face on the undefended target, judged raw and projected on the prior."""
    cfg = mi_face.MIFaceConfig(max_iters=config.mi_face_iters, lr=config.mi_face_lr)
    start = jnp.broadcast_to(prior_lib.decode(prior, jnp.zeros(config.prior_k)),
                             (len(targets), *prior.image_shape))
    runs = []
    for seed in config.seeds:
        res = mi_face.mi_face_pixels(*target, targets, seed, cfg, init=start)
        raw = judge.score(res.images, targets)
        projected = judge.score(prior_lib.decode(prior, prior_lib.encode(prior, res.images)),
                                targets)
        runs.append({"asr": float(raw["top1"].mean()),
                     "asr_projected": float(projected["top1"].mean()),
                     "distance": float(raw["distance"].mean()),
                     "distance_projected": float(projected["distance"].mean())})
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    out["asr_std"] = float(np.std([r["asr"] for r in runs]))
    return out


def config_dict(config: InversionConfig) -> dict[str, Any]:
    out = dataclasses.asdict(config)
    out["brep"] = dataclasses.asdict(config.brep)
    return out
