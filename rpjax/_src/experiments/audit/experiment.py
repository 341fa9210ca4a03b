"""The audit on three real data sets: `rpjax.privacy.audit` of MLPs that rpjax trains.

For each data set of `rpjax.data.TABULAR_DATASETS` (the bundled insurance data, statsmodels'
fair data, scikit-learn's diabetes data; `rpjax/data/_files/PROVENANCE.md`), two base MLPs are
trained on a seeded train split: one plain, one with Gaussian noise augmentation
(`TrainConfig(noise_sigma=augment_sigma)`, input units). Each is audited on `max_people`
test people (a seeded random sample of the test split) for every sensitive attribute of the
data set (continuous: the intervals and radii over a sweep of the attribute; categorical: the
categories compatible with the label), with the leakage bound, the budget and the attackers.
`run(config, ctx) -> AuditExperimentResult`; `rpjax._src.experiments.audit.report.write` puts
each audit's `report.md`, `summary.json` and plots into `OUT/<data set>/<model>/`, and the
experiment's tables into `OUT/report.md`.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np
from flax import nnx

from rpjax._src import validate as _validate
from rpjax._src.experiments import checkpoint, common
from rpjax._src.experiments.context import Context, context
from rpjax.data import TABULAR_DATASETS, TabularData, load_tabular, train_test_split
from rpjax.models import TabularMLP, TrainConfig, accuracy, as_apply_fn, fit_classifier
from rpjax.privacy import AuditConfig, AuditResult, audit

MODELS = ("plain", "augmented")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditExperimentConfig:
    """Settings of the audit experiment (units stated).

    Attributes:
      datasets: which data sets (`rpjax.data.TABULAR_DATASETS`).
      hidden: hidden widths of the MLPs; train_steps, batch_size, learning_rate: Adam.
      augment_sigma: the augmented model's training noise std (input units).
      test_fraction: share of people held out; max_people: audited test people per data set
        (a seeded random sample of the test split).
      sigmas: the releases' noise stds (input units); ns, n0, alpha: their statistics.
      mode: the hardened release's mode (leakage bound and attackers).
      ks: answers of the k-answer bounds; max_advantage: the budget's cap.
      shift_std: the leakage bound's move of each continuous attribute, in its standard
        deviations (input units; a category change is always the one-hot distance).
      grid_points, refine_steps: each continuous attribute's sweep.
      attack_people, attack_queries, attack_grid, attacker_samples: the attackers.
      seed: split, initialization, training order, certification noise, attackers.
      cache_dir: trained-model cache (None: no cache).
    """

    datasets: tuple[str, ...] = TABULAR_DATASETS
    hidden: tuple[int, ...] = (32, 32)
    train_steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 3e-3
    augment_sigma: float = 0.5
    test_fraction: float = 0.2
    max_people: int = 100
    sigmas: tuple[float, ...] = (0.25, 0.5, 1.0)
    ns: tuple[int, ...] = (100, 1_000)
    n0: int = 100
    alpha: float = 1e-3
    mode: str = "predict"
    ks: tuple[int, ...] = (1, 10, 100)
    max_advantage: float = 0.5
    shift_std: float = 0.01
    grid_points: int = 26
    refine_steps: int = 8
    attack_people: int = 10
    attack_queries: tuple[int, ...] = (1, 10, 100)
    attack_grid: int = 41
    attacker_samples: int = 1000
    seed: int = 0
    cache_dir: str | None = None

    def __post_init__(self):
        if not self.datasets or any(d not in TABULAR_DATASETS for d in self.datasets):
            raise ValueError(f"datasets must be among {TABULAR_DATASETS}, got "
                             f"{self.datasets!r}.")
        _validate.integer("train_steps", self.train_steps, minimum=1)
        _validate.integer("max_people", self.max_people, minimum=1)
        _validate.positive("augment_sigma", self.augment_sigma)
        _validate.open_unit_interval("test_fraction", self.test_fraction)
        _validate.positive("shift_std", self.shift_std)
        self.audit_config()  # checks the audit's settings

    def audit_config(self, shifts: dict[str, float] | None = None) -> AuditConfig:
        """The settings every audit of this experiment runs with (`shifts`: raw units by
        continuous attribute)."""
        return AuditConfig(sigmas=self.sigmas, ns=self.ns, n0=self.n0, alpha=self.alpha,
                           mode=self.mode, ks=self.ks, max_advantage=self.max_advantage,
                           shifts=shifts or {},
                           attack_people=self.attack_people,
                           attack_queries=self.attack_queries, attack_grid=self.attack_grid,
                           attacker_samples=self.attacker_samples)

    @classmethod
    def tiny(cls, **overrides: Any) -> AuditExperimentConfig:
        """Seconds per data set on 2 CPU cores, to test the pipeline: its numbers mean
        nothing."""
        base = dict(train_steps=100, max_people=4, sigmas=(0.5,), ns=(100,), n0=20, ks=(1, 10),
                    grid_points=6, refine_steps=3, attack_people=2, attack_queries=(1, 5),
                    attack_grid=11, attacker_samples=100)
        return cls(**{**base, **overrides})

    @classmethod
    def quick(cls, **overrides: Any) -> AuditExperimentConfig:
        """A small setting: a few minutes on 2 CPU cores for the three data sets."""
        base = dict(train_steps=1000, max_people=40, sigmas=(0.25, 0.5, 1.0), ns=(100, 1000),
                    grid_points=16, refine_steps=6, attack_people=6,
                    attack_queries=(1, 10, 100), attack_grid=31, attacker_samples=500)
        return cls(**{**base, **overrides})


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditRun:
    """One audit: a data set, a model and its `AuditResult`.

    Attributes:
      dataset: the data set's description (`TabularData.describe()`).
      model: "plain" or "augmented"; training: its settings; test_accuracy: the base
        model's accuracy on the whole test split.
      units: raw units of each continuous attribute.
      result: the audit.
    """

    dataset: dict[str, Any]
    model: str
    training: dict[str, Any]
    test_accuracy: float
    units: dict[str, str]
    result: AuditResult


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditExperimentResult:
    """What `run` measured. `summary()` is the JSON of the experiment's `summary.json`.

    Attributes:
      config: the configuration as JSON; runs: one `AuditRun` per (data set, model);
      seconds, versions: run time and numerical stack.
    """

    config: dict[str, Any]
    runs: tuple[AuditRun, ...]
    seconds: float
    versions: dict[str, Any]

    def headline(self) -> dict[str, Any]:
        """Per data set and model, per attribute and sigma (largest n): the privacy reading of
        f and g, g's accuracy, the answers allowed and the best attack."""
        return {"rows": headline_rows(self)}

    def summary(self) -> dict[str, Any]:
        """The JSON-ready result (the audits' per-person lists left out)."""
        return {"experiment": "audit", "config": self.config,
                "runs": [{"dataset": r.dataset, "model": r.model, "training": r.training,
                          "test_accuracy": r.test_accuracy,
                          "audit": r.result.summary(people=False)} for r in self.runs],
                **self.headline(), "seconds": self.seconds, "versions": self.versions}


_HARDENED = ("repeat", "near_duplicate", "abstention")


def _reading(rec: dict[str, Any], attribute: dict[str, Any]) -> float:
    """The privacy reading of one record: the median preimage as a share of the sweep range
    (continuous) or the share of people whose category is hidden (categorical)."""
    if attribute["kind"] == "continuous":
        return rec["median_preimage"] / (attribute["high"] - attribute["low"])
    return rec["share_hidden"]


def headline_rows(result: AuditExperimentResult) -> list[dict[str, Any]]:
    """One row per (data set, model, attribute, sigma) at the largest n."""
    rows = []
    for run in result.runs:
        res = run.result
        n = max(res.config["ns"])
        for name, rec in res.attributes.items():
            attr = rec["attribute"]
            cont = attr["kind"] == "continuous"
            for s in rec["smoothed"]:
                if s["n"] != n:
                    continue
                row = {"dataset": run.dataset["name"], "model": run.model, "attribute": name,
                       "kind": attr["kind"], "sigma": s["sigma"], "n": n,
                       "base_reading": _reading(rec["base"], attr),
                       "smoothed_reading": _reading(s, attr),
                       "smoothed_accuracy": s.get("accuracy"),
                       "base_accuracy": res.accuracy["base"] if res.accuracy else None,
                       "radius_covers_change": None if cont else
                       s["share_radius_covers_change"],
                       "median_radius_raw": s["median_radius_raw"] if cont else None}
                leak = rec.get("leakage")
                if leak:
                    lr = next(r for r in leak["rows"] if r["sigma"] == s["sigma"]
                              and r["n"] == n)
                    row["answers_allowed"] = lr["answers_allowed"]
                    row["one_answer_bound"] = lr["one_answer_bound"]
                    row["answers_allowed_by_n"] = {
                        str(r["n"]): r["answers_allowed"] for r in leak["rows"]
                        if r["sigma"] == s["sigma"]}
                atk = next((a for a in rec.get("attacks", []) if a["sigma"] == s["sigma"]),
                           None)
                if atk:
                    kmax = max(r["queries"] for r in atk["rows"])
                    hard = [r for r in atk["rows"] if r["attacker"] in _HARDENED
                            and r["queries"] == kmax]
                    by = {r["attacker"]: r for r in atk["rows"] if r["queries"] == 1}
                    if cont:
                        best = min(hard, key=lambda r: r["median_error_raw"])
                        row.update(attack_k=kmax, attack_best=best["attacker"],
                                   attack_best_error_raw=best["median_error_raw"],
                                   attack_radius_error_raw=by["radius"]["median_error_raw"],
                                   attack_base_error_raw=by["base"]["median_error_raw"])
                    else:
                        best = max(hard, key=lambda r: r["accuracy"])
                        row.update(attack_k=kmax, attack_best=best["attacker"],
                                   attack_best_accuracy=best["accuracy"],
                                   attack_radius_accuracy=by["radius"]["accuracy"],
                                   attack_base_accuracy=by["base"]["accuracy"],
                                   majority_baseline=atk["majority_baseline_attacked"])
                rows.append(row)
    return rows


def train_model(config: AuditExperimentConfig, data: TabularData, train_idx: np.ndarray,
                noise_sigma: float):
    """A base MLP for `data` (cached with orbax): `(apply_fn, params, training settings)`."""
    model = TabularMLP(data.x.shape[1], 2, hidden=config.hidden, rngs=nnx.Rngs(config.seed))
    apply_fn, template = as_apply_fn(model)
    tcfg = TrainConfig(steps=config.train_steps, batch_size=config.batch_size,
                       learning_rate=config.learning_rate, noise_sigma=noise_sigma)
    tag = {"name": f"audit-{data.name}-mlp", "data": data.sha256,
           "hidden": list(config.hidden), "train": dataclasses.asdict(tcfg),
           "seed": config.seed, "test_fraction": config.test_fraction, "jax": jax.__version__}

    def train():
        return fit_classifier(model, data.x[train_idx], data.y[train_idx], config.seed,
                              tcfg).params

    params, _ = checkpoint.load_or_train(config.cache_dir, tag, template, train)
    return apply_fn, params, dataclasses.asdict(tcfg)


def run(config: AuditExperimentConfig = AuditExperimentConfig(),
        ctx: Context | None = None) -> AuditExperimentResult:
    """Trains the two models of every data set and audits each (module docstring).

    Args:
      config: the settings.
      ctx: progress bars and the model cache (`ctx.cache_dir`, else `config.cache_dir`);
        None: a fresh `Context()`.
    """
    ctx = context(ctx)
    t0 = time.perf_counter()
    cache = config.cache_dir if ctx.cache_dir is None else ctx.cache_dir
    config_used = dataclasses.replace(config, cache_dir=cache)
    runs = []
    for name in config.datasets:
        data = load_tabular(name)
        train_idx, test_idx = train_test_split(len(data.y), config.test_fraction, config.seed)
        # a seeded random sample of the test split (its first rows need not be typical: the
        # fair data's file lists every person with affairs > 0 first)
        people = np.sort(np.random.default_rng(config.seed).permutation(test_idx)[
            : config.max_people])
        sensitive = {s.name: data.attribute(s.name, num_points=config.grid_points,
                                            refine_steps=config.refine_steps)
                     for s in data.sensitive}
        units = {s.name: s.units for s in data.sensitive if s.kind == "continuous"}
        shifts = {name: config.shift_std * attr.scale for name, attr in sensitive.items()
                  if name in units}
        for model in MODELS:
            noise = 0.0 if model == "plain" else config.augment_sigma
            apply_fn, params, training = train_model(config_used, data, train_idx, noise)
            key = jax.random.fold_in(jax.random.key(config.seed), 1)
            result = audit(apply_fn, params, data.x[people], sensitive=sensitive,
                           config=config.audit_config(shifts), key=key,
                           labels=data.y[people],
                           ids=people, progress=ctx.progress)
            runs.append(AuditRun(dataset=data.describe(), model=model, training=training,
                                 test_accuracy=accuracy(apply_fn, params, data.x[test_idx],
                                                        data.y[test_idx]),
                                 units=units, result=result))
    return AuditExperimentResult(config=dataclasses.asdict(config), runs=tuple(runs),
                                 seconds=time.perf_counter() - t0, versions=common.versions())
