"""Loaders for the bundled datasets (files under `rpjax/data/_files/`, with their sha256 in
`BUNDLED_SHA256`) and for user data of the same kinds (an insurance CSV; face arrays, an
`.npz` file or a folder of identities), and the splits the experiments use."""

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

__all__ = [
    "BUNDLED_SHA256",
    "DEFAULT_BMI_THRESHOLD",
    "FaceSplit",
    "InsuranceData",
    "faces_from_arrays",
    "load_faces",
    "load_insurance",
    "load_olivetti",
    "split_identities",
    "train_test_split",
]
