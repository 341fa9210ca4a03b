"""The privacy-utility frontier (docs/paper.md, v2): RP against DP-SGD and label baselines.

Every defence is a point (held-out accuracy, ASR) per attack, on the same private identities,
evaluator and attacker prior as the inversion experiment (the shared faces setup,
`rpjax._src.experiments.faces`):

- `none`: the undefended target; `rp`: Robust Privacy at each (sigma, n) of the inversion
  sweep (the smoothed undefended target, and the Gaussian-augmented targets when run);
- `dpsgd`: the target architecture trained with DP-SGD at each epsilon (the accountant's);
- `randomized_response`, `abstain`, `output_noise`: label releases of the undefended target.

BREP-MI queries each release; MI-Face (white-box) differentiates the model the defence
deploys: the smoothed model for RP, the DP-SGD model for DP-SGD. A label-release baseline
leaves the model the white-box attacker holds unchanged, and the expected released
distribution of randomized response or random abstention is an increasing affine function of
the argmax, so for those baselines (and output noise) MI-Face is the undefended attack: their
`asr_mi_face` is the undefended value and the point says so (`mi_face_bypasses_release`).
A point is on the Pareto front of an attack when no other point has accuracy at least as
high and ASR at least as low, one of them strictly.

Every label release draws its randomness from its own secret and answer counter
(`rpjax.privacy.LabelRelease`), never from the attacker; for reproducibility the baselines'
secrets are derived from the inversion seed and their settings
(`rpjax.privacy.experiment_secret`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

import numpy as np
from flax import nnx

from rpjax._src import validate as _validate
from rpjax._src.experiments import checkpoint, common, paper
from rpjax._src.experiments.context import Context, context
from rpjax._src.experiments.faces import Faces, aggregate_runs
from rpjax._src.experiments.inversion.experiment import InversionResult
from rpjax.baselines import (
    DPSGDConfig,
    calibrate_noise_multiplier,
    dpsgd_epsilon,
    fit_dpsgd,
    output_noise_release,
    random_abstain_release,
    randomized_response_release,
)
from rpjax.data import BUNDLED_SHA256
from rpjax.models import FaceCNN, as_apply_fn
from rpjax.privacy import base_release, experiment_secret

METHODS = ("none", "rp", "dpsgd", "randomized_response", "abstain", "output_noise")


@dataclasses.dataclass(frozen=True, kw_only=True)
class FrontierConfig:
    """Settings of the frontier experiment.

    The frontier's RP points, its target, private identities, attacker prior and the
    baselines' attack seeds are the inversion experiment's (its result in the context).

    Attributes:
      epsilons: DP-SGD targets (accountant epsilons at `delta`).
      delta: DP delta.
      dpsgd_steps, dpsgd_batch, dpsgd_clip, dpsgd_lr: DP-SGD training (Poisson sampling with
        this expected batch size; per-example clip norm; Adam learning rate). Tuned on this
        data (140 private training images): at epsilon 64, 400 steps of expected batch 64 at
        lr 1e-2 reached 0.70 held-out accuracy against 0.57-0.65 for 600-1500 steps of 32.
      accountant: "rdp" or "pld" (dp_accounting).
      rr_keep: randomized response: probabilities of keeping the label.
      abstain_q: random abstention probabilities.
      output_noise: std of the Gaussian noise added to the logits (logit units).
      seeds: attack seeds for the baselines (the RP points use the inversion's).
    """

    epsilons: tuple[float, ...] = (1.0, 4.0, 16.0, 64.0)
    delta: float = 1e-5
    dpsgd_steps: int = 400
    dpsgd_batch: int = 64
    dpsgd_clip: float = 1.0
    dpsgd_lr: float = 1e-2
    accountant: str = "rdp"
    rr_keep: tuple[float, ...] = (0.9, 0.7, 0.5, 0.3)
    abstain_q: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)
    output_noise: tuple[float, ...] = (1.0, 3.0, 10.0)
    seeds: tuple[int, ...] | None = None

    def __post_init__(self):
        for e in self.epsilons:
            _validate.positive("epsilons", e)
        _validate.open_unit_interval("delta", self.delta)
        for p in (*self.rr_keep, *self.abstain_q):
            if not 0.0 <= _validate.real("rr_keep/abstain_q", p) <= 1.0:
                raise ValueError(f"rr_keep and abstain_q must be in [0, 1], got {p!r}.")
        for s in self.output_noise:
            _validate.positive("output_noise", s)

    @classmethod
    def tiny(cls, **overrides: Any) -> FrontierConfig:
        """Seconds on 2 CPU cores, to test the pipeline end to end: its numbers mean nothing."""
        base = dict(epsilons=(64.0,), dpsgd_steps=10, rr_keep=(0.5,), abstain_q=(0.5,),
                    output_noise=(3.0,))
        return cls(**{**base, **overrides})

    @classmethod
    def quick(cls, **overrides: Any) -> FrontierConfig:
        """A small setting for CI and a first look (a few minutes on 2 CPU cores)."""
        base = dict(epsilons=(4.0, 64.0),
                    rr_keep=(0.5,), abstain_q=(0.5,), output_noise=(3.0,))
        return cls(**{**base, **overrides})


def pareto_mask(accuracy: Any, asr: Any) -> np.ndarray:
    """`[P]` bool: points no other point dominates (accuracy >= and asr <=, one strictly).

    Args:
      accuracy: `[P]` utilities (higher is better); asr: `[P]` attack success (lower is
        better). NaNs are never on the front.
    """
    acc, asr = np.asarray(accuracy, np.float64), np.asarray(asr, np.float64)
    if acc.shape != asr.shape or acc.ndim != 1:
        raise ValueError(f"accuracy and asr must be [P] vectors of one length, got "
                         f"{acc.shape} and {asr.shape}.")
    ok = np.isfinite(acc) & np.isfinite(asr)
    out = np.zeros(acc.shape, bool)
    for i in np.flatnonzero(ok):
        ge = (acc[ok] >= acc[i]) & (asr[ok] <= asr[i])
        strict = (acc[ok] > acc[i]) | (asr[ok] < asr[i])
        out[i] = not np.any(ge & strict)
    return out


def _point(method, params, util, brep, face, **extra) -> dict[str, Any]:
    return {"method": method, **params, "accuracy": util["accuracy"],
            "abstain_rate": util["abstain_rate"],
            "paper_accuracy": util.get("paper_accuracy"),
            "asr_brep_mi": brep["asr"], "asr_brep_mi_std": brep.get("asr_std"),
            "asr_mi_face": face["asr"], "asr_mi_face_std": face.get("asr_std"), **extra}


def _dpsgd_model(ctx: Faces, config: FrontierConfig, epsilon: float):
    c = ctx.config
    model = FaceCNN(ctx.num_classes, channels=c.target_channels, dense=c.target_dense,
                    image_size=c.image_size, rngs=nnx.Rngs(c.seed))
    apply_fn, template = as_apply_fn(model)
    dcfg = DPSGDConfig(target_epsilon=epsilon, delta=config.delta,
                             l2_clip_norm=config.dpsgd_clip,
                             expected_batch_size=config.dpsgd_batch, steps=config.dpsgd_steps,
                             learning_rate=config.dpsgd_lr, accountant=config.accountant)
    tag = {"name": "olivetti-dpsgd", "data": BUNDLED_SHA256["olivetti"],
           "dpsgd": dataclasses.asdict(dcfg),
           "channels": list(c.target_channels), "dense": c.target_dense, "seed": c.seed,
           "num_private": c.num_private, "held_out": c.held_out, "image_size": c.image_size,
           "split_seed": c.seed}
    params, _ = checkpoint.load_or_train(
        c.cache_dir, tag, template, lambda: fit_dpsgd(model, ctx.xtr, ctx.ytr, c.seed, dcfg).params)
    # the accounting is a pure function of the configuration: recompute it for cached models
    q = min(1.0, dcfg.expected_batch_size / ctx.xtr.shape[0])
    nm = calibrate_noise_multiplier(epsilon, q, dcfg.steps, dcfg.delta, dcfg.accountant)
    eps = dpsgd_epsilon(nm, q, dcfg.steps, dcfg.delta, dcfg.accountant)
    return apply_fn, params, {"epsilon": eps, "delta": dcfg.delta, "noise_multiplier": nm,
                              "sampling_prob": q, "steps": dcfg.steps,
                              "l2_clip_norm": dcfg.l2_clip_norm}


@dataclasses.dataclass(frozen=True, kw_only=True)
class FrontierResult:
    """What `run` measured. `summary()` is the JSON of `summary.json`.

    Attributes:
      points: one record per defence setting (`method`, its parameters, `accuracy`,
        `abstain_rate`, `asr_brep_mi`, `asr_mi_face`, `pareto_brep_mi`, `pareto_mi_face`, ...).
      config: the configuration as JSON (the inversion's under `inversion`).
      chance_asr: 1 / private identities; seconds, versions: run time and numerical stack.
    """

    points: list[dict[str, Any]]
    config: dict[str, Any]
    chance_asr: float
    seconds: float
    versions: dict[str, Any]

    paper: ClassVar[list[dict[str, Any]]] = paper.FRONTIER_POINTS

    def summary(self) -> dict[str, Any]:
        """The JSON-ready result."""
        return {"experiment": "frontier", "frontier": self.points, "paper": self.paper,
                "config": self.config, "chance_asr": self.chance_asr, "seconds": self.seconds,
                "versions": self.versions}

    def headline(self) -> dict[str, Any]:
        """The numbers `rpjax reproduce` puts in its own summary (the points are added under
        `frontier` there)."""
        return {"chance_asr": self.chance_asr}


def run(config: FrontierConfig = FrontierConfig(), ctx: Context | None = None) -> FrontierResult:
    """Builds every frontier point.

    Args:
      config: the settings.
      ctx: holds the inversion experiment's result (`ctx.results["inversion"]`), whose
        undefended and RP points, target and faces setup the frontier reuses: run the
        inversion in the same context first (`rpjax reproduce frontier` does); progress bars.

    Raises:
      ValueError: the context holds no inversion result.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    ctx = context(ctx)
    inversion_result = ctx.results.get("inversion")
    if not isinstance(inversion_result, InversionResult):
        raise ValueError("ctx holds no inversion result: the frontier reuses the inversion "
                         "experiment's sweep; run it first in the same context "
                         "(run_experiment('inversion', config, ctx)).")
    inv_cfg = inversion_result.config
    fx = ctx.faces(inversion_result.faces)
    seeds = config.seeds or tuple(inv_cfg["seeds"])
    attacks = inversion_result.attacks
    points: list[dict[str, Any]] = [_point(
        "none", {}, attacks["brep_mi"]["undefended"], attacks["brep_mi"]["undefended"],
        attacks["mi_face"]["undefended"])]
    for key in ("rp", "rp_augmented"):
        for b, f in zip(attacks["brep_mi"].get(key, []), attacks["mi_face"].get(key, []),
                        strict=True):
            points.append(_point("rp", {"sigma": b["sigma"], "n": b["n"],
                                        "target": b["target"]}, b, b, f))
    undefended_face = attacks["mi_face"]["undefended"]
    apply_fn, params = fx.target

    def secret(method, value):
        return experiment_secret(inv_cfg["seed"], f"frontier/{method}", value)

    releases = (
        [("randomized_response", {"p": p}, randomized_response_release(
            apply_fn, params, p=p, num_classes=fx.num_classes,
            secret=secret("randomized_response", p))) for p in config.rr_keep]
        + [("abstain", {"q": q}, random_abstain_release(
            apply_fn, params, q=q, secret=secret("abstain", q))) for q in config.abstain_q]
        + [("output_noise", {"scale": s}, output_noise_release(
            apply_fn, params, scale=s, secret=secret("output_noise", s)))
           for s in config.output_noise])
    bar = tqdm(total=len(releases) + len(config.epsilons), desc="frontier", unit="point",
               disable=not ctx.progress)
    for method, prm, release in releases:
        bar.set_postfix(method=method, **prm)
        util = fx.release_utility(apply_fn, params, release)
        brep = aggregate_runs(fx.brep(release, seeds))
        points.append(_point(method, prm, util, brep, undefended_face,
                             mi_face_bypasses_release=True))
        bar.update(1)
    for eps in config.epsilons:
        bar.set_postfix(method="dpsgd", epsilon=eps)
        d_fn, d_params, acct = _dpsgd_model(fx, config, eps)
        util = fx.utility(d_fn, d_params)
        brep = aggregate_runs(fx.brep(base_release(d_fn, d_params), seeds))
        face = aggregate_runs([fx.mi_face(d_fn, d_params, None, s) for s in seeds])
        points.append(_point("dpsgd", {"target_epsilon": eps}, util, brep, face, **acct))
        bar.update(1)
    bar.close()
    for attack in ("brep_mi", "mi_face"):
        mask = pareto_mask([p["accuracy"] for p in points], [p[f"asr_{attack}"] for p in points])
        for p, m in zip(points, mask, strict=True):
            p[f"pareto_{attack}"] = bool(m)
    return FrontierResult(
        points=points,
        config={**dataclasses.asdict(config), "inversion": inv_cfg},
        chance_asr=1.0 / fx.num_classes, seconds=time.perf_counter() - t0,
        versions=common.versions())
