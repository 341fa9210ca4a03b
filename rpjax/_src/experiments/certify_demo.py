"""A one-command look at the engine: certify a small insurance model on bundled data.

Trains a small MLP to recommend (1) iff BMI >= 33.4 on a seeded train split of the bundled
Medical Cost data, then certifies test people with randomized smoothing in standardized
feature space and reports label, radius (standardized units and BMI points), pA_lower and
abstentions.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from flax import nnx

import rpjax
from rpjax._src import validate as _validate
from rpjax._src.experiments import common
from rpjax.data import DEFAULT_BMI_THRESHOLD, load_insurance, train_test_split
from rpjax.models import TabularMLP, TrainConfig, accuracy, fit_classifier
from rpjax.stats import max_radius


@dataclasses.dataclass(frozen=True, kw_only=True)
class DemoConfig:
    """Settings of the demo (all units stated).

    Attributes:
      sigma: smoothing std in standardized feature units.
      n0, n, alpha: CERTIFY's selection samples, estimation samples and failure probability.
      num_people: test people to certify.
      threshold: BMI (kg/m^2) at and above which the label is "recommend".
      train_steps: Adam steps for the base MLP.
      seed: seed of the split, the initialization and the certification noise.
      batch_size: people certified per compiled call (drives the progress bar; "cohen" only).
      method: "cohen" (n samples per person) or "sequential" (each person stops as soon as
        decided, n is n_max; see `rpjax.DecideAt` and `rpjax.RadiusBudget`).
      radius: with "sequential", the radius of the decision question (standardized units);
        None asks for the radius with a budget.
      price: with "sequential" and no radius, the budget rule's price (`rpjax.RadiusBudget`).
    """

    sigma: float = 0.5
    n0: int = 100
    n: int = 10_000
    alpha: float = 1e-3
    num_people: int = 16
    threshold: float = DEFAULT_BMI_THRESHOLD
    train_steps: int = 1500
    seed: int = 0
    batch_size: int = 4
    method: str = "cohen"
    radius: float | None = None
    price: float | None = None

    def __post_init__(self):
        if self.method not in ("cohen", "sequential"):
            raise ValueError(f"method must be 'cohen' or 'sequential', got {self.method!r}.")
        if self.method == "cohen" and (self.radius is not None or self.price is not None):
            raise ValueError("radius and price are options of method='sequential'.")
        if self.radius is not None:
            radius = _validate.real("radius", self.radius)
            if not (radius >= 0 and radius != float("inf")):
                raise ValueError(f"radius must be finite and >= 0, got radius={radius}.")
            if self.price is not None:
                raise ValueError("price applies to the radius with a budget (no radius).")
        if self.price is not None:
            rpjax.RadiusBudget(self.price)  # validates
        _validate.positive("sigma", self.sigma)
        _validate.integer("n0", self.n0, minimum=1)
        _validate.integer("n", self.n, minimum=1)
        _validate.open_unit_interval("alpha", self.alpha)
        _validate.integer("num_people", self.num_people, minimum=1)
        _validate.integer("train_steps", self.train_steps, minimum=1)
        _validate.integer("batch_size", self.batch_size, minimum=1)


def run(config: DemoConfig = DemoConfig(), *, progress: bool = True) -> dict[str, Any]:
    """Trains the base model, certifies `num_people` test people, returns a result dict."""
    t0 = time.perf_counter()
    data = load_insurance()
    y = data.labels(config.threshold)
    train, test = train_test_split(len(y), 0.2, config.seed)
    model = TabularMLP(data.x.shape[1], 2, rngs=nnx.Rngs(config.seed))
    fit = fit_classifier(model, data.x[train], y[train], config.seed,
                         TrainConfig(steps=config.train_steps))
    people = test[: config.num_people]
    smoothing = rpjax.SmoothingConfig(sigma=config.sigma, n0=config.n0, n=config.n,
                                      alpha=config.alpha)
    if config.method == "cohen":
        rule, placement = rpjax.Fixed(), rpjax.Placement(batch_size=config.batch_size,
                                                         progress=progress)
    else:
        rule = (rpjax.DecideAt(config.radius) if config.radius is not None else
                rpjax.RadiusBudget(*([] if config.price is None else [config.price])))
        placement = rpjax.Placement(progress=progress)
    cert = rpjax.certify(fit.apply_fn, fit.params, data.x[people], config.seed, num_classes=2,
                         config=smoothing, rule=rule, placement=placement, ids=people)
    forward_passes = cert.forward_passes
    rows = [
        {
            "person": int(p), "bmi": float(data.bmi[p]), "true_label": int(y[p]),
            "label": int(cert.label[i]), "abstain": bool(cert.label[i] == rpjax.ABSTAIN),
            "radius_std": float(cert.radius[i]),
            "radius_bmi": float(cert.radius[i] * data.bmi_std),
            "pa_lower": float(cert.pa_lower[i]),
            "samples": int(cert.n[i]),
        }
        for i, p in enumerate(people)
    ]
    return {
        "config": dataclasses.asdict(config),
        "base_test_accuracy": accuracy(fit.apply_fn, fit.params, data.x[test], y[test]),
        "max_radius_std": float(max_radius(config.n, config.alpha, config.sigma)),
        "rows": rows,
        "forward_passes": int(forward_passes),
        "seconds": time.perf_counter() - t0,
        "versions": common.versions(),
    }


def format_table(result: dict[str, Any]) -> str:
    """The demo's rows as a Markdown table."""
    headers = ["person", "BMI", "true", "label", "radius (std)", "radius (BMI)", "pA_lower",
               "abstain", "samples"]
    rows = [[r["person"], f'{r["bmi"]:.2f}', r["true_label"], r["label"],
             f'{r["radius_std"]:.3f}', f'{r["radius_bmi"]:.2f}', f'{r["pa_lower"]:.4f}',
             "yes" if r["abstain"] else "no", r["samples"]] for r in result["rows"]]
    return common.markdown_table(headers, rows)
