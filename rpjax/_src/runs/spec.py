"""The spec of a run (`RunSpec`), its `config.json`, and the run directory."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from rpjax._src import durable
from rpjax._src import smoothing as _smoothing
from rpjax._src import validate as _validate
from rpjax._src.noise import MAX_ABS_UNIT_NOISE
from rpjax._src.plan import (
    RULES,
    DecideAt,
    Fixed,
    RadiusBudget,
    Rule,
    SmoothingConfig,
)
from rpjax._src.runs.data import ArrayFile, check_data, open_data
from rpjax._src.runs.model import load_model, model_classes, params_sha256

FORMAT = 1
LOCK_PREFIX = "lock-"
"""The prefix of the per-process lock files in a run directory (`lock-PPPPP`)."""

# the fields that fix the rows: a run directory whose config differs in any of them is refused
IDENTITY = ("format", "model", "model_sha256", "checkpoint_sha256", "data_sha256",
            "inputs_key", "labels_key", "num_inputs", "input_shape", "input_dtype",
            "num_classes", "sigma", "n0", "n", "alpha", "seed", "method", "radius", "price",
            "common_noise", "block", "prng_impl")


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """The model of a run.

    Attributes:
      factory: `MODULE:FACTORY` (or `path/to/file.py:FACTORY`).
      checkpoint: an orbax directory the parameters are restored from, or None.
      num_classes: classes counted (>= the model's logits).
    """

    factory: str
    num_classes: int
    checkpoint: str | None = None

    def __post_init__(self):
        if not isinstance(self.factory, str) or ":" not in self.factory:
            raise ValueError(f"model must be MODULE:FACTORY, got {self.factory!r}.")
        object.__setattr__(self, "num_classes",
                           _validate.integer("num_classes", self.num_classes, minimum=2))


@dataclasses.dataclass(frozen=True, kw_only=True)
class DataSpec:
    """The data file of a run and what was found in it.

    Attributes:
      path: the `.npy` / `.npz` file (absolute).
      inputs_key, labels_key: the arrays used (`labels_key` None: no labels).
      num_inputs, input_shape, input_dtype: the inputs' count, per-input shape and dtype.
    """

    path: str
    num_inputs: int
    input_shape: tuple[int, ...]
    input_dtype: str
    inputs_key: str = "x"
    labels_key: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "num_inputs",
                           _validate.integer("num_inputs", self.num_inputs, minimum=1))
        object.__setattr__(self, "input_shape", tuple(int(s) for s in self.input_shape))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Provenance:
    """What the rows were computed from, by hash: a resumed run must match it.

    Attributes:
      model_sha256: the parameters' hash; checkpoint_sha256: the checkpoint directory's (None
        without one); data_sha256: the data file's; prng_impl: JAX's default PRNG.
    """

    model_sha256: str
    data_sha256: str
    checkpoint_sha256: str | None = None
    prng_impl: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunSpec:
    """Everything that fixes a run's rows: a frozen, validated plan.

    Attributes:
      model: the `ModelSpec`; data: the `DataSpec`.
      smoothing: the statistics (`rpjax.SmoothingConfig`: sigma, n0, n, alpha, common noise).
      rule: `Fixed()` (default), `DecideAt(radius)` or `RadiusBudget(price)`.
      seed: the PRNG seed of every input's noise, an integer in [0, 2**64) kept at full width
        (the key of `rpjax.certify(key=seed)`; input i gets `ids=[i]`).
      block: inputs per committed block (>= 1).
      provenance: the hashes of what the rows were computed from.
    """

    model: ModelSpec
    data: DataSpec
    smoothing: SmoothingConfig
    provenance: Provenance
    rule: Rule = Fixed()
    seed: int = 0
    block: int = 64
    format: int = FORMAT

    def __post_init__(self):
        for name, kind in (("model", ModelSpec), ("data", DataSpec),
                           ("smoothing", SmoothingConfig), ("provenance", Provenance)):
            if not isinstance(getattr(self, name), kind):
                raise TypeError(f"{name} must be a {kind.__name__}, got "
                                f"{type(getattr(self, name)).__name__}.")
        if not isinstance(self.rule, RULES):
            raise TypeError("rule must be Fixed(), DecideAt(radius) or RadiusBudget(price), "
                            f"got {self.rule!r}.")
        seed = _validate.integer("seed", self.seed, minimum=0)
        _validate.key("seed", seed)  # [0, 2**64), all bits kept: the same key as rpjax.certify
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "block", _validate.integer("block", self.block, minimum=1))

    # the flat names the rows, the summary and config.json use
    sigma = property(lambda self: self.smoothing.sigma)
    n0 = property(lambda self: self.smoothing.n0)
    n = property(lambda self: self.smoothing.n)
    alpha = property(lambda self: self.smoothing.alpha)
    common_noise = property(lambda self: self.smoothing.common_noise)
    num_classes = property(lambda self: self.model.num_classes)
    num_inputs = property(lambda self: self.data.num_inputs)

    @property
    def method(self) -> str:
        """"cohen" for `Fixed()`, else "sequential"."""
        return "cohen" if isinstance(self.rule, Fixed) else "sequential"

    @property
    def radius(self) -> float | None:
        """The radius of `DecideAt`, else None."""
        return self.rule.radius if isinstance(self.rule, DecideAt) else None

    @property
    def price(self) -> float | None:
        """The price of `RadiusBudget`, else None."""
        return self.rule.price if isinstance(self.rule, RadiusBudget) else None

    @property
    def num_blocks(self) -> int:
        """Blocks in the run: `ceil(num_inputs / block)`."""
        return -(-self.num_inputs // self.block)

    def block_range(self, b: int) -> tuple[int, int]:
        """Inputs `[start, stop)` of block `b`."""
        return b * self.block, min((b + 1) * self.block, self.num_inputs)

    def to_json(self) -> dict[str, Any]:
        """The spec as written to `config.json`: one flat record (with the versions that ran
        it), the keys `IDENTITY` compares."""
        return {
            "format": self.format, "model": self.model.factory,
            "checkpoint": self.model.checkpoint, "num_classes": self.num_classes,
            "data": self.data.path, "inputs_key": self.data.inputs_key,
            "labels_key": self.data.labels_key, "num_inputs": self.num_inputs,
            "input_shape": list(self.data.input_shape), "input_dtype": self.data.input_dtype,
            "sigma": self.sigma, "n0": self.n0, "n": self.n, "alpha": self.alpha,
            "common_noise": self.common_noise, "method": self.method, "radius": self.radius,
            "price": self.price, "seed": self.seed, "block": self.block,
            **dataclasses.asdict(self.provenance), "versions": _versions()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunSpec:
        """The inverse of `to_json` (versions are dropped)."""
        if d.get("format") != FORMAT:
            raise ValueError(f"format {d.get('format')!r} (this rpjax writes {FORMAT})")
        method = d.get("method", "cohen")
        if method == "cohen":
            rule: Rule = Fixed()
        elif d.get("radius") is not None:
            rule = DecideAt(d["radius"])
        else:
            rule = RadiusBudget(*([] if d.get("price") is None else [d["price"]]))
        return cls(
            model=ModelSpec(factory=d["model"], checkpoint=d.get("checkpoint"),
                            num_classes=d["num_classes"]),
            data=DataSpec(path=d["data"], inputs_key=d.get("inputs_key", "x"),
                          labels_key=d.get("labels_key"), num_inputs=d["num_inputs"],
                          input_shape=tuple(d["input_shape"]), input_dtype=d["input_dtype"]),
            smoothing=SmoothingConfig(sigma=d["sigma"], n0=d["n0"], n=d["n"], alpha=d["alpha"],
                                      common_noise=bool(d.get("common_noise", False))),
            rule=rule, seed=d.get("seed", 0), block=d.get("block", 64),
            provenance=Provenance(model_sha256=d["model_sha256"], data_sha256=d["data_sha256"],
                                  checkpoint_sha256=d.get("checkpoint_sha256"),
                                  prng_impl=d.get("prng_impl", "")))



def _versions() -> dict[str, str]:
    import flax
    import jaxlib

    import rpjax

    return {"rpjax": rpjax.__version__, "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "flax": flax.__version__, "numpy": np.__version__,
            "python": sys.version.split()[0]}


def _prng_impl() -> str:
    return str(jax.random.key_impl(jax.random.key(0)))


def make_config(*, model: str, data: str, sigma: float, n0: int | None = None,
                n: int | None = None, alpha: float | None = None,
                checkpoint: str | None = None, inputs_key: str | None = None,
                labels_key: str | None = None, num_classes: int | None = None,
                seed: int | None = None, rule: Rule | None = None,
                common_noise: bool = False, block: int | None = None
                ) -> tuple[RunSpec, Callable, Any, ArrayFile, ArrayFile | None]:
    """Validates every setting, loads the model, opens and checks the data, hashes both.

    Settings left None take their defaults from `SmoothingConfig` (n0, n, alpha) and
    `RunSpec` (seed, block, rule). Nothing is written. Returns `(spec, apply_fn, params,
    inputs, labels)`.

    Raises:
      ValueError / TypeError naming the setting at fault in the library's words (`sigma`,
      `n`, `seed`, ...; see `load_model`, `open_data`, `check_data`, `model_classes`); the
      command line names its flag.
    """
    given = {k: v for k, v in (("n0", n0), ("n", n), ("alpha", alpha)) if v is not None}
    smoothing = SmoothingConfig(sigma=sigma, common_noise=bool(common_noise), **given)
    defaults = {f.name: f.default for f in dataclasses.fields(RunSpec)}
    seed = defaults["seed"] if seed is None else _validate.integer("seed", seed, minimum=0)
    _validate.key("seed", seed)  # [0, 2**64), all bits kept: the same key as rpjax.certify
    block = defaults["block"] if block is None else _validate.integer("block", block, minimum=1)
    rule = defaults["rule"] if rule is None else rule
    if not isinstance(rule, RULES):
        raise TypeError("rule must be Fixed(), DecideAt(radius) or RadiusBudget(price), "
                        f"got {rule!r}.")
    inputs, labels = open_data(data, inputs_key, labels_key)
    if not np.issubdtype(inputs.dtype, np.floating) or len(inputs.shape) < 2:
        check_data(inputs, None, 2)  # raises the boundary's error
    apply_fn, params = load_model(model, checkpoint)
    try:
        _smoothing.check_hashable(apply_fn)
    except TypeError as err:
        raise TypeError(f"model {model}: the factory's {err}") from None
    logits = model_classes(model, apply_fn, params, inputs.shape[1:], inputs.dtype)
    if num_classes is None:
        num_classes = logits
    num_classes = _validate.integer("num_classes", num_classes, minimum=2)
    if num_classes < logits:
        raise ValueError(f"num_classes {num_classes} is smaller than the model's {logits} "
                         "logits.")
    max_abs = check_data(inputs, labels, num_classes)
    _validate.noise_fits("sigma", smoothing.sigma, max_abs, inputs.dtype,
                         max_noise=MAX_ABS_UNIT_NOISE)
    data_sha256 = durable.file_sha256(data)
    inputs.check_unchanged()  # e.g. rewritten by the model's factory: refuse, write nothing
    spec = RunSpec(
        model=ModelSpec(factory=model, num_classes=num_classes,
                        checkpoint=None if checkpoint is None else os.path.abspath(checkpoint)),
        data=DataSpec(path=os.path.abspath(data), num_inputs=int(inputs.shape[0]),
                      input_shape=tuple(int(s) for s in inputs.shape[1:]),
                      input_dtype=str(inputs.dtype), inputs_key=inputs.name,
                      labels_key=None if labels is None else labels.name),
        smoothing=smoothing, rule=rule, seed=seed, block=block,
        provenance=Provenance(
            model_sha256=params_sha256(params), data_sha256=data_sha256,
            checkpoint_sha256=None if checkpoint is None else durable.tree_sha256(checkpoint),
            prng_impl=_prng_impl()))
    return spec, apply_fn, params, inputs, labels


def read_config(run_dir: str) -> RunSpec:
    """The `RunSpec` of an existing run directory.

    Raises:
      ValueError naming `--out`: no run there, or an unreadable config.
    """
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise ValueError(f"out {run_dir}: no rpjax certify run there (no config.json).")
    try:
        with open(path, encoding="utf-8") as f:
            return RunSpec.from_json(json.load(f))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"out {run_dir}: config.json is unreadable ({err}).") from None


def config_differences(old: RunSpec, new: RunSpec) -> list[str]:
    """`["sigma 0.25 -> 0.5", ...]` for every `IDENTITY` field that differs."""
    a, b = old.to_json(), new.to_json()
    return [f"{k} {a[k]!r} -> {b[k]!r}" for k in IDENTITY if a.get(k) != b.get(k)]


def prepare_run_dir(run_dir: str, config: RunSpec, *, write: bool = True) -> bool:
    """Creates `run_dir` with `config.json`, or checks an existing run's config.

    Returns True when the run already existed (a resume). Called before any block is
    certified; `write=False` (the processes other than 0) only checks.

    Raises:
      ValueError naming `--out`: `run_dir` is a file or unwritable, holds something that is
      not an rpjax certify run, or a run whose configuration differs (each differing field
      named).
    """
    run_dir = durable.check_output_dir("out", run_dir)
    path = os.path.join(run_dir, "config.json")
    if os.path.isfile(path):
        old = read_config(run_dir)
        diff = config_differences(old, config)
        if diff:
            raise ValueError(
                f"out {run_dir} holds a run with a different configuration ("
                f"{'; '.join(diff)}); use another --out, or delete it to start over.")
        return True
    others = [e for e in os.listdir(run_dir)
              if not e.startswith((".rpjax-probe", LOCK_PREFIX))]
    if others:
        raise ValueError(f"out {run_dir} is not empty and holds no rpjax certify run "
                         f"({', '.join(sorted(others)[:3])}...); use an empty or new directory.")
    if write:
        durable.atomic_write(path, json.dumps(config.to_json(), indent=2) + "\n")
    return False
