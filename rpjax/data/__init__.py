"""Loaders for the bundled datasets (files under `rpjax/data/_files/`) and for user data."""

from rpjax._src.data.insurance import FEATURES, InsuranceData, load_insurance, load_insurance_csv
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
    "FEATURES",
    "FaceData",
    "FaceSplit",
    "InsuranceData",
    "faces_from_arrays",
    "load_faces_folder",
    "load_faces_npz",
    "load_insurance",
    "load_insurance_csv",
    "load_olivetti",
    "split_identities",
]
