"""The audit of one model and one data set: what a release reveals about a sensitive attribute.

`audit(apply_fn, params, x, sensitive=..., config=..., key=...)` answers, for a model owner's
model, people and sensitive attributes, the questions the paper's privacy analysis asks of the
bundled insurance task, and nothing it does not compute or measure:

1. **Continuous attributes** (`AttributeSweep`: a column and its raw-unit scale). Per person,
   with the other features fixed, the attribute is swept over its range and the compatible
   intervals of `rpjax.privacy.attribute_intervals` are computed for the base model f and for
   the smoothed classifier g's Monte Carlo labels (CERTIFY, common random numbers along the
   sweep): the preimage, the not-excluded interval (abstentions cannot be ruled out) and the
   APE reading; the certified radius at the true value and along the sweep, in raw units
   (input units times the column's scale).
2. **Categorical attributes** (`CategoricalAttribute`: a one-hot group). Per person, every
   category is put in turn into the group (other features fixed) and the set of categories
   whose label equals the released one is computed under f and under g; and whether the
   certified radius at the person's input exceeds the l2 distance between two one-hot vectors
   (`CategoricalAttribute.change_distance`, model units). Theorem used (Cohen et al. 2019,
   Theorem 1): with probability >= 1 - alpha over the certification's noise, the ideal g is
   constant on the open l2 ball of the certified radius, so when the radius exceeds that
   distance the ideal g gives every category the same label. The Monte Carlo labels of g at
   the other categories are estimates and are reported as measured.
3. **Leakage and budget** (two-class models). For each release setting, the bound of
   `rpjax.privacy.advantage_bound(..., adaptive=True)` on the advantage of any attacker, after
   k answers, between a person and the same person with the attribute moved by `shift` raw
   units (continuous; `delta = shift / scale` input units) or put in another category
   (`delta = change_distance`); and the answers `Budget(max_advantage=cap, delta)` allows
   (`Budget.answers_allowed`). The bound holds for every model and every input (worst case),
   for an attacker who chooses each query after the earlier answers (`docs/guarantee.md`,
   section 3).
4. **Attackers** (two-class models), run against the hardened release
   (`RobustPrivacyRelease`: label only, the owner's secret noise, fresh noise per answer) for
   the owner's model: the attacker knows every feature but the sensitive one, the model (white
   box) and the release's settings, never its secret. It estimates p_1 along the attribute with
   its own Monte Carlo samples, turns that into answer probabilities
   (`rpjax.privacy.outcome_probabilities`; its samples for one person use common random
   numbers across the candidate values), and reads the posterior (uniform prior on the
   sweep grid or on the categories) after: one CERTIFY answer with its radius (`radius`, read
   from the owner's audit record: what releasing the radius would give), k repeated answers
   (`repeat`), k near-duplicate queries that move a non-sensitive feature by 1e-6 model units
   each (`near_duplicate`), only whether each of k answers abstained (`abstention`), and one
   answer of the undefended model (`base`, for reference). Continuous: the posterior median's
   error and the 95% credible interval against the certified radius; categorical: the MAP
   guess's accuracy against the majority baseline (always guessing the most common category).
   These are measurements of these attackers on these people, not bounds.

Every section of the audit is a JSON-ready dict; `checkpoint` (any mutable mapping, the
command line's is a folder of files written atomically) holds the finished sections, so an
interrupted audit resumed with the same arguments recomputes only what is missing and gives
the same result (every section is a deterministic function of the arguments and `key`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import jax
import numpy as np
from scipy import stats as _sps

from rpjax._src import validate as _validate
from rpjax._src.decision import ABSTAIN
from rpjax._src.plan import Placement, SmoothingConfig
from rpjax._src.privacy import leakage
from rpjax._src.privacy.rap import AttributeSweep, Intervals, attribute_intervals
from rpjax._src.privacy.release import (
    Budget,
    ReleaseConfig,
    RobustPrivacyRelease,
    experiment_secret,
)
from rpjax._src.privacy.rp import base_labels, certified_labels
from rpjax._src.smoothing import sample_counts

ATTACKERS = ("base", "radius", "repeat", "near_duplicate", "abstention")
RELEASE_MODES = ("predict", "certify", "always_label")
_NUDGE = 1e-6  # model units of the non-sensitive feature per near-duplicate
_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CategoricalAttribute:
    """A categorical sensitive attribute: a one-hot group of model-input columns.

    Attributes:
      columns: the group's column indices (>= 2, distinct); category i is "column i on".
      categories: the category names, one per column (default "0", "1", ...).
      on, off: the model-input values of a set and an unset column (default 1 and 0).
    """

    columns: tuple[int, ...]
    categories: tuple[str, ...] = ()
    on: float = 1.0
    off: float = 0.0

    def __post_init__(self):
        if not isinstance(self.columns, (tuple, list)) or len(self.columns) < 2:
            raise ValueError(f"columns must be a tuple of >= 2 column indices, got "
                             f"columns={self.columns!r}.")
        cols = tuple(_validate.integer("columns", c, minimum=0) for c in self.columns)
        if len(set(cols)) != len(cols):
            raise ValueError(f"columns must be distinct, got columns={self.columns!r}.")
        object.__setattr__(self, "columns", cols)
        cats = tuple(self.categories) or tuple(str(i) for i in range(len(cols)))
        if len(cats) != len(cols) or not all(isinstance(c, str) for c in cats):
            raise ValueError(f"categories must be {len(cols)} strings (one per column), got "
                             f"categories={self.categories!r}.")
        object.__setattr__(self, "categories", cats)
        if _validate.real("on", self.on) == _validate.real("off", self.off):
            raise ValueError(f"on and off must differ, got on={self.on}, off={self.off}.")

    @property
    def change_distance(self) -> float:
        """l2 distance (model units) between two one-hot vectors of the group:
        `sqrt(2) * |on - off|`."""
        return math.sqrt(2.0) * abs(self.on - self.off)

    def decode(self, x: np.ndarray, name: str = "x") -> np.ndarray:
        """`[P]` category index of each row of `x [P, d]`; ValueError naming `name` and the
        first row that is not one-hot in the group."""
        block = np.asarray(x)[:, list(self.columns)]
        is_on, is_off = block == np.float32(self.on), block == np.float32(self.off)
        ok = (is_on | is_off).all(axis=1) & (is_on.sum(axis=1) == 1)
        if not ok.all():
            row = int(np.argmin(ok))
            raise ValueError(f"{name}: the group's columns {list(self.columns)} are not one-hot "
                             f"(exactly one {self.on:g}, the rest {self.off:g}) at row {row}: "
                             f"{block[row].tolist()}.")
        return np.argmax(is_on, axis=1).astype(np.int64)

    def encode(self, x: np.ndarray, categories: np.ndarray) -> np.ndarray:
        """Copies of the rows of `x [M, d]` with the group set to `categories [M]`."""
        out = np.array(x, dtype=np.float32, copy=True)
        cols = np.asarray(self.columns)
        out[:, cols] = np.float32(self.off)
        out[np.arange(len(out)), cols[np.asarray(categories)]] = np.float32(self.on)
        return out


Attribute = AttributeSweep | CategoricalAttribute


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditConfig:
    """Settings of `audit` (units stated; write `to_dict()` into reports).

    Attributes:
      sigmas: the releases' noise stds, model-input units (> 0).
      ns: estimation samples per answer; n0: selection samples; alpha: CERTIFY's failure
        probability and PREDICT's level.
      mode: the hardened release's mode for the leakage bound and the attackers ("predict",
        "certify" or "always_label").
      shifts: per continuous attribute (by name), the raw-unit move of the leakage bound
        (default: one scale unit, i.e. delta = 1 input unit).
      ks: answers k of the k-answer bounds.
      max_advantage: the budget's cap on the composed advantage bound, in (0, 1).
      attack_people: people attacked (the first of `x`); 0 skips the attackers.
      attack_queries: the attackers' query counts k (the largest is drawn).
      attack_grid: points of the attacker's grid on a continuous attribute's sweep range.
      attacker_samples: the attacker's Monte Carlo samples per grid point (or category).
      batch_size: inputs per compiled call (speed only).
    """

    sigmas: tuple[float, ...] = (0.25, 0.5, 1.0)
    ns: tuple[int, ...] = (1000,)
    n0: int = 100
    alpha: float = 1e-3
    mode: str = "predict"
    shifts: Mapping[str, float] = dataclasses.field(default_factory=dict)
    ks: tuple[int, ...] = (1, 10, 100)
    max_advantage: float = 0.5
    attack_people: int = 20
    attack_queries: tuple[int, ...] = (1, 10, 100)
    attack_grid: int = 51
    attacker_samples: int = 2000
    batch_size: int = 4096

    def __post_init__(self):
        for name in ("sigmas", "ns", "ks", "attack_queries"):
            values = getattr(self, name)
            if not isinstance(values, (tuple, list)) or not values:
                raise ValueError(f"{name} must be a non-empty tuple, got {name}={values!r}.")
            object.__setattr__(self, name, tuple(values))
        for s in self.sigmas:
            _validate.positive("sigmas", s)
        for name in ("ns", "ks", "attack_queries"):
            for v in getattr(self, name):
                _validate.integer(name, v, minimum=1)
        _validate.integer("n0", self.n0, minimum=1)
        _validate.open_unit_interval("alpha", self.alpha)
        _validate.open_unit_interval("max_advantage", self.max_advantage)
        if self.mode not in RELEASE_MODES:
            raise ValueError(f"mode must be one of {RELEASE_MODES}, got mode={self.mode!r}.")
        if not isinstance(self.shifts, Mapping):
            raise TypeError(f"shifts must be a mapping name -> raw units, got "
                            f"shifts={self.shifts!r}.")
        for k, v in self.shifts.items():
            _validate.positive(f"shifts[{k!r}]", v)
        _validate.integer("attack_people", self.attack_people, minimum=0)
        _validate.integer("attack_grid", self.attack_grid, minimum=2)
        _validate.integer("attacker_samples", self.attacker_samples, minimum=1)
        _validate.integer("batch_size", self.batch_size, minimum=1)

    def smoothing(self, sigma: float, n: int) -> SmoothingConfig:
        """The statistics of the release at `(sigma, n)`."""
        return SmoothingConfig(sigma=sigma, n0=self.n0, n=n, alpha=self.alpha)

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values."""
        out = dataclasses.asdict(self)
        out["shifts"] = dict(self.shifts)
        return out


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """What `audit` computed and measured. `summary()` is the JSON of `summary.json`.

    Attributes:
      config: the settings (`AuditConfig.to_dict()`), num_classes, num_people.
      attributes: per attribute (by name), its description and its sections: `base` (the
        base model), `smoothed` (one record per (sigma, n)), `leakage` (two classes) and
        `attacks` (two classes, per sigma at the largest n). Per-person values are lists
        under `people` keys; units are stated in each record.
      accuracy: the base model's and each release's accuracy on the labelled people (None
        without labels).
      seconds: the audit's wall time (not part of the result's identity).
    """

    config: dict[str, Any]
    attributes: dict[str, dict[str, Any]]
    accuracy: dict[str, Any] | None
    seconds: float

    def summary(self, *, people: bool = True) -> dict[str, Any]:
        """The JSON-ready result; `people=False` leaves the per-person lists out."""
        attrs = self.attributes if people else _strip_people(self.attributes)
        return {"config": self.config, "attributes": attrs, "accuracy": self.accuracy}

    def markdown(self, **kwargs: Any) -> str:
        """The report's Markdown (`title=`, `about=`, `units=`: headings and a description)."""
        from rpjax._src.privacy import audit_report

        return audit_report.markdown(self, **kwargs)

    def write(self, out_dir: str, **kwargs: Any) -> dict[str, str]:
        """Writes `report.md`, `summary.json` and the plots into `out_dir`, each atomically
        (`title=`, `about=`, `units=` as in `markdown`; `extra=`: more entries for the JSON).
        Returns `{kind: path}`."""
        from rpjax._src.privacy import audit_report

        return audit_report.write(self, out_dir, **kwargs)


def _strip_people(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_people(v) for k, v in value.items() if k != "people"}
    if isinstance(value, list):
        return [_strip_people(v) for v in value]
    return value


# ----------------------------------------------------------------------- statistics helpers
def _floats(a) -> list[float]:
    return [float(v) for v in np.asarray(a, np.float64).ravel()]


def _median(a) -> float:
    a = np.asarray(a, np.float64)
    return float(np.median(a)) if a.size else float("nan")


def _quantiles(a) -> dict[str, float]:
    a = np.asarray(a, np.float64)
    if not a.size:
        return {f"q{int(q * 100)}": float("nan") for q in _QUANTILES}
    return {f"q{int(q * 100)}": float(np.quantile(a, q)) for q in _QUANTILES}


def _jsonable(value: Any) -> Any:
    """A JSON round trip: what a resumed audit reads back is what an uninterrupted one has."""
    return json.loads(json.dumps(value, allow_nan=True))


def _num_classes(apply_fn, params, d: int) -> int:
    out = jax.eval_shape(apply_fn, params, jax.ShapeDtypeStruct((2, d), np.float32))
    shape = getattr(out, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != 2 or shape[1] < 2:
        raise ValueError(f"apply_fn must return logits [b, C] with C >= 2 on inputs [b, {d}], "
                         f"got {shape}.")
    return int(shape[1])


# ----------------------------------------------------------------------- continuous sections
def _continuous_record(iv: Intervals, sweep: AttributeSweep, labels) -> dict[str, Any]:
    radius_raw = iv.radius * sweep.scale
    released = iv.label != ABSTAIN
    full = sweep.high - sweep.low
    lengths = {r: iv.length(r) for r in ("preimage", "not_excluded", "ape")}
    rec = {
        "median_preimage": _median(lengths["preimage"]),
        "median_not_excluded": _median(lengths["not_excluded"]),
        "median_ape": _median(lengths["ape"]),
        "preimage_quantiles": _quantiles(lengths["preimage"]),
        "median_radius_raw": _median(radius_raw),
        "median_radius_raw_released": _median(radius_raw[released]),
        "radius_quantiles_raw": _quantiles(radius_raw),
        "share_whole_range": float(np.mean(lengths["preimage"] >= full * (1 - 1e-9))),
        "abstain_rate": float(np.mean(~released)),
        "median_radius_raw_along_sweep": _floats(np.median(iv.grid_radius, axis=0)
                                                 * sweep.scale),
        "grid": _floats(iv.grid),
        "people": {"label": [int(v) for v in iv.label], "radius_raw": _floats(radius_raw),
                   "preimage": iv.preimage.tolist(), "not_excluded": iv.not_excluded.tolist(),
                   "ape": iv.ape.tolist()},
    }
    if labels is not None:
        rec["accuracy"] = float(np.mean(iv.label == labels))
    return rec


def _categorical_sets(release, attr: CategoricalAttribute, x, ids, truth):
    """Labels of every person at every category: `(labels [P, K], radius [P, K], y [P],
    r [P])`, y and r at the person's own input."""
    p, k = len(x), len(attr.columns)
    person = np.repeat(np.arange(p), k)
    xs = attr.encode(x[person], np.tile(np.arange(k), p))
    labels, radii = release(xs, ids[person])
    labels = np.asarray(labels, np.int64).reshape(p, k)
    radii = np.asarray(radii, np.float64).reshape(p, k)
    rows = np.arange(p)
    return labels, radii, labels[rows, truth], radii[rows, truth]


def _categorical_record(labels, radii, y, r, attr, truth, true_labels) -> dict[str, Any]:
    compatible = labels == y[:, None]
    not_excluded = compatible | (labels == ABSTAIN)
    size = compatible.sum(axis=1)
    covered = (y != ABSTAIN) & (r > attr.change_distance)
    rec = {
        "share_hidden": float(np.mean(compatible.all(axis=1))),
        "share_hidden_not_excluded": float(np.mean(not_excluded.all(axis=1))),
        "share_singled_out": float(np.mean(size == 1)),
        "mean_compatible": float(np.mean(size)),
        "share_radius_covers_change": float(np.mean(covered)),
        "median_radius": _median(r),
        "abstain_rate": float(np.mean(y == ABSTAIN)),
        "people": {"label": [int(v) for v in y], "radius": _floats(r),
                   "category": [int(v) for v in truth],
                   "compatible": compatible.astype(int).tolist(),
                   "not_excluded": not_excluded.astype(int).tolist(),
                   "radius_covers_change": [bool(v) for v in covered]},
    }
    if true_labels is not None:
        rec["accuracy"] = float(np.mean(y == true_labels))
    return rec


# ----------------------------------------------------------------------- leakage and budget
def _leakage_section(attr: Attribute, shift: float | None, config: AuditConfig) -> dict:
    if isinstance(attr, CategoricalAttribute):
        delta, what = attr.change_distance, "a change of category (one-hot l2 distance)"
    else:
        delta, what = shift / attr.scale, f"the attribute moved by {shift:g} raw units"
    rows = []
    for sigma in config.sigmas:
        for n in config.ns:
            cfg = ReleaseConfig(smoothing=config.smoothing(sigma, n), num_classes=2,
                                mode=config.mode)
            bounds = {str(k): leakage.advantage_bound(
                config.mode, sigma=sigma, delta=delta, n=n, alpha=config.alpha,
                n0=config.n0, k=k, adaptive=True).advantage for k in config.ks}
            allowed = Budget(max_advantage=config.max_advantage,
                             delta=delta).answers_allowed(cfg)
            one = bounds["1"] if "1" in bounds else leakage.advantage_bound(
                config.mode, sigma=sigma, delta=delta, n=n, alpha=config.alpha, n0=config.n0,
                k=1, adaptive=True).advantage
            rows.append({"sigma": float(sigma), "n": int(n), "bound_by_k": bounds,
                         "one_answer_bound": one, "answers_allowed": int(allowed)})
    return {"delta_input_units": float(delta), "shift_raw": None if shift is None else
            float(shift), "between": what, "mode": config.mode,
            "max_advantage": config.max_advantage, "rows": rows}


# ----------------------------------------------------------------------- attackers
def _posterior_continuous(loglik: np.ndarray, grid: np.ndarray) -> tuple[float, float, float]:
    """Median and central 95% credible interval of a uniform-prior posterior on `grid`."""
    if not np.isfinite(loglik).any():
        loglik = np.zeros_like(loglik)
    w = np.exp(loglik - loglik.max())
    cdf = np.cumsum(w) / w.sum()
    q = [grid[min(int(np.searchsorted(cdf, t)), grid.size - 1)] for t in (0.025, 0.5, 0.975)]
    return float(q[1]), float(q[0]), float(q[2])


def _outcome_index(mode: str, labels: np.ndarray) -> np.ndarray:
    if mode == "always_label":
        return labels.astype(int)
    return labels.astype(int) + 1  # ABSTAIN, 0, 1 -> 0, 1, 2


def _label_loglik(mode, probs, labels, k, abstention_only=False) -> np.ndarray:
    """`[G]` log-likelihood of the first k answers under each point's outcome probabilities
    `probs [G, outcomes]`."""
    logp = np.log(np.clip(probs, 1e-300, 1.0))
    idx = _outcome_index(mode, labels[:k])
    if abstention_only:
        abst = int(np.sum(idx == 0))
        return abst * logp[:, 0] + (k - abst) * np.log(np.clip(1.0 - probs[:, 0], 1e-300, 1))
    return logp[:, idx].sum(axis=1)


def _radius_loglik(p1, label, count, *, n, n0, alpha) -> np.ndarray:
    """Log-likelihood of one CERTIFY answer with its radius (its label and class count)."""
    s1 = _sps.binom.sf(n0 // 2, n0, p1)
    if label == ABSTAIN:
        abstain = leakage.outcome_probabilities("certify", p1, n=n, n0=n0, alpha=alpha)[0]
        return np.log(np.clip(abstain[:, 0], 1e-300, 1.0))
    pc = p1 if label == 1 else 1.0 - p1
    sel = s1 if label == 1 else 1.0 - s1
    return np.log(np.clip(sel * _sps.binom.pmf(count, n, pc), 1e-300, 1.0))


class _Attack:
    """One attribute's attackers at one sigma (the largest n): the candidate inputs of each
    person (grid points or categories), the attacker's answer model and the answers."""

    def __init__(self, apply_fn, params, attr, x, ids, truth, config, sigma, key, secret,
                 nudge_column):
        self.apply_fn, self.params, self.attr = apply_fn, params, attr
        self.config, self.sigma, self.n = config, sigma, max(config.ns)
        self.x, self.ids, self.truth = x, ids, truth
        self.nudge = nudge_column
        if isinstance(attr, CategoricalAttribute):
            self.values = np.arange(len(attr.columns))
        else:
            self.values = np.linspace(attr.low, attr.high, config.attack_grid)
        p, g = len(x), self.values.size
        cand = self._candidates()
        counts = np.asarray(sample_counts(
            apply_fn, params, cand, jax.random.fold_in(key, 1), num_classes=2,
            config=SmoothingConfig(sigma=sigma, n=config.attacker_samples),
            placement=Placement(batch_size=min(len(cand), config.batch_size)),
            ids=np.repeat(ids, g)))  # common random numbers along each person's candidates
        self.curves = ((counts[:, 1] + 0.5) / (config.attacker_samples + 1.0)).reshape(p, g)
        self.base = np.asarray(base_labels(apply_fn, params)(cand, None)[0]).reshape(p, g)
        self.secret = secret

    def _candidates(self) -> np.ndarray:
        p, g = len(self.x), self.values.size
        person = np.repeat(np.arange(p), g)
        if isinstance(self.attr, CategoricalAttribute):
            return self.attr.encode(self.x[person], np.tile(self.values, p))
        xs = np.array(self.x[person], np.float32, copy=True)
        xs[:, self.attr.index] = self.attr.to_input(np.tile(self.values, p))
        return xs

    def release(self, mode: str) -> RobustPrivacyRelease:
        cfg = ReleaseConfig(smoothing=self.config.smoothing(self.sigma, self.n), num_classes=2,
                            mode=mode, noise="fresh")
        return RobustPrivacyRelease(self.apply_fn, self.params, cfg, budget=Budget.unlimited(),
                                    secret=self.secret(mode),
                                    batch_size=min(self.config.batch_size, 4096))

    def estimate(self, loglik: np.ndarray):
        if isinstance(self.attr, CategoricalAttribute):
            return int(np.argmax(loglik))
        return _posterior_continuous(loglik, self.values)


def _attack_section(apply_fn, params, attr, x, ids, truth, radius, config, sigma, key,
                    secret, nudge_column) -> dict[str, Any]:
    """Every attacker of the module docstring on the first `attack_people` people."""
    atk = _Attack(apply_fn, params, attr, x, ids, truth, config, sigma, key, secret,
                  nudge_column)
    mode, n, kmax = config.mode, atk.n, max(config.attack_queries)
    probs = [leakage.outcome_probabilities(mode, c, n=n, alpha=config.alpha, n0=config.n0)[0]
             for c in atk.curves]
    p = len(x)
    rel = atk.release(mode)
    xs = np.repeat(x, kmax, axis=0)
    subjects = np.repeat(ids, kmax).tolist()
    repeat = rel.query(xs, subjects).reshape(p, kmax)
    near_xs = xs.copy()
    near_xs[:, nudge_column] += np.float32(_NUDGE) * np.tile(np.arange(kmax), p)
    near = rel.query(near_xs, subjects).reshape(p, kmax)
    rows = []

    def score(attacker, estimates, k):
        rows.append(_score(attr, attacker, estimates, truth, radius, k))

    # the undefended model: one label, uniform over the grid points with that label
    base_answer = np.asarray(base_labels(apply_fn, params)(x, None)[0])
    score("base", [atk.estimate(np.where(atk.base[i] == base_answer[i], 0.0, -np.inf))
                   for i in range(p)], 1)
    for k in config.attack_queries:
        score("repeat", [atk.estimate(_label_loglik(mode, probs[i], repeat[i], k))
                         for i in range(p)], k)
        score("near_duplicate", [atk.estimate(_label_loglik(mode, probs[i], near[i], k))
                                 for i in range(p)], k)
        if mode != "always_label":
            score("abstention", [atk.estimate(_label_loglik(mode, probs[i], repeat[i], k, True))
                                 for i in range(p)], k)
    # one CERTIFY answer with its radius, read from the owner's audit record
    cert = atk.release("certify")
    cert.query(x, ids.tolist())
    rec = cert.audit()[-1]
    est = []
    for i in range(p):
        label = int(rec.label[i])
        count = int(rec.counts[i, int(rec.selection_counts[i].argmax())])
        est.append(atk.estimate(_radius_loglik(atk.curves[i], label, count, n=n,
                                               n0=config.n0, alpha=config.alpha)))
    score("radius", est, 1)
    return {"sigma": float(sigma), "n": int(n), "mode": mode, "people": int(p),
            "nudge_column": int(nudge_column), "rows": rows}


def _score(attr, attacker, estimates, truth, radius, k) -> dict[str, Any]:
    row: dict[str, Any] = {"attacker": attacker, "queries": int(k)}
    if isinstance(attr, CategoricalAttribute):
        guess = np.asarray(estimates)
        row["accuracy"] = float(np.mean(guess == truth))
        row["people"] = {"guess": [int(v) for v in guess]}
        return row
    med = np.array([e[0] for e in estimates])
    lo, hi = np.array([e[1] for e in estimates]), np.array([e[2] for e in estimates])
    err = np.abs(med - truth)
    ball = radius > 0
    inside = (lo <= truth) & (truth <= hi) & (hi - lo < 2 * radius)
    row.update({"median_error_raw": _median(err), "mean_error_raw": float(np.mean(err)),
                "median_interval_raw": _median(hi - lo),
                "located_in_ball": int(np.sum(inside & ball)),
                "certified_people": int(np.sum(ball)),
                "median_certified_radius_raw": _median(radius),
                "people": {"error_raw": _floats(err)}})
    return row


# ----------------------------------------------------------------------- the audit
def _check_attribute(name: str, attr: Any, x: np.ndarray) -> np.ndarray:
    """The people's true values (raw, continuous) or categories; ValueError naming it."""
    where = f"sensitive[{name!r}]"
    d = x.shape[1]
    if isinstance(attr, AttributeSweep):
        if attr.index >= d:
            raise ValueError(f"{where}: index {attr.index} is not a column of x (d = {d}).")
        true = attr.offset + attr.scale * x[:, attr.index].astype(np.float64)
        tol = 1e-6 * max(1.0, abs(attr.low), abs(attr.high))
        if true.min() < attr.low - tol or true.max() > attr.high + tol:
            raise ValueError(f"{where}: the people's values [{true.min():.6g}, "
                             f"{true.max():.6g}] (raw units) must lie in the sweep range "
                             f"[{attr.low:g}, {attr.high:g}].")
        return np.clip(true, attr.low, attr.high)
    if isinstance(attr, CategoricalAttribute):
        if max(attr.columns) >= d:
            raise ValueError(f"{where}: columns {list(attr.columns)} are not all columns of x "
                             f"(d = {d}).")
        return attr.decode(x, where)
    raise TypeError(f"{where} must be an AttributeSweep or a CategoricalAttribute, got "
                    f"{type(attr).__name__}.")


def _describe(attr: Attribute) -> dict[str, Any]:
    if isinstance(attr, CategoricalAttribute):
        return {"kind": "categorical", "columns": list(attr.columns),
                "categories": list(attr.categories), "on": attr.on, "off": attr.off,
                "change_distance": attr.change_distance}
    return {"kind": "continuous", "index": attr.index, "offset": attr.offset,
            "scale": attr.scale, "low": attr.low, "high": attr.high,
            "num_points": attr.num_points, "refine_steps": attr.refine_steps}


def _key_words(key: jax.Array) -> list[int]:
    return [int(v) for v in np.asarray(jax.random.key_data(key)).ravel()]


def audit(
    apply_fn: Callable,
    params: Any,
    x: Any,
    *,
    sensitive: Mapping[str, Attribute],
    config: AuditConfig,
    key: jax.Array | int,
    labels: Any = None,
    ids: Any = None,
    checkpoint: MutableMapping[str, Any] | None = None,
    progress: bool = False,
) -> AuditResult:
    """Audits what a release of `apply_fn` reveals about each sensitive attribute of `x`.

    Args:
      apply_fn, params: the base model, `apply_fn(params, x [b, d]) -> logits [b, C]`.
      x: `[P, d]` the audited people's inputs, model units, finite.
      sensitive: attribute name -> `AttributeSweep` (continuous: column, raw-unit offset and
        scale, sweep range, which must contain every person's value) or `CategoricalAttribute`
        (one-hot group; every row must be one-hot in it).
      config: the settings (`AuditConfig`).
      key: typed key or int seed. The smoothed labels of every setting are those of
        `rpjax.certify(..., key, ids=ids)` (common random numbers along each person's sweep
        and across settings); the attackers' noise and the hardened releases' (reproducible)
        secrets derive from it.
      labels: optional `[P]` true labels in [0, C): accuracies are reported.
      ids: optional `[P]` non-negative person ids for the noise (default `0..P-1`).
      checkpoint: optional mutable mapping of finished sections (see the module docstring).
      progress: show a tqdm bar over sections.

    Returns:
      `AuditResult` (per attribute: base, smoothed, leakage and attack sections). Raw units
      are the attribute's (`AttributeSweep.scale` per input unit); radii in input units are
      labelled so.

    Raises:
      TypeError / ValueError naming the parameter (a bad shape, a non-finite input, an
      attribute whose values leave its sweep range or a group that is not one-hot).
    """
    t0 = time.perf_counter()
    if not isinstance(config, AuditConfig):
        raise TypeError(f"config must be an AuditConfig, got {type(config).__name__}.")
    if not isinstance(sensitive, Mapping) or not sensitive:
        raise ValueError(f"sensitive must be a non-empty mapping name -> attribute, got "
                         f"{sensitive!r}.")
    try:
        hash(apply_fn)
    except TypeError:
        raise TypeError("apply_fn must be hashable (it is a static argument of the compiled "
                        "programs).") from None
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] < 1 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"x must be a floating array [P, d] with P >= 1, got shape "
                         f"{x.shape} and dtype {x.dtype}.")
    if not np.isfinite(x).all():
        row = int(np.argmin(np.isfinite(x).all(axis=1)))
        raise ValueError(f"x must be finite (NaN or inf at row {row}).")
    x = x.astype(np.float32)
    key = _validate.key("key", key)
    num_classes = _num_classes(apply_fn, params, x.shape[1])
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers of shape [{len(x)}], got "
                             f"{labels.shape} {labels.dtype}.")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"labels must lie in [0, {num_classes}).")
    for name in sensitive:
        if not isinstance(name, str) or not name:
            raise TypeError(f"sensitive's keys must be non-empty attribute names (str), got "
                            f"{name!r}.")
    truths = {name: _check_attribute(name, attr, x) for name, attr in sensitive.items()}
    for name in config.shifts:
        if name not in sensitive or not isinstance(sensitive[name], AttributeSweep):
            raise ValueError(f"shifts: {name!r} is not a continuous attribute of sensitive.")
    ids = np.arange(len(x)) if ids is None else _validate.ids("ids", ids, len(x))
    store: MutableMapping[str, Any] = {} if checkpoint is None else checkpoint
    two = num_classes == 2
    sections = []
    for name in sensitive:
        sections.append((name, "base", None, None))
        for i, sigma in enumerate(config.sigmas):
            for j, n in enumerate(config.ns):
                sections.append((name, "smoothed", (i, sigma), (j, n)))
        if two:
            sections.append((name, "leakage", None, None))
            if config.attack_people:
                for i, sigma in enumerate(config.sigmas):
                    sections.append((name, "attacks", (i, sigma), None))
    from tqdm.auto import tqdm

    words = _key_words(key)
    results: dict[str, dict[str, Any]] = {}
    accuracy: dict[str, Any] | None = None if labels is None else {"releases": []}
    if labels is not None:
        base = np.asarray(base_labels(apply_fn, params)(x, ids)[0])
        accuracy["base"] = float(np.mean(base == labels))
    for name, kind, sig, nn in tqdm(sections, desc="audit", unit="section",
                                    disable=not progress):
        attr = sensitive[name]
        tag = f"{name}/{kind}" + ("" if sig is None else f"/sigma={sig[1]!r}") + (
            "" if nn is None else f"/n={nn[1]}")
        if tag not in store:
            store[tag] = _jsonable(_section(apply_fn, params, x, ids, labels, name, attr,
                                            truths[name], kind, sig, nn, config, key, words,
                                            num_classes, results))
        value = store[tag]
        rec = results.setdefault(name, {"attribute": _describe(attr), "smoothed": [],
                                        "attacks": []})
        if kind in ("smoothed", "attacks"):
            rec[kind].append(value)
        else:
            rec[kind] = value
    if labels is not None:
        for sigma in config.sigmas:
            for n in config.ns:
                name = next(iter(sensitive))
                r = next(s for s in results[name]["smoothed"]
                         if s["sigma"] == float(sigma) and s["n"] == int(n))
                accuracy["releases"].append({"sigma": float(sigma), "n": int(n),
                                             "accuracy": r["accuracy"],
                                             "abstain_rate": r["abstain_rate"]})
    cfg = {**config.to_dict(), "num_classes": num_classes, "num_people": int(len(x)),
           "key": words, "attributes": list(sensitive)}
    if not two:
        cfg["not_covered"] = ("leakage bound and attackers: two-class models only "
                              f"(this model has {num_classes} classes)")
    return AuditResult(config=cfg, attributes=results, accuracy=accuracy,
                       seconds=time.perf_counter() - t0)


def _section(apply_fn, params, x, ids, labels, name, attr, truth, kind, sig, nn, config, key,
             words, num_classes, results) -> dict[str, Any]:
    cat = isinstance(attr, CategoricalAttribute)
    if kind == "base":
        release = base_labels(apply_fn, params)
        if cat:
            lab, rad, y, r = _categorical_sets(release, attr, x, ids, truth)
            return _categorical_record(lab, rad, y, r, attr, truth, labels)
        iv = attribute_intervals(release, x, ids, truth, attr)
        return _continuous_record(iv, attr, labels)
    if kind == "smoothed":
        (_, sigma), (_, n) = sig, nn
        release = certified_labels(apply_fn, params, key, num_classes=num_classes,
                                   config=config.smoothing(sigma, n), mode="certify",
                                   placement=Placement(batch_size=config.batch_size))
        if cat:
            lab, rad, y, r = _categorical_sets(release, attr, x, ids, truth)
            rec = _categorical_record(lab, rad, y, r, attr, truth, labels)
        else:
            rec = _continuous_record(attribute_intervals(release, x, ids, truth, attr), attr,
                                     labels)
        return {"sigma": float(sigma), "n": int(n), **rec}
    if kind == "leakage":
        shift = None if cat else float(config.shifts.get(name, attr.scale))
        return _leakage_section(attr, shift, config)
    # attacks at (sigma, the largest n)
    i, sigma = sig
    p = min(config.attack_people, len(x))
    n = max(config.ns)
    smoothed = next((s for s in results[name]["smoothed"]
                     if s["sigma"] == float(sigma) and s["n"] == n), None)
    radius = np.asarray(smoothed["people"]["radius_raw" if not cat else "radius"][:p])
    cols = set(attr.columns) if cat else {attr.index}
    nudge = next(c for c in range(x.shape[1]) if c not in cols) if len(cols) < x.shape[1] \
        else next(iter(cols))
    tag = hashlib.sha256(json.dumps([words, name, float(sigma)]).encode()).hexdigest()[:16]
    secret = lambda mode: experiment_secret("rpjax-audit", tag, mode)  # noqa: E731
    k = jax.random.fold_in(jax.random.fold_in(key, 1), i)
    rec = _attack_section(apply_fn, params, attr, x[:p], ids[:p], truth[:p], radius, config,
                          sigma, k, secret, nudge)
    if cat:
        counts = np.bincount(truth, minlength=len(attr.columns))
        rec["majority_baseline"] = float(counts.max() / counts.sum())
        rec["majority_baseline_attacked"] = float(
            np.bincount(truth[:p], minlength=len(attr.columns)).max() / p)
    return rec

