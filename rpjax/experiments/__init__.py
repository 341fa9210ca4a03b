"""The paper's experiments and the `rpjax reproduce` driver: one config dataclass, one `run`
and one typed result per experiment, the shared faces setup, the registry `reproduce` runs,
and the report writers."""

from rpjax._src.experiments.attacks import AttacksConfig
from rpjax._src.experiments.checkpoint import default_cache_dir
from rpjax._src.experiments.distillation import DistillationConfig
from rpjax._src.experiments.faces import FacesConfig
from rpjax._src.experiments.faces import prepare as prepare_faces
from rpjax._src.experiments.frontier import FrontierConfig
from rpjax._src.experiments.inversion import InversionConfig
from rpjax._src.experiments.rap import RapConfig
from rpjax._src.experiments.report import versions, write_json
from rpjax._src.experiments.reproduce import (
    REGISTRY,
    reproduce,
    run_experiment,
)

__all__ = [
    "AttacksConfig",
    "DistillationConfig",
    "FacesConfig",
    "FrontierConfig",
    "InversionConfig",
    "REGISTRY",
    "RapConfig",
    "default_cache_dir",
    "prepare_faces",
    "reproduce",
    "run_experiment",
    "versions",
    "write_json",
]
