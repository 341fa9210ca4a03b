"""The paper's experiments and the `rpjax reproduce` driver: one config dataclass and one `run`
per experiment, and the report writers."""

from rpjax._src.checkpoint import default_cache_dir
from rpjax._src.experiments.attacks import AttacksConfig
from rpjax._src.experiments.distillation import DistillationConfig
from rpjax._src.experiments.frontier import FrontierConfig
from rpjax._src.experiments.inversion import InversionConfig
from rpjax._src.experiments.rap import RapConfig
from rpjax._src.experiments.reproduce import EXPERIMENTS, PRESETS, reproduce
from rpjax._src.report import versions, write_json

__all__ = [
    "AttacksConfig",
    "DistillationConfig",
    "EXPERIMENTS",
    "FrontierConfig",
    "InversionConfig",
    "PRESETS",
    "RapConfig",
    "default_cache_dir",
    "reproduce",
    "versions",
    "write_json",
]
