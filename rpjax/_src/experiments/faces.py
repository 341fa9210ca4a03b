"""The shared faces setup of the Olivetti experiments (inversion, frontier, distillation).

`prepare(config)` loads and splits the faces, trains (or loads from the cache) the target and
the evaluation classifier on the private identities and fits the attacker's generator prior
on the public ones; the `Faces` it returns also runs the attacks (BREP-MI, MI-Face) and
measures utility against that setup. `rpjax reproduce` builds it once per run and hands it to
every experiment that needs it.

CPU scale: images are average-pooled to `config.image_size` (32 by default; 64 in `full`),
which makes noise generation and the base model 4x cheaper. Sigma is in pixel units ([0, 1]).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rpjax._src.experiments import checkpoint, common
from rpjax.attacks import (
    BrepConfig,
    MIFaceConfig,
    attack_success,
    brep_mi,
    fit_pca_prior,
    fit_vae_prior,
    mi_face_latent,
    nearest_private_distance,
    release_utility,
)
from rpjax.data import BUNDLED_SHA256, FaceSplit, load_olivetti, split_identities
from rpjax.models import FaceCNN, TrainConfig, as_apply_fn, fit_classifier
from rpjax.privacy import initial_state


@dataclasses.dataclass(frozen=True, kw_only=True)
class FacesConfig:
    """What the shared faces setup depends on: the data split, the target and evaluator
    models, the attacker's prior and the attacks' budgets (units as in `InversionConfig`,
    whose `faces` property builds it; the experiments on the faces share one `Faces` per
    `FacesConfig`).

    Attributes:
      num_private, held_out, image_size: the split (private identities, held-out images per
        identity) and the side of the pooled images (pixels).
      target_channels, target_dense, target_steps: the target CNN and its training steps.
      evaluator_channels, evaluator_dense, evaluator_steps, evaluator_noise: the evaluation
        classifier (and its Gaussian augmentation std, pixels).
      prior_k, prior: the prior's latent dimension and kind ("pca" or "vae").
      brep: BREP-MI's settings; mi_face_iters, mi_face_lr, mi_face_m: MI-Face's budget.
      seed: the split's and the models' seed; cache_dir: trained-model cache (None: none).
    """

    num_private: int
    held_out: int
    image_size: int
    target_channels: tuple[int, ...]
    target_dense: int
    target_steps: int
    evaluator_channels: tuple[int, ...]
    evaluator_dense: int
    evaluator_steps: int
    evaluator_noise: float
    prior_k: int
    prior: str
    brep: BrepConfig
    mi_face_iters: int
    mi_face_lr: float
    mi_face_m: int
    seed: int
    cache_dir: str | None


def _pool(images: np.ndarray, size: int) -> np.ndarray:
    f = images.shape[1] // size
    n, h, w, c = images.shape
    return images.reshape(n, h // f, f, w // f, f, c).mean(axis=(2, 4)).astype(np.float32)


def train_face_model(config: FacesConfig, name: str, channels: tuple[int, ...], dense: int,
                     steps: int, noise: float, x: np.ndarray, y: np.ndarray,
                     seed: int) -> tuple[Any, Any]:
    """A `FaceCNN` trained on `(x, y)` (cached under `config.cache_dir`): `(apply_fn, params)`.

    `noise > 0` trains with Gaussian augmentation of that std (pixels).
    """
    model = FaceCNN(int(y.max()) + 1, channels=channels, dense=dense,
                    image_size=config.image_size, rngs=nnx.Rngs(seed))
    apply_fn, template = as_apply_fn(model)
    tcfg = TrainConfig(steps=steps, batch_size=32, learning_rate=1e-3, noise_sigma=noise)
    tag = {"name": name, "data": BUNDLED_SHA256["olivetti"], "channels": list(channels),
           "dense": dense, "train": dataclasses.asdict(tcfg), "seed": seed,
           "num_private": config.num_private, "held_out": config.held_out,
           "image_size": config.image_size,
           "split_seed": config.seed, "jax": jax.__version__}
    params, _ = checkpoint.load_or_train(
        config.cache_dir, tag, template,
        lambda: fit_classifier(model, x, y, seed, tcfg).params)
    return apply_fn, params


def direction_identity(images: Any, reference: Any, private_x: np.ndarray,
                       private_y: np.ndarray) -> np.ndarray:
    """`[T]` the identity each reconstruction's pixels point to, judged without any model.

    The deviation `images[t] - reference` (the reference is the attacker's start, the
    prior's mean face) is compared by cosine with every private face's deviation from the
    mean private face; the identity of the best-matching face is returned (-1 where the
    reconstruction does not differ from the reference). A mean face therefore scores 0 and a
    random deviation scores chance (1 / identities): this is the judge-free control of the
    evaluator's top-1 (issue 25: a reconstruction that looks like the mean face may still
    carry its target's features at a small amplitude, which this measures).
    """
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    ref = np.asarray(reference, np.float64).reshape(1, -1)
    faces = np.asarray(private_x, np.float64).reshape(len(private_x), -1)
    dev = x - ref
    own = faces - faces.mean(axis=0, keepdims=True)
    norm = np.linalg.norm(dev, axis=1)
    moved = norm > 1e-6 * np.sqrt(dev.shape[1])
    cos = (dev / np.where(moved, norm, 1.0)[:, None]) @ (
        own / np.maximum(np.linalg.norm(own, axis=1, keepdims=True), 1e-12)).T
    return np.where(moved, np.asarray(private_y)[cos.argmax(axis=1)], -1)


def pixel_nearest_identity(images: Any, private_x: np.ndarray,
                           private_y: np.ndarray) -> np.ndarray:
    """`[T]` the identity of the private face nearest to each reconstruction in pixels (l2).

    The nearest-private-face baseline: a reconstruction near the mean face is nearest to the
    most average identity whatever its target, so this stays near chance unless the
    reconstruction is itself close to one of its target's faces.
    """
    x = np.asarray(images, np.float64).reshape(len(images), -1)
    faces = np.asarray(private_x, np.float64).reshape(len(private_x), -1)
    d = (x ** 2).sum(1)[:, None] - 2 * x @ faces.T + (faces ** 2).sum(1)[None]
    return np.asarray(private_y)[d.argmin(axis=1)]


class Judge(NamedTuple):
    """The evaluation classifier and the private images the reconstructions are judged by.

    `reference` is the attacker's start (the prior's mean face) from which `direction`
    measures each reconstruction's deviation; None: the mean private face.
    """

    logits: Any  # jitted x -> evaluator logits
    features: Any  # jitted x -> evaluator features
    private_x: np.ndarray
    private_y: np.ndarray
    reference: np.ndarray | None = None

    def score(self, images, targets, valid=None) -> dict[str, np.ndarray]:
        """Per-target `top1`, `top5` hits (the evaluator), `distance` to the nearest private
        image of the target (evaluator features), and two judge-free hits: `direction`
        (`direction_identity` is the target) and `pixel_nn` (`pixel_nearest_identity` is the
        target)."""
        out = attack_success(self.logits, images, targets, valid=valid)
        out["distance"] = nearest_private_distance(
            self.features, images, targets, self.private_x, self.private_y)
        ref = self.private_x.mean(axis=0) if self.reference is None else self.reference
        images = np.asarray(images)
        targets = np.asarray(targets)
        ok = np.ones(len(targets), bool) if valid is None else np.asarray(valid, bool)
        out["direction"] = (direction_identity(images, ref, self.private_x, self.private_y)
                            == targets) & ok
        out["pixel_nn"] = (pixel_nearest_identity(images, self.private_x, self.private_y)
                           == targets) & ok
        return out

    def controls(self, num_targets: int, prior_samples: Any, seed: int = 0
                 ) -> dict[str, dict[str, float]]:
        """Images that carry no target's identity, scored like reconstructions: what chance
        looks like to each measure (top-1, top-5, direction, pixel_nn) for the targets
        0 .. T-1 (`T = num_targets`), each image attributed to target `i % T`.

        `mean_face`: the mean private face for every target; `start`: the reference (the
        attacks' start); `mean_face_noise`: the mean private face plus i.i.d. Gaussian noise
        of std 0.03 pixels, as many images as `prior_samples`; `prior_samples`: random faces
        of the attacker's prior (`[R * T, ...]` images in [0, 1]).
        """
        rng = np.random.default_rng(seed)
        mean = self.private_x.mean(axis=0)
        ref = mean if self.reference is None else np.asarray(self.reference)
        samples = np.asarray(prior_samples)
        if len(samples) % num_targets:
            raise ValueError(f"prior_samples must hold a multiple of num_targets = "
                             f"{num_targets} images, got {len(samples)}.")
        reps = len(samples) // num_targets
        shape = (num_targets, *mean.shape)
        images = {
            "mean_face": np.broadcast_to(mean, shape),
            "start": np.broadcast_to(ref, shape),
            "mean_face_noise": np.clip(
                mean + 0.03 * rng.standard_normal((reps * num_targets, *mean.shape)), 0, 1),
            "prior_samples": samples,
        }
        out = {}
        for name, x in images.items():
            targets = np.arange(len(x)) % num_targets
            s = self.score(np.asarray(x, np.float32), targets)
            out[name] = {k: float(np.mean(s[k])) for k in ("top1", "top5", "direction",
                                                             "pixel_nn")}
        return out


def _features_fn(config, channels, dense, params):
    graphdef = nnx.split(FaceCNN(config.num_private, channels=channels, dense=dense,
                                 image_size=config.image_size, rngs=nnx.Rngs(0)))[0]
    return jax.jit(lambda x: nnx.merge(graphdef, params).features(x))


class AttackRecord(NamedTuple):
    """One attack run (one seed) against one target, judged by the evaluator.

    `summary` holds the JSON-ready numbers (ASR, top-5, distance, queries, ...); `success`
    is the `[T]` per-target top-1 hit, `images` the `[T, H, W, 1]` reconstructions and
    `direction` the `[T]` judge-free hit (`direction_identity` names the target).
    """

    summary: dict[str, float]
    success: np.ndarray
    images: np.ndarray
    direction: np.ndarray | None = None  # [T] judge-free hit (`direction_identity`)


def _brep_record(res, judge, decode, targets) -> AttackRecord:
    images = decode(jnp.asarray(res.latents))
    final = judge.score(images, targets, valid=res.found)
    initial = attack_success(judge.logits, decode(jnp.asarray(res.initial)), targets,
                             valid=res.found)
    found = res.found
    return AttackRecord({
        "distance": float(np.mean(final["distance"])),
        "asr": float(final["top1"].mean()),
        "asr_top5": float(final["top5"].mean()),
        "asr_direction": float(final["direction"].mean()),
        "asr_pixel_nn": float(final["pixel_nn"].mean()),
        "asr_initial": float(initial["top1"].mean()),
        "initial_found": int(found.sum()),
        "asr_among_found": float(final["top1"][found].mean()) if found.any() else 0.0,
        "queries": float(res.queries.mean()),
        "forward_passes": float(res.forward_passes.mean()),
    }, final["top1"], np.asarray(images), final["direction"])


def _mi_face_record(apply_fn, params, sigma, seed, decode, judge, targets,
                    config) -> AttackRecord:
    cfg = MIFaceConfig(max_iters=config.mi_face_iters, lr=config.mi_face_lr, sigma=sigma,
                       m=config.mi_face_m, latent_clip=config.brep.latent_clip)
    z0 = jnp.zeros((len(targets), config.prior_k))
    res = mi_face_latent(apply_fn, params, targets, seed, cfg, decode=decode, z_init=z0)
    images = decode(jnp.asarray(res.latents))
    final = judge.score(images, targets)
    start = attack_success(judge.logits, decode(z0), targets)
    return AttackRecord({
        "asr": float(final["top1"].mean()), "asr_top5": float(final["top5"].mean()),
        "distance": float(np.mean(final["distance"])),
        "asr_direction": float(final["direction"].mean()),
        "asr_pixel_nn": float(final["pixel_nn"].mean()),
        "asr_initial": float(start["top1"].mean()), "initial_found": len(targets),
        "queries": float(np.mean(res.iterations + 1)),
        "forward_passes": float(np.mean(res.forward_passes)),
    }, final["top1"], np.asarray(images), final["direction"])


_AGGREGATED = ("asr", "asr_top5", "asr_direction", "asr_pixel_nn", "asr_initial",
               "initial_found", "asr_among_found", "queries", "forward_passes", "distance")


def aggregate_runs(records: list[AttackRecord]) -> dict[str, Any]:
    """Means over the seeds' records (and `asr_std`, `asr_per_seed`), JSON-ready."""
    out: dict[str, Any] = {}
    for k in _AGGREGATED:
        vals = [r.summary[k] for r in records if k in r.summary]
        if vals:
            out[k] = float(np.mean(vals))
            if k == "asr":
                out["asr_std"] = common.spread(vals)
                out["asr_per_seed"] = [float(v) for v in vals]
    return out


class Faces(NamedTuple):
    """Everything the faces experiments need, built once per configuration by `prepare`."""

    config: FacesConfig
    split: FaceSplit
    xtr: np.ndarray  # [N, S, S, 1] private training images (pixels in [0, 1])
    ytr: np.ndarray  # [N] their classes
    xte: np.ndarray  # held-out private images (utility)
    yte: np.ndarray
    public: np.ndarray  # the public identities' images (the attacker's data)
    target: tuple[Any, Any]  # (apply_fn, params) of the undefended target
    evaluator: Any  # jitted x -> logits of the evaluation classifier
    judge: Judge
    prior: Any
    decode: Any  # jitted z [b, k] -> images
    targets: np.ndarray  # [T] the attacked classes

    @property
    def num_classes(self) -> int:
        """The private identities (the target's classes)."""
        return self.config.num_private

    def train_target(self, name: str, noise: float = 0.0) -> tuple[Any, Any]:
        """A target-architecture model trained on the private images (cached)."""
        c = self.config
        return train_face_model(c, name, c.target_channels, c.target_dense, c.target_steps,
                                noise, self.xtr, self.ytr, c.seed)

    def utility(self, apply_fn, params, labels=None) -> dict[str, Any]:
        """Held-out accuracy (and the paper's metric) of released `labels` (default: the
        base argmax); the confidence ranking is always the base model's."""
        probs = jax.nn.softmax(jax.jit(apply_fn)(params, jnp.asarray(self.xte)))
        conf = np.asarray(probs)[np.arange(len(self.yte)), self.yte]
        if labels is None:
            labels = np.asarray(jnp.argmax(probs, axis=-1))
        return release_utility(labels, self.yte, conf)

    def release_utility(self, apply_fn, params, release) -> dict[str, Any]:
        """Utility of a `LabelRelease` queried once on every held-out image (a fresh
        release: its answers 0 .. N - 1; the noise is the release's own)."""
        labels, _ = release(jnp.asarray(self.xte), initial_state())
        return self.utility(apply_fn, params, np.asarray(labels))

    def brep(self, release, seeds, *, release_state=None):
        """BREP-MI against `release`, one `AttackRecord` per attack seed; the seeds attack the
        one release in turn (its answer counter carries over, as for a deployed release).

        With `release_state` (the release's state to start from) it returns `(records,
        final state)`; without, the release starts fresh and only the records come back.
        """
        c = self.config
        state, out = (initial_state() if release_state is None else release_state), []
        for seed in seeds:
            res = brep_mi(release, self.decode, self.targets, seed, c.brep,
                          latent_dim=c.prior_k, release_state=state)
            state = res.release_state
            out.append(_brep_record(res, self.judge, self.decode, self.targets))
        return out if release_state is None else (out, state)

    def mi_face(self, apply_fn, params, sigma, seed) -> AttackRecord:
        """MI-Face in the prior's latent space against the model (smoothed when sigma)."""
        return _mi_face_record(apply_fn, params, sigma, seed, self.decode, self.judge,
                               self.targets, self.config)


def prepare(config: FacesConfig) -> Faces:
    """Loads and splits the faces, trains (or loads) the target and the evaluator, fits the
    attacker's prior on the public identities."""
    data = load_olivetti()
    images = _pool(data.images, config.image_size)
    split = split_identities(data.labels, num_private=config.num_private,
                             held_out_per_identity=config.held_out, seed=config.seed)
    y = split.relabel[data.labels]
    xtr, ytr = images[split.train_idx], y[split.train_idx]
    xte, yte = images[split.test_idx], y[split.test_idx]
    target = train_face_model(config, "olivetti-target", config.target_channels,
                              config.target_dense, config.target_steps, 0.0, xtr, ytr,
                              config.seed)
    ev_fn, ev_params = train_face_model(config, "olivetti-evaluator", config.evaluator_channels,
                                        config.evaluator_dense, config.evaluator_steps,
                                        config.evaluator_noise, xtr, ytr, config.seed + 1000)
    evaluator = jax.jit(lambda x: ev_fn(ev_params, x))
    public = images[split.public_idx]
    prior = (fit_pca_prior(public, config.prior_k) if config.prior == "pca" else
             fit_vae_prior(public, config.prior_k, config.seed))
    decode = jax.jit(lambda z: prior.decode(z))
    start = np.asarray(decode(jnp.zeros((1, config.prior_k))))[0]  # the attacks' start
    judge = Judge(evaluator, _features_fn(config, config.evaluator_channels,
                                          config.evaluator_dense, ev_params), xtr, ytr, start)
    return Faces(config, split, xtr, ytr, xte, yte, public, target, evaluator, judge, prior,
                 decode, np.arange(config.num_private))
