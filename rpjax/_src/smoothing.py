"""The Monte Carlo counting kernel of randomized smoothing.

`sample_counts` counts the base classifier's votes on `n` noisy copies of each input. It is one
compiled program per configuration: noise is generated chunk by chunk inside a `lax.fori_loop`
(never an `[n, *input_shape]` array), the chunk of every input is pushed through the model as
one batch, and the sample axis is split over a 1-D device mesh with `jax.shard_map`, the
per-device counts reduced with `psum`. The noise of each sample is a pure function of
`(key, example id, sample index)` (see `rpjax._src.noise`), so counts are identical for any chunk
size, any batch of inputs certified together and any number of devices.

With `common_noise=True` every input of a call is perturbed by the same noise draws (common
random numbers: the noise of sample `s` depends on `(key, s)` only). Each input's samples are
still i.i.d. Gaussian, so each input's counts have exactly the distribution they have without
it and every per-input guarantee holds; only the inputs' counts become dependent on one
another. It pays when the model is an `AffineFirst`: the first (affine) layer of `x + noise`
is `first(x) + (first(noise) - first(0))`, and `first(noise)` is computed once per sample for
the whole batch instead of once per input.

Samples whose logits are invalid vote for no class (`invalid_logits`): logits that contain
NaN or +inf (a broken or overflowing model; -inf is an ordered value, e.g. a log-probability
of 0), and logits that are all -inf (no class possible). A sample whose logits tie every
class (all equal) decides nothing either, but such exact ties happen now and then in low
precision (a bfloat16 linear score of exactly 0), so it counts as the vote `argmax` gives it
(class 0) unless every sample of its input is one (a model that outputs a constant there):
then the input's samples are all invalid (`fold_ties`). The compiled loop counts both in two
extra columns (a few compares per logit, reduced across devices with the votes), and the
public entry points refuse (`sample_counts`) or warn and abstain (`rpjax.certify`,
`predict`, `always_label`) on the inputs with any invalid sample. A tie of some classes but
not all is a vote for the lowest tied index, as `argmax` gives.

`check_rows` (run by `rpjax.certify`) tests the assumption behind "counts never depend on the
batch": that the model computes each row on its own. It runs the selection pass's compiled
program at sigma 0 on slots it fills with a few noisy rows (together, then each alone) and
raises `RowDependenceError` if a row's votes differ (dropout from a closed-over key, batch
statistics, normalising by the batch); `Placement(check_rows=False)` skips it.

Caches: the model checks (`check_model`, `check_affine`, `check_rows`) remember at most 64
model/input signatures each (least recently used first out); the compiled counting programs
live in JAX's jit cache of `_sharded_counts` (the probe's for one input in `_probe_batch`),
keyed by `apply_fn` (static), which holds the function (and whatever its closure holds) until JAX
evicts it; `clear_caches()` here, or
`jax.clear_caches()`, releases all of them.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from rpjax._src import noise as _noise
from rpjax._src import plan as _plan
from rpjax._src import validate as _validate

PyTree = Any
MAX_N = _plan.MAX_N
_AXIS = "samples"
_TARGET_ELEMENTS_PER_STEP = 2**18  # noise values per compiled step when chunk_size is None
# with common noise the first layer's batch work is shared and what stays per row is the rest
# of the model: half the rows per step kept the MLP's activations in cache (3.0e7 vs 2.0e7/s)
_TARGET_ELEMENTS_PER_STEP_COMMON = 2**17
_MAX_AUTO_CHUNK = 4096


class ApplyFn(Protocol):
    """A pure base classifier: `apply_fn(params, x) -> logits`.

    `x` is `[b, *input_shape]`; logits are `[b, num_classes_of_model]`. The predicted class is
    the argmax of the logits (ties go to the lowest index).
    """

    def __call__(self, params: PyTree, x: jax.Array) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class AffineFirst:
    """A base classifier written as `rest(params, first(params, x))` with `first` affine in x.

    It is an `ApplyFn` (calling it runs both parts), so it can be passed anywhere one is
    expected. With `common_noise=True`, the engine uses the split: `first(params, xs)` once per
    input, `first(params, sigma * eps) - first(params, 0)` once per noise sample for the whole
    batch, and `rest` on their sums. The result equals `apply_fn(params, xs + sigma * eps)` up
    to float rounding. `rpjax.models.as_apply_fn` returns one for `TabularMLP` (first dense
    layer) and `FaceCNN` (first convolution).

    Attributes:
      first: `first(params, x) -> h`; x `[b, *input_shape]`, h `[b, *hidden_shape]`; must be
        affine in x (a dense or convolutional layer without its activation).
      rest: `rest(params, h) -> logits` `[b, C]`.
    """

    first: Callable[[PyTree, jax.Array], jax.Array]
    rest: Callable[[PyTree, jax.Array], jax.Array]

    def __call__(self, params: PyTree, x: jax.Array) -> jax.Array:
        return self.rest(params, self.first(params, x))


def invalid_logits(logits: jax.Array) -> jax.Array:
    """`[b]` bool: the rows of `[b, C]` logits that vote for no class.

    A row is invalid if it contains NaN or +inf, or if every logit is -inf (no class
    possible): its argmax (class 0) would be a convention, not a vote. -inf in some logits
    is an ordered value (a log-probability of 0).
    """
    broken = jnp.any(jnp.isnan(logits) | (logits == jnp.inf), axis=-1)
    return broken | (jnp.max(logits, axis=-1) == -jnp.inf)


def tied_logits(logits: jax.Array) -> jax.Array:
    """`[b]` bool: the rows of `[b, C]` finite-maximum logits whose maximum is attained by
    every class (all C logits equal). Such a sample decides nothing; it is counted as the
    vote `argmax` gives it (class 0) unless every sample of its input is one (`count`):
    exact ties of all classes happen now and then in low precision (a bfloat16 linear score
    of exactly 0), and always for a model that outputs a constant.
    """
    return jnp.all(logits == jnp.max(logits, axis=-1, keepdims=True), axis=-1)


def votes_of(logits: jax.Array, num_classes: int) -> jax.Array:
    """`[b]` int32 votes of `[b, C]` logits as the counting loop casts them: `num_classes`
    for invalid logits (`invalid_logits`), `num_classes + 1` for a tie of every class
    (`tied_logits`), else the argmax."""
    pred = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    pred = jnp.where(tied_logits(logits), num_classes + 1, pred)
    return jnp.where(invalid_logits(logits), num_classes, pred)


def fold_ties(full: jax.Array, n: jax.Array | int, num_classes: int) -> jax.Array:
    """`[B, num_classes + 2]` counts (the last two columns: invalid samples, ties of every
    class) -> `[B, num_classes + 1]`: an input whose every sample is a tie decides nothing
    and its ties join its invalid samples; otherwise its ties are votes for class 0 (what
    `argmax` gives them). `n`: `[B]` or scalar, the samples each input used."""
    counts, invalid, tied = full[:, :num_classes], full[:, num_classes], full[:, -1]
    undecided = tied == n
    counts = counts.at[:, 0].add(jnp.where(undecided, 0, tied))
    return jnp.concatenate([counts, (invalid + jnp.where(undecided, tied, 0))[:, None]], axis=1)


def counts_traced(
    apply_fn: ApplyFn,
    params: PyTree,
    xs: jax.Array,
    key_pairs: jax.Array,
    sigma: jax.Array | float,
    *,
    n: int,
    num_classes: int,
    chunk: int,
    num_devices: int = 1,
    device_index: jax.Array | int = 0,
    distribution: _noise.NoiseDistribution = _noise.GAUSSIAN,
    common_noise: bool = False,
    invalid_column: bool = False,
) -> jax.Array:
    """Traceable, unvalidated counting loop (use inside your own `jit`/`vmap`).

    Device `device_index` of `num_devices` handles the samples
    `(t * num_devices + device_index) * chunk + [0, chunk)` at step `t`; samples with index
    >= `n` are masked out, so summing over devices counts samples `0..n-1` exactly once.

    Args:
      apply_fn: the base classifier.
      params: its parameters.
      xs: `[B, *input_shape]` floating inputs.
      key_pairs: `[B, 2]` uint32, one per input (`rpjax._src.noise.example_keys`).
      sigma: noise standard deviation, in the units of `xs`.
      n: number of noisy samples per input (static).
      num_classes: length of the count vectors (static).
      chunk: noisy copies of each input per step (static).
      num_devices: devices sharing the sample axis (static).
      device_index: this device's position on the sample axis.
      distribution: the smoothing distribution.
      common_noise: if True, every input gets the noise of `key_pairs[0]` (static).
      invalid_column: if True, a sample whose logits are invalid (`invalid_logits`: NaN or
        +inf, or all -inf) votes for no class and is counted in an extra column, and a tie
        of every class (`tied_logits`) in a second one (static; `fold_ties` folds them).

    Returns:
      `[B, num_classes]` int32 counts of this device's samples (`[B, num_classes + 2]` with
      `invalid_column`).
    """
    batch, input_shape = xs.shape[0], xs.shape[1:]
    steps = -(-n // (num_devices * chunk))
    sigma = jnp.asarray(sigma, xs.dtype)
    columns = num_classes + 2 if invalid_column else num_classes
    classes = jnp.arange(columns, dtype=jnp.int32)
    size = math.prod(input_shape)
    draw = jax.vmap(
        functools.partial(_noise.sample_noise_flat, count=chunk, size=size, dtype=xs.dtype,
                          distribution=distribution),
        in_axes=(0, None),
    )
    materialize = jax.default_backend() == "cpu"
    draws = 1 if common_noise else batch
    split = common_noise and isinstance(apply_fn, AffineFirst)
    if split:  # loop invariants: the first layer of the clean inputs, and its offset
        h_clean = apply_fn.first(params, xs)
        h_zero = apply_fn.first(params, jnp.zeros((1, *input_shape), xs.dtype))

    def body(t, counts):
        first = (t * num_devices + device_index) * chunk
        index = first + jnp.arange(chunk, dtype=jnp.int32)
        keys = key_pairs[:draws]
        if materialize:
            # XLA CPU would fuse the generator with the reshape below and loop over
            # [chunk, *input_shape], vectorizing only along its last (often short) axis: 5x
            # slower for 11 features. A conditional cannot be fused through, so the noise is
            # generated as one flat run per input. (On GPU it would cost a sync per step.)
            eps = jax.lax.cond(t >= 0, lambda: draw(keys, first),
                               lambda: jnp.zeros((draws, chunk * size), xs.dtype))
        else:
            eps = draw(keys, first)
        eps = eps.reshape(draws, chunk, *input_shape)
        if split:
            h_noise = apply_fn.first(params, sigma * eps[0]) - h_zero
            hidden = (h_clean[:, None] + h_noise[None]).reshape(batch * chunk,
                                                                *h_noise.shape[1:])
            logits = apply_fn.rest(params, hidden)
        else:
            noisy = (xs[:, None] + sigma * eps).reshape(batch * chunk, *input_shape)
            logits = apply_fn(params, noisy)
        if invalid_column:  # invalid logits, ties: no class (argmax of NaN would say 0)
            pred = votes_of(logits, num_classes)
        else:
            pred = jnp.argmax(logits, axis=-1)
        pred = pred.reshape(batch, chunk)
        hits = (pred[..., None] == classes) & (index < n)[None, :, None]
        return counts + hits.sum(axis=1, dtype=jnp.int32)

    init = jnp.zeros((batch, columns), jnp.int32)
    return jax.lax.fori_loop(0, steps, body, init)


@functools.lru_cache(maxsize=16)
def _mesh(devices: tuple[jax.Device, ...]) -> Mesh:
    return Mesh(np.array(devices, dtype=object), (_AXIS,))


@functools.partial(
    jax.jit,
    static_argnames=(
        "apply_fn",
        "n",
        "num_classes",
        "chunk",
        "mesh",
        "distribution",
        "common_noise",
    ),
)
def _sharded_counts(
    apply_fn, params, xs, key_pairs, sigma, *, n, num_classes, chunk, mesh, distribution,
    common_noise,
):
    """`[B, num_classes + 1]` counts summed over the mesh; the last column counts the samples
    with invalid logits (`invalid_logits`), or whose every sample was a tie of every class
    (`fold_ties`)."""
    num_devices = mesh.devices.size

    def per_device(params, xs, keys, sigma):
        counts = counts_traced(
            apply_fn, params, xs, keys, sigma, n=n, num_classes=num_classes,
            chunk=chunk, num_devices=num_devices,
            device_index=jax.lax.axis_index(_AXIS), distribution=distribution,
            common_noise=common_noise, invalid_column=True,
        )
        return fold_ties(jax.lax.psum(counts, _AXIS), n, num_classes)

    return jax.shard_map(
        per_device, mesh=mesh, in_specs=(P(), P(), P(), P()), out_specs=P(), check_vma=False
    )(params, xs, key_pairs, sigma)


class _LRU:
    """A dict bounded to `maxsize` entries, least recently used evicted first."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._data: collections.OrderedDict[Any, Any] = collections.OrderedDict()

    def get(self, key: Any) -> Any:
        if key not in self._data:
            return None
        self._data.move_to_end(key)
        return self._data[key]

    def put(self, key: Any, value: Any) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


_CACHE_SIZE = 64
_MODEL_CACHE = _LRU(_CACHE_SIZE)  # model signature -> (logits per input,)
_AFFINE_CHECKED = _LRU(_CACHE_SIZE)  # model signature -> True
_ROWS_CHECKED = _LRU(_CACHE_SIZE)  # model signature -> True (the row-independence probe passed)
_PROBE_BATCHES = (2, 3)


def clear_caches() -> None:
    """Forgets the model checks and the compiled counting programs (and the `apply_fn`s,
    closures included, that they hold)."""
    _MODEL_CACHE.clear()
    _AFFINE_CHECKED.clear()
    _ROWS_CHECKED.clear()
    _probe_batch.clear_cache()
    _sharded_counts.clear_cache()


def check_hashable(apply_fn: Any) -> None:
    """`apply_fn` is a static argument of the compiled program, so it must be hashable.

    Raises:
      TypeError: naming `apply_fn`, with the usual fixes.
    """
    try:
        hash(apply_fn)
    except TypeError as err:
        raise TypeError(
            f"apply_fn must be hashable (it keys the compiled program), got an unhashable "
            f"{type(apply_fn).__name__}: {err}. Pass a module-level function, a "
            "functools.partial of hashable parts, or put arrays in params instead of in "
            "apply_fn."
        ) from err


def _signature(apply_fn: Any, params: PyTree, xs: jax.Array) -> Any:
    leaves, treedef = jax.tree.flatten(params)
    sig = tuple((np.shape(leaf), str(getattr(leaf, "dtype", type(leaf)))) for leaf in leaves)
    key = (apply_fn, treedef, sig, tuple(xs.shape[1:]), str(xs.dtype))
    try:
        hash(key)
    except TypeError:  # unhashable treedef contents: skip the cache
        return None
    return key


def compute_dtypes(xs: jax.Array, params: PyTree) -> tuple[np.dtype, ...]:
    """The floating dtypes the noisy inputs meet: the inputs' and, when coarser, the
    parameters' (a bfloat16 model rounds float32 inputs to its own grid)."""
    dtypes = {jnp.dtype(xs.dtype)}
    for leaf in jax.tree.leaves(params):
        dt = getattr(leaf, "dtype", None)
        if dt is not None and jnp.issubdtype(dt, jnp.floating) and (
                jnp.finfo(dt).eps > jnp.finfo(xs.dtype).eps):
            dtypes.add(jnp.dtype(dt))
    return tuple(sorted(dtypes, key=lambda d: float(jnp.finfo(d).eps)))


@functools.partial(jax.jit, static_argnames=("dtypes",))
def _rounding_radius(xs, reach, *, dtypes):
    flat = jnp.abs(xs.reshape(xs.shape[0], -1).astype(jnp.float32)) + reach
    total = jnp.zeros_like(flat)
    for name in dtypes:
        dt = jnp.dtype(name)
        top = jnp.asarray(flat, dt)
        up = jnp.nextafter(top, jnp.asarray(jnp.inf, dt))
        # the spacing above the magnitude rounded to the grid: at least the spacing of every
        # value the coordinate can take (two roundings of at most half of it each)
        total = total + (up.astype(jnp.float32) - top.astype(jnp.float32))
    return jnp.sqrt(jnp.sum(total * total, axis=1))


def rounding_radius(xs: jax.Array, sigma: float, dtypes: tuple) -> np.ndarray:
    """`[B]` float64: a bound, in l2 and input units, on how far the floating-point rounding
    of the noisy inputs moves each sampled point from the exact `x + sigma * eps`.

    Coordinate j of input x is sampled as `fl(x_j + fl(sigma * eps_j))` in the inputs' dtype
    (and rounded again to a coarser dtype the model computes in, `compute_dtypes`); with
    `|eps_j| <= MAX_ABS_UNIT_NOISE`, each rounding moves it by at most half the grid spacing
    u_j of that dtype at `|x_j| + MAX_ABS_UNIT_NOISE * sigma`, two roundings per dtype by at
    most u_j. The bound is `sqrt(sum_j (sum_dtypes u_j)^2)` (float32 on the device, rounded up
    by one part in 10^6)."""
    if not dtypes:
        return np.zeros(xs.shape[0])
    reach = jnp.float32(_noise.MAX_ABS_UNIT_NOISE * sigma)
    names = tuple(jnp.dtype(d).name for d in dtypes)
    out = np.asarray(_rounding_radius(xs, reach, dtypes=names), np.float64)
    return out * (1.0 + 1e-6)


def check_model(apply_fn: Callable, params: PyTree, xs: jax.Array, num_classes: int) -> int:
    """Checks that `apply_fn(params, xs)` gives `[b, C]` logits with `2 <= C <= num_classes`.

    Uses `jax.eval_shape` (no computation) on batches of 2 and 3 inputs shaped like `xs` (an
    output whose batch axis does not follow the input's is refused), cached per model and input
    signature (at most 64 signatures, least recently used evicted).

    Returns:
      C, the number of classes the model outputs.

    Raises:
      TypeError: if `apply_fn` is not callable or not hashable.
      ValueError: if the model cannot take inputs shaped like `xs`, returns something other
        than `[b, C]` logits for a batch of b inputs, returns a single logit column, or
        `num_classes < C`.
    """
    if not callable(apply_fn):
        raise TypeError(f"apply_fn must be callable as apply_fn(params, x), got {apply_fn!r}.")
    check_hashable(apply_fn)
    cache_key = _signature(apply_fn, params, xs)
    out_shape = None if cache_key is None else _MODEL_CACHE.get(cache_key)
    if out_shape is None:
        shapes = []
        for b in _PROBE_BATCHES:
            probe = jax.ShapeDtypeStruct((b, *xs.shape[1:]), xs.dtype)
            try:
                out = jax.eval_shape(apply_fn, params, probe)
            except Exception as err:  # noqa: BLE001 - re-raised with the parameter's name
                raise ValueError(
                    f"xs has per-input shape {tuple(xs.shape[1:])} (dtype {xs.dtype}), which "
                    f"apply_fn cannot take: {type(err).__name__}: {err}"
                ) from err
            shape = tuple(getattr(out, "shape", ()))
            if len(shape) != 2 or shape[0] != b:
                raise ValueError(
                    "apply_fn(params, x) must return logits of shape [b, num_classes] for a "
                    f"batch of b inputs; for a batch of {b} inputs of shape "
                    f"{tuple(xs.shape[1:])} it returned shape {shape}. Check the rank of xs "
                    "(it must be [B, *input_shape]) and that the output follows the batch axis."
                )
            shapes.append(shape)
        if shapes[0][1] != shapes[1][1]:
            raise ValueError(f"apply_fn returned a number of logits that depends on the batch "
                             f"size: {shapes}.")
        out_shape = shapes[0][1:]
        if cache_key is not None:
            _MODEL_CACHE.put(cache_key, out_shape)
    model_classes = out_shape[0]
    if model_classes < 2:
        raise ValueError(
            f"apply_fn returns {model_classes} logit per input; the predicted class is the "
            "argmax of the logits, which is always class 0 for a single column. Return one "
            "logit per class, e.g. jnp.concatenate([-z, z], axis=-1) for a sigmoid score z."
        )
    if num_classes < model_classes:
        raise ValueError(
            f"num_classes={num_classes} is smaller than the model's output ({model_classes} "
            f"logits); pass num_classes >= {model_classes}."
        )
    return model_classes


def check_affine(apply_fn: AffineFirst, params: PyTree, xs: jax.Array) -> None:
    """Checks numerically that `apply_fn.first` is affine in x (once per model signature).

    Evaluates `first` on 8 pairs of random inputs `a`, `b` shaped like `xs` and checks
    `first(a + 2b) - first(0) == (first(a) - first(0)) + 2 (first(b) - first(0))` to a
    relative 1e-3 (1e-2 for 16-bit inputs). Catches a `first` that includes an activation.
    Remembers at most 64 passed signatures (least recently used evicted).

    Raises:
      ValueError: if `first` fails the check or returns something of the wrong batch size.
    """
    cache_key = _signature(apply_fn, params, xs)
    if cache_key is not None and _AFFINE_CHECKED.get(cache_key):
        return
    rng = np.random.default_rng(0)
    k = 8
    a, b = (jnp.asarray(rng.standard_normal((k, *xs.shape[1:])), xs.dtype) for _ in range(2))
    probe = jnp.concatenate([a, b, a + 2 * b, jnp.zeros_like(a[:1])])
    h = np.asarray(jax.jit(apply_fn.first)(params, probe), np.float64)
    if h.shape[:1] != (3 * k + 1,):
        raise ValueError(f"apply_fn.first must keep the batch axis; for a batch of {3 * k + 1} "
                         f"it returned shape {h.shape}.")
    h_a, h_b, h_ab = h[:k] - h[-1], h[k : 2 * k] - h[-1], h[2 * k : 3 * k] - h[-1]
    scale = np.max(np.abs(h_a)) + 2 * np.max(np.abs(h_b)) + 1e-12
    tol = 1e-2 if jnp.dtype(xs.dtype).itemsize < 4 else 1e-3
    err = np.max(np.abs(h_ab - h_a - 2 * h_b)) / scale
    if not err <= tol:
        raise ValueError(
            f"apply_fn.first is not affine in x (relative error {err:.2g} > {tol:g} on "
            "first(a + 2b) - first(0) vs (first(a) - first(0)) + 2 (first(b) - first(0))); "
            "an AffineFirst's first part must be a linear layer plus bias, without its "
            "activation."
        )
    if cache_key is not None:
        _AFFINE_CHECKED.put(cache_key, True)


def resolve_chunk_size(chunk_size: int | None, n: int, batch: int, input_size: int,
                       num_devices: int = 1, *,
                       elements_per_step: int = _TARGET_ELEMENTS_PER_STEP) -> int:
    """The noisy copies per input per step that `sample_counts` uses.

    `None` picks about `elements_per_step` input values per step, B copies together (256k; 128k
    with common noise; at least 1 and at most 4096 copies per input: on a CPU a model runs
    faster on batches whose activations stay in cache than on larger ones); either way
    the chunk is then evened out over the steps each device needs (e.g. n = 10 with a chunk
    of 8 runs 2 steps of 5, not 16 samples of which 6 are masked). Counts never depend on it.
    """
    if chunk_size is None:
        chunk_size = elements_per_step // max(1, batch * input_size)
        chunk_size = min(_MAX_AUTO_CHUNK, max(1, chunk_size))
    per_device = -(-n // num_devices)
    steps = -(-per_device // max(1, min(chunk_size, per_device)))
    return -(-per_device // steps)


class Prepared(NamedTuple):
    """The checked inputs of one public call (internal): the batch, the key, the ids and the
    floating-point dtypes the noisy inputs are rounded to."""

    xs: jax.Array
    key: jax.Array
    ids: np.ndarray  # [B] uint32; all 0 with common noise
    dtypes: tuple = ()

    def rounding_radius(self, sigma: float) -> np.ndarray:
        """`rounding_radius(self.xs, sigma, self.dtypes)`."""
        return rounding_radius(self.xs, sigma, self.dtypes)

    def key_pairs(self, purpose: int | None = None) -> jax.Array:
        """`[B, 2]` uint32 threefry key pairs of the inputs, for the noise stream `purpose`
        (`fold_in(key, purpose)`; None: the key itself)."""
        key = self.key if purpose is None else jax.random.fold_in(self.key, purpose)
        return _noise.example_keys(key, jnp.asarray(self.ids))


def prepare(apply_fn: ApplyFn, params: PyTree, xs: jax.typing.ArrayLike, key: Any,
            ids: jax.typing.ArrayLike | None, plan: _plan.Plan) -> Prepared:
    """Checks the inputs, the key, the ids and the model against `plan`, once per public call.

    Raises:
      TypeError, ValueError: naming the parameter (`xs`, `key`, `ids`, `sigma`, `apply_fn`,
        `num_classes`).
    """
    xs, max_abs = _validate.inputs_and_max_abs("xs", xs)
    key = _validate.key("key", key)
    _validate.noise_fits("sigma", plan.sigma, max_abs, xs.dtype,
                         max_noise=_noise.MAX_ABS_UNIT_NOISE)
    _validate.noise_resolves("sigma", plan.sigma, max_abs, compute_dtypes(xs, params))
    batch = xs.shape[0]
    if plan.common_noise and ids is not None:
        raise ValueError("ids must be None when common_noise=True: every input then gets the "
                         "noise of id 0, whatever its id.")
    if plan.common_noise:
        ids_np = np.zeros(batch, dtype=np.uint32)
    else:
        ids_np = np.arange(batch, dtype=np.uint32) if ids is None else _validate.ids(
            "ids", ids, batch)
    check_model(apply_fn, params, xs, plan.num_classes)
    if plan.common_noise and not plan.sequential and isinstance(apply_fn, AffineFirst):
        check_affine(apply_fn, params, xs)
    return Prepared(xs=xs, key=key, ids=ids_np, dtypes=compute_dtypes(xs, params))


def sample_counts(apply_fn: ApplyFn, params: PyTree, xs: jax.typing.ArrayLike,
                  key: jax.Array | int, *, num_classes: int, config: _plan.SmoothingConfig,
                  placement: _plan.Placement | None = None,
                  ids: jax.typing.ArrayLike | None = None) -> jax.Array:
    """Counts base-classifier votes on `config.n` noisy copies of each input.

    Args:
      apply_fn: pure, hashable `apply_fn(params, x) -> logits`; x `[b, *input_shape]`,
        logits `[b, C]` with `2 <= C <= num_classes` (a sigmoid score needs two columns).
        For a Flax NNX model use `rpjax.models.as_apply_fn(model)`.
      params: the parameters (any pytree), passed unchanged to `apply_fn`.
      xs: inputs, `[B, *input_shape]`, floating, finite; `max |xs| + 6 sigma` must be finite
        in the dtype of `xs` (and float32).
      key: typed key (`jax.random.key(...)`) or int seed in [0, 2**64). The noise of sample
        `s` of input `i` is threefry counter-mode output for counter `s` under the key
        `fold_in(key, ids[i])` (see `rpjax.noise_samples`).
      num_classes: length of each count vector (>= 2 and >= the model's number of logits).
      config: the statistics; `sigma`, `n`, `distribution` and `common_noise` are used (with
        `common_noise` every input gets the noise of id 0, and an `AffineFirst` model's first
        layer of the noise is computed once per sample for the whole batch).
      placement: devices, `chunk_size` (noisy copies of each input per compiled step),
        `batch_size` (inputs at a time; the last batch is padded so one compilation serves
        all) and `progress` (a tqdm bar over batches). Never changes the counts.
      ids: `[B]` non-negative example ids (default `0..B-1`). An input gets the same counts
        alone or in any batch as long as it keeps its id.

    Returns:
      `[B, num_classes]` int32 counts; each row sums to `config.n`.

    Raises:
      TypeError, ValueError: for bad arguments, naming the parameter; ValueError also if
        `apply_fn` returns invalid logits on any noisy sample (NaN or +inf, or every class
        tied at the maximum, e.g. all -inf: `invalid_logits`; or every sample of an input
        a tie of every class: `fold_ties`; `rpjax.certify`,
        `predict` and `always_label` warn and abstain instead).

    Examples:
      >>> import jax.numpy as jnp, rpjax
      >>> apply_fn = lambda w, x: jnp.stack([-x[:, 0] * w, x[:, 0] * w], axis=-1)
      >>> counts = rpjax.sample_counts(apply_fn, 1.0, jnp.array([[3.0]]), 0, num_classes=2,
      ...                              config=rpjax.SmoothingConfig(sigma=1.0, n=1000))
      >>> int(counts.sum()), bool(counts[0, 1] > 990)
      (1000, True)
    """
    plan = _plan.resolve(config, num_classes=num_classes, placement=placement)
    prepared = prepare(apply_fn, params, xs, key, ids, plan)
    counts, invalid = count(apply_fn, params, prepared.xs, prepared.key_pairs(), plan.n, plan)
    if bool(jnp.any(invalid > 0)):
        bad = np.flatnonzero(np.asarray(invalid))
        raise ValueError(nonfinite_message(bad, np.asarray(invalid)[bad], plan.n))
    return counts


def nonfinite_message(bad: np.ndarray, how_many: np.ndarray, n: int) -> str:
    """The message for inputs `bad` whose noisy samples gave invalid logits
    (`invalid_logits`: NaN / +inf, all -inf; `fold_ties`: every sample a tie of every class)."""
    return (
        f"apply_fn returned invalid logits (NaN or +inf, or no decision: all -inf, or every "
        f"class tied in every sample of the input) on {int(how_many.max())} of n={n} noisy samples "
        f"(most affected input) for {bad.size} input(s) at batch indices "
        f"{bad[:10].tolist()}{' ...' if bad.size > 10 else ''}; the argmax of such logits is "
        "meaningless. Check the model (overflow at this sigma, a log of 0, uninitialized or "
        "dead parameters)."
    )


class CountingProgram(NamedTuple):
    """The compiled counting program `sample_counts` runs for one batch (for inspection).

    Attributes:
      chunk: noisy copies of each input per step (what `chunk_size=None` resolves to).
      steps: loop steps per device.
      lowered: the `jax.stages.Lowered` program (`.compile().memory_analysis()`,
        `.cost_analysis()`); its output is `[B, num_classes + 1]` (the last column counts
        samples with invalid logits, `invalid_logits`).
    """

    chunk: int
    steps: int
    lowered: jax.stages.Lowered


def counting_program(apply_fn: ApplyFn, params: PyTree, xs: jax.typing.ArrayLike, *,
                     num_classes: int, config: _plan.SmoothingConfig,
                     placement: _plan.Placement | None = None) -> CountingProgram:
    """The program `sample_counts` compiles for the batch `xs` (same arguments), lowered but
    not run: its chunk size, its steps and its XLA memory and cost analyses. For benchmarks
    and capacity planning; it counts nothing (the whole of `xs` is one batch)."""
    plan = _plan.resolve(config, num_classes=num_classes, placement=placement)
    prepared = prepare(apply_fn, params, xs, 0, None, plan._replace(common_noise=False))
    xs, n, devices = prepared.xs, plan.n, plan.devices
    chunk = _chunk(plan, n, xs.shape[0], xs.shape)
    key_pairs = jnp.zeros((xs.shape[0], 2), jnp.uint32)
    lowered = _sharded_counts.lower(
        apply_fn, params, xs, key_pairs, jnp.float32(plan.sigma), n=n,
        num_classes=plan.num_classes, chunk=chunk, mesh=_mesh(devices),
        distribution=plan.distribution, common_noise=plan.common_noise)
    return CountingProgram(chunk=chunk, steps=-(-n // (len(devices) * chunk)), lowered=lowered)


def _chunk(plan: _plan.Plan, n: int, batch: int, shape: Sequence[int]) -> int:
    target = _TARGET_ELEMENTS_PER_STEP_COMMON if plan.common_noise else _TARGET_ELEMENTS_PER_STEP
    return resolve_chunk_size(plan.chunk_size, n, batch, _plan.input_size(shape),
                              len(plan.devices), elements_per_step=target)


def count(apply_fn: ApplyFn, params: PyTree, xs: jax.Array, key_pairs: jax.Array, n: int,
          plan: _plan.Plan) -> tuple[jax.Array, jax.Array]:
    """The counting kernel on checked inputs (`prepare`), with each input's threefry key pair
    given directly (the deployed release derives them from the owner's secret).

    Args:
      xs: `[B, *input_shape]` checked inputs; key_pairs: `[B, 2]` uint32; n: samples per
        input; plan: the checked plan (sigma, num_classes, distribution, common noise,
        devices, chunk and batch sizes, progress).

    Returns:
      `([B, num_classes] int32 counts of the valid samples, [B] int32 samples whose logits
      were invalid: `invalid_logits`)`, bit-identical to `counts_traced` with the same pairs.
    """
    batch = xs.shape[0]
    step_batch = batch if plan.batch_size is None else min(plan.batch_size, batch)
    chunk = _chunk(plan, n, step_batch, xs.shape)
    run = functools.partial(
        _sharded_counts, apply_fn, params, sigma=jnp.float32(plan.sigma), n=n,
        num_classes=plan.num_classes, chunk=chunk, mesh=_mesh(plan.devices),
        distribution=plan.distribution, common_noise=plan.common_noise,
    )
    if plan.batch_size is None and not plan.progress:
        full = run(xs=xs, key_pairs=key_pairs)
    else:
        full = _run_batched(run, xs, key_pairs, step_batch, plan.progress)
    return full[:, :plan.num_classes], full[:, plan.num_classes]


def _run_batched(run, xs, key_pairs, step_batch, progress):
    from tqdm.auto import tqdm

    batch = xs.shape[0]
    out = []
    starts = range(0, batch, step_batch)
    desc = progress if isinstance(progress, str) else "sampling"
    for start in tqdm(starts, desc=desc, unit="batch", disable=not progress):
        stop = min(start + step_batch, batch)
        pad = step_batch - (stop - start)
        x, k = xs[start:stop], key_pairs[start:stop]
        if pad:
            x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)])
            k = jnp.concatenate([k, jnp.repeat(k[-1:], pad, axis=0)])
        out.append(run(xs=x, key_pairs=k)[: stop - start])
    return jnp.concatenate(out)


class RowDependenceError(ValueError):
    """`apply_fn` does not compute each row of a batch on its own (`check_rows`).

    The same noisy inputs got different votes when evaluated in different batches, so the
    counts would depend on the chunk size, the batch and the other inputs, and the samples
    would not be independent draws of `f(x + eps)`: no certificate would hold. Typical causes:
    a model in training mode (dropout, batch normalisation with batch statistics), a model
    that normalises by the batch's own statistics, randomness closed over in `apply_fn`.
    """


_PROBE_PURPOSE = 3  # seeds the probe's host noise with the key's words (certify's streams: 0-2)
_PROBE_INPUTS = 4  # the first inputs of the batch the probe perturbs
_PROBE_ROWS = 8  # noisy rows (at most the batch's size when it has 2 inputs or more)


@functools.partial(jax.jit, static_argnames=("apply_fn",))
def _probe_batch(apply_fn, params, rows):
    """`([2, R, C] logits, [2, R] votes)` of the rows in one batch of 2R: in order, then in
    reverse order (each row at two positions). A vote is the argmax, or C for invalid logits
    (`invalid_logits`), as the counting loop casts it. Compiled only for a batch of one input
    (`check_rows`)."""
    logits = apply_fn(params, jnp.concatenate([rows, rows[::-1]]))
    logits = jnp.stack([logits[: rows.shape[0]], logits[rows.shape[0]:][::-1]])
    votes = votes_of(logits, logits.shape[-1])
    # a row that ties every class: what all its copies in a slot of the selection program
    # give (every sample of the slot a tie: no class)
    votes = jnp.where(votes == logits.shape[-1] + 1, logits.shape[-1], votes)
    return logits, votes


def _selection_plan(plan: _plan.Plan) -> _plan.Plan:
    """The plan of `rpjax.certify`'s selection pass (its n0 samples), without noise: the probe
    runs that compiled program on inputs it chooses, so it compiles nothing of its own."""
    if plan.sequential:
        plan = plan._replace(chunk_size=None, batch_size=None)
    return plan._replace(sigma=0.0, progress=False)


def _slot_votes(apply_fn: ApplyFn, params: PyTree, slots: np.ndarray,
                plan: _plan.Plan) -> np.ndarray:
    """`[S]` vote of each slot, evaluated as `n0` identical rows per slot in the selection
    program (sigma 0), or -1 where the `n0` copies of a slot disagree."""
    # `count` on one batch, called as it calls the program (so the compiled one is reused),
    # without its slicing of the result
    pairs = np.zeros((slots.shape[0], 2), np.uint32)  # sigma = 0: the noise is multiplied away
    run = functools.partial(
        _sharded_counts, apply_fn, params, sigma=jnp.float32(plan.sigma), n=plan.n0,
        num_classes=plan.num_classes, chunk=_chunk(plan, plan.n0, slots.shape[0], slots.shape),
        mesh=_mesh(plan.devices), distribution=plan.distribution,
        common_noise=plan.common_noise)
    full = np.asarray(run(xs=jnp.asarray(slots), key_pairs=jnp.asarray(pairs)))
    return np.where(full.max(axis=1) == plan.n0, full.argmax(axis=1), -1)


def check_rows(apply_fn: ApplyFn, params: PyTree, prepared: Prepared, plan: _plan.Plan) -> None:
    """Checks that `apply_fn` computes each row of a batch on its own (once per model and input
    signature; skipped with `Placement(check_rows=False)`).

    The probe takes R noisy rows of the first (at most 4) inputs (R = min(8, B) for a batch
    of B >= 2 inputs, 8 for one input; Gaussian noise of scale `sigma` drawn on the host by
    NumPy, seeded by the key's words and 3: no certificate uses it) and runs the program of
    `rpjax.certify`'s selection pass with sigma = 0, so the model sees exactly the rows the
    probe puts in its input slots (each slot as `n0` identical rows, in one or more batches
    of the selection pass's chunk size):

    - together: the slots hold the R rows in turn (B >= 2). Each slot's `n0` copies sit at
      different positions of the batch and must all get the same vote; the slots holding the
      same row must too. With one input, the R rows are instead evaluated in one batch of
      2R, in order and in reverse order (a compiled program of its own, the probe's only
      one), and must get the same votes in both orders (a vote flipped while the logits agree
      to float rounding, `sqrt(eps)` of their dtype relative to the row's largest logit, is
      let through);
    - alone: every slot holds row 0, so the batch holds that row only (its batch statistics
      are its own). Its votes must all agree and equal its vote together. The same for one
      row whose vote together differs from row 0's, if there is one (a model normalising by
      its batch would give both the same vote alone).

    A vote is a class, or no class for invalid logits (`invalid_logits`). Any disagreement
    raises. With B >= 2 the probe costs two or three selection passes of one batch (`n0`
    samples per input slot each) and compiles nothing that `certify` does not compile
    anyway. Remembers at most 64 passed signatures (model, parameter shapes, input shape and
    dtype).

    This is a test, not a proof: a model whose dependence on the batch does not change these
    votes passes (see `docs/guarantee.md`).

    Raises:
      RowDependenceError: saying which evaluation disagreed, with the fixes.
    """
    if not plan.check_rows:
        return
    xs = prepared.xs
    cache_key = _signature(apply_fn, params, xs)
    if cache_key is not None and _ROWS_CHECKED.get(cache_key):
        return
    batch = xs.shape[0]
    selection = _selection_plan(plan)
    slots = batch if selection.batch_size is None else min(selection.batch_size, batch)
    k = min(_PROBE_INPUTS, batch)
    num_rows = min(_PROBE_ROWS, slots) if slots >= 2 else _PROBE_ROWS
    # on the host (no device op to compile): the key's words and 3 seed the probe's noise
    seed = [*np.asarray(jax.random.key_data(prepared.key)).ravel().tolist(), _PROBE_PURPOSE]
    z = np.random.default_rng(seed).standard_normal((num_rows, *xs.shape[1:]))
    base = np.asarray(jax.device_get(xs) if batch <= _PROBE_INPUTS else
                      jax.device_get(xs[:k]), np.float64)
    rows = (base[np.arange(num_rows) % k] + plan.sigma * z).astype(xs.dtype)
    if slots >= 2:
        votes = _slot_votes(apply_fn, params, rows[np.arange(slots) % num_rows], selection)
        per_row = [votes[np.arange(slots) % num_rows == r] for r in range(num_rows)]
        split = [r for r, v in enumerate(per_row) if (v < 0).any() or (v != v[0]).any()]
        if split:
            _refuse(f"{len(split)} of {num_rows} noisy inputs got different votes at "
                    "different positions of one batch")
        together = votes[:num_rows]
    else:
        logits, votes = _probe_batch(apply_fn, params, jnp.asarray(rows))
        values = np.asarray(logits).astype(np.float64)  # on the host, from any float dtype
        votes = np.asarray(votes)
        tol = math.sqrt(float(jnp.finfo(logits.dtype).eps))
        ref = values[0]
        scale = 1.0 + np.max(np.abs(np.where(np.isfinite(ref), ref, 0.0)), axis=-1)
        with np.errstate(invalid="ignore"):  # inf - inf: compared as equal values first
            close = np.all((values[1] == ref) | np.isnan(values[1]) & np.isnan(ref)
                           | (np.abs(values[1] - ref) <= tol * scale[:, None]), axis=-1)
        wrong = np.flatnonzero((votes[1] != votes[0]) & ~close)
        if wrong.size:
            _refuse(f"{wrong.size} of {num_rows} noisy inputs got different votes in a batch "
                    f"of {2 * num_rows} in order and in reverse order")
        together = votes[0]
    # alone: row 0, and a row whose vote together differs from row 0's, if there is one
    # (a model that normalises by its batch gives every row the same vote alone)
    other = np.flatnonzero(together != together[0])
    for r in [0, *other[:1].tolist()]:
        alone = _slot_votes(apply_fn, params, np.repeat(rows[r:r + 1], slots, axis=0),
                            selection)
        if (alone != together[r]).any():
            _refuse("a noisy input got another vote alone (in a batch of copies of it) than "
                    "together with the others")
    if cache_key is not None:
        _ROWS_CHECKED.put(cache_key, True)


def _refuse(what: str) -> None:
    raise RowDependenceError(
        f"apply_fn does not compute each row of a batch on its own: {what}. The counts would "
        "depend on chunk_size, batch_size and the other inputs, and no certificate would "
        "hold. Fix: run the model in inference mode (Flax NNX: model.eval() before "
        "rpjax.models.as_apply_fn; Linen: deterministic=True, use_running_average=True), use "
        "no batch statistics (normalise by stored statistics, not the batch's mean), and "
        "close over no random key in apply_fn (a fixed key gives dropout masks that depend "
        "on the batch's shape and a row's position). If the model is row-independent and "
        "only this probe misjudges it, pass placement=rpjax.Placement(check_rows=False).")
