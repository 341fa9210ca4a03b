"""Adaptive attackers against the deployed release, on the insurance task.

An attacker knows every feature of a person except BMI, the base model (white box) and the
release's settings, never its secret, and queries the release (`RobustPrivacyRelease`) about
the person. From the answers it computes a posterior over BMI (uniform prior on the sweep
range; the answer probabilities at each BMI come from the attacker's own Monte Carlo estimate
of p_1(BMI) and the exact answer model of `rpjax.privacy.outcome_probabilities`) and reports
the posterior median and the central 95% credible interval. Attackers:

- (a) `radius`: one CERTIFY answer *with its radius* (what rpjax released before the label-only
  protocol; simulated by handing the attacker the owner's audit record);
- (b) `repeat`: k answers to the same query (fresh noise: independent; consistent noise:
  identical, which the attacker knows, so it uses one);
- (c) `near_duplicate`: k queries that differ from the person's input in a non-sensitive
  feature by `j * 1e-6` standardized units (j < k) (too small to move the base model; it defeats
  consistent noise, which keys the noise by the input's bytes);
- (d) `abstention`: only whether each of k answers abstained (predict / certify).

The distinguishing advantage is measured with the likelihood-ratio test between a person's x
and x' (BMI moved by `delta_bmi` down or up; the larger of the two is reported) over
`advantage_trials` trials of k answers each, beside the computed bound of
`rpjax.privacy.advantage_bound` (with p_1(x) from an owner's Clopper-Pearson interval
at failure probability `beta`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any, ClassVar

import jax
import numpy as np
from scipy import stats as _sps

import rpjax
from rpjax._src import validate as _validate
from rpjax._src.experiments import common, paper
from rpjax._src.experiments.context import Context, context
from rpjax._src.experiments.rap import experiment as _rap
from rpjax.data import load_insurance, train_test_split
from rpjax.privacy import (
    Budget,
    ReleaseConfig,
    RobustPrivacyRelease,
    Secret,
    advantage_bound,
    outcome_probabilities,
    p1_interval_from_counts,
)

ABSTAIN = rpjax.ABSTAIN
MODES = ("predict", "always_label", "certify")
NOISE_MODES = ("fresh", "consistent")
ATTACKERS = ("radius", "repeat", "near_duplicate", "abstention")
_NUDGE = 1e-6  # standardized units of the non-sensitive feature per near-duplicate


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttacksConfig:
    """Settings of the adaptive-attack experiment (units stated).

    Attributes:
      sigma: the release's noise std, standardized feature units.
      n, n0, alpha: the release's samples per answer, selection samples, alpha.
      queries: query budgets k at which the attackers are evaluated (the largest is drawn).
      num_people: test people attacked (the first of the test split).
      grid_step: BMI resolution of the attacker's posterior (BMI points); the sweep range
        is the RAP experiment's [10, 60].
      attacker_samples: Monte Carlo samples per grid point for the attacker's p_1(BMI).
      n_certify: samples of the owner's CERTIFY that gives each person's certified radius.
      delta_bmi: BMI distance between x and x' for the distinguishing advantage.
      advantage_queries: k for the advantage; advantage_trials: trials per hypothesis;
      advantage_people: people (closest to the threshold, where the leak is largest).
      beta: failure probability of the owner's interval on p_1(x) behind the bound.
      budget_advantage, budget_delta_bmi: a per-subject budget on the advantage bound at a
        BMI distance, reported as the answers it allows and what an attacker learns with them.
      seed: data split, model, the release's (fixed, reproducible) secret, attacker's noise.
      model: the base model's training settings (the RAP experiment's).
    """

    sigma: float = 1.0
    n: int = 1000
    n0: int = 100
    alpha: float = 1e-3
    queries: tuple[int, ...] = (1, 10, 100, 1000)
    num_people: int = 20
    grid_step: float = 0.1
    attacker_samples: int = 20_000
    n_certify: int = 10_000
    delta_bmi: float = 1.0
    advantage_queries: tuple[int, ...] = (1, 10, 100)
    advantage_trials: int = 200
    advantage_people: int = 4
    beta: float = 1e-3
    budget_advantage: float = 0.5
    budget_delta_bmi: float = 0.1
    seed: int = 0
    model: _rap.RapConfig = dataclasses.field(default_factory=_rap.RapConfig)

    def __post_init__(self):
        _validate.positive("sigma", self.sigma)
        for name in ("n", "n0", "num_people", "attacker_samples", "n_certify",
                     "advantage_trials", "advantage_people"):
            _validate.integer(name, getattr(self, name), minimum=1)
        _validate.open_unit_interval("alpha", self.alpha)
        _validate.open_unit_interval("beta", self.beta)
        _validate.open_unit_interval("budget_advantage", self.budget_advantage)
        _validate.positive("grid_step", self.grid_step)
        _validate.positive("delta_bmi", self.delta_bmi)
        _validate.positive("budget_delta_bmi", self.budget_delta_bmi)
        for name in ("queries", "advantage_queries"):
            values = getattr(self, name)
            if not values:
                raise ValueError(f"{name} must be non-empty.")
            for k in values:
                _validate.integer(name, k, minimum=1)

    @classmethod
    def tiny(cls, **overrides: Any) -> AttacksConfig:
        """Seconds on 2 CPU cores, to test the pipeline end to end: its numbers mean nothing."""
        base = dict(n=100, n0=20, queries=(1, 10), num_people=2, grid_step=0.5,
                    attacker_samples=500, n_certify=500, advantage_queries=(1,),
                    advantage_trials=20, advantage_people=1, model=_rap.RapConfig.tiny())
        return cls(**{**base, **overrides})

    @classmethod
    def quick(cls, **overrides: Any) -> AttacksConfig:
        """A small setting (about a minute on 2 CPU cores)."""
        base = dict(n=200, n0=50, queries=(1, 10, 100), num_people=6, grid_step=0.25,
                    attacker_samples=4000, n_certify=2000, advantage_queries=(1, 10),
                    advantage_trials=100, advantage_people=2,
                    model=_rap.RapConfig.quick())
        return cls(**{**base, **overrides})


def _secret(config: AttacksConfig, name: str) -> Secret:
    """A fixed secret, so that the report is reproducible (a deployment draws its own)."""
    return Secret(hashlib.sha256(f"rpjax-attacks/{config.seed}/{name}".encode()).digest())


class _Task:
    """The model, the people and the attacker's answer model along the BMI sweep."""

    def __init__(self, config: AttacksConfig, cache_dir: str | None):
        model_cfg = dataclasses.replace(config.model, cache_dir=cache_dir)
        data = load_insurance()
        y = data.labels(model_cfg.threshold)
        train_idx, test_idx = train_test_split(len(y), model_cfg.test_fraction, model_cfg.seed)
        self.apply_fn, self.params, _, _ = _rap.train_base_model(model_cfg, data, train_idx)
        self.people = test_idx[: config.num_people]
        self.x = data.x[self.people].astype(np.float32)
        self.bmi = data.bmi[self.people].astype(np.float64)
        self.scale = float(data.bmi_std)
        self.offset = float(data.mean[data.bmi_index])
        self.index = data.bmi_index
        self.nudge_index = data.features.index("age")
        self.threshold = model_cfg.threshold
        self.grid = np.arange(10.0, 60.0 + 1e-9, config.grid_step)
        self.sigma = config.sigma

    def with_bmi(self, x: np.ndarray, bmi) -> np.ndarray:
        """Copies of `x` [d] with BMI set to each of `bmi` (raw points): `[len(bmi), d]`."""
        out = np.repeat(x[None], np.size(bmi), axis=0)
        out[:, self.index] = (np.asarray(bmi, np.float64) - self.offset) / self.scale
        return out.astype(np.float32)

    def p1(self, xs: np.ndarray, samples: int, key: int) -> np.ndarray:
        """The attacker's estimate of p_1 at `xs` (its own noise; Jeffreys-smoothed)."""
        counts = np.asarray(rpjax.sample_counts(
            self.apply_fn, self.params, xs, key, num_classes=2,
            config=rpjax.SmoothingConfig(sigma=self.sigma, n=samples),
            placement=rpjax.Placement(batch_size=min(len(xs), 512))))
        return (counts[:, 1] + 0.5) / (samples + 1.0)


def _posterior(loglik: np.ndarray, grid: np.ndarray) -> tuple[float, float, float]:
    """Median and central 95% credible interval of a uniform-prior posterior on `grid`."""
    w = np.exp(loglik - loglik.max())
    cdf = np.cumsum(w) / w.sum()
    q = [grid[min(np.searchsorted(cdf, t), grid.size - 1)] for t in (0.025, 0.5, 0.975)]
    return float(q[1]), float(q[0]), float(q[2])


def _outcome_index(mode: str, labels: np.ndarray) -> np.ndarray:
    """Column of each answer in `outcome_probabilities(mode, ...)`."""
    if mode == "always_label":
        return labels.astype(int)
    return labels.astype(int) + 1  # ABSTAIN, 0, 1 -> 0, 1, 2


def _label_loglik(mode: str, probs: np.ndarray, labels: np.ndarray, k: int,
                  abstention_only: bool = False) -> np.ndarray:
    """`[G]` log-likelihood of the first k answers under each grid point's probabilities."""
    logp = np.log(np.clip(probs, 1e-300, 1.0))
    idx = _outcome_index(mode, labels[:k])
    if abstention_only:
        abst = np.sum(idx == 0)
        log_answer = np.log(np.clip(1.0 - probs[:, 0], 1e-300, 1.0))
        return abst * logp[:, 0] + (k - abst) * log_answer
    return logp[:, idx].sum(axis=1)


def _radius_loglik(p1: np.ndarray, label: int, count: int, *, n: int, n0: int,
                   alpha: float) -> np.ndarray:
    """Log-likelihood of one CERTIFY answer with its radius (label and class count)."""
    s1 = _sps.binom.sf(n0 // 2, n0, p1)
    if label == ABSTAIN:  # radius 0: only the abstention is seen
        abstain = outcome_probabilities("certify", p1, n=n, n0=n0, alpha=alpha)[0]
        return np.log(np.clip(abstain[:, 0], 1e-300, 1.0))
    pc = p1 if label == 1 else 1.0 - p1
    sel = s1 if label == 1 else 1.0 - s1
    return np.log(np.clip(sel * _sps.binom.pmf(count, n, pc), 1e-300, 1.0))


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttacksResult:
    """What `run` measured. `summary()` is the JSON of `summary.json`.

    Attributes:
      config: the configuration as JSON; units: the units of every number.
      num_people: people attacked; people: their ids, BMIs, certified radii (BMI points) and
        labels.
      median_certified_radius_bmi: the median certified radius (BMI points).
      rows: one record per (attacker, release mode, noise, queries): the attacker's BMI error,
        credible interval and the people it locates inside their certified ball
        (`errors_bmi`: each person's error).
      advantage: measured distinguishing advantage beside the computed bound, per case.
      budget: per release mode, the answers a per-subject budget allows and the attack
        error with them.
      seconds, versions: run time and numerical stack.
    """

    config: dict[str, Any]
    units: dict[str, Any]
    num_people: int
    people: dict[str, list[Any]]
    median_certified_radius_bmi: float
    rows: list[dict[str, Any]]
    advantage: list[dict[str, Any]]
    budget: list[dict[str, Any]]
    seconds: float
    versions: dict[str, Any]

    paper: ClassVar[dict[str, Any]] = paper.ATTACKS

    def summary(self) -> dict[str, Any]:
        """The JSON-ready result."""
        return {"experiment": "attacks", "config": self.config, "units": self.units,
                "num_people": self.num_people, "people": self.people,
                "median_certified_radius_bmi": self.median_certified_radius_bmi,
                "rows": self.rows, "advantage": self.advantage, "budget": self.budget,
                "seconds": self.seconds, "versions": self.versions}

    def headline(self) -> dict[str, Any]:
        """The numbers `rpjax reproduce` puts in its own summary (per-person errors left out)."""
        return {"rows": [{k: v for k, v in r.items() if k != "errors_bmi"} for r in self.rows],
                "advantage": self.advantage, "budget": self.budget,
                "median_certified_radius_bmi": self.median_certified_radius_bmi}


def run(config: AttacksConfig = AttacksConfig(), ctx: Context | None = None) -> AttacksResult:
    """Runs every attacker against every release and noise mode.

    Args:
      config: the settings.
      ctx: progress bars and the base model's cache (`ctx.cache_dir`, else
        `config.model.cache_dir`); None: a fresh `Context()`.
    """
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    ctx = context(ctx)
    cache_dir = config.model.cache_dir if ctx.cache_dir is None else ctx.cache_dir
    task = _Task(config, cache_dir)
    kmax = max(config.queries)
    # the attacker's model: p_1 along the BMI grid for each person, then answer probabilities
    curves = np.stack([task.p1(task.with_bmi(x, task.grid), config.attacker_samples,
                               1000 + config.seed) for x in task.x])  # [P, G]
    cert = rpjax.certify(task.apply_fn, task.params, task.x, jax.random.key(config.seed + 7),
                         num_classes=2, config=rpjax.SmoothingConfig(
                             sigma=config.sigma, n0=config.n0, n=config.n_certify,
                             alpha=config.alpha))
    radius_bmi = cert.radius * task.scale
    rows: list[dict[str, Any]] = []
    jobs = [(m, nm) for m in MODES for nm in NOISE_MODES]
    bar = tqdm(jobs, desc="attacks", unit="release", disable=not ctx.progress)
    answers: dict[tuple[str, str], dict[str, np.ndarray]] = {}
    for mode, noise in bar:
        bar.set_postfix(mode=mode, noise=noise)
        rel = _release(task, config, mode, noise)
        probs = [outcome_probabilities(mode, c, n=config.n, alpha=config.alpha,
                                       n0=config.n0)[0] for c in curves]
        rep, near = _ask(task, rel, kmax)
        answers[(mode, noise)] = {"repeat": rep, "near_duplicate": near}
        for attacker, labels in (("repeat", rep), ("near_duplicate", near)):
            for k in config.queries:
                # exact repeats under consistent noise are one answer k times, and the
                # attacker knows it: it counts the answer once
                used = 1 if (attacker, noise) == ("repeat", "consistent") else k
                row = _score(task, probs, labels, used, mode, noise, attacker, radius_bmi)
                rows.append({**row, "queries": int(k)})
        if mode != "always_label" and noise == "fresh":
            for k in config.queries:
                rows.append(_score(task, probs, rep, k, mode, noise, "abstention",
                                   radius_bmi, abstention_only=True))
        if mode == "certify" and noise == "fresh":
            rows.append(_radius_attack(task, config, rel, curves, radius_bmi))
    advantage = _advantage(task, config, ctx.progress)
    budget = _budget_rows(task, config, curves, answers, radius_bmi)
    return AttacksResult(
        config=dataclasses.asdict(config),
        units={"sigma": "standardized feature units", "bmi": "BMI points (kg/m^2)",
               "bmi_std": task.scale},
        num_people=int(len(task.people)),
        people={"id": task.people.tolist(), "bmi": task.bmi.tolist(),
                "certified_radius_bmi": radius_bmi.tolist(),
                "certified_label": cert.label.tolist()},
        median_certified_radius_bmi=float(np.median(radius_bmi)),
        rows=rows, advantage=advantage, budget=budget,
        seconds=time.perf_counter() - t0, versions=common.versions())


def _smoothing(config) -> rpjax.SmoothingConfig:
    """The release's statistics."""
    return rpjax.SmoothingConfig(sigma=config.sigma, n0=config.n0, n=config.n, alpha=config.alpha)


def _release(task, config, mode, noise):
    """A measurement release: `Budget.unlimited()` and no ledger (nonces 0, 1, 2, ... so the
    report is reproducible; the attacker is simulated, so no budget is enforced here: what
    a budget allows is `_budget_rows`)."""
    cfg = ReleaseConfig(smoothing=_smoothing(config), num_classes=2, mode=mode, noise=noise)
    return RobustPrivacyRelease(task.apply_fn, task.params, cfg, budget=Budget.unlimited(),
                                secret=_secret(config, f"{mode}/{noise}"), batch_size=4096)


def _ask(task, rel, kmax):
    """`[P, kmax]` answers to k exact repeats and to k near-duplicates of each person."""
    p = len(task.people)
    xs = np.repeat(task.x, kmax, axis=0)
    repeat = rel.query(xs, np.repeat(task.people, kmax).tolist()).reshape(p, kmax)
    near_xs = xs.copy()
    near_xs[:, task.nudge_index] += _NUDGE * np.tile(np.arange(kmax), p)
    near = rel.query(near_xs, np.repeat(task.people, kmax).tolist()).reshape(p, kmax)
    return repeat, near


def _score(task, probs, labels, k, mode, noise, attacker, radius_bmi,
           abstention_only=False) -> dict[str, Any]:
    est = [_posterior(_label_loglik(mode, probs[i], labels[i], k, abstention_only),
                      task.grid) for i in range(len(task.people))]
    return _row(task, est, k, mode, noise, attacker, radius_bmi)


def _row(task, est, k, mode, noise, attacker, radius_bmi) -> dict[str, Any]:
    med = np.array([e[0] for e in est])
    lo, hi = np.array([e[1] for e in est]), np.array([e[2] for e in est])
    true = np.clip(task.bmi, task.grid[0], task.grid[-1])
    err = np.abs(med - true)
    near = np.abs(task.bmi - task.threshold) < 5.0
    # located inside its own certified ball: a 95% interval that holds the truth and is
    # narrower than the ball's diameter (people CERTIFY did not abstain on)
    ball = radius_bmi > 0
    inside = (lo <= true) & (true <= hi) & (hi - lo < 2 * radius_bmi)
    return {
        "attacker": attacker, "mode": mode, "noise": noise, "queries": int(k),
        "median_error_bmi": float(np.median(err)),
        "mean_error_bmi": float(np.mean(err)),
        "median_error_near_threshold_bmi": float(np.median(err[near])) if near.any()
        else float("nan"),
        "median_interval_bmi": float(np.median(hi - lo)),
        "located_in_ball": int(np.sum(inside & ball)),
        "certified_people": int(np.sum(ball)),
        "median_certified_radius_bmi": float(np.median(radius_bmi)),
        "errors_bmi": err.tolist(),
    }


def _radius_attack(task, config, rel, curves, radius_bmi) -> dict[str, Any]:
    """(a): one CERTIFY answer with its radius, read from the owner's audit record."""
    rel.query(task.x, (np.asarray(task.people) + 10**6).tolist())
    rec = rel.audit()[-1]
    est = []
    for i in range(len(task.people)):
        label = int(rec.label[i])
        chosen = int(rec.selection_counts[i].argmax())
        count = int(rec.counts[i, chosen])
        est.append(_posterior(_radius_loglik(curves[i], label, count, n=config.n,
                                             n0=config.n0, alpha=config.alpha), task.grid))
    return _row(task, est, 1, "certify_radius", "fresh", "radius", radius_bmi)


def _advantage(task, config, progress) -> list[dict[str, Any]]:
    """Empirical LR-test advantage between x and x' (BMI + delta) vs the computed bound."""
    from tqdm.auto import tqdm

    order = np.argsort(np.abs(task.bmi - task.threshold))[: config.advantage_people]
    delta = config.delta_bmi / task.scale
    kmax, trials = max(config.advantage_queries), config.advantage_trials
    out = []
    bar = tqdm([(m, i) for m in (*MODES, "certify_radius") for i in order],
               desc="advantage", unit="case", disable=not progress)
    for mode, i in bar:
        points = task.with_bmi(task.x[i], [task.bmi[i], task.bmi[i] - config.delta_bmi,
                                           task.bmi[i] + config.delta_bmi])
        p_points = task.p1(points, 200_000, 2000 + config.seed)  # for the attacker's LR test
        owner = np.asarray(rpjax.sample_counts(task.apply_fn, task.params, points[:1],
                                               jax.random.key(3000 + config.seed),
                                               num_classes=2, config=rpjax.SmoothingConfig(
                                                   sigma=config.sigma, n=200_000)))
        interval = p1_interval_from_counts(int(owner[0, 1]), 200_000, config.beta)
        release_mode = "certify" if mode == "certify_radius" else mode
        rel = _release(task, config, release_mode, "fresh")
        ks = (1,) if mode == "certify_radius" else config.advantage_queries
        k_draw = 1 if mode == "certify_radius" else kmax
        records = []
        for x in points:
            rel.query(np.repeat(x[None], trials * k_draw, axis=0))
            records.append(rel.audit()[-1])
        emps = {}  # x' = BMI - delta and BMI + delta: the larger measured advantage counts
        for side in (1, 2):
            p_model = p_points[[0, side]]
            says_x = [_lr_decisions(mode, rec, p_model, config, trials, k_draw, ks)
                      for rec in (records[0], records[side])]
            emps[side] = [float(np.mean(says_x[0][j]) - np.mean(says_x[1][j]))
                          for j in range(len(ks))]
        for j, k in enumerate(ks):
            side = 1 if emps[1][j] >= emps[2][j] else 2
            emp = emps[side][j]
            p_model = p_points[[0, side]]
            bound = advantage_bound(mode, sigma=config.sigma, delta=delta, n=config.n,
                                    alpha=config.alpha, n0=config.n0, k=k,
                                    p1_interval=interval, failure_probability=config.beta)
            out.append({"mode": mode, "queries": int(k), "person": int(task.people[i]),
                        "bmi": float(task.bmi[i]), "delta_bmi": config.delta_bmi,
                        "p1_x": float(p_model[0]), "p1_x_prime": float(p_model[1]),
                        "x_prime_bmi": float(task.bmi[i] + (config.delta_bmi if side == 2
                                                            else -config.delta_bmi)),
                        "empirical_advantage": emp,
                        "empirical_advantage_other_side": emps[3 - side][j],
                        "standard_error": float(np.sqrt(0.5 / trials)),
                        "bound": bound.advantage, "bound_failure_probability": config.beta,
                        "p1_interval": list(interval)})
    return out


def _lr_decisions(mode, rec, p_model, config, trials, k_draw, ks) -> list[np.ndarray]:
    """For each k: `[trials]` bool, the LR test says "x" (ties: "x")."""
    if mode == "certify_radius":
        chosen = rec.selection_counts.argmax(axis=1)
        counts = np.take_along_axis(rec.counts, chosen[:, None], axis=1)[:, 0]
        ll = [np.array([_radius_loglik(np.array([p]), int(lab), int(c), n=config.n,
                                       n0=config.n0, alpha=config.alpha)[0]
                        for lab, c in zip(rec.label, counts, strict=True)])
              for p in p_model]
        return [ll[0] >= ll[1]]
    probs = outcome_probabilities(mode, p_model, n=config.n, alpha=config.alpha,
                                  n0=config.n0)[0]
    logp = np.log(np.clip(probs, 1e-300, 1.0))
    idx = _outcome_index(mode, rec.label).reshape(trials, k_draw)
    step = logp[0, idx] - logp[1, idx]  # [trials, k_draw] log LR per answer
    return [np.cumsum(step, axis=1)[:, k - 1] >= 0 for k in ks]


def _budget_rows(task, config, curves, answers, radius_bmi) -> list[dict[str, Any]]:
    """Answers a per-subject advantage budget allows, and the attacker's error with them."""
    delta = config.budget_delta_bmi / task.scale
    out = []
    for mode in MODES:
        cfg = ReleaseConfig(smoothing=_smoothing(config), num_classes=2, mode=mode)
        k = Budget(max_advantage=config.budget_advantage, delta=delta).answers_allowed(cfg)
        one = advantage_bound(mode, sigma=config.sigma, delta=delta, n=config.n,
                              alpha=config.alpha, n0=config.n0).advantage
        row = {"mode": mode, "max_advantage": config.budget_advantage,
               "delta_bmi": config.budget_delta_bmi, "answers_allowed": int(k),
               "one_answer_bound": one}
        if k >= 1:
            probs = [outcome_probabilities(mode, c, n=config.n, alpha=config.alpha,
                                           n0=config.n0)[0] for c in curves]
            labels = answers[(mode, "fresh")]["repeat"]
            kk = min(k, labels.shape[1])
            row["attack"] = _score(task, probs, labels, kk, mode, "fresh", "repeat",
                                   radius_bmi)
        out.append(row)
    return out
