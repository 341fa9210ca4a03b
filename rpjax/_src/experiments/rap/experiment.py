"""Experiment A: Robust Attribute Privacy on the insurance recommendation task (docs/paper.md).

Train a small MLP to recommend (1) iff BMI >= 33.4 with an l1 penalty on the first-layer
weights of every non-BMI input; certify every test person under randomized smoothing (RP) in
standardized feature space for each (sigma, n); sweep BMI from 10 to 60 with the other
features fixed and compute the compatible intervals (preimage, not_excluded, APE) for the base
model and for each smoothed release. `run(config, ctx) -> RapResult` returns every number;
`rpjax._src.experiments.rap.report.write` puts summary.json, a per-person CSV, a Markdown
table and two plots in a directory.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import rpjax
from rpjax._src import validate as _validate
from rpjax._src.experiments import checkpoint, common, paper
from rpjax._src.experiments.context import Context, context
from rpjax.data import (
    BUNDLED_SHA256,
    DEFAULT_BMI_THRESHOLD,
    InsuranceData,
    load_insurance,
    train_test_split,
)
from rpjax.models import TabularMLP, TrainConfig, accuracy, as_apply_fn, fit_classifier
from rpjax.privacy import (
    READINGS,
    AttributeSweep,
    Intervals,
    attribute_intervals,
    base_labels,
    certified_labels,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RapConfig:
    """Settings of the attribute-privacy experiment (units stated).

    Attributes:
      threshold: BMI (kg/m^2) at and above which the label is "recommend" (1).
      l1: coefficient of the l1 penalty on the first-layer weights of non-BMI inputs.
      hidden: hidden widths of the MLP.
      train_steps, batch_size, learning_rate: Adam training of the base model.
      augment_at_sigma: if True, each smoothed release smooths a base model trained with
        Gaussian noise augmentation at that release's sigma (standardized units); if False
        (the paper's setting) every release smooths the one undefended base model.
      test_fraction: share of people held out (certified and swept).
      max_people: certify and sweep at most this many test people (None: all).
      sigmas: smoothing stds in standardized feature units.
      ns: estimation sample sizes; n0 selection samples; alpha failure probability.
      sweep_low, sweep_high: BMI sweep range; grid_points, refine_steps: its resolution.
      batch_size_certify: inputs per compiled certification call.
      seed: split, initialization, training order and certification noise.
      cache_dir: where trained parameters are cached (None: no cache).
    """

    threshold: float = DEFAULT_BMI_THRESHOLD
    l1: float = 0.01
    hidden: tuple[int, ...] = (32, 32)
    train_steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 3e-3
    augment_at_sigma: bool = False
    test_fraction: float = 0.2
    max_people: int | None = None
    sigmas: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 3.0)
    ns: tuple[int, ...] = (100, 1_000, 10_000)
    n0: int = 100
    alpha: float = 1e-3
    sweep_low: float = 10.0
    sweep_high: float = 60.0
    grid_points: int = 51
    refine_steps: int = 10
    batch_size_certify: int = 2048
    seed: int = 0
    cache_dir: str | None = None

    def __post_init__(self):
        _validate.positive("threshold", self.threshold)
        if _validate.real("l1", self.l1) < 0:
            raise ValueError(f"l1 must be >= 0, got l1={self.l1}.")
        if not self.sigmas or not self.ns:
            raise ValueError("sigmas and ns must be non-empty.")
        for s in self.sigmas:
            _validate.positive("sigmas", s)
        for n in self.ns:
            _validate.integer("ns", n, minimum=1)
        _validate.open_unit_interval("alpha", self.alpha)
        _validate.open_unit_interval("test_fraction", self.test_fraction)
        if self.max_people is not None:
            _validate.integer("max_people", self.max_people, minimum=1)

    @classmethod
    def tiny(cls, **overrides: Any) -> RapConfig:
        """Seconds on 2 CPU cores, to test the pipeline end to end: its numbers mean nothing."""
        base = dict(sigmas=(1.0,), ns=(100,), max_people=8, grid_points=11, refine_steps=4,
                    train_steps=200)
        return cls(**{**base, **overrides})

    @classmethod
    def quick(cls, **overrides: Any) -> RapConfig:
        """A small setting that finishes in about a minute on 2 CPU cores."""
        base = dict(sigmas=(1.0, 2.0, 3.0), ns=(100, 1_000), max_people=80, grid_points=26,
                    refine_steps=8, train_steps=1500)
        return cls(**{**base, **overrides})


def _l1_penalty(coef: float, bmi_index: int, num_features: int):
    mask = jnp.ones((num_features, 1)).at[bmi_index].set(0.0)

    def penalty(params):
        kernel = params["hidden"][0]["kernel"].get_value()
        return coef * jnp.sum(jnp.abs(kernel * mask))

    return penalty


def train_base_model(config: RapConfig, data: InsuranceData, train_idx: np.ndarray,
                     noise_sigma: float = 0.0):
    """The base MLP (cached with orbax): `(apply_fn, params, from_cache, seconds)`.

    `noise_sigma > 0` trains with Gaussian noise augmentation of that std (standardized units).
    """
    y = data.labels(config.threshold)
    model = TabularMLP(data.x.shape[1], 2, hidden=config.hidden, rngs=nnx.Rngs(config.seed))
    apply_fn, template = as_apply_fn(model)
    tcfg = TrainConfig(steps=config.train_steps, batch_size=config.batch_size,
                       learning_rate=config.learning_rate, noise_sigma=noise_sigma)
    tag = {"name": "insurance-mlp", "data": BUNDLED_SHA256["insurance"],
           "threshold": config.threshold,
           "l1": config.l1, "hidden": list(config.hidden), "train": dataclasses.asdict(tcfg),
           "seed": config.seed, "test_fraction": config.test_fraction,
           "jax": jax.__version__}
    penalty = _l1_penalty(config.l1, data.bmi_index, data.x.shape[1])
    t0 = time.perf_counter()

    def train():
        return fit_classifier(model, data.x[train_idx], y[train_idx], config.seed, tcfg,
                              penalty=penalty).params

    params, hit = checkpoint.load_or_train(config.cache_dir, tag, template, train)
    return apply_fn, params, hit, time.perf_counter() - t0


def _median(a) -> float:
    return float(np.median(a)) if len(a) else float("nan")


def _interval_record(iv: Intervals, scale: float,
                     base_iv: Intervals | None = None) -> dict[str, float]:
    lengths = {r: iv.length(r) for r in (*READINGS, "ape_unclipped")}
    extra = {}
    if base_iv is not None:  # the base model's interval widened by the RP radius each side
        widened = base_iv.length("preimage") + 2.0 * iv.radius * scale
        extra["median_base_widened_bmi"] = _median(widened)
    return {
        "median_ape_unclipped_bmi": _median(lengths["ape_unclipped"]),
        **extra,
        "median_interval_bmi": _median(lengths["preimage"]),
        "median_not_excluded_bmi": _median(lengths["not_excluded"]),
        "median_ape_interval_bmi": _median(lengths["ape"]),
        "median_interval_std": _median(lengths["preimage"]) / scale,
        "median_not_excluded_std": _median(lengths["not_excluded"]) / scale,
        "median_ape_interval_std": _median(lengths["ape"]) / scale,
    }


def _rp_record(cert, iv: Intervals, base_iv: Intervals, y: np.ndarray, sigma: float,
               n: int, scale: float) -> dict[str, Any]:
    released = cert.label != rpjax.ABSTAIN
    radius = cert.radius[released]
    return {
        "sigma": sigma, "n": n,
        "accuracy": float(np.mean(cert.label == y)),
        "accuracy_released": float(np.mean(cert.label[released] == y[released]))
        if released.any() else float("nan"),
        "abstain_rate": float(np.mean(~released)),
        "mean_radius_std": float(radius.mean()) if radius.size else 0.0,
        "mean_radius_bmi": float(radius.mean() * scale) if radius.size else 0.0,
        "mean_radius_std_all": float(cert.radius.mean()),
        "recommended_rate": float(np.mean(cert.label == 1)),
        **_interval_record(iv, scale, base_iv),
    }


class ReleaseTrace(NamedTuple):
    """One release's outcome for every swept person.

    Attributes:
      name: "base" (the base model) or `rp_sigma{sigma}_n{n}` (a smoothed release).
      sigma, n: the smoothing std (standardized units) and samples; None for the base model.
      labels: `[P]` released labels (-1 = abstain); radius: `[P]` certified radii (std units;
        0 for the base model); intervals: the compatible BMI intervals of each person.
    """

    name: str
    sigma: float | None
    n: int | None
    labels: np.ndarray
    radius: np.ndarray
    intervals: Intervals


class People(NamedTuple):
    """The swept test people: `[P]` row ids, BMIs, true labels, and each release's outcome."""

    id: np.ndarray
    bmi: np.ndarray
    label: np.ndarray
    releases: tuple[ReleaseTrace, ...]

    def release(self, sigma: float | None = None, n: int | None = None) -> ReleaseTrace:
        """The release smoothed at `(sigma, n)`; the base model's when both are None."""
        for r in self.releases:
            if r.sigma == sigma and r.n == n:
                return r
        raise ValueError(f"no release at sigma={sigma!r}, n={n!r}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RapResult:
    """What `run` measured. `summary()` is the JSON of `summary.json`.

    Attributes:
      config: the configuration as JSON; units: the units of every number.
      num_people: people certified and swept.
      base: the base model's record (accuracy, median intervals, first-layer weights).
      rp: the records at the largest n, keyed by sigma (str); rp_by_n: at every n (str).
      base_model_from_cache, train_seconds: whether the base model came from the cache, and
        the seconds it took; seconds, versions: run time and numerical stack.
      people: the per-person outcome of every release (not in the JSON).
    """

    config: dict[str, Any]
    units: dict[str, Any]
    num_people: int
    base: dict[str, Any]
    rp: dict[str, dict[str, Any]]
    rp_by_n: dict[str, dict[str, dict[str, Any]]]
    base_model_from_cache: bool
    train_seconds: float
    seconds: float
    versions: dict[str, Any]
    people: People

    paper: ClassVar[dict[str, Any]] = paper.RAP

    def summary(self) -> dict[str, Any]:
        """The JSON-ready result (the per-person arrays left out)."""
        return {"experiment": "rap", "config": self.config, "units": self.units,
                "num_people": self.num_people, "base": self.base, "rp": self.rp,
                "rp_by_n": self.rp_by_n, "paper": self.paper,
                "base_model_from_cache": self.base_model_from_cache,
                "train_seconds": self.train_seconds, "seconds": self.seconds,
                "versions": self.versions}

    def headline(self) -> dict[str, Any]:
        """The numbers `rpjax reproduce` puts in its own summary."""
        return {"base": self.base, "rp": self.rp, "num_people": self.num_people,
                "units": self.units}


def run(config: RapConfig = RapConfig(), ctx: Context | None = None) -> RapResult:
    """Runs the experiment: every number, and each release's per-person outcome.

    Args:
      config: the settings.
      ctx: progress bars (the base model's cache is `config.cache_dir`); None: a fresh
        `Context()`.
    """
    ctx = context(ctx)
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    data = load_insurance()
    y_all = data.labels(config.threshold)
    train_idx, test_idx = train_test_split(len(y_all), config.test_fraction, config.seed)
    apply_fn, params, cached, train_s = train_base_model(config, data, train_idx)
    people = test_idx if config.max_people is None else test_idx[: config.max_people]
    x, y, bmi = data.x[people], y_all[people], data.bmi[people]
    scale = data.bmi_std
    sweep = AttributeSweep(index=data.bmi_index, offset=float(data.mean[data.bmi_index]),
                           scale=scale, low=config.sweep_low, high=config.sweep_high,
                           num_points=config.grid_points, refine_steps=config.refine_steps)
    true_bmi = np.clip(bmi, config.sweep_low, config.sweep_high)

    base_iv = attribute_intervals(base_labels(apply_fn, params), x, people, true_bmi, sweep)
    first = base_labels(apply_fn, params)(x, people)[0]
    base = {
        "accuracy": accuracy(apply_fn, params, data.x[test_idx], y_all[test_idx]),
        "accuracy_swept": float(np.mean(first == y)),
        "recommended_rate": float(np.mean(first == 1)),
        "first_layer_abs_weight": _first_layer_weights(params, data),
        **_interval_record(base_iv, scale),
    }
    rp_by_n: dict[str, dict[str, Any]] = {}
    augmented: dict[float, tuple[Any, Any]] = {}
    traces = [ReleaseTrace("base", None, None, first, np.zeros(len(people)), base_iv)]
    grid = [(s, n) for n in config.ns for s in config.sigmas]
    bar = tqdm(grid, desc="RP certify + BMI sweep", unit="setting", disable=not ctx.progress)
    for sigma, n in bar:
        bar.set_postfix(sigma=sigma, n=n)
        key = jax.random.fold_in(jax.random.key(config.seed), 1)
        smoothed = (apply_fn, params)
        if config.augment_at_sigma:
            smoothed = _augmented(config, data, train_idx, sigma, augmented)
        smoothing = rpjax.SmoothingConfig(sigma=sigma, n0=config.n0, n=n, alpha=config.alpha)
        cert = rpjax.certify(*smoothed, x, key, num_classes=2, config=smoothing, ids=people,
                             placement=rpjax.Placement(
                                 batch_size=min(config.batch_size_certify, len(people))))
        release = certified_labels(*smoothed, key, num_classes=2, config=smoothing,
                                   placement=rpjax.Placement(
                                       batch_size=config.batch_size_certify))
        iv = attribute_intervals(release, x, people, true_bmi, sweep)
        rec = _rp_record(cert, iv, base_iv, y, sigma, n, scale)
        rec["base_model"] = (f"trained with Gaussian augmentation at sigma={sigma}"
                             if config.augment_at_sigma else "undefended base model")
        rp_by_n.setdefault(str(n), {})[str(float(sigma))] = rec
        traces.append(ReleaseTrace(f"rp_sigma{sigma}_n{n}", sigma, n, cert.label, cert.radius,
                                   iv))
    largest = str(max(config.ns))
    return RapResult(
        config=dataclasses.asdict(config),
        units={"sigma": "standardized feature units", "radius_std": "standardized units",
               "radius_bmi": "BMI points (kg/m^2) = radius_std * std(BMI)",
               "intervals": "BMI points", "bmi_std": scale},
        num_people=int(len(people)), base=base, rp=rp_by_n[largest], rp_by_n=rp_by_n,
        base_model_from_cache=cached, train_seconds=train_s,
        seconds=time.perf_counter() - t0, versions=common.versions(),
        people=People(id=people, bmi=bmi, label=y, releases=tuple(traces)))


def _augmented(config, data, train_idx, sigma, cache):
    if sigma not in cache:
        apply_fn, params, _, _ = train_base_model(config, data, train_idx, noise_sigma=sigma)
        cache[sigma] = (apply_fn, params)
    return cache[sigma]


def _first_layer_weights(params, data) -> dict[str, float]:
    kernel = np.asarray(params["hidden"][0]["kernel"].get_value())
    return {f: float(np.abs(kernel[i]).sum()) for i, f in enumerate(data.features)}
