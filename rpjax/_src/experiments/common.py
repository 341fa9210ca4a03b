"""What every experiment's report uses: JSON, CSV and text writers, Markdown tables, figures
and version records.

Every file is written atomically (`rpjax._src.durable`): an interrupted write leaves the
previous complete file or none.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import jax
import numpy as np

from rpjax._src.durable import atomic_path, atomic_write

GLOSSARY: dict[str, str] = {
    "accuracy": "held-out accuracy of the released labels, every held-out image counted, an "
                "abstention counted as an error",
    "paper_accuracy": "the paper's utility metric: accuracy on the single held-out image per "
                      "identity that the undefended model is most confident about (one image "
                      "per identity; an abstention counts as an error); `accuracy` is over "
                      "every held-out image",
    "abstain_rate": "the fraction of held-out images (or people) on which the release "
                    "abstained (answered no label)",
    "asr": "attack success rate: the fraction of attacked identities whose reconstruction "
           "the evaluation classifier labels as the target (top-1), mean over attack seeds",
    "asr_std": "standard deviation of `asr` over the attack seeds (0 when every seed scored "
               "the same)",
    "asr_direction": "judge-free success: the private face whose deviation from the mean "
                     "private face best matches (cosine) the reconstruction's deviation from "
                     "the attack's start is of the target identity",
    "asr_pixel_nn": "nearest-private-face baseline: the private face nearest the "
                    "reconstruction in pixels (l2) is of the target identity",
    "judge_controls": "identity-free images (mean face, the attack's start, mean face plus "
                      "noise, random prior samples) scored like reconstructions: the chance "
                      "level of each success measure",
    "paper_vs_measured": "per experiment, the paper's numbers (`paper`), the measured ones "
                         "beside them (`measured`, under the paper's keys where it has "
                         "numbers) and the one-paragraph comparison of report.md (`verdict`)",
}
"""What the summary keys a user meets mean; `rpjax reproduce` writes it into `summary.json`
(`glossary`) and the reports quote it."""

PAPER_ACCURACY = "`paper_accuracy` is " + GLOSSARY["paper_accuracy"] + "."

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


def spread(values: Sequence[float]) -> float:
    """The standard deviation of `values`, 0.0 where it is rounding noise.

    The std of equal rates such as `[0.7, 0.7, 0.7]` comes out as ~1e-16 in floating point;
    anything below 1e-9 times the largest magnitude is reported as exactly 0.
    """
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return float("nan")
    s = float(np.std(v))
    return 0.0 if s <= 1e-9 * max(1.0, float(np.max(np.abs(v)))) else s


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; floats printed with 4 significant digits (None as
    "-"; a float below 1e-12 in magnitude, floating-point noise in every table here, as 0)."""

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return "nan"
            return "0" if abs(v) < 1e-12 else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def output_paths(out_dir: str, **names: str) -> dict[str, str]:
    """Creates `out_dir` and returns `{kind: out_dir/name}` for each `kind=name`."""
    os.makedirs(out_dir, exist_ok=True)
    return {k: os.path.join(out_dir, v) for k, v in names.items()}


def write_csv(path: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Writes a CSV file (a header row, then `rows`) atomically."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def save_figure(fig, path: str, *, dpi: int) -> None:
    """`fig.savefig(path)` atomically: the previous complete PNG or the new one, never a part."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=os.path.splitext(path)[1][1:] or "png")


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
