"""The Medical Cost Personal dataset (bundled) and loaders for CSVs of the same schema.

Provenance: `rpjax/data/_files/PROVENANCE.md` (Brett Lantz, *Machine Learning with R*;
described by its mirror as public domain; sha256 505c1cbc...8281).

Features: `age`, `bmi`, `children` standardized with the population mean and std of the data
loaded; `sex`, `smoker`, `region` one-hot. That is 11 features in the order `FEATURES`.
The per-feature mean and std are kept so a radius in standardized units converts to raw units
(one standardized BMI unit = `std[bmi]` BMI points).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
from importlib import resources

import numpy as np

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


def _parse(text: str, source: str) -> dict[str, list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{source}: missing column(s) {missing}; expected the columns {list(COLUMNS)}, "
            f"found {list(header)}."
        )
    cols: dict[str, list[str]] = {c: [] for c in COLUMNS}
    for row in reader:
        for c in COLUMNS:
            cols[c].append((row[c] or "").strip())
    if not cols["age"]:
        raise ValueError(f"{source}: no data rows.")
    return cols


def _numeric(cols, name, source) -> np.ndarray:
    try:
        values = np.array([float(v) for v in cols[name]], np.float64)
    except ValueError as err:
        raise ValueError(f"{source}: column {name!r} must be numeric: {err}") from err
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{source}: column {name!r} contains non-finite values.")
    return values


def _encode(cols, source) -> InsuranceData:
    n = len(cols["age"])
    numeric = np.stack([_numeric(cols, c, source) for c in NUMERIC], axis=1)
    mean, std = numeric.mean(axis=0), numeric.std(axis=0)
    if np.any(std == 0):
        raise ValueError(f"{source}: a numeric column is constant; cannot standardize.")
    blocks = [(numeric - mean) / std]
    for name, values in CATEGORIES.items():
        col = np.array(cols[name])
        bad = sorted(set(col) - set(values))
        if bad:
            raise ValueError(f"{source}: column {name!r} has unknown values {bad}; "
                             f"expected {list(values)}.")
        blocks.append((col[:, None] == np.array(values)[None, :]).astype(np.float64))
    k = len(FEATURES) - len(NUMERIC)
    return InsuranceData(
        x=np.concatenate(blocks, axis=1).astype(np.float32),
        features=FEATURES,
        mean=np.concatenate([mean, np.zeros(k)]),
        std=np.concatenate([std, np.ones(k)]),
        bmi=numeric[:, 1].copy(),
        charges=_numeric(cols, "charges", source) if n else np.zeros(0),
    )


def load_insurance_csv(path: str | os.PathLike) -> InsuranceData:
    """Loads a user CSV with the columns `age,sex,bmi,children,smoker,region,charges`.

    Raises:
      FileNotFoundError: if `path` does not exist.
      ValueError: on a missing column, a non-numeric value or an unknown category, naming it.
    """
    with open(path, encoding="utf-8") as f:
        return _encode(_parse(f.read(), str(path)), str(path))


def load_insurance() -> InsuranceData:
    """Loads the bundled Medical Cost Personal dataset (1,338 rows), checking its sha256."""
    raw = resources.files("rpjax.data").joinpath("_files/insurance.csv").read_bytes()
    if hashlib.sha256(raw).hexdigest() != SHA256:
        raise RuntimeError("the bundled insurance.csv does not match its recorded sha256.")
    return _encode(_parse(raw.decode("utf-8"), "insurance.csv"), "insurance.csv")


def train_test_split(num: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of `range(num)` into sorted train and test indices."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}.")
    perm = np.random.default_rng(seed).permutation(num)
    n_test = max(1, int(round(test_fraction * num)))
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])
