"""Durable certification runs: `rpjax certify` and `rpjax summarize` as library functions.

A run certifies every input of a data file (`.npy` or `.npz`, read through memory maps one
block at a time) with a user's model and writes, under its directory `RUN/`:

- `config.json`: everything that fixes the results (model spec and a hash of its parameters,
  the data file's SHA-256, sigma, n0, n, alpha, seed, method, block size, PRNG) plus the
  versions that ran it. It is written before the first block; a run whose configuration
  differs is refused, never mixed in.
- `parts/rows-PPPPP.jsonl`: one JSON row per input, process `P`'s blocks, appended one
  committed block at a time (written and fsynced before the block counts). Block `b` holds
  inputs `[b * block, (b + 1) * block)` in order; a block is committed when all of its rows
  are present and parse. A torn tail (a crash in the middle of an append) is detected on
  resume and cut off; its inputs are certified again.
- `parts/times-PPPPP.jsonl`: per block wall time and forward passes (throughput only; kept
  out of the rows so that the rows of a resumed run equal those of an uninterrupted one).
- `rows.jsonl` (all rows, sorted by index), `summary.json` and `certified_accuracy.png`,
  written atomically by process 0 at the end and rewritable from the parts (`summarize`).

Input `i`'s noise is keyed by `(seed, i)` (`certify(..., ids=...)`), so its row is the same
whatever the block it was certified in, the number of devices or processes, and however
often the run was interrupted and resumed.

Scale-out follows JAX's multi-controller model: after `jax.distributed.initialize`, every
process scans the committed blocks, takes every `process_count`-th block still to do, shards
its samples over its local devices and appends to its own part file; process 0 merges and
summarizes after a barrier.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import importlib
import importlib.util
import json
import os
import struct
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from rpjax._src import durable
from rpjax._src import smoothing as _smoothing
from rpjax._src import stats as _stats
from rpjax._src import validate as _validate
from rpjax._src.certify import certify as _certify
from rpjax._src.noise import MAX_ABS_UNIT_NOISE
from rpjax._src.plan import (
    RULES,
    DecideAt,
    Fixed,
    Placement,
    RadiusBudget,
    Rule,
    SmoothingConfig,
)

FORMAT = 1
INPUT_KEYS = ("x", "inputs", "images", "data")
LABEL_KEYS = ("y", "labels", "targets")

# the fields that fix the rows: a run directory whose config differs in any of them is refused
IDENTITY = ("format", "model", "model_sha256", "checkpoint_sha256", "data_sha256",
            "inputs_key", "labels_key", "num_inputs", "input_shape", "input_dtype",
            "num_classes", "sigma", "n0", "n", "alpha", "seed", "method", "radius", "tolerance",
            "common_noise", "block", "prng_impl")


# --------------------------------------------------------------------------------------------
# data: .npy / .npz read through memory maps, one range at a time


class ArrayFile(NamedTuple):
    """One array of a data file, read lazily.

    Attributes:
      path: the file.
      name: the array's name (`x` for a `.npy`, the member name for a `.npz`).
      shape, dtype: the array's.
      offset: byte offset of the array's data in `path`; -1 when the array could not be
        memory-mapped (a compressed `.npz` member) and lives in `loaded`.
      fortran: stored in Fortran order.
      loaded: the array itself when `offset == -1`, else None.
    """

    path: str
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    fortran: bool
    loaded: np.ndarray | None = None
    identity: tuple[int, int, int, int] | None = None  # (device, inode, size, mtime_ns)

    def check_unchanged(self) -> None:
        """Raises ValueError naming `--data` if the file was replaced or rewritten since it was
        opened (its device, inode, size or modification time changed)."""
        if self.identity is not None and file_identity(self.path) != self.identity:
            raise DataChanged(
                f"--data {self.path}: the file was rewritten or replaced during the run; "
                "refusing to mix its old and new contents (the committed blocks are kept; "
                "rerun with the new file in a new --out, or restore the old one and rerun).")

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows `[start, stop)` as an in-memory array (the map is opened and closed here, so
        resident memory stays bounded by one range whatever the file's size)."""
        if self.loaded is not None:
            return np.array(self.loaded[start:stop])
        mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                       shape=self.shape, order="F" if self.fortran else "C")
        try:
            return np.array(mm[start:stop])
        finally:
            del mm


class DataChanged(ValueError):
    """The data file changed while a run was reading it."""


def file_identity(path: str) -> tuple[int, int, int, int]:
    """`(device, inode, size, mtime_ns)` of `path`: cheap to check before every block."""
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _npy_header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _open_npy(path: str, name: str, offset: int = 0) -> ArrayFile:
    with open(path, "rb") as f:
        f.seek(offset)
        shape, fortran, dtype = _npy_header(f)
        start = f.tell()
    if dtype.hasobject:
        raise ValueError(f"--data {path}: array '{name}' holds Python objects; save it as a "
                         "numeric array.")
    return ArrayFile(path, name, tuple(int(s) for s in shape), dtype, start, bool(fortran))


def _open_npz_member(path: str, zf: zipfile.ZipFile, name: str) -> ArrayFile:
    info = zf.getinfo(name + ".npy")
    if info.compress_type != zipfile.ZIP_STORED:  # np.savez_compressed: cannot be mapped
        with np.load(path) as z:
            arr = z[name]
        return ArrayFile(path, name, arr.shape, arr.dtype, -1, False, arr)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"--data {path}: not a valid .npz (bad zip header).")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
    return _open_npy(path, name, info.header_offset + 30 + name_len + extra_len)


def open_data(path: str, inputs_key: str | None = None,
              labels_key: str | None = None) -> tuple[ArrayFile, ArrayFile | None]:
    """Opens a data file for streaming: `(inputs, labels or None)`.

    Args:
      path: a `.npy` (inputs only) or `.npz` file. An `.npz` saved with `np.savez` is
        memory-mapped; one saved with `np.savez_compressed` is decompressed into memory.
      inputs_key: the inputs' name in an `.npz` (default: the only array, else the first of
        `x`, `inputs`, `images`, `data`).
      labels_key: the labels' name in an `.npz` (default: the first of `y`, `labels`,
        `targets` present, else no labels).

    Raises:
      ValueError naming `--data` (or the key option): a missing or unreadable file, an
        unknown key.
    """
    if not os.path.isfile(path):
        raise ValueError(f"--data {path}: no such file.")
    try:
        ident = file_identity(path)
        inputs, labels = _open_data(path, inputs_key, labels_key)
        return (inputs._replace(identity=ident),
                None if labels is None else labels._replace(identity=ident))
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"--data {path}: cannot read it as .npy or .npz ({err}).") from None
    except ValueError as err:
        if str(err).startswith("--"):
            raise
        raise ValueError(f"--data {path}: cannot read it as .npy or .npz ({err}).") from None


def _open_data(path: str, inputs_key: str | None,
               labels_key: str | None) -> tuple[ArrayFile, ArrayFile | None]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            if inputs_key is None:
                found = [k for k in INPUT_KEYS if k in names]
                if len(names) == 1:
                    inputs_key = names[0]
                elif found:
                    inputs_key = found[0]
                else:
                    raise ValueError(
                        f"--data {path}: which array holds the inputs? It has {names}; "
                        "pass --inputs-key.")
            if inputs_key not in names:
                raise ValueError(f"--inputs-key {inputs_key!r} is not in {path} "
                                 f"(it has {names}).")
            if labels_key is None:
                labels_key = next((k for k in LABEL_KEYS if k in names), None)
            elif labels_key not in names:
                raise ValueError(f"--labels-key {labels_key!r} is not in {path} "
                                 f"(it has {names}).")
            inputs = _open_npz_member(path, zf, inputs_key)
            labels = None if labels_key is None else _open_npz_member(path, zf, labels_key)
            return inputs, labels
    if labels_key is not None:
        raise ValueError(f"--labels-key {labels_key!r}: {path} is a .npy, which holds "
                         "inputs only; save inputs and labels together with np.savez.")
    return _open_npy(path, "x"), None


def check_data(inputs: ArrayFile, labels: ArrayFile | None, num_classes: int, *,
               chunk: int = 4096) -> float:
    """Checks the data before a run starts, streaming it `chunk` rows at a time.

    Returns:
      The largest `|x|` of the inputs (for the noise's overflow check).

    Raises:
      TypeError / ValueError naming `--data`: inputs that are not a floating array of rank
      >= 2 with at least one row; any NaN or infinite entry, or one beyond float32's range
      (the engine computes in float32; the first offending indices named); labels that are
      not integers of shape `[N]` or fall outside `[0, num_classes)`.
    """
    where = f"--data {inputs.path}"
    if not np.issubdtype(inputs.dtype, np.floating):
        raise TypeError(f"{where}: inputs '{inputs.name}' must be floating point, got dtype "
                        f"{inputs.dtype} (scale integer images to floats first).")
    if len(inputs.shape) < 2 or inputs.shape[0] < 1:
        raise ValueError(f"{where}: inputs '{inputs.name}' must have shape [N, *input_shape] "
                         f"with N >= 1 and rank >= 2, got shape {inputs.shape}.")
    num = inputs.shape[0]
    largest = float(np.finfo(np.float32).max)
    max_abs = 0.0
    for start in range(0, num, chunk):
        block = inputs.read(start, min(start + chunk, num))
        flat = block.reshape(block.shape[0], -1)
        ok = np.isfinite(flat).all(axis=1)
        if not ok.all():
            bad = start + np.flatnonzero(~ok)
            raise ValueError(f"{where}: inputs '{inputs.name}' are not finite (NaN or inf) at "
                             f"index {', '.join(map(str, bad[:5].tolist()))}"
                             f"{' and more' if bad.size > 5 else ''}.")
        mags = np.abs(flat).max(axis=1) if flat.shape[1] else np.zeros(flat.shape[0])
        over = mags > largest
        if over.any():
            bad = start + np.flatnonzero(over)
            raise ValueError(f"{where}: inputs '{inputs.name}' exceed float32's largest finite "
                             f"value {largest:.3g} (the engine computes in float32) at index "
                             f"{', '.join(map(str, bad[:5].tolist()))}"
                             f"{' and more' if bad.size > 5 else ''}.")
        if mags.size:
            max_abs = max(max_abs, float(mags.max()))
    if labels is None:
        return max_abs
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"{where}: labels '{labels.name}' must be integers, got dtype "
                        f"{labels.dtype}.")
    if labels.shape != (num,):
        raise ValueError(f"{where}: labels '{labels.name}' must have shape [{num}] (one per "
                         f"input), got {labels.shape}.")
    y = labels.read(0, num)
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise ValueError(f"{where}: labels '{labels.name}' must lie in [0, {num_classes}), "
                         f"got {int(y[bad[0]])} at index {int(bad[0])}"
                         f"{f' ({bad.size} out of range)' if bad.size > 1 else ''}.")
    return max_abs


# --------------------------------------------------------------------------------------------
# the model: PKG.MODULE:FACTORY -> (apply_fn, params)


def _import_factory(spec: str) -> Callable[[], Any]:
    if spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"--model must be MODULE:FACTORY (e.g. mypkg.models:make or "
                         f"path/to/models.py:make), got {spec!r}.")
    module_name, attr = spec.split(":")
    try:
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise ValueError(f"--model {spec}: no such file {module_name}.")
            name = "_rpjax_model_" + hashlib.sha256(
                os.path.abspath(module_name).encode()).hexdigest()[:12]
            loader = importlib.util.spec_from_file_location(name, module_name)
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
        else:
            if os.getcwd() not in sys.path and "" not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ValueError:
        raise
    except (SystemExit, KeyboardInterrupt) as err:  # not an exit or a Ctrl-C of rpjax's own
        raise ValueError(f"--model {spec}: importing {module_name} raised {_exit_repr(err)}; "
                         "nothing was certified or written.") from None
    except Exception as err:  # noqa: BLE001 - any import failure is the user's to see
        raise ValueError(f"--model {spec}: cannot import {module_name} "
                         f"({type(err).__name__}: {_first_line(err)}).") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"--model {spec}: {module_name} has no callable {attr!r}.")
    return factory


def _exit_repr(err: BaseException) -> str:
    """`SystemExit(0)`, `SystemExit('msg')`, `KeyboardInterrupt()`: what was raised."""
    if isinstance(err, SystemExit):
        return f"SystemExit({err.code!r})"
    return f"{type(err).__name__}()"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def params_sha256(params: Any) -> str:
    """A SHA-256 of a parameter pytree: every leaf's path, dtype, shape and bytes."""
    h = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        arr = np.asarray(leaf)
        h.update(f"{jax.tree_util.keystr(path)}|{arr.dtype}|{arr.shape}|".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def load_model(spec: str, checkpoint: str | None = None) -> tuple[Callable, Any]:
    """Builds the model of `--model MODULE:FACTORY` (and `--checkpoint DIR`).

    The factory is called with no arguments and returns `(apply_fn, params)` with
    `apply_fn(params, x) -> logits`, or a Flax NNX module (split with
    `rpjax.models.as_apply_fn`). With `checkpoint`, the parameters are restored from that
    orbax checkpoint, the factory's parameters giving the structure, shapes and dtypes.

    Raises:
      ValueError / TypeError naming `--model` or `--checkpoint`.
    """
    from flax import nnx

    from rpjax._src.models.functional import as_apply_fn

    factory = _import_factory(spec)
    try:
        made = factory()
    except (SystemExit, KeyboardInterrupt) as err:  # the user's code exiting, not rpjax
        raise ValueError(f"--model {spec}: the model factory {spec} raised {_exit_repr(err)}; "
                         "nothing was certified or written.") from None
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"--model {spec}: the factory raised {type(err).__name__}: "
                         f"{_first_line(err)}") from None
    if isinstance(made, nnx.Module):
        apply_fn, params = as_apply_fn(made)
    elif isinstance(made, tuple) and len(made) == 2 and callable(made[0]):
        apply_fn, params = made
    else:
        raise TypeError(f"--model {spec}: the factory must return (apply_fn, params) or a "
                        f"flax.nnx.Module, got {type(made).__name__}.")
    if checkpoint is not None:
        if not os.path.isdir(checkpoint):
            raise ValueError(f"--checkpoint {checkpoint}: no such directory.")
        import orbax.checkpoint as ocp

        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.result_type(a)),
                                params)
        try:
            params = ocp.StandardCheckpointer().restore(os.path.abspath(checkpoint), abstract)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"--checkpoint {checkpoint}: cannot restore the factory's "
                             f"parameters from it ({_first_line(err)}).") from None
    return apply_fn, params


def model_classes(spec: str, apply_fn: Callable, params: Any, input_shape: Sequence[int],
                  dtype: np.dtype) -> int:
    """The number of logits the model gives on `[2, *input_shape]` inputs.

    Raises:
      ValueError naming `--model`: the model cannot be applied to the data's inputs, or does
      not return `[2, C]` logits with C >= 2.
    """
    x = jax.ShapeDtypeStruct((2, *input_shape), dtype)
    try:
        out = jax.eval_shape(apply_fn, params, x)
    except (SystemExit, KeyboardInterrupt) as err:  # the user's code exiting, not rpjax
        raise ValueError(f"--model {spec}: the model's apply_fn raised {_exit_repr(err)} when "
                         "applied to the data's inputs; nothing was certified or "
                         "written.") from None
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"--model {spec}: cannot be applied to the data's inputs of shape "
                         f"[b, {', '.join(map(str, input_shape))}] ({type(err).__name__}: "
                         f"{_first_line(err)}).") from None
    shape = getattr(out, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] != 2 or shape[1] < 2:
        raise ValueError(f"--model {spec}: on inputs of shape [2, "
                         f"{', '.join(map(str, input_shape))}] it returns "
                         f"{shape if shape is not None else type(out).__name__}, not logits "
                         "[2, C] with C >= 2.")
    return int(shape[1])


# --------------------------------------------------------------------------------------------
# the configuration


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
      rule: `Fixed()` (default), `DecideAt(radius)` or `RadiusBudget(tolerance)`.
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
            raise TypeError("rule must be Fixed(), DecideAt(radius) or RadiusBudget(tolerance), "
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
    def tolerance(self) -> float | None:
        """The tolerance of `RadiusBudget`, else None."""
        return self.rule.tolerance if isinstance(self.rule, RadiusBudget) else None

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
            "tolerance": self.tolerance, "seed": self.seed, "block": self.block,
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
            rule = RadiusBudget(*([] if d.get("tolerance") is None else [d["tolerance"]]))
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
        raise TypeError("rule must be Fixed(), DecideAt(radius) or RadiusBudget(tolerance), "
                        f"got {rule!r}.")
    inputs, labels = open_data(data, inputs_key, labels_key)
    if not np.issubdtype(inputs.dtype, np.floating) or len(inputs.shape) < 2:
        check_data(inputs, None, 2)  # raises the boundary's error
    apply_fn, params = load_model(model, checkpoint)
    try:
        _smoothing.check_hashable(apply_fn)
    except TypeError as err:
        raise TypeError(f"--model {model}: the factory's {err}") from None
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
        raise ValueError(f"--out {run_dir}: no rpjax certify run there (no config.json).")
    try:
        with open(path, encoding="utf-8") as f:
            return RunSpec.from_json(json.load(f))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--out {run_dir}: config.json is unreadable ({err}).") from None


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
    run_dir = durable.check_output_dir("--out", run_dir)
    path = os.path.join(run_dir, "config.json")
    if os.path.isfile(path):
        old = read_config(run_dir)
        diff = config_differences(old, config)
        if diff:
            raise ValueError(
                f"--out {run_dir} holds a run with a different configuration ("
                f"{'; '.join(diff)}); use another --out, or delete it to start over.")
        return True
    others = [e for e in os.listdir(run_dir)
              if not e.startswith((".rpjax-probe", LOCK_PREFIX))]
    if others:
        raise ValueError(f"--out {run_dir} is not empty and holds no rpjax certify run "
                         f"({', '.join(sorted(others)[:3])}...); use an empty or new directory.")
    if write:
        durable.atomic_write(path, json.dumps(config.to_json(), indent=2) + "\n")
    return False


# --------------------------------------------------------------------------------------------
# rows and committed blocks


LOCK_PREFIX = "lock-"


def lock_run(run_dir: str, process: int) -> int:
    """Takes `RUN/lock-PPPPP` (`flock`, exclusive, non-blocking) for process `process`; returns
    the open descriptor, which holds the lock until closed (or the process ends).

    Raises:
      ValueError naming `--out`: another `rpjax certify` (the same process index) is writing
        to `run_dir`.
    """
    path = os.path.join(run_dir, f"{LOCK_PREFIX}{process:05d}")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise ValueError(f"--out {run_dir}: cannot create the lock file {path} "
                         f"({err.strerror or err}).") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(f"--out {run_dir}: another rpjax certify is writing to this run "
                         f"(it holds {path}); wait for it to finish, or use another "
                         "--out.") from None
    return fd


class WriteFailed(ValueError):
    """Writing the run failed (disk full, file-size limit, I/O error)."""


def part_path(run_dir: str, process: int, kind: str = "rows") -> str:
    """`RUN/parts/{kind}-{process:05d}.jsonl`."""
    return os.path.join(run_dir, "parts", f"{kind}-{process:05d}.jsonl")


class Scan(NamedTuple):
    """What a part file holds: its committed blocks and where the committed part ends."""

    blocks: dict[int, tuple[int, int]]  # block -> (first byte, end byte) of its rows
    committed_bytes: int  # the file's committed prefix; anything after it is torn
    size: int  # the file's size when scanned


def scan_part(path: str, config: RunSpec) -> Scan:
    """Finds a part file's committed blocks, reading it one line at a time.

    A block counts when every row of its range is present, in order, each line complete
    (newline-terminated) and valid JSON. Scanning stops at the first line that breaks this
    (a torn append leaves such a tail); what follows is not committed.
    """
    blocks: dict[int, tuple[int, int]] = {}
    if not os.path.isfile(path):
        return Scan(blocks, 0, 0)
    committed = pos = first = 0
    expected = -1  # index of the next row of the current block; -1 between blocks
    current = -1
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for line in f:
            if not line.endswith(b"\n"):
                break  # a line without its newline: torn
            try:
                row = json.loads(line)
                b, i = int(row["block"]), int(row["index"])
            except (ValueError, KeyError, TypeError):
                break
            if expected < 0:
                if not 0 <= b < config.num_blocks or b in blocks:
                    break
                current, first, expected = b, pos, config.block_range(b)[0]
            if b != current or i != expected:
                break
            pos += len(line)
            expected += 1
            if expected == config.block_range(current)[1]:
                blocks[current] = (first, pos)
                committed, expected = pos, -1
    return Scan(blocks, committed, size)


def _read_range(path: str, first: int, end: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(first)
        return f.read(end - first)


def scan_run(run_dir: str, config: RunSpec) -> dict[int, tuple[str, int, int]]:
    """Every committed block of the run: `{block: (part file, first byte, end byte)}`.

    Raises:
      ValueError: two part files hold the same block with different rows (a run that was
        mixed; it should never happen).
    """
    blocks: dict[int, tuple[str, int, int]] = {}
    parts = os.path.join(run_dir, "parts")
    names = sorted(os.listdir(parts)) if os.path.isdir(parts) else []
    for name in names:
        if not (name.startswith("rows-") and name.endswith(".jsonl")):
            continue
        path = os.path.join(parts, name)
        for b, (first, end) in scan_part(path, config).blocks.items():
            if b in blocks and _read_range(*blocks[b]) != _read_range(path, first, end):
                raise ValueError(f"--out {run_dir}: block {b} is held twice with different "
                                 "rows; the run is corrupt.")
            blocks[b] = (path, first, end)
    return blocks


def iter_rows(blocks: dict[int, tuple[str, int, int]]) -> Iterator[dict[str, Any]]:
    """The rows of `blocks` (from `scan_run`) in index order, one block in memory at a time."""
    for b in sorted(blocks):
        for line in _read_range(*blocks[b]).splitlines():
            yield json.loads(line)


def _rows(config: RunSpec, block: int, cert: Any, labels: np.ndarray | None
          ) -> list[dict[str, Any]]:
    start, stop = config.block_range(block)
    top = cert.selection_counts.argmax(axis=1)
    rows = []
    for j, i in enumerate(range(start, stop)):
        counts = cert.counts[j]
        nz = np.flatnonzero(counts)
        y = None if labels is None else int(labels[j])
        pred = int(cert.label[j])
        row: dict[str, Any] = {
            "index": i, "block": block, "label": y, "predict": pred,
            "correct": None if y is None else pred == y,
            "radius": float(cert.radius[j]), "pa_lower": float(cert.pa_lower[j]),
            "top": int(top[j]), "count": int(counts[top[j]]), "n": int(cert.n[j]),
            "counts": [[int(c), int(counts[c])] for c in nz],
        }
        if config.method == "sequential":
            row["pa_upper"] = float(cert.pa_upper[j])
            row["decision"] = int(cert.decision[j])
        rows.append(row)
    return rows


def _encode(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode("utf-8")


# --------------------------------------------------------------------------------------------
# running


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def certify_run(config: RunSpec, run_dir: str, apply_fn: Callable, params: Any,
                inputs: ArrayFile, labels: ArrayFile | None, *,
                devices: Sequence[jax.Device] | None = None, batch_size: int | None = None,
                chunk_size: int | None = None, progress: bool = True,
                should_stop: Callable[[], bool] | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Certifies every input of a run not yet committed, then (process 0) summarizes.

    Every process of a multi-controller job calls this with the same arguments; each takes
    every `jax.process_count()`-th block still to do, certifies it on its local devices
    (`devices`, default `jax.local_devices()`), appends its rows and fsyncs them. Process 0
    then merges all parts into `rows.jsonl` and writes `summary.json` and
    `certified_accuracy.png` (see `summarize`).

    Args:
      config: from `make_config` (or `read_config` for a resume).
      run_dir: the run directory (`--out`).
      apply_fn, params, inputs, labels: from `make_config`.
      devices: local devices to shard samples over.
      batch_size, chunk_size: see `rpjax.certify` (they change speed, never the rows).
      progress: a tqdm bar on process 0 (inputs/s, forward passes/s, ETA).
      should_stop: checked after each committed block; when it returns True the run stops there by
        raising KeyboardInterrupt (the CLI's graceful SIGTERM).
      log: where to print one-line status messages (default: nowhere).

    Returns:
      The summary on process 0, None on the others.
    """
    log = log or (lambda _msg: None)
    pid = jax.process_index()
    devices = tuple(devices) if devices is not None else tuple(jax.local_devices())
    if pid == 0:  # refuse a foreign --out before creating the lock in it (the other
        # processes check after process 0 wrote config.json, as before)
        prepare_run_dir(run_dir, config, write=False)
    else:
        run_dir = durable.check_output_dir("--out", run_dir)
    lock = lock_run(run_dir, pid)
    try:
        return _certify_locked(config, run_dir, apply_fn, params, inputs, labels,
                               devices=devices, batch_size=batch_size, chunk_size=chunk_size,
                               progress=progress, should_stop=should_stop, log=log)
    except OSError as err:
        raise WriteFailed(
            f"--out {run_dir}: writing the run failed ({err.strerror or err}"
            f"{f': {err.filename}' if err.filename else ''}); the committed blocks are kept: "
            "free space (or raise the limit) and rerun the same command to resume.") from None
    finally:
        os.close(lock)


def _certify_locked(config: RunSpec, run_dir: str, apply_fn: Callable, params: Any,
                    inputs: ArrayFile, labels: ArrayFile | None, *,
                    devices: tuple[jax.Device, ...], batch_size: int | None,
                    chunk_size: int | None, progress: bool,
                    should_stop: Callable[[], bool] | None,
                    log: Callable[[str], None]) -> dict[str, Any] | None:
    pid, nproc = jax.process_index(), jax.process_count()
    if pid == 0:
        existed = prepare_run_dir(run_dir, config, write=True)
    _barrier("rpjax-config")
    if pid != 0:
        existed = prepare_run_dir(run_dir, config, write=False)
    os.makedirs(os.path.join(run_dir, "parts"), exist_ok=True)
    done = scan_run(run_dir, config)
    _barrier("rpjax-scan")
    own = part_path(run_dir, pid)
    scan = scan_part(own, config)
    if scan.size > scan.committed_bytes:  # a torn tail: cut it off before appending
        durable.truncate_durably(own, scan.committed_bytes)
        log(f"process {pid}: discarded a torn tail of {scan.size - scan.committed_bytes} "
            f"bytes in {own}")
    todo = [b for b in range(config.num_blocks) if b not in done]
    mine = todo[pid::nproc]
    if existed:
        log(f"resuming {run_dir}: {len(done)} of {config.num_blocks} blocks committed, "
            f"{len(todo)} to do" + (f" ({len(mine)} on process {pid})" if nproc > 1 else ""))
    key = _validate.key("seed", config.seed)  # as rpjax.certify(key=seed): all 64 bits
    bar = None
    if progress and pid == 0 and mine:
        from tqdm.auto import tqdm

        total = sum(config.block_range(b)[1] - config.block_range(b)[0] for b in mine)
        bar = tqdm(total=total, unit="input", desc="certify", dynamic_ncols=True)
    passes = 0
    t_all = time.perf_counter()
    try:
        for b in mine:
            start, stop = config.block_range(b)
            inputs.check_unchanged()
            xb = inputs.read(start, stop)
            yb = None if labels is None else labels.read(start, stop)
            t0 = time.perf_counter()
            if config.method == "sequential":
                placement = Placement(devices=devices)
            else:
                placement = Placement(devices=devices, batch_size=batch_size,
                                      chunk_size=chunk_size)
            cert = _certify(apply_fn, params, xb, key, num_classes=config.num_classes,
                            config=config.smoothing, rule=config.rule, placement=placement,
                            ids=None if config.common_noise else np.arange(start, stop))
            seconds = time.perf_counter() - t0
            fp = int(cert.forward_passes)
            inputs.check_unchanged()  # the rows' inputs were read from the file hashed
            durable.append_durably(own, _encode(_rows(config, b, cert, yb)))
            durable.append_durably(part_path(run_dir, pid, "times"), (json.dumps(
                {"block": b, "seconds": seconds, "forward_passes": fp, "process": pid,
                 "devices": len(devices)}) + "\n").encode())
            passes += fp
            if bar is not None:
                bar.update(stop - start)
                rate = passes / max(time.perf_counter() - t_all, 1e-9)
                bar.set_postfix_str(f"{rate:.3g} fwd/s", refresh=False)
            if should_stop is not None and should_stop():
                raise KeyboardInterrupt
    finally:
        if bar is not None:
            bar.close()
    _barrier("rpjax-done")
    if pid != 0:
        return None
    return summarize(run_dir)


# --------------------------------------------------------------------------------------------
# summarizing


def radius_grid(config: RunSpec) -> np.ndarray:
    """Radii of the summary table: multiples of sigma/4 up to the largest certifiable one."""
    top = float(_stats.max_radius(config.n, config.alpha, config.sigma))
    steps = int(np.floor(top / (config.sigma / 4) + 1e-9))
    return np.round(np.arange(steps + 1) * config.sigma / 4, 12)


class Columns(NamedTuple):
    """The per-input numbers a summary needs, gathered from the rows (`[N]` arrays each)."""

    radius: np.ndarray  # float64
    certified: np.ndarray  # bool: not abstained
    ok: np.ndarray  # bool: correct (with labels), else certified
    used: np.ndarray  # int64: n0 + estimation samples used
    decision: np.ndarray  # int8 (sequential), else empty
    blocks: set[int]
    labels: bool


def columns(config: RunSpec, rows: Iterator[dict[str, Any]]) -> Columns:
    """Streams `rows` into `Columns` (memory: a few bytes per input)."""
    radius, certified, correct, used, decision = [], [], [], [], []
    blocks: set[int] = set()
    labels = None
    for r in rows:
        radius.append(r["radius"])
        certified.append(r["predict"] >= 0)
        labels = r["label"] is not None if labels is None else labels
        correct.append(bool(r["correct"]) if labels else r["predict"] >= 0)
        used.append(config.n0 + r["n"])
        if "decision" in r:
            decision.append(r["decision"])
        blocks.add(r["block"])
    return Columns(np.array(radius, np.float64), np.array(certified, bool),
                   np.array(correct, bool), np.array(used, np.int64),
                   np.array(decision, np.int8), blocks, bool(labels))


def summary_of(config: RunSpec, cols: Columns, times: list[dict[str, Any]]
               ) -> dict[str, Any]:
    """The numbers of `summary.json` from the rows' `Columns` and the block times."""
    num = cols.radius.shape[0]
    good = cols.ok & cols.certified
    grid = radius_grid(config)
    curve = [{"radius": float(r), "fraction": float(np.mean(good & (cols.radius >= r)))
              if num else None} for r in grid]
    by_block = {t["block"]: t for t in times}
    timed = [b for b in cols.blocks if b in by_block]
    seconds = sum(by_block[b]["seconds"] for b in timed)
    passes = sum(by_block[b]["forward_passes"] for b in timed)
    per_process: dict[int, float] = {}
    for b in timed:
        p = by_block[b].get("process", 0)
        per_process[p] = per_process.get(p, 0.0) + by_block[b]["seconds"]
    slowest = max(per_process.values(), default=0.0)
    inputs_timed = sum(config.block_range(b)[1] - config.block_range(b)[0] for b in timed)
    out: dict[str, Any] = {
        "complete": num == config.num_inputs, "inputs": num, "num_inputs": config.num_inputs,
        "sigma": config.sigma, "n0": config.n0, "n": config.n, "alpha": config.alpha,
        "method": config.method, "radius": config.radius,
        "max_radius": float(_stats.max_radius(config.n, config.alpha, config.sigma)),
        "labels": cols.labels,
        "measure": "certified accuracy" if cols.labels else "certified fraction (no labels)",
        "certified_accuracy" if cols.labels else "certified_fraction": curve,
        "average_certified_radius": float(np.mean(cols.radius * good)) if num else None,
        "accuracy" if cols.labels else "certified": float(np.mean(good)) if num else None,
        "abstain_rate": float(np.mean(~cols.certified)) if num else None,
        "samples": {"total": int(cols.used.sum()),
                    "per_input_mean": float(cols.used.mean()) if num else None,
                    "fixed_n_total": num * (config.n0 + config.n)},
        "throughput": {"seconds": seconds, "inputs_timed": inputs_timed,
                       "inputs_per_second": inputs_timed / seconds if seconds else None,
                       "forward_passes": passes,
                       "forward_passes_per_second": passes / seconds if seconds else None,
                       "processes": len(per_process),
                       "job_forward_passes_per_second": passes / slowest if slowest else None,
                       "note": "seconds: certification time summed over blocks and processes "
                               "(compilation in each process's first block included); "
                               "*_per_second: per process; job_*: all processes' forward "
                               "passes over the slowest process's seconds"},
    }
    if config.method == "sequential":
        out["decision"] = {"certified": int((cols.decision == 1).sum()),
                           "not_certified": int((cols.decision == 0).sum()),
                           "abstain": int((cols.decision == -1).sum())}
    return out


def plot_summary(config: RunSpec, cols: Columns, path: str) -> None:
    """`certified_accuracy.png`: the certified accuracy (or fraction) against the radius."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = cols.ok & cols.certified
    top = float(_stats.max_radius(config.n, config.alpha, config.sigma))
    grid = np.linspace(0.0, max(top, 1e-12) * 1.02, 400)
    curve = [np.mean(good & (cols.radius >= r)) for r in grid]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(grid, curve, drawstyle="steps-post")
    ax.axvline(top, ls=":", c="gray", label=f"largest radius at n = {config.n:,}")
    ax.set_xlabel("l2 radius (input units)")
    ax.set_ylabel("certified accuracy" if cols.labels else "certified fraction")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{cols.radius.shape[0]:,} inputs, sigma {config.sigma:g}, n {config.n:,}, "
                 f"alpha {config.alpha:g}, {config.method}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with durable.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _times(run_dir: str) -> list[dict[str, Any]]:
    times: list[dict[str, Any]] = []
    parts = os.path.join(run_dir, "parts")
    for name in sorted(os.listdir(parts)) if os.path.isdir(parts) else []:
        if name.startswith("times-") and name.endswith(".jsonl"):
            with open(os.path.join(parts, name), encoding="utf-8") as f:
                for line in f:
                    try:
                        times.append(json.loads(line))
                    except ValueError:
                        continue  # a torn timing line: throughput only
    return times


def summarize(run_dir: str) -> dict[str, Any]:
    """`rpjax summarize RUN/`: rewrites `rows.jsonl`, `summary.json` and the plot from the
    committed blocks (a partial run is summarized as such: `complete` False).

    Returns:
      The summary dict (also written to `RUN/summary.json`).

    Raises:
      ValueError naming `RUN`: no run there.
    """
    config = read_config(run_dir)
    blocks = scan_run(run_dir, config)
    durable.atomic_write(os.path.join(run_dir, "rows.jsonl"),
                         (_read_range(*blocks[b]) for b in sorted(blocks)))
    cols = columns(config, iter_rows(blocks))
    summary = summary_of(config, cols, _times(run_dir))
    durable.atomic_write(os.path.join(run_dir, "summary.json"),
                         json.dumps(summary, indent=2) + "\n")
    if summary["inputs"]:
        plot_summary(config, cols, os.path.join(run_dir, "certified_accuracy.png"))
    return summary
