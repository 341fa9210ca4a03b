"""Experiment A: Robust Attribute Privacy on the insurance task.

`experiment` holds RapConfig, its result and `run(config, ctx)`; `report` its tables, text,
plots and `write(result, out_dir)`; `EXPERIMENT` is its entry in `rpjax reproduce`'s registry.
"""

from rpjax._src.experiments.context import Experiment, Options, for_preset
from rpjax._src.experiments.rap import report
from rpjax._src.experiments.rap.experiment import RapConfig, RapResult, run


def configure(options: Options) -> RapConfig:
    """The configuration of a `reproduce` preset."""
    kw = dict(cache_dir=options.cache_dir, augment_at_sigma=options.augment)
    return for_preset(RapConfig, options.preset, **kw)


EXPERIMENT = Experiment("rap", configure, run, report.markdown, report.comparison,
                        report.write,
                        measured=report.measured)

__all__ = [
    "EXPERIMENT",
    "RapConfig",
    "RapResult",
    "run",
    "configure",
    "report",
]
