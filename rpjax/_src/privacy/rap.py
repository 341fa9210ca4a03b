"""Robust Attribute Privacy (RAP, v2) / Attribute Privacy Enhancement (APE, v1) intervals.

An adversary knows every feature of a person except one sensitive attribute (BMI, say) and
sees the released label. Sweeping the attribute over a range with the other features fixed,
three compatible sets are computed per person, each reduced to the connected interval that
contains the person's true value:

- `preimage`: values whose release equals the released label y;
- `not_excluded`: values whose release is y or an abstention (what the adversary cannot rule
  out when the mechanism abstains);
- `ape`: the preimage together with the union over it of `[s - R(s), s + R(s)]` (R converted
  to raw attribute units), clipped to the sweep range: the paper's v1 definition.

Boundaries are refined by bisection on the release, so lengths do not depend on the grid
step (up to sets narrower than one grid step, which a grid cannot see). The whole sweep is
evaluated in batched calls of the release, never one grid point at a time.

A labelling function is any `fn(xs, ids) -> (labels, radii)`: `rpjax._src.privacy.rp.base_labels`
(the base model) or `rpjax._src.privacy.rp.certified_labels` (the smoothed classifier's Monte Carlo
labels, an owner's analysis tool, not a release). Passing each person's id for every grid
point gives common random numbers along the sweep, so the labels are a deterministic,
piecewise-constant function of the attribute that bisection can refine. These intervals
describe one answer of g at a time; what repeated or adaptive queries to a deployed release
reveal is measured by `rpjax._src.experiments.attacks` and bounded by `rpjax._src.privacy.leakage`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rpjax._src import validate as _validate

Release = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""`release(xs [M, d], ids [M]) -> (labels [M] int (-1 = abstain), radii [M] input units)`."""

READINGS = ("preimage", "not_excluded", "ape")


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttributeSweep:
    """Where and how finely to sweep one attribute.

    Attributes:
      index: column of the attribute in the model input.
      offset: raw value of input 0 (the standardization mean); raw = offset + scale * input.
      scale: raw units per input unit (the standardization std), > 0.
      low, high: the sweep range in raw units (e.g. BMI 10 to 60).
      num_points: grid points, including both ends.
      refine_steps: bisection steps per boundary; the error is (grid step) / 2**(steps + 1).
    """

    index: int
    offset: float = 0.0
    scale: float = 1.0
    low: float = 10.0
    high: float = 60.0
    num_points: int = 101
    refine_steps: int = 12

    def __post_init__(self):
        _validate.integer("index", self.index, minimum=0)
        _validate.real("offset", self.offset)
        _validate.positive("scale", self.scale)
        if not _validate.real("low", self.low) < _validate.real("high", self.high):
            raise ValueError(f"low must be < high, got low={self.low}, high={self.high}.")
        # stored as floats: integer ends (low=-10) would make the interval arrays integer and
        # truncate every refined boundary
        for name in ("offset", "scale", "low", "high"):
            object.__setattr__(self, name, float(getattr(self, name)))
        _validate.integer("num_points", self.num_points, minimum=2)
        _validate.integer("refine_steps", self.refine_steps, minimum=0)

    @property
    def grid(self) -> np.ndarray:
        """`[num_points]` float64 raw values."""
        return np.linspace(self.low, self.high, self.num_points)

    def to_input(self, raw) -> np.ndarray:
        """Raw attribute values -> model-input units."""
        return (np.asarray(raw, np.float64) - self.offset) / self.scale


class Intervals(NamedTuple):
    """Per-person results of `attribute_intervals`, in raw attribute units.

    Attributes:
      label: `[P]` int released label at the true value (-1 = abstain).
      radius: `[P]` float certified radius at the true value, in input units.
      preimage, not_excluded, ape: `[P, 2]` float (low, high) of the connected interval that
        contains the true value.
      ape_unclipped: `[P, 2]` the APE component before clipping to the sweep range.
      grid: `[G]` raw grid; grid_label `[P, G]` and grid_radius `[P, G]` the release on it.
    """

    label: np.ndarray
    radius: np.ndarray
    preimage: np.ndarray
    not_excluded: np.ndarray
    ape: np.ndarray
    ape_unclipped: np.ndarray
    grid: np.ndarray
    grid_label: np.ndarray
    grid_radius: np.ndarray

    def length(self, reading: str) -> np.ndarray:
        """`[P]` interval lengths (raw units) of one reading."""
        iv = getattr(self, reading)
        return iv[:, 1] - iv[:, 0]


def _evaluate(release: Release, x: np.ndarray, ids: np.ndarray, sweep: AttributeSweep,
              person: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs = np.array(x[person], dtype=np.float32, copy=True)
    xs[:, sweep.index] = sweep.to_input(values)
    labels, radii = release(xs, ids[person])
    labels, radii = np.asarray(labels), np.asarray(radii, np.float64)
    if labels.shape != person.shape or radii.shape != person.shape:
        raise ValueError(f"release must return [M] labels and [M] radii for M={person.size} "
                         f"inputs, got shapes {labels.shape} and {radii.shape}.")
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer) or np.any(
            labels < -1):
        raise ValueError("release must return integer labels >= -1 (-1 = abstain), got "
                         f"dtype {labels.dtype}.")
    if not np.all(radii >= 0):  # NaN fails too
        raise ValueError("release must return radii >= 0 (not NaN), got "
                         f"{radii[~(radii >= 0)][:5].tolist()}.")
    return labels.astype(np.int64), radii


def _member(reading: str, labels: np.ndarray, y: np.ndarray) -> np.ndarray:
    if reading == "preimage":
        return labels == y
    return (labels == y) | (labels == -1)


def _walk(member: np.ndarray, grid: np.ndarray, true: np.ndarray):
    """For each person, the grid pairs (inside, outside) that bracket the interval's ends."""
    num, _ = member.shape
    out = {"left": [], "right": []}
    for p in range(num):
        right = np.nonzero((grid > true[p]) & ~member[p])[0]
        left = np.nonzero((grid < true[p]) & ~member[p])[0]
        if right.size:
            j = right[0]
            inside = grid[j - 1] if j > 0 and grid[j - 1] > true[p] else true[p]
            out["right"].append((p, inside, grid[j]))
        if left.size:
            j = left[-1]
            inside = grid[j + 1] if j + 1 < grid.size and grid[j + 1] < true[p] else true[p]
            out["left"].append((p, inside, grid[j]))
    return out


def _merge_component(segments: np.ndarray, point: float) -> tuple[float, float]:
    """Merge closed segments `[K, 2]` and return the merged one containing `point`."""
    order = np.argsort(segments[:, 0], kind="stable")
    lo, hi = None, None
    for a, b in segments[order]:
        if hi is None or a > hi:
            if lo is not None and lo <= point <= hi:
                return lo, hi
            lo, hi = a, b
        else:
            hi = max(hi, b)
    if lo is not None and lo <= point <= hi:
        return lo, hi
    return None, None


def attribute_intervals(
    release: Release,
    x: np.ndarray,
    ids: np.ndarray,
    true_values: np.ndarray,
    sweep: AttributeSweep,
) -> Intervals:
    """Compatible intervals of one attribute for each person, under one release.

    Args:
      release: `release(xs, ids) -> (labels, radii)`; radii in input units.
      x: `[P, d]` the people's inputs (model units); the attribute column is overwritten.
      ids: `[P]` person ids passed to the release (common random numbers along the sweep).
      true_values: `[P]` true raw attribute values (must lie in [low, high]).
      sweep: the attribute, its units and the grid.

    Returns:
      `Intervals` in raw units.

    Raises:
      TypeError, ValueError: naming the argument: `release` not callable (or returning
        labels / radii of the wrong shape, labels below -1, NaN or negative radii), `x` not a
        non-empty finite `[P, d]` array with the attribute's column, `ids` not `[P]`
        non-negative integers, `true_values` not `[P]` finite values in `[low, high]`,
        `sweep` not an `AttributeSweep`.
    """
    if not callable(release):
        raise TypeError(f"release must be callable as release(xs, ids), got {release!r}.")
    if not isinstance(sweep, AttributeSweep):
        raise TypeError(f"sweep must be a rpjax.privacy.AttributeSweep, got {sweep!r}.")
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty [P, d] array, got shape {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite (no NaN or inf).")
    if sweep.index >= x.shape[1]:
        raise ValueError(f"sweep.index={sweep.index} is not a column of x ({x.shape[1]} "
                         "columns).")
    ids = np.asarray(ids)
    true = np.asarray(true_values, np.float64)
    num = x.shape[0]
    if true.shape != (num,) or ids.shape != (num,):
        raise ValueError(f"true_values and ids must have shape [P]=({num},), got "
                         f"{true.shape} and {ids.shape}.")
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer) or np.any(ids < 0):
        raise ValueError(f"ids must be non-negative integers, got dtype {ids.dtype}.")
    if not np.all(np.isfinite(true)):
        raise ValueError("true_values must be finite, got NaN or inf at people "
                         f"{np.flatnonzero(~np.isfinite(true))[:10].tolist()}.")
    if np.any(true < sweep.low) or np.any(true > sweep.high):
        raise ValueError(f"true_values must lie in the sweep range [{sweep.low}, "
                         f"{sweep.high}], got min {true.min()} and max {true.max()}.")
    grid = sweep.grid
    people = np.arange(num)
    # one batched call: every grid point of every person, plus each true value
    person = np.concatenate([np.repeat(people, grid.size), people])
    values = np.concatenate([np.tile(grid, num), true])
    labels, radii = _evaluate(release, x, ids, sweep, person, values)
    grid_label = labels[: num * grid.size].reshape(num, grid.size)
    grid_radius = radii[: num * grid.size].reshape(num, grid.size)
    y, r_true = labels[num * grid.size :], radii[num * grid.size :]

    ends = {r: np.stack([np.full(num, sweep.low, np.float64),
                         np.full(num, sweep.high, np.float64)], 1) for r in READINGS}
    jobs = []  # (reading, side, person, inside, outside)
    for reading in ("preimage", "not_excluded"):
        walks = _walk(_member(reading, grid_label, y[:, None]), grid, true)
        for side in ("left", "right"):
            jobs += [(reading, side, p, a, b) for p, a, b in walks[side]]
    samples = [(people, true, r_true)]  # (person, value, radius) inside the preimage
    if jobs:
        reading_of = np.array([j[0] for j in jobs])
        person_of = np.array([j[2] for j in jobs])
        inside = np.array([j[3] for j in jobs], np.float64)
        outside = np.array([j[4] for j in jobs], np.float64)
        for _ in range(sweep.refine_steps):
            mid = 0.5 * (inside + outside)
            lab, rad = _evaluate(release, x, ids, sweep, person_of, mid)
            same = lab == y[person_of]
            hit = np.where(reading_of == "preimage", same, same | (lab == -1))
            inside = np.where(hit, mid, inside)
            outside = np.where(hit, outside, mid)
            pre = hit & (reading_of == "preimage")
            samples.append((person_of[pre], mid[pre], rad[pre]))
        boundary = 0.5 * (inside + outside)
        for k, (reading, side, p, _, _) in enumerate(jobs):
            ends[reading][p, 0 if side == "left" else 1] = boundary[k]

    unclipped = _ape(ends["preimage"], grid, grid_label, grid_radius, y, true, samples, sweep)
    clipped = np.stack([np.maximum(unclipped[:, 0], sweep.low),
                        np.minimum(unclipped[:, 1], sweep.high)], axis=1)
    return Intervals(label=y, radius=r_true, preimage=ends["preimage"],
                     not_excluded=ends["not_excluded"], ape=clipped, ape_unclipped=unclipped,
                     grid=grid,
                     grid_label=grid_label, grid_radius=grid_radius)


def _ape(preimage, grid, grid_label, grid_radius, y, true, samples, sweep):
    person = np.concatenate([s[0] for s in samples])
    value = np.concatenate([s[1] for s in samples])
    radius = np.concatenate([s[2] for s in samples])
    out = np.empty_like(preimage)
    for p in range(preimage.shape[0]):
        inside = grid_label[p] == y[p]
        g_val, g_rad = grid[inside], grid_radius[p][inside]
        s_val, s_rad = value[person == p], radius[person == p]
        centers = np.concatenate([g_val, s_val])
        half = np.concatenate([g_rad, s_rad]) * sweep.scale
        segments = np.concatenate([
            preimage[p : p + 1],
            np.stack([centers - half, centers + half], axis=1),
        ])
        out[p] = _merge_component(segments, true[p])
    return out


def ape_union(values: np.ndarray, radii: np.ndarray, point: float, *, low: float = -np.inf,
              high: float = np.inf) -> tuple[float, float]:
    """The connected component containing `point` of the union of `[v - r, v + r]`.

    Args:
      values: `[K]` centers (raw units), e.g. the preimage's grid points.
      radii: `[K]` half-widths in the same units (>= 0).
      point: a value the component must contain (it must lie in some segment).
      low, high: clip the result to this range.

    Returns:
      `(lo, hi)` of the component.

    Raises:
      ValueError: naming the argument: `values` / `radii` not non-empty `[K]` arrays of one
        shape, a value not finite, a radius negative or NaN, `point` not finite, `low` or
        `high` NaN or `low > high`, or `point` in no segment.
    """
    values, radii = np.asarray(values, np.float64), np.asarray(radii, np.float64)
    if values.ndim != 1 or values.size == 0 or radii.shape != values.shape:
        raise ValueError(f"values and radii must be non-empty [K] arrays of one shape, got "
                         f"shapes {values.shape} and {radii.shape}.")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must be finite (no NaN or inf).")
    if not np.all(radii >= 0):  # NaN fails too
        raise ValueError(f"radii must be >= 0 (not NaN), got {radii[~(radii >= 0)][:5].tolist()}.")
    point = _validate.real("point", point)
    if np.isnan(low) or np.isnan(high) or not low <= high:
        raise ValueError(f"low and high must satisfy low <= high (not NaN), got low={low}, "
                         f"high={high}.")
    lo, hi = _merge_component(np.stack([values - radii, values + radii], 1), point)
    if lo is None:
        raise ValueError(f"point={point} lies in none of the segments.")
    return max(lo, low), min(hi, high)
