"""The audit (`rpjax.privacy.audit`) on three real data sets, with MLPs rpjax trains.

`experiment` holds AuditExperimentConfig, its result and `run(config, ctx)`; `report` its
tables, plots and `write(result, out_dir)`; `EXPERIMENT` is its entry in `rpjax reproduce`'s
registry.
"""

from rpjax._src.experiments.audit import report
from rpjax._src.experiments.audit.experiment import (
    AuditExperimentConfig,
    AuditExperimentResult,
    run,
)
from rpjax._src.experiments.context import Experiment, Options, for_preset


def configure(options: Options) -> AuditExperimentConfig:
    """The configuration of a `reproduce` preset."""
    return for_preset(AuditExperimentConfig, options.preset, cache_dir=options.cache_dir)


EXPERIMENT = Experiment("audit", configure, run, report.markdown, report.comparison,
                        report.write, measured=report.measured)

__all__ = [
    "EXPERIMENT",
    "AuditExperimentConfig",
    "AuditExperimentResult",
    "run",
    "configure",
    "report",
]
