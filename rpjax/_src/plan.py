"""The typed plan of one certification: what to estimate, which question to answer, where to run.

Three values, each validated when it is built, so a bad combination cannot be written:

- `SmoothingConfig`: the statistics (noise distribution and scale, sample sizes, error level,
  whether inputs share noise draws). It fixes the results.
- a `Rule`: the question `rpjax.certify` answers. `Fixed()` spends `n` samples on every input
  (Cohen et al.'s CERTIFY); `DecideAt(radius)` stops each input as soon as it is decided
  whether it is certified at `radius`; `RadiusBudget(price)` gives each input the sample count
  its selection votes say is worth spending (a planned n, then Clopper-Pearson).
- `Placement`: devices, chunk and batch sizes and the progress bar. It changes speed, memory
  and display, never a result.

`resolve` turns them, with the model's `num_classes`, into the internal `Plan` (a hashable
`NamedTuple` of plain values) that the counting kernels take: the public functions check once
and pass the checked plan inward.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax

from rpjax._src import noise as _noise
from rpjax._src import validate as _validate

MAX_N = 2**30
"""The most samples per input one call may draw (the counters are 32-bit per sample)."""
MAX_LANES = 2**23
"""The most lanes (noisy samples per compiled step) of the sequential scheduler: its sums are
float32 matrix products, exact below 2^24."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class SmoothingConfig:
    """The statistics of one certification, prediction or count (write it into reports).

    Attributes:
      sigma: noise scale (the std of the isotropic Gaussian for `GAUSSIAN`), in the units of
        the model input; > 0.
      n0: selection samples per input (`certify` only); 1 <= n0 <= 2**30.
      n: estimation samples per input (`certify`: with a sequential rule, the most any input
        may use, n_max); samples per input (`predict`, `always_label`, `sample_counts`);
        1 <= n <= 2**30.
      alpha: failure probability of each certificate or test, in (0, 1) (unused by
        `always_label` and `sample_counts`).
      distribution: the smoothing distribution; its `radius_from_pa` gives the radius, in its
        `norm`.
      common_noise: perturb every input of a call with the same noise draws (those of id 0).
        Each input's counts keep their exact distribution, so every per-input guarantee
        holds, but the counts of different inputs become dependent: fine for certifying a test
        set, wrong for answers that must be independent of each other. `ids` must then be
        None.
    """

    sigma: float
    n0: int = 100
    n: int = 100_000
    alpha: float = 1e-3
    distribution: _noise.NoiseDistribution = _noise.GAUSSIAN
    common_noise: bool = False

    def __post_init__(self):  # canonical Python numbers, so the config serializes as given
        put = functools.partial(object.__setattr__, self)
        put("sigma", _validate.positive("sigma", self.sigma))
        for name in ("n0", "n"):
            value = _validate.integer(name, getattr(self, name), minimum=1)
            if value > MAX_N:
                raise ValueError(f"{name} must be <= 2**30, got {name}={value}; split the work "
                                 "over several keys.")
            put(name, value)
        put("alpha", _validate.open_unit_interval("alpha", self.alpha))
        if not isinstance(self.distribution, _noise.NoiseDistribution):
            raise TypeError("distribution must be a rpjax.NoiseDistribution, got "
                            f"{self.distribution!r}.")
        if not isinstance(self.common_noise, bool):
            raise TypeError(f"common_noise must be a bool, got {self.common_noise!r}.")

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (the distribution by its name)."""
        out = dataclasses.asdict(self)
        out["distribution"] = self.distribution.name
        return out


@dataclasses.dataclass(frozen=True)
class Fixed:
    """Every input spends all `n` estimation samples (Cohen et al.'s CERTIFY)."""

    def to_dict(self) -> dict[str, Any]:
        """`{"rule": "fixed"}`."""
        return {"rule": "fixed"}


@dataclasses.dataclass(frozen=True)
class DecideAt:
    """Decide, for each input, whether it is certified at `radius`, stopping each input as soon
    as that is decided (a sequential test of `p_A > pa_for_radius(radius)`).

    Each input's test is the confidence sequence of a Beta mixture centred on its own
    selection count: it certifies when the sequence's lower end reaches p* (wrong with
    probability at most `alpha` of the `SmoothingConfig`), and gives up ("not certified at
    radius") when the upper end at level `futility` falls below p*.

    Attributes:
      radius: the radius of the question, in the units of the inputs (finite, >= 0).
      futility: the probability of giving up on an input that is robust at `radius`, in
        (0, 1); None (the default): the certificates' alpha, the same confidence sequence.
        It never changes the soundness of a certificate.
    """

    radius: float
    futility: float | None = None

    def __post_init__(self):
        radius = _validate.real("radius", self.radius)
        if radius < 0:
            raise ValueError(f"radius must be finite and >= 0, got radius={radius}.")
        object.__setattr__(self, "radius", radius)
        if self.futility is not None:
            object.__setattr__(self, "futility",
                               _validate.open_unit_interval("futility", self.futility))

    def to_dict(self) -> dict[str, Any]:
        """`{"rule": "decide_at", "radius": r, "futility": f}` (futility only when set)."""
        out: dict[str, Any] = {"rule": "decide_at", "radius": self.radius}
        if self.futility is not None:
            out["futility"] = self.futility
        return out


@dataclasses.dataclass(frozen=True)
class RadiusBudget:
    """The largest certifiable radius, with each input's estimation sample count planned from
    its selection counts before any estimation sample is drawn.

    An input gets the n (of about 33 counts from 64 to `n`) that maximizes its expected
    radius minus `price * n`, the expected radius being that of Clopper-Pearson under the
    posterior of its selection votes (`rpjax._src.confseq.planned_sample_sizes`); its bound is
    Clopper-Pearson at the full alpha on those n fresh samples.

    Attributes:
      price: the expected certified radius, in units of sigma, one estimation sample must
        add to be spent (>= 0; 0 spends `n` on every input). The default 2.5e-7 (0.0025
        sigma per 10,000 samples) halves the samples of the synthetic and insurance tasks of
        `benchmarks/bench_sequential.py` at about 1% of average certified radius
        (`benchmarks/RESULTS.md`).
    """

    price: float = 2.5e-7

    def __post_init__(self):
        price = _validate.real("price", self.price)
        if price < 0:
            raise ValueError(f"price must be finite and >= 0, got price={price}.")
        object.__setattr__(self, "price", price)

    def to_dict(self) -> dict[str, Any]:
        """`{"rule": "radius_budget", "price": p}`."""
        return {"rule": "radius_budget", "price": self.price}


Rule = Fixed | DecideAt | RadiusBudget
"""The question `rpjax.certify` answers: `Fixed()`, `DecideAt(radius)` or `RadiusBudget(price)`."""
RULES = (Fixed, DecideAt, RadiusBudget)


def rule_from_dict(d: dict[str, Any]) -> Rule:
    """The rule `rule.to_dict()` wrote."""
    kind = d.get("rule")
    if kind == "fixed":
        return Fixed()
    if kind == "decide_at":
        return DecideAt(d["radius"], d.get("futility"))
    if kind == "radius_budget":
        return RadiusBudget(d["price"])
    raise ValueError(f"rule must be one of 'fixed', 'decide_at', 'radius_budget', got {kind!r}.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Placement:
    """Where and how the work runs. Speed, memory and display only: results never depend on it.

    Attributes:
      devices: distinct devices to split the samples over (default `jax.local_devices()`).
      chunk_size: work per compiled step (default: about 256k noise values). With `Fixed()`
        (and in `predict`, `always_label`, `sample_counts`): noisy copies of each input per
        step. With a sequential rule: lanes, noisy samples per step over all inputs under test
        (rounded up to a multiple of the number of devices; at most 2**23).
      batch_size: inputs at a time (default: all at once with `Fixed()`; with a sequential rule,
        inputs under test at once, default `lanes // 8`). With `Fixed()` the last batch is
        padded so one compilation serves all, and the progress bar counts batches.
      progress: show a tqdm progress bar (a string labels it).
      check_rows: `rpjax.certify` first checks, once per model and input signature, that
        the model computes each row of a batch on its own (a small probe: a few noisy rows
        evaluated together and each alone; `rpjax.RowDependenceError` if their votes differ;
        `docs/guarantee.md`, section 1a). False skips the check (it never changes a
        certificate, only whether one is refused).
    """

    devices: Sequence[jax.Device] | None = None
    chunk_size: int | None = None
    batch_size: int | None = None
    progress: bool | str = False
    check_rows: bool = True

    def __post_init__(self):
        put = functools.partial(object.__setattr__, self)
        put("devices", None if self.devices is None else validate_devices(self.devices))
        for name in ("chunk_size", "batch_size"):
            if getattr(self, name) is not None:
                put(name, _validate.integer(name, getattr(self, name), minimum=1))
        if not isinstance(self.progress, (bool, str)):
            raise TypeError(f"progress must be a bool or a str label, got {self.progress!r}.")
        if not isinstance(self.check_rows, bool):
            raise TypeError(f"check_rows must be a bool, got {self.check_rows!r}.")


def validate_devices(devices: Sequence[jax.Device] | None) -> tuple[jax.Device, ...]:
    """`devices` as a tuple of distinct `jax.Device`s (default: `jax.local_devices()`)."""
    if devices is None:
        return tuple(jax.local_devices())
    if isinstance(devices, (str, bytes, jax.Device)):
        raise TypeError(f"devices must be a non-empty sequence of jax.Device, got {devices!r}.")
    devices = tuple(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(f"devices must be a non-empty sequence of jax.Device, got {devices!r}.")
    if len(set(devices)) != len(devices):
        raise ValueError(f"devices must be distinct, got {list(devices)!r}: a device listed twice "
                         "would count its samples twice.")
    return devices


class Plan(NamedTuple):
    """A checked plan (internal): plain, hashable values the kernels use as they are."""

    sigma: float
    n0: int
    n: int
    alpha: float
    distribution: _noise.NoiseDistribution
    common_noise: bool
    num_classes: int
    rule: Rule
    devices: tuple[jax.Device, ...]
    chunk_size: int | None
    batch_size: int | None
    progress: bool | str
    check_rows: bool = True

    @property
    def sequential(self) -> bool:
        """Whether the rule stops inputs early (`DecideAt`, `RadiusBudget`)."""
        return not isinstance(self.rule, Fixed)


def resolve(config: Any, *, num_classes: Any, rule: Any = None,
            placement: Any = None) -> Plan:
    """Checks the three values (their types; their contents were checked when built) and
    `num_classes`, and returns the `Plan`."""
    if not isinstance(config, SmoothingConfig):
        raise TypeError(f"config must be a rpjax.SmoothingConfig, got {config!r}.")
    rule = Fixed() if rule is None else rule
    if not isinstance(rule, RULES):
        raise TypeError("rule must be rpjax.Fixed(), rpjax.DecideAt(radius) or "
                        f"rpjax.RadiusBudget(price), got {rule!r}.")
    placement = Placement() if placement is None else placement
    if not isinstance(placement, Placement):
        raise TypeError(f"placement must be a rpjax.Placement, got {placement!r}.")
    num_classes = _validate.integer("num_classes", num_classes, minimum=2)
    if not isinstance(rule, Fixed) and placement.chunk_size is not None \
            and placement.chunk_size > MAX_LANES:
        raise ValueError(f"chunk_size must be <= 2**23 with a sequential rule, got "
                         f"chunk_size={placement.chunk_size}.")
    devices = validate_devices(placement.devices)
    return Plan(sigma=config.sigma, n0=config.n0, n=config.n, alpha=config.alpha,
                distribution=config.distribution, common_noise=config.common_noise,
                num_classes=num_classes, rule=rule, devices=devices,
                chunk_size=placement.chunk_size, batch_size=placement.batch_size,
                progress=placement.progress, check_rows=placement.check_rows)


def with_progress(plan: Plan, label: str) -> Plan:
    """`plan` whose progress bar, if shown and not labelled by the caller, reads `label`."""
    return plan._replace(progress=label) if plan.progress is True else plan


def input_size(shape: Sequence[int]) -> int:
    """Values per input of a batch of shape `[B, *input_shape]`."""
    return math.prod(shape[1:])
