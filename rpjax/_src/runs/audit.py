"""`rpjax audit`: `rpjax.privacy.audit` of a user's model over a data file, durable and resumable.

The model and data follow `rpjax certify`'s conventions (`--model MODULE:FACTORY`, optional
`--checkpoint`; a `.npz` with the inputs `x` and optional labels `y`, checked the same way:
floating, finite, within float32, labels in range), plus what an audit needs to name and
scale the sensitive attributes:

- `columns`: `[d]` strings, the feature names. A one-hot group is the columns named
  `NAME=VALUE` (e.g. `region=northeast`); `--sensitive NAME` names a column (continuous) or a
  group (categorical).
- `offset`, `scale` (optional, `[d]` floats; default 0 and 1): raw = offset + scale * x, so a
  radius in input units is `scale` raw units.
- `low`, `high` (optional, `[d]` floats, NaN where not given): a continuous attribute's sweep
  range in raw units (default: the smallest and largest raw value of the audited rows).
- `ids` (optional, `[N]` non-negative integers below 2**32; default the row numbers): each
  row's example id, which keys its noise (`rpjax.certify(ids=)`), so that a person audited
  from another file gets the same noise.

The noise key is `fold_in(key(--seed), 1)`, the certification stream of `rpjax reproduce`'s
experiments with the same seed: with the RAP experiment's model, people (as `ids`) and
settings, `rpjax audit --seed 0` gives its numbers (`tests/test_audit_cli.py`).

`rpjax.data.TabularData.save` writes such a file. Every check runs before anything is written:
an unknown column, a group that is not one-hot, a constant attribute (no sweep range), a NaN
are one-line errors, and `--out` is not created.

Durability: `OUT/config.json` (everything that fixes the result: the settings, the model's
parameter hash and the data file's sha256) is written first; each finished section of the
audit is written to `OUT/parts/` atomically (`rpjax._src.durable`). Rerunning the same command
(after a crash or kill -9) reads the finished sections and computes the rest; since each
section is a deterministic function of the settings, the report equals that of an
uninterrupted run. A different configuration in `OUT` is refused, and so is a second
`rpjax audit` writing to the same `OUT` (`flock` on `OUT/.lock`). `report.md`,
`summary.json` and the plots are written at the end, atomically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import zipfile
from collections.abc import Iterator, MutableMapping
from typing import Any

import jax
import numpy as np

from rpjax._src import durable
from rpjax._src import validate as _validate
from rpjax._src.runs.data import check_data, open_data
from rpjax._src.runs.model import load_model, model_classes, params_sha256
from rpjax.privacy import AttributeSweep, AuditConfig, CategoricalAttribute, audit

FORMAT = 1
CONFIG = "config.json"
PARTS = "parts"
LOCK = ".lock"
OUTPUTS = ("report.md", "summary.json")
FLAGS = {"sigmas": "--sigma", "ns": "--n", "n0": "--n0", "alpha": "--alpha", "mode": "--mode",
         "ks": "--k", "max_advantage": "--max-advantage", "attack_people": "--attack-people",
         "attack_queries": "--attack-queries", "attack_grid": "--attack-grid",
         "attacker_samples": "--attacker-samples", "shifts": "--shift",
         "num_points": "--grid-points", "refine_steps": "--refine-steps"}


class _PartStore(MutableMapping):
    """The finished sections of an audit, one JSON file each under `OUT/parts/`."""

    def __init__(self, directory: str):
        self.directory = directory

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, hashlib.sha256(key.encode()).hexdigest()[:24]
                            + ".json")

    def __getitem__(self, key: str) -> Any:
        path = self._path(key)
        if not os.path.isfile(path):
            raise KeyError(key)
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        if record.get("section") != key:
            raise KeyError(key)
        return record["value"]

    def __contains__(self, key: object) -> bool:
        try:
            self[key]  # type: ignore[index]
        except (KeyError, ValueError):
            return False
        return True

    def __setitem__(self, key: str, value: Any) -> None:
        os.makedirs(self.directory, exist_ok=True)
        durable.atomic_write(self._path(key), json.dumps({"section": key, "value": value},
                                                         allow_nan=True))

    def __delitem__(self, key: str) -> None:
        os.remove(self._path(key))

    def __iter__(self) -> Iterator[str]:
        if not os.path.isdir(self.directory):
            return iter(())
        keys = []
        for name in sorted(os.listdir(self.directory)):
            if name.endswith(".json") and not name.startswith("."):
                with open(os.path.join(self.directory, name), encoding="utf-8") as f:
                    keys.append(json.load(f)["section"])
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _read_meta(path: str, d: int) -> dict[str, Any]:
    """`columns` (required), `offset`, `scale`, `low`, `high` and `ids` of the data file."""
    if not zipfile.is_zipfile(path):
        raise ValueError(f"data {path}: an audit needs a .npz with the feature names "
                         "'columns' beside the inputs 'x' (rpjax.data.TabularData.save "
                         "writes one).")
    with np.load(path, allow_pickle=False) as z:
        names = list(z.files)
        if "columns" not in names:
            raise ValueError(f"data {path}: no 'columns' array (the [d] feature names that "
                             f"--sensitive refers to); it has {names}.")
        meta = {"columns": z["columns"]}
        for k, default in (("offset", 0.0), ("scale", 1.0), ("low", np.nan),
                           ("high", np.nan)):
            meta[k] = np.asarray(z[k], np.float64) if k in names else np.full(d, default)
        meta["ids"] = np.asarray(z["ids"]) if "ids" in names else None
    cols = meta["columns"]
    if cols.dtype.kind not in "US" or cols.shape != (d,):
        raise ValueError(f"data {path}: 'columns' must be [{d}] strings (one name per input "
                         f"column), got {cols.dtype} of shape {cols.shape}.")
    meta["columns"] = [str(c) for c in cols]
    dup = sorted({c for c in meta["columns"] if meta["columns"].count(c) > 1})
    if dup:
        raise ValueError(f"data {path}: duplicated column names {dup}.")
    for k in ("offset", "scale", "low", "high"):
        if meta[k].shape != (d,):
            raise ValueError(f"data {path}: '{k}' must have shape [{d}], got {meta[k].shape}.")
    for k in ("offset", "scale"):
        if not np.isfinite(meta[k]).all():
            raise ValueError(f"data {path}: '{k}' must be finite.")
    if not (meta["scale"] > 0).all():
        j = int(np.argmin(meta["scale"] > 0))
        raise ValueError(f"data {path}: 'scale' must be > 0, got {meta['scale'][j]} for "
                         f"column {meta['columns'][j]!r}.")
    return meta


def sensitive_attributes(names: list[str], x: np.ndarray, meta: dict[str, Any], path: str, *,
                         num_points: int, refine_steps: int) -> dict[str, Any]:
    """The audit's attributes for `--sensitive NAME ...`; ValueError naming `--sensitive`."""
    columns = meta["columns"]
    out: dict[str, Any] = {}
    if not names:
        raise ValueError("--sensitive: give at least one column or one-hot group.")
    for name in names:
        where = f"--sensitive {name}"
        if name in out:
            raise ValueError(f"{where}: given twice.")
        group = [j for j, c in enumerate(columns) if c.startswith(f"{name}=")]
        if name in columns:
            j = columns.index(name)
            raw = meta["offset"][j] + meta["scale"][j] * x[:, j].astype(np.float64)
            low, high = meta["low"][j], meta["high"][j]
            if np.isnan(low):
                low = float(raw.min())
            if np.isnan(high):
                high = float(raw.max())
            if not low < high:
                raise ValueError(f"{where}: column {name!r} is constant ({raw[0]:.6g} in every "
                                 f"audited row of {path}) and the file gives no sweep range "
                                 "(low < high): there is nothing to sweep.")
            tol = 1e-6 * max(1.0, abs(low), abs(high))
            if raw.min() < low - tol or raw.max() > high + tol:
                raise ValueError(f"{where}: values [{raw.min():.6g}, {raw.max():.6g}] leave "
                                 f"the file's sweep range [{low:.6g}, {high:.6g}].")
            out[name] = AttributeSweep(index=j, offset=float(meta["offset"][j]),
                                       scale=float(meta["scale"][j]), low=float(low),
                                       high=float(high), num_points=num_points,
                                       refine_steps=refine_steps)
        elif group:
            if len(group) < 2:
                raise ValueError(f"{where}: the group {name}=* has one column "
                                 f"({columns[group[0]]!r}); a one-hot group needs two or more.")
            attr = CategoricalAttribute(columns=tuple(group), categories=tuple(
                columns[j].split("=", 1)[1] for j in group))
            try:
                cats = attr.decode(x, where)
            except ValueError as err:
                raise ValueError(str(err).replace(f"the group's columns {list(group)}",
                                                  f"the columns {name}=* of {path}")) from None
            if np.unique(cats).size < 2 and len(x) > 1:
                raise ValueError(f"{where}: every audited row of {path} is in category "
                                 f"{attr.categories[int(cats[0])]!r}: the attribute is "
                                 "constant, there is nothing to audit.")
            out[name] = attr
        else:
            shown = ", ".join(columns[:12]) + (", ..." if len(columns) > 12 else "")
            raise ValueError(f"{where}: no column {name!r} and no one-hot group {name}=* in "
                             f"{path} (columns: {shown}).")
    return out


def _config_error(err: Exception) -> Exception:
    text = str(err)
    word = text.split(" ", 1)[0].split("[", 1)[0].rstrip(":")
    flag = FLAGS.get(word)
    return type(err)(f"{flag}: {text}") if flag else err


def prepare(*, model: str, data: str, sensitive: list[str], out: str,
            checkpoint: str | None = None, people: int | None = None, seed: int = 0,
            settings: dict[str, Any]) -> dict[str, Any]:
    """Validates everything, loads the model and the data; writes nothing.

    Returns a dict with the audit's arguments and `config` (what `config.json` holds).

    Raises:
      ValueError / TypeError naming the flag (`--model`, `--data`, `--sensitive`, ...).
    """
    durable.check_output_dir("--out", out, create=False)
    grid = {k: settings.pop(k) for k in ("num_points", "refine_steps")}
    shifts = settings.pop("shifts", {}) or {}
    try:
        for k, v in grid.items():
            _validate.integer(k, v, minimum=2 if k == "num_points" else 0)
        config = AuditConfig(shifts=shifts, **settings)
    except (ValueError, TypeError) as err:
        raise _config_error(err) from None
    seed = _validate.integer("seed", seed, minimum=0)
    _validate.key("seed", seed)
    inputs, labels = open_data(data)
    if not np.issubdtype(inputs.dtype, np.floating) or len(inputs.shape) != 2:
        check_data(inputs, None, 2)
        raise ValueError(f"data {data}: an audit needs tabular inputs x [N, d], got shape "
                         f"{inputs.shape}.")
    apply_fn, params = load_model(model, checkpoint)
    num_classes = model_classes(model, apply_fn, params, inputs.shape[1:], inputs.dtype)
    check_data(inputs, labels, num_classes)
    meta = _read_meta(data, inputs.shape[1])
    total = inputs.shape[0]
    if people is not None:
        people = _validate.integer("people", people, minimum=1)
    count = total if people is None else min(people, total)
    x = inputs.read(0, count).astype(np.float32)
    ids = meta["ids"]
    if ids is not None:
        if ids.shape != (total,) or ids.dtype.kind not in "iu":
            raise ValueError(f"data {data}: 'ids' must be [{total}] integers (each row's "
                             f"example id, which keys its noise), got {ids.dtype} of shape "
                             f"{ids.shape}.")
        try:
            ids = _validate.ids("ids", ids[:count], count)
        except (TypeError, ValueError) as err:
            raise type(err)(f"data {data}: {err}") from None
    y = None if labels is None else labels.read(0, count).astype(np.int64)
    attrs = sensitive_attributes(list(sensitive), x, meta, data, **grid)
    for name in shifts:
        if not isinstance(attrs.get(name), AttributeSweep):
            raise ValueError(f"--shift {name}: not a continuous attribute given with "
                             "--sensitive.")
    inputs.check_unchanged()
    record = {
        "format": FORMAT, "model": model,
        "checkpoint": None if checkpoint is None else os.path.abspath(checkpoint),
        "model_sha256": params_sha256(params), "data": os.path.abspath(data),
        "data_sha256": durable.file_sha256(data), "people": int(count), "seed": seed,
        "key": "fold_in(key(seed), 1)",
        "sensitive": list(sensitive), "grid": grid, "audit": config.to_dict(),
        "num_classes": num_classes,
    }
    return {"apply_fn": apply_fn, "params": params, "x": x, "labels": y, "sensitive": attrs,
            "config": config, "seed": seed, "ids": ids, "record": record,
            "columns": meta["columns"]}


def begin(out: str, record: dict[str, Any]) -> bool:
    """Writes `OUT/config.json`, or checks that the one there is `record`'s; True when a
    previous run is being continued. Raises ValueError naming `--out` on a different one."""
    path = os.path.join(out, CONFIG)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if old != json.loads(json.dumps(record)):
            differ = sorted(k for k in set(old) | set(record)
                            if old.get(k) != json.loads(json.dumps(record.get(k))))
            raise ValueError(f"--out {out} holds an rpjax audit with other settings "
                             f"(differing: {', '.join(differ)}); use another --out.")
        return True
    if os.path.isdir(out) and any(not n.startswith(".") for n in os.listdir(out)):
        raise ValueError(f"--out {out} is not empty and holds no rpjax audit; use an empty "
                         "or new directory.")
    os.makedirs(out, exist_ok=True)
    durable.atomic_write(path, json.dumps(record, indent=1) + "\n")
    return False


def lock(out: str) -> int:
    """Takes `OUT/.lock` (`flock`, exclusive, non-blocking); returns the descriptor, which
    holds the lock until closed or the process ends. ValueError naming `--out` if another
    `rpjax audit` holds it."""
    import fcntl

    path = os.path.join(out, LOCK)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ValueError(f"--out {out}: another rpjax audit is writing to it (it holds "
                         f"{path}); wait for it to finish, or use another --out.") from None
    return fd


def run(prepared: dict[str, Any], out: str, *, progress: bool = True) -> dict[str, str]:
    """Runs (or continues) the audit into `out` (holding its lock); returns the paths
    written."""
    rec = prepared["record"]
    begin(out, rec)
    fd = lock(out)
    try:
        return _run(prepared, out, progress)
    finally:
        os.close(fd)


def _run(prepared: dict[str, Any], out: str, progress: bool) -> dict[str, str]:
    rec = prepared["record"]
    result = audit(prepared["apply_fn"], prepared["params"], prepared["x"],
                   sensitive=prepared["sensitive"], config=prepared["config"],
                   key=jax.random.fold_in(jax.random.key(prepared["seed"]), 1),
                   labels=prepared["labels"], ids=prepared["ids"],
                   checkpoint=_PartStore(os.path.join(out, PARTS)), progress=progress)
    units = {}
    about = (f"Model `{rec['model']}` (parameters sha256 {rec['model_sha256'][:12]}...); data "
             f"`{os.path.basename(rec['data'])}` (sha256 {rec['data_sha256'][:12]}...), the "
             f"first {rec['people']} rows; seed {rec['seed']}. Raw units: raw = offset + "
             "scale * input, from the data file.")
    return result.write(out, title="rpjax audit", about=about, units=units,
                        extra={"run": {k: v for k, v in rec.items()}})


def settings_of(**kwargs: Any) -> dict[str, Any]:
    """`AuditConfig` fields from the command line's values (None: the default)."""
    fields = {f.name for f in dataclasses.fields(AuditConfig)} | {"num_points",
                                                                 "refine_steps"}
    return {k: v for k, v in kwargs.items() if k in fields and v is not None}
