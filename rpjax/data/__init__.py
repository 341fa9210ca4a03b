"""Loaders for the bundled datasets (files under `rpjax/data/_files/`, with their sha256 in
`BUNDLED_SHA256`) and for user data of the same kinds (an insurance CSV; face arrays, an
`.npz` file or a folder of identities), the splits the experiments use, and the audit's real
tabular data sets with their sensitive attributes (`load_tabular`: the bundled insurance data,
statsmodels' fair data and scikit-learn's diabetes data, read offline)."""

from rpjax._src.data import BUNDLED_SHA256
from rpjax._src.data.insurance import DEFAULT_THRESHOLD as DEFAULT_BMI_THRESHOLD
from rpjax._src.data.insurance import InsuranceData, load_insurance, train_test_split
from rpjax._src.data.olivetti import (
    FaceSplit,
    faces_from_arrays,
    load_faces,
    load_olivetti,
    split_identities,
)
from rpjax._src.data.tabular import DATASETS as TABULAR_DATASETS
from rpjax._src.data.tabular import SensitiveColumn, TabularData, load_tabular

__all__ = [
    "BUNDLED_SHA256",
    "DEFAULT_BMI_THRESHOLD",
    "FaceSplit",
    "InsuranceData",
    "SensitiveColumn",
    "TABULAR_DATASETS",
    "TabularData",
    "faces_from_arrays",
    "load_faces",
    "load_insurance",
    "load_olivetti",
    "load_tabular",
    "split_identities",
    "train_test_split",
]
