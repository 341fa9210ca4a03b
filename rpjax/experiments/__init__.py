"""The paper's experiments and the `rpjax reproduce` driver: each experiment is a package with
one config dataclass, one `run(config, ctx)` and one typed result; a `Context` carries what
the experiments of one session share (progress, cache, the faces setup, earlier results);
`REGISTRY` is what `reproduce` runs."""

from rpjax._src.experiments.attacks import AttacksConfig
from rpjax._src.experiments.checkpoint import default_cache_dir
from rpjax._src.experiments.common import versions, write_json
from rpjax._src.experiments.context import Context
from rpjax._src.experiments.distillation import DistillationConfig
from rpjax._src.experiments.faces import FacesConfig
from rpjax._src.experiments.frontier import FrontierConfig
from rpjax._src.experiments.inversion import InversionConfig
from rpjax._src.experiments.rap import RapConfig
from rpjax._src.experiments.reproduce import (
    REGISTRY,
    reproduce,
    run_experiment,
)

__all__ = [
    "AttacksConfig",
    "Context",
    "DistillationConfig",
    "FacesConfig",
    "FrontierConfig",
    "InversionConfig",
    "REGISTRY",
    "RapConfig",
    "default_cache_dir",
    "reproduce",
    "run_experiment",
    "versions",
    "write_json",
]
