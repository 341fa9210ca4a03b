"""Loaders for the bundled datasets (files under `rpjax/data/_files/`) and for user data."""

from rpjax.data.insurance import InsuranceData, load_insurance, load_insurance_csv
from rpjax.data.olivetti import (
    FaceData,
    FaceSplit,
    load_faces_folder,
    load_faces_npz,
    load_olivetti,
    split_identities,
)

__all__ = [
    "FaceData",
    "FaceSplit",
    "InsuranceData",
    "load_faces_folder",
    "load_faces_npz",
    "load_insurance",
    "load_insurance_csv",
    "load_olivetti",
    "split_identities",
]
