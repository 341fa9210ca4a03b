"""`rpjax reproduce`: runs the paper's experiments and writes one report.

`reproduce(["all"], preset="quick", out=...)` runs Experiment A (RAP, insurance), adaptive
attackers against the deployed release (insurance), Experiment B
(model inversion, Olivetti), the privacy-utility frontier against DP-SGD and label baselines
(reusing Experiment B's RP sweep) and the distillation boundary, writes each experiment's own
outputs under `OUT/<experiment>/`, and `OUT/report.md` (every table and plot, configuration,
versions, run times) and `OUT/summary.json` (headline numbers under stable keys, see the
README).
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from rpjax._src.durable import atomic_write
from rpjax._src.experiments import (
    attacks,
    attacks_outputs,
    distillation,
    distillation_outputs,
    faces,
    files,
    frontier,
    frontier_outputs,
    inversion,
    inversion_outputs,
    names,
    outdir,
    rap,
    rap_outputs,
    report,
)

PRESETS = ("quick", "default", "full")


class Options(NamedTuple):
    """The settings of one `reproduce` run that every experiment's configuration reads."""

    preset: str  # one of PRESETS
    cache_dir: str | None  # trained-model cache (None: no cache)
    augment: bool  # rap: smooth augmented base models; inversion: also augmented targets
    prior: str  # the attacker's generator prior: "pca" or "vae"
    progress: bool  # progress bars


class Session:
    """What the experiments of one `reproduce` run share: the options, the faces setup (built
    once per inversion configuration) and the results of the experiments run so far."""

    def __init__(self, options: Options):
        self.options = options
        self.results: dict[str, Any] = {}
        self._faces: dict[faces.FacesConfig, faces.Faces] = {}

    def faces(self, config: faces.FacesConfig) -> faces.Faces:
        """The shared faces setup of `config`, prepared on first use."""
        if config not in self._faces:
            self._faces[config] = faces.prepare(config)
        return self._faces[config]


class Experiment(NamedTuple):
    """One experiment of `rpjax reproduce`.

    Attributes:
      name: its name (CLI choice, output folder, summary key).
      configure: `Options -> config` (the preset's configuration).
      run: `(config, Session) -> result`.
      markdown, comparison: `result -> str`, its report section and its one-paragraph
        comparison with the paper.
      write: `(result, out_dir) -> {kind: path}`, its own outputs.
    """

    name: str
    configure: Callable[[Options], Any]
    run: Callable[[Any, Session], Any]
    markdown: Callable[[Any], str]
    comparison: Callable[[Any], str]
    write: Callable[[Any, str], dict[str, str]]


def inversion_config(options: Options) -> inversion.InversionConfig:
    """The inversion configuration of a preset (shared by inversion, frontier, distillation)."""
    kw: dict[str, Any] = dict(cache_dir=options.cache_dir, prior=options.prior)
    if options.augment:
        kw["augment_at_sigma"] = True
    if options.preset == "quick":
        return inversion.InversionConfig.quick(**kw)
    if options.preset == "full":
        return inversion.InversionConfig.full(**kw)
    return inversion.InversionConfig(**kw)


def _rap_config(o: Options) -> rap.RapConfig:
    kw = dict(cache_dir=o.cache_dir, augment_at_sigma=o.augment)
    return rap.RapConfig.quick(**kw) if o.preset == "quick" else rap.RapConfig(**kw)


def _attacks_config(o: Options) -> attacks.AttacksConfig:
    return attacks.AttacksConfig.quick() if o.preset == "quick" else attacks.AttacksConfig()


def _frontier_config(o: Options) -> frontier.FrontierConfig:
    cls = frontier.FrontierConfig
    inv = inversion_config(o)
    return cls.quick(inversion=inv) if o.preset == "quick" else cls(inversion=inv)


def _distillation_config(o: Options) -> distillation.DistillationConfig:
    cls = distillation.DistillationConfig
    inv = inversion_config(o)
    return cls.quick(inversion=inv) if o.preset == "quick" else cls(inversion=inv)


def _run_frontier(config: frontier.FrontierConfig, s: Session) -> frontier.FrontierResult:
    return frontier.run(config, inversion_result=s.results.get("inversion"),
                        faces=s.faces(config.inversion.faces), progress=s.options.progress)


_SPECS = (
    Experiment("rap", _rap_config,
               lambda c, s: rap.run(c, progress=s.options.progress),
               rap_outputs.markdown, rap_outputs.comparison, files.write_rap),
    Experiment("attacks", _attacks_config,
               lambda c, s: attacks.run(c, cache_dir=s.options.cache_dir,
                                        progress=s.options.progress),
               attacks_outputs.markdown, attacks_outputs.comparison, files.write_attacks),
    Experiment("inversion", inversion_config,
               lambda c, s: inversion.run(c, faces=s.faces(c.faces), progress=s.options.progress),
               inversion_outputs.markdown, inversion_outputs.comparison,
               files.write_inversion),
    Experiment("frontier", _frontier_config, _run_frontier,
               frontier_outputs.markdown, frontier_outputs.comparison, files.write_frontier),
    Experiment("distillation", _distillation_config,
               lambda c, s: distillation.run(c, faces=s.faces(c.inversion.faces),
                                             progress=s.options.progress),
               distillation_outputs.markdown, distillation_outputs.comparison,
               files.write_distillation),
)
if tuple(sorted(e.name for e in _SPECS)) != tuple(sorted(names.EXPERIMENTS)):
    raise ImportError("the experiments of rpjax._src.experiments.names and reproduce differ.")
REGISTRY: dict[str, Experiment] = {name: next(e for e in _SPECS if e.name == name)
                                   for name in names.EXPERIMENTS}
"""Every experiment of `rpjax reproduce`, by name, in the order "all" runs them
(`rpjax._src.experiments.names.EXPERIMENTS`: frontier reuses inversion's sweep, so it comes
after it)."""

EXPERIMENTS = names.EXPERIMENTS


def run_experiment(name: str, config: Any, *, faces: faces.Faces | None = None,
                   cache_dir: str | None = None, progress: bool = True) -> Any:
    """Runs one experiment of `REGISTRY` on `config` and returns its typed result.

    For notebooks and scripts that want one experiment without the report `reproduce` writes
    (`REGISTRY[name].markdown(result)` and `REGISTRY[name].write(result, out_dir)` give those).

    Args:
      name: one of `EXPERIMENTS`.
      config: that experiment's configuration (e.g. `RapConfig.quick()`).
      faces: a faces setup (`prepare_faces(config.faces)`) to reuse for inversion, frontier and
        distillation instead of preparing it again; it must match the config's inversion
        configuration.
      cache_dir: trained-model cache of the experiments whose config has none (attacks).
      progress: progress bars.
    """
    if name not in REGISTRY:
        raise ValueError(f"name must be one of {EXPERIMENTS}, got {name!r}.")
    session = Session(Options("custom", cache_dir, False, "pca", progress))
    if faces is not None:
        session._faces[faces.config] = faces
    return REGISTRY[name].run(config, session)


def reproduce(experiments: list[str], *, preset: str = "default", out: str = "rpjax-out",
              cache_dir: str | None = None, augment: bool = False, prior: str = "pca",
              progress: bool = True, overwrite: bool = False, echo=print) -> dict[str, Any]:
    """Runs `experiments` (names from EXPERIMENTS, or ["all"]) and writes the report.

    Args:
      experiments: which experiments; "all" runs every one, in dependency order.
      preset: "quick" (CI, under 10 minutes on 2 CPU cores for all), "default", or "full"
        (the paper's attack budget, for GPU hosts).
      out: output directory; cache_dir: trained-model cache (None: no cache).
      augment: rap: smooth augmented base models; inversion: also attack augmented targets.
      prior: the attacker's generator prior ("pca" or "vae").
      progress: progress bars; echo: where to print each experiment's table.
      overwrite: replace a previous run in `out` (its report.md, summary.json, run marker and
        experiment folders; a trained-model cache is kept). Without it, a finished previous
        run (same preset, augment and prior) that holds none of these experiments' folders is
        added to: its report and summary then cover every experiment in `out`; anything the
        run would overwrite is refused (see `outdir`), before any work.

    Returns:
      The summary written to `OUT/summary.json`.

    Raises:
      ValueError: an unknown experiment or preset; `out` or `cache_dir` is a file or cannot
        be written; `out` holds a previous run and `overwrite` is false. All before any work.

    Every file is written atomically (`rpjax._src.durable`); `OUT/.rpjax-run.json` records the
    settings when the run starts and its end time once report.md and summary.json are written.
    """
    names = list(EXPERIMENTS) if "all" in experiments else list(experiments)
    for n in names:
        if n not in REGISTRY:
            raise ValueError(f"experiments must be among {EXPERIMENTS + ('all',)}, got {n!r}.")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}.")
    names = [n for n in EXPERIMENTS if n in names]
    session = Session(Options(preset, cache_dir, augment, prior, progress))
    configs = {n: e.configure(session.options) for n, e in REGISTRY.items()}  # checks all
    adding = outdir.check(out, cache_dir, overwrite=overwrite, experiments=names)
    before = _previous(out, preset=preset, augment=augment, prior=prior) if adding else None
    every = names if before is None else [n for n in EXPERIMENTS
                                          if n in names or n in before["summary"]["experiments"]]
    outdir.begin(out, {"command": "reproduce", "experiments": every, "preset": preset,
                       "augment": augment, "prior": prior,
                       "cache_dir": None if cache_dir is None else os.path.abspath(cache_dir)},
                 experiments=EXPERIMENTS, overwrite=overwrite)
    t0 = time.perf_counter()
    sections: dict[str, str] = {} if before is None else dict(before["parts"]["sections"])
    verdicts: dict[str, str] = {} if before is None else dict(before["parts"]["verdicts"])
    seconds: dict[str, float] = {}
    for name in names:
        exp = REGISTRY[name]
        t = time.perf_counter()
        res = exp.run(configs[name], session)
        paths = exp.write(res, os.path.join(out, name))
        md = exp.markdown(res)
        session.results[name] = res
        seconds[name] = time.perf_counter() - t
        verdicts[name] = f"- **{name}**: {exp.comparison(res)}"
        echo(md)
        echo(f"\n{name}: {seconds[name]:.1f} s; wrote {os.path.join(out, name)}\n")
        sections[name] = _section(md, paths, out)
    seconds["total"] = time.perf_counter() - t0
    results = session.results
    summary: dict[str, Any] = {
        "experiments": every, "preset": preset,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count()},
        "seconds": seconds, "versions": report.versions(),
        "config": {n: results[n].config for n in names},
    }
    if before is not None:  # what the directory already held, as it was written
        old = before["summary"]
        summary["seconds"] = {**{k: v for k, v in old["seconds"].items() if k != "total"},
                              **seconds, "total": old["seconds"]["total"] + seconds["total"]}
        summary["config"] = {n: (summary["config"] if n in names else old["config"])[n]
                             for n in every}
        for n in every:
            if n not in names:
                summary[n] = old[n]
    for n in names:
        summary[n] = results[n].headline()
    if "frontier" in results:
        summary["frontier"] = results["frontier"].points
    report.write_json(os.path.join(out, "summary.json"), summary)
    report.write_json(os.path.join(out, outdir.PARTS),
                      {"sections": {n: sections[n] for n in every},
                       "verdicts": {n: verdicts[n] for n in every}})
    atomic_write(os.path.join(out, "report.md"),
                 _report(summary, [verdicts[n] for n in every], [sections[n] for n in every]))
    outdir.finish(out)
    return summary


def _previous(out: str, *, preset: str, augment: bool, prior: str) -> dict[str, Any]:
    """The summary and report parts of the finished run in `out` a run adds to; refuses one
    with other settings (a report mixing presets would compare what was not run alike)."""
    import json

    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    with open(os.path.join(out, outdir.PARTS), encoding="utf-8") as f:
        parts = json.load(f)
    with open(os.path.join(out, outdir.MARKER), encoding="utf-8") as f:
        marker = json.load(f)
    want = {"preset": preset, "augment": augment, "prior": prior}
    differ = [f"{k} {marker.get(k)!r} there, {v!r} here" for k, v in want.items()
              if marker.get(k) != v]
    if differ:
        raise ValueError(f"out {out} holds a run with other settings ({'; '.join(differ)}); "
                         "add to it with the same settings, or use another out.")
    return {"summary": summary, "parts": parts}


def _section(markdown: str, paths: dict[str, str], out: str) -> str:
    lines = ["#" + line if line.startswith("#") else line for line in markdown.splitlines()]
    images = [p for p in paths.values() if p.endswith(".png")]
    if images:
        lines += ["", *(f"![{os.path.basename(p)}]({os.path.relpath(p, out)})" for p in images)]
    return "\n".join(lines)


def _report(summary: dict[str, Any], verdicts: list[str], sections: list[str]) -> str:
    v = summary["versions"]
    secs = summary["seconds"]
    head = [
        "# rpjax reproduction report", "",
        f"Experiments run: {', '.join(summary['experiments'])} (preset `{summary['preset']}`), "
        f"{summary['date']}, on {summary['machine']['platform']} with "
        f"{summary['machine']['cpu_count']} CPUs, backend {v['backend']} "
        f"({len(v['devices'])} device(s)).", "",
        "Run time: " + ", ".join(f"{k} {s / 60:.1f} min" for k, s in secs.items()) + ".", "",
        "Versions: " + ", ".join(f"{k} {v[k]}" for k in ("rpjax", "jax", "jaxlib", "flax",
                                                         "optax", "numpy", "scipy")
                                 if v.get(k)) + f"; PRNG {v['prng_impl']}.", "",
        "The full configuration of each experiment is under `config` in `summary.json`; each "
        "experiment's own outputs (CSV, JSON, plots) are in its folder.", "",
        "## Where the measurements agree or disagree with the paper", "",
        *verdicts, "",
    ]
    return "\n".join(head + ["\n\n".join(sections), ""])
