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
from typing import Any

from rpjax._src import report

EXPERIMENTS = ("rap", "attacks", "inversion", "frontier", "distillation")
PRESETS = ("quick", "default", "full")


def _configs(preset: str, cache_dir: str | None, augment: bool, prior: str) -> dict[str, Any]:
    from rpjax._src.experiments import attacks, distillation, frontier, inversion, rap

    rap_kw = dict(cache_dir=cache_dir, augment_at_sigma=augment)
    inv_kw: dict[str, Any] = dict(cache_dir=cache_dir, prior=prior)
    if augment:
        inv_kw["augment_at_sigma"] = True
    if preset == "quick":
        inv = inversion.InversionConfig.quick(**inv_kw)
        return {"rap": rap.RapConfig.quick(**rap_kw), "inversion": inv,
                "attacks": attacks.AttacksConfig.quick(),
                "frontier": frontier.FrontierConfig.quick(inversion=inv),
                "distillation": distillation.DistillationConfig.quick(inversion=inv)}
    inv = (inversion.InversionConfig.full(**inv_kw) if preset == "full"
           else inversion.InversionConfig(**inv_kw))
    return {"rap": rap.RapConfig(**rap_kw), "inversion": inv,
            "attacks": attacks.AttacksConfig(),
            "frontier": frontier.FrontierConfig(inversion=inv),
            "distillation": distillation.DistillationConfig(inversion=inv)}


def _headline(name: str, result: dict[str, Any]) -> dict[str, Any]:
    if name == "rap":
        from rpjax._src.experiments import rap_outputs
        s = rap_outputs.summary(result)
        return {k: s[k] for k in ("base", "rp", "num_people", "units") if k in s}
    if name == "inversion":
        from rpjax._src.experiments import inversion_outputs
        s = inversion_outputs.summary(result)
        return {k: s[k] for k in ("target_accuracy", "evaluator_accuracy", "num_identities",
                                  "chance_asr", "attacks") if k in s}
    if name == "frontier":
        return {"chance_asr": result["chance_asr"]}
    if name == "attacks":
        return {"rows": [{k: v for k, v in r.items() if k != "errors_bmi"}
                         for r in result["rows"]],
                "advantage": result["advantage"], "budget": result["budget"],
                "median_certified_radius_bmi": result["median_certified_radius_bmi"]}
    return {k: result[k] for k in ("agreement_undefended", "agreement_rp",
                                   "student_accuracy_undefended", "student_accuracy_rp",
                                   "target_accuracy", "undefended", "rp")}


def reproduce(experiments: list[str], *, preset: str = "default", out: str = "rpjax-out",
              cache_dir: str | None = None, augment: bool = False, prior: str = "pca",
              progress: bool = True, echo=print) -> dict[str, Any]:
    """Runs `experiments` (names from EXPERIMENTS, or ["all"]) and writes the report.

    Args:
      experiments: which experiments; "all" runs every one, in dependency order.
      preset: "quick" (CI, under 10 minutes on 2 CPU cores for all), "default", or "full"
        (the paper's attack budget, for GPU hosts).
      out: output directory; cache_dir: trained-model cache (None: no cache).
      augment: rap: smooth augmented base models; inversion: also attack augmented targets.
      prior: the attacker's generator prior ("pca" or "vae").
      progress: progress bars; echo: where to print each experiment's table.

    Returns:
      The summary written to `OUT/summary.json`.
    """
    from rpjax._src.experiments import (
        attacks,
        attacks_outputs,
        distillation,
        distillation_outputs,
        frontier,
        frontier_outputs,
        inversion,
        inversion_outputs,
        rap,
        rap_outputs,
    )

    names = list(EXPERIMENTS) if "all" in experiments else list(experiments)
    for n in names:
        if n not in EXPERIMENTS:
            raise ValueError(f"experiments must be among {EXPERIMENTS + ('all',)}, got {n!r}.")
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}.")
    names = [n for n in EXPERIMENTS if n in names]
    configs = _configs(preset, cache_dir, augment, prior)
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    paths: dict[str, dict[str, str]] = {}
    sections: list[str] = []
    verdicts: list[str] = []
    seconds: dict[str, float] = {}
    for name in names:
        t = time.perf_counter()
        if name == "rap":
            res = rap.run(configs["rap"], progress=progress)
            paths[name] = rap_outputs.write(res, os.path.join(out, name))
            md = rap_outputs.markdown(res)
        elif name == "attacks":
            res = attacks.run(configs["attacks"], cache_dir=cache_dir, progress=progress)
            paths[name] = attacks_outputs.write(res, os.path.join(out, name))
            md = attacks_outputs.markdown(res)
        elif name == "inversion":
            res = inversion.run(configs["inversion"], progress=progress)
            paths[name] = inversion_outputs.write(res, os.path.join(out, name))
            md = inversion_outputs.markdown(res)
        elif name == "frontier":
            res = frontier.run(configs["frontier"], inversion_result=results.get("inversion"),
                               progress=progress)
            paths[name] = frontier_outputs.write(res, os.path.join(out, name))
            md = frontier_outputs.markdown(res)
        else:
            res = distillation.run(configs["distillation"], progress=progress)
            paths[name] = distillation_outputs.write(res, os.path.join(out, name))
            md = distillation_outputs.markdown(res)
        results[name] = res
        seconds[name] = time.perf_counter() - t
        module = {"rap": rap_outputs, "attacks": attacks_outputs, "inversion": inversion_outputs,
                  "frontier": frontier_outputs, "distillation": distillation_outputs}[name]
        verdicts.append(f"- **{name}**: {module.comparison(res)}")
        echo(md)
        echo(f"\n{name}: {seconds[name]:.1f} s; wrote {os.path.join(out, name)}\n")
        sections.append(_section(md, paths[name], out))
    seconds["total"] = time.perf_counter() - t0
    summary: dict[str, Any] = {
        "experiments": names, "preset": preset,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count()},
        "seconds": seconds, "versions": report.versions(),
        "config": {n: results[n]["config"] for n in names},
    }
    for n in names:
        summary[n] = _headline(n, results[n])
    if "frontier" in results:
        summary["frontier"] = results["frontier"]["frontier"]
    report.write_json(os.path.join(out, "summary.json"), summary)
    with open(os.path.join(out, "report.md"), "w", encoding="utf-8") as f:
        f.write(_report(summary, verdicts, sections))
    return summary


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
