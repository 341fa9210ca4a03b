"""The distillation boundary: RP does not stop function-level extraction.

`experiment` holds DistillationConfig, its result and `run(config, ctx)`; `report` its tables, text,
plots and `write(result, out_dir)`; `EXPERIMENT` is its entry in `rpjax reproduce`'s registry.
"""

from rpjax._src.experiments.context import Experiment, Options, for_preset
from rpjax._src.experiments.distillation import report
from rpjax._src.experiments.distillation.experiment import (
    DistillationConfig,
    DistillationResult,
    run,
)
from rpjax._src.experiments.inversion import configure as _inversion


def configure(options: Options) -> DistillationConfig:
    """The configuration of a `reproduce` preset."""
    cls = DistillationConfig
    faces = _inversion(options).faces  # the inversion's setup, shared in one session
    return for_preset(cls, options.preset, faces=faces)


EXPERIMENT = Experiment("distillation", configure, run, report.markdown, report.comparison,
                        report.write,
                        measured=report.measured)

__all__ = [
    "EXPERIMENT",
    "DistillationConfig",
    "DistillationResult",
    "run",
    "configure",
    "report",
]
