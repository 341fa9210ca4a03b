"""Loaders for the bundled datasets (files under `rpjax/data/_files/`) and for user data."""

from rpjax.data.insurance import InsuranceData, load_insurance, load_insurance_csv

__all__ = ["InsuranceData", "load_insurance", "load_insurance_csv"]
