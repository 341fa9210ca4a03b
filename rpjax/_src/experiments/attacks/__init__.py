"""Adaptive attackers against the deployed release (insurance).

`experiment` holds AttacksConfig, its result and `run(config, ctx)`; `report` its tables, text,
plots and `write(result, out_dir)`; `EXPERIMENT` is its entry in `rpjax reproduce`'s registry.
"""

from rpjax._src.experiments.attacks import report
from rpjax._src.experiments.attacks.experiment import AttacksConfig, AttacksResult, run
from rpjax._src.experiments.context import Experiment, Options, for_preset


def configure(options: Options) -> AttacksConfig:
    """The configuration of a `reproduce` preset."""
    return for_preset(AttacksConfig, options.preset)


EXPERIMENT = Experiment("attacks", configure, run, report.markdown, report.comparison,
                        report.write,
                        measured=report.measured)

__all__ = [
    "EXPERIMENT",
    "AttacksConfig",
    "AttacksResult",
    "run",
    "configure",
    "report",
]
