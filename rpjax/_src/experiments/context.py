"""What the experiments of one session share, and the shape every experiment has.

Every experiment is a package `rpjax._src.experiments.<name>` with `experiment.py` (its
config dataclass, its typed result and `run(config, ctx)`) and `report.py` (its tables, text,
plots and `write(result, out_dir)`); its `__init__` exposes `EXPERIMENT`, an `Experiment`
record that `rpjax._src.experiments.reproduce` collects into `REGISTRY`. A `Context` carries
what is not a setting of any one experiment: progress bars, the trained-model cache, the faces
setup (prepared once per `FacesConfig`) and the results of the experiments run so far (the
frontier reuses the inversion's sweep).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from rpjax._src.experiments import faces as _faces


class Options(NamedTuple):
    """The settings of one `rpjax reproduce` run from which each experiment's `configure`
    builds its configuration."""

    preset: str  # "tiny", "quick", "default" or "full"
    cache_dir: str | None  # trained-model cache (None: no cache)
    augment: bool  # rap: smooth augmented base models; inversion: also augmented targets
    prior: str  # the attacker's generator prior: "pca" or "vae"


@dataclasses.dataclass
class Context:
    """What the experiments run in one session share (not a setting of any of them).

    Attributes:
      progress: show progress bars.
      cache_dir: trained-model cache for the experiments whose config names none (None: the
        config's own, or no cache).
      results: `{experiment name: result}` of the experiments run in this context so far;
        `run_experiment` and `reproduce` fill it.
    """

    progress: bool = True
    cache_dir: str | None = None
    results: dict[str, Any] = dataclasses.field(default_factory=dict)
    _faces: dict[_faces.FacesConfig, _faces.Faces] = dataclasses.field(
        default_factory=dict, repr=False)

    def faces(self, config: _faces.FacesConfig) -> _faces.Faces:
        """The faces setup of `config` (data split, target, evaluator, prior), prepared on
        first use and shared by every experiment of this context that asks for it."""
        if config not in self._faces:
            self._faces[config] = _faces.prepare(config)
        return self._faces[config]


def context(ctx: Context | None) -> Context:
    """`ctx`, or a fresh `Context()` (progress bars on, no cache) when None."""
    if ctx is None:
        return Context()
    if not isinstance(ctx, Context):
        raise TypeError(f"ctx must be an rpjax.experiments.Context or None, got "
                        f"{type(ctx).__name__}.")
    return ctx


class Experiment(NamedTuple):
    """One experiment of `rpjax reproduce`.

    Attributes:
      name: its name (CLI choice, output folder, summary key).
      configure: `Options -> config`, the configuration of a preset.
      run: `(config, Context) -> result`.
      markdown, comparison: `result -> str`, its report section and its one-paragraph
        comparison with the paper.
      write: `(result, out_dir) -> {kind: path}`, its own outputs.
      needs: the experiments whose results `run` reads from the context (run first).
      measured: `result -> dict`, the measured numbers beside the paper's (under the paper's
        keys where it has numbers), for `paper_vs_measured` in `rpjax reproduce`'s
        summary.json; None: only the comparison text.
    """

    name: str
    configure: Callable[[Options], Any]
    run: Callable[[Any, Context], Any]
    markdown: Callable[[Any], str]
    comparison: Callable[[Any], str]
    write: Callable[[Any, str], dict[str, str]]
    needs: tuple[str, ...] = ()
    measured: Callable[[Any], dict[str, Any]] | None = None


def for_preset(cls: type, preset: str, **overrides: Any) -> Any:
    """`cls.tiny(**overrides)`, `cls.quick(...)` or `cls.full(...)` for those presets (a
    config without `full` uses its defaults there), `cls(**overrides)` for "default"."""
    maker = {"tiny": getattr(cls, "tiny", None), "quick": getattr(cls, "quick", None),
             "full": getattr(cls, "full", cls), "default": cls}.get(preset)
    if maker is None:
        raise ValueError(f"{cls.__name__} has no {preset!r} preset.")
    return maker(**overrides)
