"""Experiment B: model inversion (BREP-MI, MI-Face) on Olivetti faces.

`experiment` holds InversionConfig, its result and `run(config, ctx)`; `report` its tables, text,
plots and `write(result, out_dir)`; `EXPERIMENT` is its entry in `rpjax reproduce`'s registry.
"""

from rpjax._src.experiments.context import Experiment, Options, for_preset
from rpjax._src.experiments.inversion import report
from rpjax._src.experiments.inversion.experiment import (
    InversionConfig,
    InversionResult,
    config_dict,
    run,
)


def configure(options: Options) -> InversionConfig:
    """The configuration of a `reproduce` preset."""
    kw: dict = dict(cache_dir=options.cache_dir, prior=options.prior)
    if options.augment:
        kw["augment_at_sigma"] = True
    return for_preset(InversionConfig, options.preset, **kw)


EXPERIMENT = Experiment("inversion", configure, run, report.markdown, report.comparison,
                        report.write,
                        measured=report.measured)

__all__ = [
    "EXPERIMENT",
    "InversionConfig",
    "InversionResult",
    "config_dict",
    "run",
    "configure",
    "report",
]
