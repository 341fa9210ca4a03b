"""The privacy-utility frontier: RP against DP-SGD and label baselines.

`experiment` holds FrontierConfig, its result and `run(config, ctx)`; `report` its tables, text,
plots and `write(result, out_dir)`; `EXPERIMENT` is its entry in `rpjax reproduce`'s registry.
"""

from rpjax._src.experiments.context import Experiment, Options, for_preset
from rpjax._src.experiments.frontier import report
from rpjax._src.experiments.frontier.experiment import (
    FrontierConfig,
    FrontierResult,
    pareto_mask,
    run,
)


def configure(options: Options) -> FrontierConfig:
    """The configuration of a `reproduce` preset."""
    return for_preset(FrontierConfig, options.preset)


EXPERIMENT = Experiment("frontier", configure, run, report.markdown, report.comparison,
                        report.write, needs=("inversion",),
                        measured=report.measured)

__all__ = [
    "EXPERIMENT",
    "FrontierConfig",
    "FrontierResult",
    "pareto_mask",
    "run",
    "configure",
    "report",
]
