"""Robust Privacy certificates (`rp`) and attribute-level intervals (`rap`)."""

from rpjax.privacy import rap, rp

__all__ = ["rap", "rp"]
