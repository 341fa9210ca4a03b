"""`rpjax reproduce`: runs the paper's experiments and writes one report.

`reproduce(["all"], preset="quick", out=...)` runs Experiment A (RAP, insurance), adaptive
attackers against the deployed release (insurance), Experiment B
(model inversion, Olivetti), the privacy-utility frontier against DP-SGD and label baselines
(reusing Experiment B's RP sweep), the distillation boundary and the audit
(`rpjax.privacy.audit`) on three real tabular data sets, writes each experiment's own
outputs under `OUT/<experiment>/`, and `OUT/report.md` (every table and plot, configuration,
versions, run times) and `OUT/summary.json` (headline numbers under stable keys, see the
README; `paper_vs_measured` holds each experiment's paper numbers and its comparison with
them, `glossary` what the keys mean).
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from typing import Any

from rpjax._src.durable import atomic_write
from rpjax._src.experiments import (
    attacks,
    audit,
    common,
    distillation,
    frontier,
    inversion,
    names,
    outdir,
    rap,
)
from rpjax._src.experiments.context import Context, Experiment, Options, context

PRESETS = ("tiny", "quick", "default", "full")
"""`tiny`: seconds per experiment, to test the pipeline (its numbers mean nothing); `quick`:
CI and a first look (minutes on 2 CPU cores); `default`; `full`: the paper's attack budget,
for GPU hosts."""

_EXPERIMENTS = (rap.EXPERIMENT, attacks.EXPERIMENT, inversion.EXPERIMENT, frontier.EXPERIMENT,
                distillation.EXPERIMENT, audit.EXPERIMENT)
if tuple(sorted(e.name for e in _EXPERIMENTS)) != tuple(sorted(names.EXPERIMENTS)):
    raise ImportError("the experiments of rpjax._src.experiments.names and reproduce differ.")
REGISTRY: dict[str, Experiment] = {name: next(e for e in _EXPERIMENTS if e.name == name)
                                   for name in names.EXPERIMENTS}
"""Every experiment of `rpjax reproduce`, by name, in the order "all" runs them
(`rpjax._src.experiments.names.EXPERIMENTS`: frontier reuses inversion's sweep, so it comes
after it). Each is the `EXPERIMENT` of its package `rpjax._src.experiments.<name>`."""

EXPERIMENTS = names.EXPERIMENTS


def run_experiment(name: str, config: Any, ctx: Context | None = None) -> Any:
    """Runs one experiment of `REGISTRY` on `config` in `ctx` and returns its typed result.

    For notebooks and scripts that want one experiment without the report `reproduce` writes
    (`REGISTRY[name].markdown(result)` and `REGISTRY[name].write(result, out_dir)` give those).
    The result is also kept in `ctx.results[name]`, where a later experiment that needs it
    (the frontier reuses the inversion's sweep) finds it.

    Args:
      name: one of `EXPERIMENTS`.
      config: that experiment's configuration (e.g. `RapConfig.quick()`).
      ctx: progress bars, the trained-model cache, the shared faces setup and the results
        so far (`rpjax.experiments.Context`); None: a fresh one.

    Raises:
      ValueError: an unknown name, or an experiment whose prerequisite (`REGISTRY[name].needs`)
        has no result in `ctx`.
    """
    if name not in REGISTRY:
        raise ValueError(f"name must be one of {EXPERIMENTS}, got {name!r}.")
    ctx = context(ctx)
    missing = [n for n in REGISTRY[name].needs if n not in ctx.results]
    if missing:
        raise ValueError(f"{name} reuses the result of {', '.join(missing)}: run "
                         f"{' and '.join(missing)} first in the same ctx "
                         f"(run_experiment({missing[0]!r}, config, ctx)).")
    result = REGISTRY[name].run(config, ctx)
    ctx.results[name] = result
    return result


def reproduce(experiments: list[str], *, preset: str = "default", out: str = "rpjax-out",
              cache_dir: str | None = None, augment: bool = False, prior: str = "pca",
              progress: bool = True, overwrite: bool = False, echo=print) -> dict[str, Any]:
    """Runs `experiments` (names from EXPERIMENTS, or ["all"]) and writes the report.

    Args:
      experiments: which experiments; "all" runs every one, in dependency order.
      preset: one of `PRESETS`: "tiny" (seconds per experiment, to test the pipeline),
        "quick" (CI, minutes per experiment on 2 CPU cores), "default", or "full" (the
        paper's attack budget, for GPU hosts).
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
    options = Options(preset, cache_dir, augment, prior)
    configs = {n: e.configure(options) for n, e in REGISTRY.items()}  # checks all
    ctx = Context(progress=progress, cache_dir=cache_dir)
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
    headlines: dict[str, dict[str, Any]] = {} if before is None else {
        n: before["summary"].get("paper_vs_measured", {}).get(n)
        or {"paper": None, "measured": None,
            "verdict": _verdict_text(before["parts"]["verdicts"][n])}
        for n in before["summary"]["experiments"]}
    seconds: dict[str, float] = {}
    for name in names:
        exp = REGISTRY[name]
        t = time.perf_counter()
        for need in exp.needs:  # a prerequisite not asked for runs unreported
            if need not in ctx.results:
                run_experiment(need, configs[need], ctx)
        res = run_experiment(name, configs[name], ctx)
        paths = exp.write(res, os.path.join(out, name))
        md = exp.markdown(res)
        seconds[name] = time.perf_counter() - t
        verdict = exp.comparison(res)
        verdicts[name] = f"- **{name}**: {verdict}"
        headlines[name] = {"paper": getattr(res, "paper", None),
                           "measured": None if exp.measured is None else exp.measured(res),
                           "verdict": verdict}
        echo(md)
        echo(f"\n{name}: {seconds[name]:.1f} s; wrote {os.path.join(out, name)}\n")
        sections[name] = _section(md, paths, out)
    seconds["total"] = time.perf_counter() - t0
    results = ctx.results
    summary: dict[str, Any] = {
        "experiments": every, "preset": preset,
        "paper_vs_measured": {n: headlines[n] for n in every},
        "glossary": common.GLOSSARY,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count()},
        "seconds": seconds, "versions": common.versions(),
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
    common.write_json(os.path.join(out, "summary.json"), summary)
    common.write_json(os.path.join(out, outdir.PARTS),
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


def _verdict_text(line: str) -> str:
    """The comparison of a report.md verdict line `- **name**: text` (an earlier run's)."""
    return line.split("**: ", 1)[1] if "**: " in line else line


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
        "The same comparisons, with the paper's numbers, are under `paper_vs_measured` in "
        "`summary.json`; `glossary` there says what its keys mean (e.g. `paper_accuracy`: "
        f"{common.GLOSSARY['paper_accuracy']}).", "",
    ]
    return "\n".join(head + ["\n\n".join(sections), ""])
