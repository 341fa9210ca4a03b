"""Loaders for the bundled datasets (files under `rpjax/data/_files/`, checked against their
sha256) and for user data of the same kinds (an insurance CSV; face arrays, an `.npz` file or a
folder of identities), and the splits the experiments use."""

from rpjax._src.data.insurance import DEFAULT_THRESHOLD as DEFAULT_BMI_THRESHOLD
from rpjax._src.data.insurance import load_insurance, train_test_split
from rpjax._src.data.olivetti import faces_from_arrays, load_faces, load_olivetti, split_identities

__all__ = [
    "DEFAULT_BMI_THRESHOLD",
    "faces_from_arrays",
    "load_faces",
    "load_insurance",
    "load_olivetti",
    "split_identities",
    "train_test_split",
]
