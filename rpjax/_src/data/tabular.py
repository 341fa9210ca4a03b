"""Real tabular data sets with sensitive attributes, for `rpjax.privacy.audit`.

Three data sets, each read offline from a file that a pip package ships inside its wheel
(no download at run time; the file's sha256 is checked against the value recorded here):

- `"insurance"`: the Medical Cost Personal data bundled with rpjax (1,338 people); label 1
  iff BMI >= 33.4 (the RAP experiment's task); sensitive: `bmi` (kg/m^2), `age` (years),
  `sex`, `region`.
- `"fair"`: Fair's (1978) extramarital-affairs survey, shipped by statsmodels
  (`statsmodels/datasets/fair/fair.csv`, 6,366 women); label 1 iff `affairs > 0`;
  sensitive: `age` (years), `religious` (1 = not to 4 = strongly), `occupation` (6 codes).
- `"diabetes"`: Efron et al.'s (2004) diabetes data, shipped by scikit-learn
  (`sklearn/datasets/data/diabetes_data_raw.csv.gz` and `diabetes_target.csv.gz`, 442
  patients, raw units); label 1 iff the disease progression one year after baseline is above
  its median; sensitive: `age` (years), `bmi` (kg/m^2), `sex` (coded 1 / 2 in the source,
  which does not say which is which).

Provenance and licences: `rpjax/data/_files/PROVENANCE.md`.

Encoding: numeric columns are standardized with the population mean and std of the data
(`raw = offset + scale * x`); categorical columns are one-hot (0 / 1, offset 0, scale 1),
named `NAME=VALUE`. A `TabularData` describes each sensitive attribute (`SensitiveColumn`) and
turns it into the audit's specification (`attribute`: an `AttributeSweep` for a continuous
attribute, a `CategoricalAttribute` for a one-hot group).
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import importlib.util
import io
import os
import zipfile
from typing import Any

import numpy as np

from rpjax._src import durable
from rpjax._src.data import insurance as _insurance
from rpjax.privacy import AttributeSweep, CategoricalAttribute

DATASETS = ("insurance", "fair", "diabetes")
KINDS = ("continuous", "categorical")

# sha256 of the files as shipped by the packages (the .gz files: of their decompressed bytes)
SHA256 = {
    "fair": {"statsmodels/datasets/fair/fair.csv":
             "fd5f3f094a34fc35ca346a14c359e046ed27843038d6921efcd50a7ab21f6af0"},
    "diabetes": {
        "sklearn/datasets/data/diabetes_data_raw.csv.gz":
        "86badf50b4f9436ddd1e497dc0ae1b93166f8120221ee7dca4634fe849f3be7c",
        "sklearn/datasets/data/diabetes_target.csv.gz":
        "244713a551f62a291a354212d8a048adec6cb1244b2bc44e66a0698f5006d26d",
    },
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SensitiveColumn:
    """One sensitive attribute of a `TabularData`.

    Attributes:
      name: the attribute (`bmi`, `region`, ...).
      kind: "continuous" (one column, raw units `units`) or "categorical" (a one-hot group).
      columns: its column indices in `x` (one for a continuous attribute).
      units: raw units of a continuous attribute ("" for a categorical one).
      categories: the category names of a one-hot group, in column order.
      low, high: the sweep range of a continuous attribute, raw units.
    """

    name: str
    kind: str
    columns: tuple[int, ...]
    units: str = ""
    categories: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class TabularData:
    """A real tabular data set encoded for a model, with its sensitive attributes.

    Attributes:
      name: the data set (one of `DATASETS`).
      x: `[N, d]` float32 model inputs (standardized numeric, one-hot categorical).
      y: `[N]` int32 labels (two classes); `target` says what 1 means.
      features: the d column names (one-hot columns are `NAME=VALUE`).
      offset, scale: `[d]` float64, raw = offset + scale * x (0 and 1 for one-hot columns).
      sensitive: the sensitive attributes.
      target: what label 1 means.
      source: where the file came from (package, version, path); sha256: of its contents.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    features: tuple[str, ...]
    offset: np.ndarray
    scale: np.ndarray
    sensitive: tuple[SensitiveColumn, ...]
    target: str
    source: str
    sha256: str

    def column(self, name: str) -> SensitiveColumn:
        """The sensitive attribute `name` (ValueError naming `name` if there is none)."""
        for s in self.sensitive:
            if s.name == name:
                return s
        raise ValueError(f"name {name!r} is not a sensitive attribute of {self.name!r} "
                         f"(it has {[s.name for s in self.sensitive]}).")

    def attribute(self, name: str, *, num_points: int = 51,
                  refine_steps: int = 10) -> AttributeSweep | CategoricalAttribute:
        """The audit's specification of attribute `name`: an `AttributeSweep` over its range
        (`num_points`, `refine_steps` as there) or a `CategoricalAttribute`."""
        s = self.column(name)
        if s.kind == "categorical":
            return CategoricalAttribute(columns=s.columns, categories=s.categories)
        j = s.columns[0]
        return AttributeSweep(index=j, offset=float(self.offset[j]), scale=float(self.scale[j]),
                              low=s.low, high=s.high, num_points=num_points,
                              refine_steps=refine_steps)

    def values(self, name: str) -> np.ndarray:
        """`[N]` raw values (float64) of a continuous attribute, or category indices (int64)
        of a categorical one."""
        s = self.column(name)
        if s.kind == "categorical":
            return np.argmax(self.x[:, list(s.columns)], axis=1).astype(np.int64)
        j = s.columns[0]
        return self.offset[j] + self.scale[j] * self.x[:, j].astype(np.float64)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (name, rows, features, target, source, sha256, sensitive
        attributes) for reports."""
        return {"name": self.name, "rows": int(self.x.shape[0]), "features": list(self.features),
                "target": self.target, "positive_rate": float(np.mean(self.y)),
                "source": self.source, "sha256": self.sha256,
                "sensitive": [dataclasses.asdict(s) for s in self.sensitive]}

    def save(self, path: str | os.PathLike) -> None:
        """Writes the `rpjax audit` data file (`.npz`, atomically): `x`, `y`, `columns` (the
        feature names), `offset`, `scale`, `low` and `high` (each continuous column's sweep
        range, NaN elsewhere)."""
        low = np.full(len(self.features), np.nan)
        high = np.full(len(self.features), np.nan)
        for s in self.sensitive:
            if s.kind == "continuous":
                low[s.columns[0]], high[s.columns[0]] = s.low, s.high
        arrays = dict(x=self.x, y=self.y, columns=np.array(self.features, dtype=str),
                      offset=self.offset, scale=self.scale, low=low, high=high)
        buf = io.BytesIO()  # an uncompressed .npz (what np.savez writes), built in memory
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, arr in arrays.items():
                with zf.open(f"{name}.npy", "w") as member:
                    np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)
        durable.atomic_write(path, buf.getvalue())


def _package_file(package: str, relative: str, pip_name: str) -> str:
    """The path of a data file inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {package!r} package is not installed; it ships this data set "
                           f"(pip install {pip_name}).")
    path = os.path.join(list(spec.submodule_search_locations)[0], relative)
    if not os.path.isfile(path):
        raise RuntimeError(f"{path}: not found in the installed {package!r} package.")
    return path


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _checked(name: str, key: str, raw: bytes) -> str:
    digest = hashlib.sha256(raw).hexdigest()
    want = SHA256[name][key]
    if digest != want:
        raise RuntimeError(f"{key}: sha256 {digest} does not match the recorded {want} "
                           f"(a different file than the one rpjax's {name!r} data set "
                           "describes).")
    return digest


def _encode(name, numeric, categorical, y, sensitive, target, source, sha256) -> TabularData:
    """Standardize `numeric` {col: raw [N]}, one-hot `categorical` {col: (codes [N], names)}."""
    features, blocks, offset, scale = [], [], [], []
    for col, raw in numeric.items():
        mu, sd = float(raw.mean()), float(raw.std())
        features.append(col)
        blocks.append(((raw - mu) / sd)[:, None])
        offset.append(mu)
        scale.append(sd)
    groups = {}
    for col, (codes, names) in categorical.items():
        start = len(features)
        for v in names:
            features.append(f"{col}={v}")
            blocks.append((codes == v).astype(np.float64)[:, None])
            offset.append(0.0)
            scale.append(1.0)
        groups[col] = (tuple(range(start, len(features))), tuple(str(v) for v in names))
    x = np.concatenate(blocks, axis=1).astype(np.float32)
    out = []
    for attr, spec in sensitive.items():
        if attr in groups:
            out.append(SensitiveColumn(name=attr, kind="categorical", columns=groups[attr][0],
                                       categories=groups[attr][1]))
        else:
            units, low, high = spec
            out.append(SensitiveColumn(name=attr, kind="continuous",
                                       columns=(features.index(attr),), units=units,
                                       low=float(low), high=float(high)))
    return TabularData(name=name, x=x, y=np.asarray(y, np.int32), features=tuple(features),
                       offset=np.asarray(offset, np.float64), scale=np.asarray(scale, np.float64),
                       sensitive=tuple(out), target=target, source=source, sha256=sha256)


def _load_insurance() -> TabularData:
    data = _insurance.load_insurance()
    numeric = {c: data.mean[i] + data.std[i] * data.x[:, i].astype(np.float64)
               for i, c in enumerate(_insurance.NUMERIC)}
    categorical = {}
    for c, values in _insurance.CATEGORIES.items():
        cols = [data.features.index(f"{c}_{v}") for v in values]
        codes = np.array(values)[np.argmax(data.x[:, cols], axis=1)]
        categorical[c] = (codes, values)
    out = _encode("insurance", numeric, categorical, data.labels(_insurance.DEFAULT_THRESHOLD),
                  {"bmi": ("kg/m^2", 10.0, 60.0), "age": ("years", 18.0, 64.0), "sex": None,
                   "region": None}, f"BMI >= {_insurance.DEFAULT_THRESHOLD} kg/m^2",
                  "rpjax/data/_files/insurance.csv (bundled)", _insurance.SHA256)
    # the same columns, in the same order, as `load_insurance().x`: models trained on one
    # apply to the other
    assert np.allclose(out.x, data.x, atol=1e-6)
    return out


def _load_fair() -> TabularData:
    key = "statsmodels/datasets/fair/fair.csv"
    path = _package_file("statsmodels", "datasets/fair/fair.csv", "statsmodels")
    with open(path, "rb") as f:
        raw = f.read()
    digest = _checked("fair", key, raw)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    header, body = rows[0], np.array(rows[1:], dtype=np.float64)
    col = {h: body[:, i] for i, h in enumerate(header)}
    numeric = {c: col[c] for c in ("rate_marriage", "age", "yrs_married", "children",
                                   "religious", "educ")}
    occupations = (1, 2, 3, 4, 5, 6)
    categorical = {c: (col[c].astype(int), occupations) for c in ("occupation",
                                                                  "occupation_husb")}
    return _encode("fair", numeric, categorical, col["affairs"] > 0,
                   {"age": ("years", float(col["age"].min()), float(col["age"].max())),
                    "religious": ("1 = not to 4 = strongly religious", 1.0, 4.0),
                    "occupation": None},
                   "affairs > 0 (any time spent in extramarital affairs)",
                   f"statsmodels {_version('statsmodels')}: {key}", digest)


def _load_diabetes() -> TabularData:
    keys = ("sklearn/datasets/data/diabetes_data_raw.csv.gz",
            "sklearn/datasets/data/diabetes_target.csv.gz")
    texts, digests = [], []
    for key in keys:
        path = _package_file("sklearn", key.removeprefix("sklearn/"), "scikit-learn")
        with gzip.open(path, "rb") as f:
            raw = f.read()
        digests.append(_checked("diabetes", key, raw))
        texts.append(raw.decode("utf-8"))
    body = np.loadtxt(io.StringIO(texts[0]))
    target = np.loadtxt(io.StringIO(texts[1]))
    names = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")
    col = {n: body[:, i] for i, n in enumerate(names)}
    numeric = {n: col[n] for n in names if n != "sex"}
    categorical = {"sex": (col["sex"].astype(int), (1, 2))}
    median = float(np.median(target))
    return _encode("diabetes", numeric, categorical, target > median,
                   {"age": ("years", float(col["age"].min()), float(col["age"].max())),
                    "bmi": ("kg/m^2", float(col["bmi"].min()), float(col["bmi"].max())),
                    "sex": None},
                   f"disease progression one year after baseline > {median:g} (the median)",
                   f"scikit-learn {_version('scikit-learn')}: {', '.join(keys)}",
                   hashlib.sha256("".join(digests).encode()).hexdigest())


def load_tabular(name: str) -> TabularData:
    """Loads one of the audit's real data sets (`DATASETS`), offline.

    Args:
      name: "insurance" (bundled), "fair" (from the installed statsmodels) or "diabetes" (from
        the installed scikit-learn).

    Returns:
      `TabularData`: `x [N, d]` float32 (numeric columns standardized, categorical one-hot),
      `y [N]` two-class labels, and each sensitive attribute's columns and raw units.

    Raises:
      TypeError / ValueError naming `name`: not one of `DATASETS`.
      RuntimeError: the package that ships the file is not installed, or the file does not
        match its recorded sha256.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got name={name!r}.")
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}, got name={name!r}.")
    return {"insurance": _load_insurance, "fair": _load_fair, "diabetes": _load_diabetes}[name]()

