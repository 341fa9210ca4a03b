"""Loaders for the bundled datasets (files under `rpjax/data/_files/`) and for user data."""

from rpjax._src.data.insurance import DEFAULT_THRESHOLD as DEFAULT_BMI_THRESHOLD
from rpjax._src.data.insurance import (
    FEATURES,
    InsuranceData,
    load_insurance,
    load_insurance_csv,
    train_test_split,
)
from rpjax._src.data.insurance import SHA256 as INSURANCE_SHA256
from rpjax._src.data.olivetti import SHA256 as OLIVETTI_SHA256
from rpjax._src.data.olivetti import (
    FaceData,
    FaceSplit,
    faces_from_arrays,
    load_faces_folder,
    load_faces_npz,
    load_olivetti,
    split_identities,
)

__all__ = [
    "DEFAULT_BMI_THRESHOLD",
    "FEATURES",
    "FaceData",
    "FaceSplit",
    "INSURANCE_SHA256",
    "InsuranceData",
    "OLIVETTI_SHA256",
    "faces_from_arrays",
    "load_faces_folder",
    "load_faces_npz",
    "load_insurance",
    "load_insurance_csv",
    "load_olivetti",
    "split_identities",
    "train_test_split",
]
