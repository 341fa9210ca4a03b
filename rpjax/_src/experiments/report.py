"""Writers and provenance for experiment results (JSON, Markdown tables, version records)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import jax
import numpy as np

from rpjax._src.durable import atomic_write

_PACKAGES = ("rpjax", "jax", "jaxlib", "flax", "optax", "chex", "numpy", "scipy",
             "dp-accounting", "jax-privacy", "orbax-checkpoint")


def versions() -> dict[str, Any]:
    """Versions of the numerical stack, the PRNG implementation, backend and devices."""
    out: dict[str, Any] = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    out["prng_impl"] = str(jax.config.jax_default_prng_impl)
    out["x64"] = bool(jax.config.jax_enable_x64)
    out["backend"] = jax.default_backend()
    out["devices"] = [str(d) for d in jax.devices()]
    out["machine"] = platform.machine()
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray, jax.Array)):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    """Writes `data` as indented JSON (NumPy/JAX values converted; NaN -> null), atomically
    (`rpjax._src.durable.atomic_write`: the previous complete file or the new one, never a
    part)."""
    atomic_write(path, json.dumps(_jsonable(data), indent=2, sort_keys=False) + "\n")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats printed with 4 significant digits."""

    def fmt(v: Any) -> str:
        if isinstance(v, (float, np.floating)):
            return "nan" if np.isnan(v) else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
