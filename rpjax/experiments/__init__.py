"""The paper's experiments and the `rpjax reproduce` driver: one config dataclass, one `run`
and one typed result per experiment, the shared faces setup, the registry `reproduce` runs,
and the report writers."""

from rpjax._src.experiments.attacks import AttacksConfig, AttacksResult
from rpjax._src.experiments.checkpoint import default_cache_dir
from rpjax._src.experiments.distillation import DistillationConfig, DistillationResult
from rpjax._src.experiments.faces import Faces
from rpjax._src.experiments.faces import prepare as prepare_faces
from rpjax._src.experiments.frontier import FrontierConfig, FrontierResult
from rpjax._src.experiments.inversion import InversionConfig, InversionResult
from rpjax._src.experiments.rap import RapConfig, RapResult
from rpjax._src.experiments.report import versions, write_json
from rpjax._src.experiments.reproduce import (
    EXPERIMENTS,
    PRESETS,
    REGISTRY,
    Experiment,
    reproduce,
    run_experiment,
)

__all__ = [
    "AttacksConfig",
    "AttacksResult",
    "DistillationConfig",
    "DistillationResult",
    "EXPERIMENTS",
    "Experiment",
    "Faces",
    "FrontierConfig",
    "FrontierResult",
    "InversionConfig",
    "InversionResult",
    "PRESETS",
    "REGISTRY",
    "RapConfig",
    "RapResult",
    "default_cache_dir",
    "prepare_faces",
    "reproduce",
    "run_experiment",
    "versions",
    "write_json",
]
