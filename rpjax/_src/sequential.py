"""The on-device scheduler of sequential certification: each input stops as soon as it is decided.

`sequential_counts` counts, like `rpjax.sample_counts`, the base classifier's votes on noisy
copies of each input, but each input stops at its own sample count, the first at which a
`StopRule` says its count of a watched class is decided. Everything runs in one compiled
`lax.while_loop` over a fixed pool of **slots** and **lanes**:

- a slot holds one input under test (its sample count, its votes); the inputs wait in a queue
  (their order in `xs`) and take the first free slot;
- each step evaluates the model on `lanes` noisy samples, in groups of `g` (16, or the largest
  power of two below it that divides each device's lanes) consecutive samples of one input:
  the A occupied slots, in rank order, share the G = lanes / g groups as contiguous runs of
  floor(G / A) or floor(G / A) + 1 groups each (so every lane serves a slot, a slot left
  alone at the end gets all of them, and the pool stays busy; at most G slots). The
  per-input work (gathers, noise counters, the slot's totals) is done once per group;
- the stopping rule is checked after **every** sample of the step (a cumulative sum over each
  slot's lanes, compared with the rule's tables), so an input stops at the first sample count
  its rule names, whatever the lanes, slots or devices; the samples it was given past that
  point in its last step are evaluated but not counted (they are reported in
  `forward_passes`);
- a stopped input leaves its slot, its counts are written out, and the next input of the queue
  takes the slot in the same step: no recompilation, no host round trip. A slot's totals are
  an int32 segment sum over its block of groups (sorted segment ids); a slot's votes before
  each of its lanes are cumulative sums (float32 triangular matmuls, exact below 2^24). On a
  16-feature linear model at 65536 lanes (2 CPU cores) the prefix sums took about 5% of a
  step; the segment sum in place of the matmul prefix sum of the totals made a step about 6%
  faster (2.97-3.08 against 3.16-3.29 ms, three interleaved runs).

The noise of sample `s` of the input with id `i` is the counter-mode noise of
`rpjax._src.noise` (a pure function of `(key, i, s)`), so the votes an input has after `m`
samples are those `rpjax.sample_counts(..., n=m)` gives it for the same key and id: a
sequential run can be audited against the fixed-n kernel. The lanes are split over a 1-D mesh
of devices (`jax.shard_map`): each device evaluates its share of the lanes and the predicted
classes are gathered (an int32 per lane); the bookkeeping, replicated, is identical on every
device. With `progress`, the loop returns to the host every few hundred steps to move a
progress bar (one small transfer per call).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from rpjax._src import noise as _noise
from rpjax._src import plan as _plan
from rpjax._src import smoothing as _smoothing

PyTree = Any
_AXIS = _smoothing._AXIS
_TARGET_ELEMENTS_PER_STEP = 2**18  # as sample_counts
_MAX_AUTO_LANES = 65536
_TINY_INPUT_SIZE = 64  # inputs this small get about 1M input values per step
_TINY_TARGET_ELEMENTS = 2**20
_SMALL_BATCH_LANES = 8192
_GROUP = 16
_MAX_LANES = _plan.MAX_LANES
_STEPS_PER_CALL_WITH_PROGRESS = 256
_NEVER = np.iinfo(np.int32).max


class StopRule(NamedTuple):
    """When a sequential count stops: four int32 tables indexed by the sample count m.

    After m samples, S of which voted for the watched class, the input stops iff
    `S <= lo[m]` or `S >= hi[m]` or `band_lo[m] <= S <= band_hi[m]`, or m = n_max (the tables
    have length n_max + 1). A table entry that can never hold (`lo = -1`, `hi = m + 1`,
    `band_lo > band_hi`) means "continue". The tables may have a leading axis of R rows,
    `[R, n_max + 1]`: each input then follows its own row (`run(..., rows=)`; the
    selection-informed test of `rpjax.DecideAt` has one row per selection count).

    Attributes:
      lo, hi, band_lo, band_hi: `[n_max + 1]` or `[R, n_max + 1]` int32 arrays (NumPy or JAX).
    """

    lo: Any
    hi: Any
    band_lo: Any
    band_hi: Any

    @property
    def n_max(self) -> int:
        """The largest sample count the rule covers."""
        return int(np.shape(self.lo)[-1]) - 1

    @classmethod
    def thresholds(cls, lo, hi) -> StopRule:
        """A rule that stops when `S <= lo[m]` or `S >= hi[m]` (no band)."""
        lo = np.asarray(lo, np.int32)
        return cls(lo=lo, hi=np.asarray(hi, np.int32), band_lo=np.full_like(lo, _NEVER),
                   band_hi=np.full_like(lo, -1))

    @classmethod
    def fixed(cls, n: int) -> StopRule:
        """A rule that never stops before n: `sequential_counts` then equals `sample_counts`."""
        m = np.arange(n + 1, dtype=np.int32)
        return cls.thresholds(np.full(n + 1, -1, np.int32), m + 1)


class SequentialCounts(NamedTuple):
    """Result of `sequential_counts` (NumPy arrays with leading axis B, and two ints).

    Attributes:
      counts: `[B, num_classes]` int32 votes among the samples each input used.
      invalid: `[B]` int32 samples whose logits were invalid (NaN / +inf, or all -inf:
        `rpjax._src.smoothing.invalid_logits`; they vote for no class), and all the samples
        of an input whose every sample was a tie of every class (`fold_ties`).
      n: `[B]` int64 samples each input used (its stopping sample count); `counts` and
        `invalid` of a row sum to it.
      forward_passes: total noisy samples the model was evaluated on (steps x lanes), those
        a slot was given past its input's stopping point (or past n_max) included.
      steps: compiled loop steps run.
    """

    counts: np.ndarray
    invalid: np.ndarray
    n: np.ndarray
    forward_passes: int
    steps: int


class _State(NamedTuple):
    slot_input: jax.Array  # [S] int32, B = empty
    slot_m: jax.Array  # [S] int32 samples so far
    slot_hits: jax.Array  # [S] int32 votes for the watched class
    slot_counts: jax.Array  # [S, C + 2] int32 (last columns: invalid logits, full ties)
    next_input: jax.Array  # () int32, the head of the queue
    out_n: jax.Array  # [B] int32
    out_counts: jax.Array  # [B, C + 1] int32
    steps: jax.Array  # () int32
    finished: jax.Array  # () int32 inputs written out


def _initial_state(batch: int, slots: int, columns: int) -> _State:
    slot_input = jnp.arange(slots, dtype=jnp.int32)
    slot_input = jnp.where(slot_input < batch, slot_input, batch)
    return _State(
        slot_input=slot_input,
        slot_m=jnp.zeros(slots, jnp.int32),
        slot_hits=jnp.zeros(slots, jnp.int32),
        slot_counts=jnp.zeros((slots, columns), jnp.int32),
        next_input=jnp.int32(min(slots, batch)),
        out_n=jnp.zeros(batch, jnp.int32),
        out_counts=jnp.zeros((batch, columns), jnp.int32),
        steps=jnp.int32(0),
        finished=jnp.int32(0),
    )


_DENSE_PREFIX_MAX = 512


def _cumsum(x: jax.Array, *, exclusive: bool = False) -> jax.Array:
    """Cumulative sum along axis 0 of small non-negative int32 values `[N, ...]`: inclusive
    (`[N, ...]`) or exclusive with the total last (`[N + 1, ...]`).

    As float32 triangular matmuls (exact below 2^24): one `[N, N]` constant matrix up to
    N = 512, else two levels of 32-row blocks. XLA's CPU cumsum is a chain of small windowed
    reductions, several kernels each and about 10x slower at N = 2048.
    """
    length = x.shape[0]
    flat = x.reshape(length, -1).astype(jnp.float32)
    if length <= _DENSE_PREFIX_MAX:
        rows = length + 1 if exclusive else length
        upto = jnp.tril(jnp.ones((rows, length), jnp.float32), -1 if exclusive else 0)
        out = upto @ flat
    else:
        block = 32
        rows = -(-length // block)
        padded = jnp.pad(flat, ((0, rows * block - length), (0, 0))).reshape(rows, block, -1)
        tri = jnp.triu(jnp.ones((block, block), jnp.float32))  # [j, i]: j <= i
        within = jnp.einsum("rjk,ji->rik", padded, tri)
        before = jnp.einsum("rk,rq->qk", within[:, -1], jnp.triu(jnp.ones((rows, rows)), 1))
        out = (within + before[:, None]).reshape(rows * block, -1)[:length]
        if exclusive:
            out = jnp.concatenate([jnp.zeros_like(out[:1]), out])
    return out.astype(jnp.int32).reshape(out.shape[0], *x.shape[1:])


def group_size(lanes: int, num_devices: int) -> int:
    """Lanes per group: the largest of 16, 8, 4, 2, 1 that divides each device's lanes.

    The scheduler hands out lanes in groups of consecutive samples of one input; the per-input
    work (gathers, noise counters, the slot's totals) is done once per group."""
    per_device = lanes // num_devices
    return next(g for g in (_GROUP, 8, 4, 2, 1) if per_device % g == 0)


def max_slots(lanes: int, num_devices: int) -> int:
    """The most slots a pool of `lanes` can serve: one group each (and `groups * slots` fits
    in int32, for the group-to-slot arithmetic)."""
    groups = lanes // group_size(lanes, num_devices)
    return max(1, min(groups, (2**31 - 1) // groups))


def _advance_traced(apply_fn, params, xs, key_pairs, watched, sigma, rule, state, max_steps, *,
                    lanes, num_classes, n_max, num_devices, distribution):
    """Runs the scheduler for at most `max_steps` steps (on one device of the mesh).

    The lanes are `groups` groups of `g` consecutive samples of one input; the A occupied
    slots, in rank order, get contiguous runs of floor(groups / A) or that plus one groups
    (slot of rank r: groups floor(r G / A) .. floor((r + 1) G / A) - 1, so all are used)."""
    batch, input_shape = xs.shape[0], xs.shape[1:]
    size = math.prod(input_shape)
    columns = num_classes + 2  # the votes, invalid samples, ties of every class
    g = group_size(lanes, num_devices)
    groups = lanes // g
    groups_per_device = groups // num_devices
    device = jax.lax.axis_index(_AXIS)
    sigma = jnp.asarray(sigma, xs.dtype)
    # the rule's tables, padded by g so a group's slice [m + 1, m + 1 + g) never clips
    table = jnp.stack([jnp.asarray(t, jnp.int32) for t in rule], axis=2)  # [R, n_max + 1, 4]
    table = jnp.concatenate([table, jnp.broadcast_to(table[:, -1:], (table.shape[0], g, 4))],
                            axis=1)
    draw = jax.vmap(functools.partial(_noise.sample_noise_flat, count=g, size=size,
                                      dtype=xs.dtype, distribution=distribution))
    materialize = jax.default_backend() == "cpu"
    lane_in_group = jnp.arange(g, dtype=jnp.int32)
    group = jnp.arange(groups, dtype=jnp.int32)
    classes = jnp.arange(columns, dtype=jnp.int32)
    upto_lane = jnp.triu(jnp.ones((g, g), jnp.float32))  # [j, i]: j <= i

    def predict(inputs, first):  # every lane's class, gathered from all devices: [groups, g]
        mine = device * groups_per_device + jnp.arange(groups_per_device, dtype=jnp.int32)
        inputs, first = inputs[mine], first[mine]
        pairs = key_pairs[inputs]
        if materialize:  # keep XLA CPU from fusing the generator into the reshape (smoothing)
            eps = jax.lax.cond(first[0] >= 0, lambda: draw(pairs, first),
                               lambda: jnp.zeros((groups_per_device, g * size), xs.dtype))
        else:
            eps = draw(pairs, first)
        noisy = xs[inputs][:, None] + sigma * eps.reshape(groups_per_device, g, *input_shape)
        logits = apply_fn(params, noisy.reshape(groups_per_device * g, *input_shape))
        pred = _smoothing.votes_of(logits, num_classes)
        return jax.lax.all_gather(pred, _AXIS, tiled=True).reshape(groups, g)

    def block_sum(per_group, start):  # [groups] -> sum over each group's block before it
        excl = _cumsum(per_group, exclusive=True)
        return excl[:-1] - excl[start]

    def step(state):
        slots = state.slot_input.shape[0]
        active = state.slot_input < batch
        count = jnp.maximum(jnp.sum(active, dtype=jnp.int32), 1)  # A <= groups
        rank = _cumsum(active) - 1
        slot_of_rank = jnp.zeros(slots, jnp.int32).at[jnp.where(active, rank, slots)].set(
            jnp.arange(slots, dtype=jnp.int32), mode="drop")
        group_rank = ((group + 1) * count - 1) // groups
        start = group_rank * groups // count  # first group of the block of the group's slot
        group_slot = slot_of_rank[group_rank]
        watched_of_slot, row_of_slot = watched[jnp.minimum(state.slot_input, batch - 1)].T
        slot_info = jnp.stack([state.slot_m, state.slot_hits, watched_of_slot,
                               jnp.minimum(state.slot_input, batch - 1), row_of_slot], axis=1)
        info = slot_info[group_slot]  # one gather: [groups, 5]
        first = info[:, 0] + (group - start) * g  # the group's first sample
        pred = predict(info[:, 3], first)
        sample = first[:, None] + lane_in_group  # [groups, g]
        valid = sample < n_max
        # a tie of every class counts for class 0, as argmax and the host's counts have it
        hit = valid & ((pred == info[:, 2:3]) | ((pred == num_classes + 1)
                                                 & (info[:, 2:3] == 0)))
        # votes of the slot after each of its lanes: its votes before the step plus the hits
        # of its lanes up to this one (its lanes are contiguous)
        hit_within = (hit.astype(jnp.float32) @ upto_lane).astype(jnp.int32)
        s_after = (info[:, 1] + block_sum(hit_within[:, -1], start))[:, None] + hit_within
        m_after = sample + 1
        rows = jax.vmap(lambda r, m0: jax.lax.dynamic_slice(table, (r, m0, 0), (1, g, 4))[0])(
            info[:, 4], jnp.minimum(first + 1, n_max + 1))  # [groups, g, 4]
        stop = (s_after <= rows[..., 0]) | (s_after >= rows[..., 1]) | (
            (s_after >= rows[..., 2]) & (s_after <= rows[..., 3])) | (m_after >= n_max)
        stop = valid & stop
        first_stop = jnp.min(jnp.where(stop, lane_in_group, g), axis=1)  # [groups]
        stops_before = block_sum((first_stop < g).astype(jnp.int32), start)
        used = valid & (lane_in_group <= first_stop[:, None]) & (stops_before == 0)[:, None]
        votes = jnp.sum((pred[..., None] == classes) & used[..., None], axis=1,
                        dtype=jnp.int32)  # [groups, C + 1]
        # each slot's totals: a sum over its block of groups (sorted segment ids)
        per_group = jnp.concatenate([votes, (first_stop < g).astype(jnp.int32)[:, None]],
                                    axis=1)  # [groups, C + 2]
        add = jax.ops.segment_sum(per_group, group_slot, num_segments=slots,
                                  indices_are_sorted=True)
        add = jnp.where(active[:, None], add, 0)  # [slots, C + 2]
        slot_counts = state.slot_counts + add[:, :columns]
        slot_hits = state.slot_hits + jnp.take_along_axis(add, watched_of_slot[:, None],
                                                          axis=1)[:, 0]
        slot_m = state.slot_m + jnp.sum(add[:, :columns], axis=1)
        occupied = active
        done = occupied & (add[:, columns] > 0)
        target = jnp.where(done, state.slot_input, batch)  # out of range: dropped
        out_n = state.out_n.at[target].set(slot_m, mode="drop")
        out_counts = state.out_counts.at[target].set(slot_counts, mode="drop")
        free = done | ~occupied
        new_input = state.next_input + _cumsum(free) - 1
        new_input = jnp.where(new_input < batch, new_input, batch)
        slot_input = jnp.where(free, new_input, state.slot_input)
        refill = free[:, None]
        return _State(
            slot_input=slot_input,
            slot_m=jnp.where(free, 0, slot_m),
            slot_hits=jnp.where(free, 0, slot_hits),
            slot_counts=jnp.where(refill, 0, slot_counts),
            next_input=jnp.minimum(state.next_input + jnp.sum(free, dtype=jnp.int32), batch),
            out_n=out_n,
            out_counts=out_counts,
            steps=state.steps + 1,
            finished=state.finished + jnp.sum(done, dtype=jnp.int32),
        )

    start = state.steps

    def cond(state):
        return jnp.any(state.slot_input < batch) & (state.steps - start < max_steps)

    return jax.lax.while_loop(cond, step, state)


@functools.partial(jax.jit, static_argnames=(
    "apply_fn", "lanes", "num_classes", "n_max", "mesh", "distribution"))
def _advance(apply_fn, params, xs, key_pairs, watched, sigma, rule, state, max_steps, *, lanes,
             num_classes, n_max, mesh, distribution):
    num_devices = mesh.devices.size
    run = functools.partial(_advance_traced, apply_fn, lanes=lanes, num_classes=num_classes,
                            n_max=n_max, num_devices=num_devices, distribution=distribution)
    return jax.shard_map(
        run, mesh=mesh, in_specs=(P(),) * 8, out_specs=P(), check_vma=False,
    )(params, xs, key_pairs, watched, sigma, rule, state, max_steps)


def resolve_lanes(chunk_size: int | None, input_size: int, num_devices: int,
                  batch: int | None = None) -> int:
    """Lanes (noisy samples per compiled step, over all slots and devices): `chunk_size`, or
    the largest power of two with at most about 256k input values per step (1M for inputs of
    at most 64 values; at most 65536 lanes, at least 1), rounded up to a multiple of the number
    of devices. A power of two keeps the lanes in groups of 16 (`group_size`). On a linear
    model with 16 features (B = 2048, idle 2-core CPU, `benchmarks/RESULTS.md`) the scheduler
    ran at 15.9 / 16.3 / 18.6 / 18.5 million samples per second (decision) at 16384 / 32768 /
    65536 / 131072 lanes, against 23.9 million for fixed-n `certify`. With `batch` inputs,
    at most the power of two at or above 32 per input (and at least 8192): an input's last
    step evaluates up to its share of the lanes past its stop, and the last inputs of a
    batch share all the lanes, so a small batch keeps the smaller pool (268 inputs of the
    insurance MLP, `DecideAt` at n_max = 10^5: 1.9% / 3.5% / 8.1% / 14.3% of the forward
    passes past the stops at 8192 / 16384 / 32768 / 65536 lanes)."""
    if chunk_size is None:
        target = (_TINY_TARGET_ELEMENTS if input_size <= _TINY_INPUT_SIZE
                  else _TARGET_ELEMENTS_PER_STEP)
        lanes = min(_MAX_AUTO_LANES, max(1, target // input_size))
        if batch is not None:
            lanes = min(lanes, max(_SMALL_BATCH_LANES, 1 << (32 * batch - 1).bit_length()))
        chunk_size = 1 << (lanes.bit_length() - 1)
    return -(-chunk_size // num_devices) * num_devices


def check_rule(rule: Any, n_max: int | None = None) -> StopRule:
    """`rule` as a `StopRule` of four int32 NumPy tables of equal length n_max + 1 >= 2."""
    if not isinstance(rule, StopRule):
        raise TypeError(f"rule must be a StopRule (rpjax._src.sequential), got "
                        f"{type(rule).__name__}.")
    tables = []
    for name, table in zip(StopRule._fields, rule, strict=True):
        arr = np.asarray(table)
        if arr.ndim not in (1, 2) or arr.dtype == bool or not np.issubdtype(arr.dtype,
                                                                            np.integer):
            raise ValueError(f"rule.{name} must be a 1-D (or [rows, n_max + 1]) integer table "
                             f"indexed by the sample count, got shape {arr.shape} and dtype "
                             f"{arr.dtype}.")
        tables.append(np.atleast_2d(arr).astype(np.int32))
    if len({t.shape for t in tables}) != 1 or tables[0].shape[1] < 2:
        raise ValueError("rule's four tables must have the same length n_max + 1 >= 2 (and "
                         f"rows), got shapes {[t.shape for t in tables]}.")
    if tables[0].shape[1] - 1 > _smoothing.MAX_N:
        raise ValueError(f"rule covers n_max={tables[0].shape[1] - 1} samples; at most 2**30.")
    if n_max is not None and tables[0].shape[1] != n_max + 1:
        raise ValueError(f"rule has tables of length {tables[0].shape[1]}, expected n_max + 1 = "
                         f"{n_max + 1}.")
    return StopRule(*tables)


def sequential_counts(
    apply_fn: _smoothing.ApplyFn,
    params: PyTree,
    xs: jax.typing.ArrayLike,
    key: jax.Array | int,
    watched: jax.typing.ArrayLike,
    rule: StopRule,
    *,
    num_classes: int,
    config: _plan.SmoothingConfig,
    placement: _plan.Placement | None = None,
    ids: jax.typing.ArrayLike | None = None,
) -> SequentialCounts:
    """Counts votes on noisy copies of each input until its `rule` stops it (see module doc).

    The scheduler with a hand-made `StopRule` (tests, benchmarks); `rpjax.certify` with a
    sequential rule builds its own and calls `run`.

    Args:
      apply_fn, params, xs, key, num_classes, ids: as in `rpjax.sample_counts` (the noise of
        sample `s` of input `i` is the same).
      watched: `[B]` int, the class whose votes `S` the rule looks at, per input.
      rule: a `StopRule` with tables of length n_max + 1; no input uses more than n_max
        samples (`config.n` is not used).
      config: `sigma`, `distribution` and `common_noise` are used.
      placement: `chunk_size` = lanes, noisy samples per compiled step over all slots and
        devices (rounded up to a multiple of the number of devices; default about 256k input
        values per step, 1M for inputs of at most 64 values, a power of two, at most 65536;
        at most 2^23); `batch_size` = slots,
        inputs under test at once (default `min(B, max(1, lanes // 8))`, at most the number
        of lane groups); `progress`: a tqdm bar over finished inputs (the loop then returns
        to the host every 256 steps). Speed only: results never depend on it.

    Returns:
      `SequentialCounts(counts, invalid, n, forward_passes, steps)`. The counts of input `i`
      are bit-identical to `rpjax.sample_counts(..., ids=[id_i], n=n[i])` for its key and id
      (given the same base predictions: XLA evaluates the model on batches of another
      composition).
    """
    plan = _plan.resolve(config, num_classes=num_classes, placement=placement)
    check_lanes(plan)
    rule = check_rule(rule)
    prepared = _smoothing.prepare(apply_fn, params, xs, key, ids, plan)
    watched = check_watched(watched, prepared.xs.shape[0], plan.num_classes)
    return run(apply_fn, params, prepared.xs, prepared.key_pairs(), watched, rule, plan)


def check_lanes(plan: _plan.Plan) -> None:
    """Refuses a `chunk_size` above 2**23 lanes."""
    if plan.chunk_size is not None and plan.chunk_size > _MAX_LANES:
        # the step's sums are float32 matmuls, exact below 2^24
        raise ValueError(f"chunk_size must be <= 2**23, got chunk_size={plan.chunk_size}.")


def check_watched(watched: Any, batch: int, num_classes: int) -> np.ndarray:
    """`watched` as a `[B]` integer array of classes in [0, num_classes)."""
    watched = np.asarray(watched)
    if watched.shape != (batch,) or watched.dtype == bool or not np.issubdtype(watched.dtype,
                                                                                np.integer):
        raise ValueError(f"watched must be [B] = [{batch}] integer classes, got shape "
                         f"{watched.shape} and dtype {watched.dtype}.")
    if (watched < 0).any() or (watched >= num_classes).any():
        raise ValueError(f"watched classes must lie in [0, num_classes={num_classes}).")
    return watched


def run(apply_fn: _smoothing.ApplyFn, params: PyTree, xs: jax.Array, key_pairs: jax.Array,
        watched: np.ndarray, rule: StopRule, plan: _plan.Plan,
        rows: np.ndarray | None = None) -> SequentialCounts:
    """The scheduler on checked inputs (`rpjax._src.smoothing.prepare`), with each input's
    threefry key pair given directly; `plan.chunk_size` is the lanes, `plan.batch_size` the
    slots; `rows` `[B]`: the row of the rule's tables each input follows (default 0)."""
    batch = xs.shape[0]
    num_classes, devices = plan.num_classes, plan.devices
    if not (isinstance(rule, StopRule) and all(
            isinstance(t, jax.Array) and t.dtype == jnp.int32 and t.ndim == 2
            and t.shape == rule.lo.shape for t in rule)):  # device tables are used as they are
        rule = check_rule(rule)
    n_max = rule.n_max
    rows = np.zeros(batch, np.int32) if rows is None else np.asarray(rows, np.int32)
    if rows.shape != (batch,) or (rows < 0).any() or (rows >= rule.lo.shape[0]).any():
        raise ValueError(f"rows must be [B] = [{batch}] indices into the rule's "
                         f"{rule.lo.shape[0]} rows.")
    lanes = resolve_lanes(plan.chunk_size, math.prod(xs.shape[1:]), len(devices), batch)
    slots = plan.batch_size
    slots = min(batch, max(1, lanes // 8)) if slots is None else min(slots, batch)
    slots = min(slots, max_slots(lanes, len(devices)))
    columns = num_classes + 2
    advance = functools.partial(
        _advance, apply_fn, params, xs, key_pairs,
        jnp.stack([jnp.asarray(watched, jnp.int32), jnp.asarray(rows)], axis=1),
        jnp.float32(plan.sigma), StopRule(*(jnp.asarray(t) for t in rule)), lanes=lanes,
        num_classes=num_classes, n_max=n_max, mesh=_smoothing._mesh(tuple(devices)),
        distribution=plan.distribution)
    state = _initial_state(batch, slots, columns)
    progress = plan.progress
    if not progress:
        state = advance(state, jnp.int32(np.iinfo(np.int32).max))
    else:
        from tqdm.auto import tqdm

        desc = progress if isinstance(progress, str) else "sequential"
        with tqdm(total=batch, desc=desc, unit="input") as bar:
            while True:
                state = advance(state, jnp.int32(_STEPS_PER_CALL_WITH_PROGRESS))
                finished = int(state.finished)
                bar.update(finished - bar.n)
                if finished >= batch:
                    break
    used = np.asarray(state.out_n).astype(np.int64)
    full = np.asarray(state.out_counts).astype(np.int64)
    tied = full[:, -1]  # as `rpjax._src.smoothing.fold_ties`, on the host
    undecided = tied == used
    counts = full[:, :num_classes].copy()
    counts[:, 0] += np.where(undecided, 0, tied)
    invalid = full[:, num_classes] + np.where(undecided, tied, 0)
    steps = int(state.steps)
    return SequentialCounts(counts=counts.astype(np.int32), invalid=invalid.astype(np.int32),
                            n=used, forward_passes=steps * lanes, steps=steps)
