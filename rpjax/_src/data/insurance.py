"""The Medical Cost Personal dataset (bundled) and loaders for CSVs of the same schema.

Provenance: `rpjax/data/_files/PROVENANCE.md` (Brett Lantz, *Machine Learning with R*;
described by its mirror as public domain; sha256 505c1cbc...8281).

Features: `age`, `bmi`, `children` standardized with the population mean and std of the data
loaded; `sex`, `smoker`, `region` one-hot. That is 11 features in the order `FEATURES`.
The per-feature mean and std are kept so a radius in standardized units converts to raw units
(one standardized BMI unit = `std[bmi]` BMI points). User CSVs are checked row by row
(field count, numeric values finite and within the generous bounds `RANGES`, known
categories); every error names the file and the line.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import hashlib
import io
import math
import os
from importlib import resources
from typing import Any

import numpy as np

from rpjax._src import validate as _validate

NUMERIC = ("age", "bmi", "children")
CATEGORIES = {
    "sex": ("female", "male"),
    "smoker": ("no", "yes"),
    "region": ("northeast", "northwest", "southeast", "southwest"),
}
COLUMNS = ("age", "sex", "bmi", "children", "smoker", "region", "charges")
FEATURES = (*NUMERIC, *(f"{c}_{v}" for c, vs in CATEGORIES.items() for v in vs))
SHA256 = "505c1cbc2e63d0363bac59501563df2530aadf4cdb9cfee226f4ef32f5468281"
DEFAULT_THRESHOLD = 33.4
# Generous plausibility bounds (inclusive) of the numeric columns, in raw units: age in years,
# bmi in kg/m^2, children a count, charges in USD. They reject typos and sentinel values
# (1e308, -1, 999), which would otherwise distort the standardization of every row.
RANGES = {"age": (0.0, 130.0), "bmi": (5.0, 250.0), "children": (0.0, 30.0),
          "charges": (0.0, 1e9)}
WHOLE = ("children",)


@dataclasses.dataclass(frozen=True)
class InsuranceData:
    """Encoded insurance records.

    Attributes:
      x: `[N, 11]` float32 features (standardized numeric, one-hot categorical).
      features: the 11 feature names, in column order.
      mean: `[11]` float64 raw-unit mean per feature (0 for one-hot columns).
      std: `[11]` float64 raw-unit population std per feature (1 for one-hot columns).
      bmi: `[N]` float64 raw BMI (kg/m^2).
      charges: `[N]` float64 raw charges (USD); not used as a feature.
    """

    x: np.ndarray
    features: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    bmi: np.ndarray
    charges: np.ndarray

    @property
    def bmi_index(self) -> int:
        """Column of BMI in `x`."""
        return self.features.index("bmi")

    @property
    def bmi_std(self) -> float:
        """BMI points per standardized unit."""
        return float(self.std[self.bmi_index])

    def labels(self, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """`[N]` int32 recommendation labels: 1 iff BMI >= `threshold` (kg/m^2)."""
        return (self.bmi >= threshold).astype(np.int32)

    def standardize_bmi(self, bmi_raw) -> np.ndarray:
        """Raw BMI (kg/m^2) -> standardized units."""
        i = self.bmi_index
        return (np.asarray(bmi_raw, np.float64) - self.mean[i]) / self.std[i]


def _path(path: Any) -> str:
    """`path` as a str, or a TypeError naming the parameter."""
    if isinstance(path, bool) or not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got path={path!r} "
                        f"({type(path).__name__}).")
    return os.fsdecode(path)


def _decode(raw: bytes, source: str) -> str:
    """UTF-8 bytes (an optional UTF-8 byte-order mark is stripped) -> text, naming `source`."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ValueError(f"{source}: the file is UTF-16 text (it starts with a UTF-16 byte-order "
                         f"mark); save it as UTF-8.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise ValueError(f"{source}: not UTF-8 text: byte {raw[err.start]:#04x} at offset "
                         f"{err.start} (line {line}) cannot be decoded ({err.reason}); save the "
                         f"file as UTF-8.") from None


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _parse(text: str, source: str) -> tuple[dict[str, list[str]], list[int]]:
    """CSV text -> the stripped string values of each column of `COLUMNS`, and the file line of
    each data row (the header is line 1). Blank lines are skipped; every other row must have
    exactly as many fields as the header."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise ValueError(f"{source}: empty file (or blank first line); expected a header "
                             f"row {list(COLUMNS)}.")
        duplicated = sorted({h for h in header if header.count(h) > 1})
        if duplicated:
            raise ValueError(f"{source}: duplicated column(s) {_clip(repr(duplicated))} in "
                             f"the header {_clip(repr(header))}.")
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise ValueError(
                f"{source}: missing column(s) {missing}; expected the columns {list(COLUMNS)}, "
                f"found {_clip(repr(header))}."
            )
        where = [header.index(c) for c in COLUMNS]
        cols: dict[str, list[str]] = {c: [] for c in COLUMNS}
        lines: list[int] = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                kind = "extra" if len(row) > len(header) else "missing"
                raise ValueError(f"{source}, line {reader.line_num}: {len(row)} fields for "
                                 f"{len(header)} columns ({kind} fields): {_clip(repr(row))}.")
            for c, j in zip(COLUMNS, where, strict=True):
                cols[c].append(row[j].strip())
            lines.append(reader.line_num)
    except csv.Error as err:
        raise ValueError(f"{source}, line {reader.line_num}: malformed CSV: {err}.") from None
    if not lines:
        raise ValueError(f"{source}: no data rows.")
    return cols, lines


def _numeric(cols, lines, name, source) -> np.ndarray:
    """A column as float64, each value checked against `RANGES[name]` (and whole numbers for
    `WHOLE`), naming the file line of the first bad value."""
    lo, hi = RANGES[name]
    values = np.empty(len(lines), np.float64)
    for i, (text, line) in enumerate(zip(cols[name], lines, strict=True)):
        where = f"{source}, line {line}: column {name!r}"
        try:
            v = float(text)
        except ValueError:
            raise ValueError(f"{where} must be numeric, got {_clip(repr(text))}.") from None
        if not math.isfinite(v):
            raise ValueError(f"{where} must be finite, got {text!r}.")
        if not lo <= v <= hi:
            raise ValueError(f"{where} must lie in [{lo:g}, {hi:g}], got {text!r}.")
        if name in WHOLE and v != round(v):
            raise ValueError(f"{where} must be a whole number, got {text!r}.")
        values[i] = v
    return values


def _encode(parsed, source) -> InsuranceData:
    cols, lines = parsed
    numeric = np.stack([_numeric(cols, lines, c, source) for c in NUMERIC], axis=1)
    charges = _numeric(cols, lines, "charges", source)
    mean, std = numeric.mean(axis=0), numeric.std(axis=0)
    constant = [c for c, s in zip(NUMERIC, std, strict=True) if not s > 0]
    if constant:
        raise ValueError(f"{source}: column(s) {constant} take a single value over all "
                         f"{len(lines)} rows; cannot standardize.")
    blocks = [(numeric - mean) / std]
    for name, values in CATEGORIES.items():
        col = np.array(cols[name])
        known = np.isin(col, values)
        if not known.all():
            i = int(np.argmin(known))
            bad = sorted({str(v) for v in col[~known]})
            raise ValueError(f"{source}, line {lines[i]}: column {name!r} has unknown values "
                             f"{_clip(repr(bad))} (first {str(col[i])!r}); expected "
                             f"{list(values)}.")
        blocks.append((col[:, None] == np.array(values)[None, :]).astype(np.float64))
    k = len(FEATURES) - len(NUMERIC)
    return InsuranceData(
        x=np.concatenate(blocks, axis=1).astype(np.float32),
        features=FEATURES,
        mean=np.concatenate([mean, np.zeros(k)]),
        std=np.concatenate([std, np.ones(k)]),
        bmi=numeric[:, 1].copy(),
        charges=charges,
    )


def load_insurance(path: str | os.PathLike | None = None) -> InsuranceData:
    """Loads the bundled Medical Cost Personal dataset, or a user CSV of the same schema.

    `path=None` loads the bundled file (1,338 rows), after checking its sha256. A user CSV
    has the columns `age,sex,bmi,children,smoker,region,charges`: UTF-8 text (a leading UTF-8
    byte-order mark, as Excel writes, is stripped); other columns are allowed and ignored;
    blank lines are skipped. Every row has exactly as many fields as the header. Numeric
    values must lie in the generous bounds `RANGES` (age in years [0, 130], bmi in kg/m^2
    [5, 250], children [0, 30] a whole number, charges in USD [0, 1e9]), which catch typos and
    sentinel values such as 1e308 or -1, not outliers.

    Args:
      path: the CSV file, or None for the bundled data.

    Returns:
      `InsuranceData` with the numeric features standardized by the loaded file's mean and
      std.

    Raises:
      TypeError: if `path` is not None, a str or os.PathLike.
      FileNotFoundError: if `path` does not exist.
      RuntimeError: if the bundled file does not match its recorded sha256.
      ValueError: on undecodable bytes, a missing or duplicated column, a row with extra or
        missing fields, a non-numeric, non-finite or out-of-range value, a constant numeric
        column or an unknown category; the message names the path, the line and the column.
    """
    if path is None:
        source = "insurance.csv"
        raw = resources.files("rpjax.data").joinpath("_files/insurance.csv").read_bytes()
        if hashlib.sha256(raw).hexdigest() != SHA256:
            raise RuntimeError("the bundled insurance.csv does not match its recorded sha256.")
    else:
        source = _path(path)
        with open(source, "rb") as f:
            raw = f.read()
    return _encode(_parse(_decode(raw, source), source), source)


def train_test_split(num: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of `range(num)` into sorted train and test indices.

    The test set has `max(1, round(test_fraction * num))` indices and the training set the
    rest; both must be non-empty.

    Raises:
      TypeError, ValueError: naming the argument: `num` not an integer >= 2, `test_fraction`
        outside (0, 1) or leaving no training index, `seed` not a non-negative integer.
    """
    num = _validate.integer("num", num, minimum=2)
    test_fraction = _validate.open_unit_interval("test_fraction", test_fraction)
    seed = _validate.integer("seed", seed, minimum=0)
    n_test = max(1, int(round(test_fraction * num)))
    if n_test >= num:
        raise ValueError(f"test_fraction={test_fraction!r} of num={num} examples leaves no "
                         f"training example (test set of {n_test}); use a smaller "
                         "test_fraction or more examples.")
    perm = np.random.default_rng(seed).permutation(num)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
