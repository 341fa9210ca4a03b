"""The audit experiment's outputs: the headline table across data sets, its plot, and
`write`, which also writes each audit's own report into `OUT/<data set>/<model>/`."""

from __future__ import annotations

import math
import os
from typing import Any

from rpjax._src.durable import atomic_write
from rpjax._src.experiments import common
from rpjax._src.experiments.audit.experiment import AuditExperimentResult, headline_rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}"
    return str(v)


def markdown(result: AuditExperimentResult) -> str:
    """The headline tables: privacy readings, accuracy, budget and attacks per data set."""
    cfg = result.config
    lines = [
        "# The audit on three real data sets", "",
        f"Data sets: {', '.join(cfg['datasets'])} (`rpjax/data/_files/PROVENANCE.md`). For "
        f"each, two MLPs {tuple(cfg['hidden'])} trained by rpjax ({cfg['train_steps']} Adam "
        f"steps): `plain`, and `augmented` with Gaussian noise of std {cfg['augment_sigma']:g}"
        f" (input units). Audited: {cfg['max_people']} test people (a seeded random sample); "
        "sigma in "
        f"standardized input units; n0 {cfg['n0']}, alpha {cfg['alpha']:g}; release mode "
        f"`{cfg['mode']}`; budget cap {cfg['max_advantage']:g} on the adaptive advantage "
        f"bound against a move of {cfg['shift_std']:g} standard deviations of a continuous "
        "attribute or a change of category. Each audit's full report is in "
        "`<data set>/<model>/report.md`.", "",
        "Test accuracy of the base models: " + "; ".join(
            f"{r.dataset['name']} {r.model} {r.test_accuracy:.3f}" for r in result.runs) + ".",
        "",
        "*Reading*: for a continuous attribute the median preimage length as a share of its "
        "sweep range; for a categorical one the share of people whose category is hidden "
        "(every category gives the released label); for the base model f and for g at the "
        "largest n. *Bound 1*: the one-answer advantage bound (any attacker, any model); "
        "*allowed*: answers per person the budget allows, at each n (more samples per answer "
        "make each answer more informative, so fewer are allowed). *Best "
        "attack*: the best of the hardened-release attackers (repeat, near-duplicate, "
        "abstention) at the largest k: median error in raw units, or accuracy beside the "
        "majority baseline.", "",
    ]
    rows = headline_rows(result)
    head = ["data set", "model", "attribute", "sigma", "reading f", "reading g",
            "accuracy g", "bound 1", "allowed", "best attack", "radius attack", "base attack",
            "baseline"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cont = r["kind"] == "continuous"
        best = r.get("attack_best_error_raw" if cont else "attack_best_accuracy")
        lines.append("| " + " | ".join(_fmt(v) for v in [
            r["dataset"], r["model"], r["attribute"], r["sigma"], r["base_reading"],
            r["smoothed_reading"], r["smoothed_accuracy"], r.get("one_answer_bound"),
            " / ".join(f"{v} (n={k})" for k, v in r.get("answers_allowed_by_n", {}).items())
            or None,
            None if best is None else f"{_fmt(best)} ({r['attack_best']}, k={r['attack_k']})",
            r.get("attack_radius_error_raw" if cont else "attack_radius_accuracy"),
            r.get("attack_base_error_raw" if cont else "attack_base_accuracy"),
            None if cont else r.get("majority_baseline")]) + " |")
    lines += ["", f"Run time {result.seconds:.1f} s."]
    return "\n".join(lines)


def measured(result: AuditExperimentResult) -> dict[str, Any]:
    """The headline numbers per data set and attribute (`headline_rows`; the paper has no
    audit, so nothing stands beside them)."""
    return {"rows": headline_rows(result)}


def comparison(result: AuditExperimentResult) -> str:
    """One paragraph: what the audit shows beside the paper's insurance task."""
    rows = headline_rows(result)
    cont = [r for r in rows if r["kind"] == "continuous"]
    cat = [r for r in rows if r["kind"] == "categorical"]
    parts = [f"the audit ran on {len({r['dataset'] for r in rows})} data sets "
             f"({len(result.runs)} models)"]
    if cont:
        gain = sum(r["smoothed_reading"] > r["base_reading"] for r in cont)
        parts.append(f"g's median preimage was longer than f's in {gain} of {len(cont)} "
                     "(continuous attribute, sigma) cases")
    if cat:
        hid = sum(r["smoothed_reading"] >= r["base_reading"] for r in cat)
        parts.append(f"g hid at least as many people's category as f in {hid} of {len(cat)} "
                     "categorical cases")
    return ("; ".join(parts) + ". The paper reports the insurance task only; these are "
            "measurements at this preset's settings (see the tables).")


def plot(result: AuditExperimentResult, path: str) -> None:
    """The privacy reading of g against sigma, one line per (data set, model, attribute)."""
    plt = common.pyplot()
    rows = headline_rows(result)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, kind in zip(axes, ("continuous", "categorical"), strict=True):
        keys = sorted({(r["dataset"], r["model"], r["attribute"]) for r in rows
                       if r["kind"] == kind})
        for k in keys:
            pts = [(r["sigma"], r["smoothed_reading"]) for r in rows
                   if (r["dataset"], r["model"], r["attribute"]) == k]
            ax.plot(*zip(*pts, strict=True), marker="o", label="/".join(k), lw=1)
        ax.set_xlabel("sigma (input units)")
        ax.set_ylabel("median preimage / range" if kind == "continuous" else "share hidden")
        ax.set_title(kind)
        ax.legend(fontsize=6)
    fig.tight_layout()
    common.save_figure(fig, path, dpi=110)
    plt.close(fig)


def write(result: AuditExperimentResult, out_dir: str) -> dict[str, str]:
    """Writes summary.json, report.md and privacy_vs_sigma.png into `out_dir`, and each
    audit's report, summary and plots into `out_dir/<data set>/<model>/`."""
    paths = common.output_paths(out_dir, summary="summary.json", report="report.md",
                                plot="privacy_vs_sigma.png")
    for run in result.runs:
        d = run.dataset
        about = (f"Data set `{d['name']}` ({d['rows']} rows; label 1 iff {d['target']}; "
                 f"source {d['source']}, sha256 {d['sha256'][:12]}...). Model: MLP "
                 f"`{run.model}` (training {run.training}); test accuracy "
                 f"{run.test_accuracy:.4f}.")
        run.result.write(os.path.join(out_dir, d["name"], run.model),
                         title=f"Audit: {d['name']}, {run.model} MLP", about=about,
                         units=run.units, extra={"dataset": d, "model": run.model,
                                                 "training": run.training,
                                                 "test_accuracy": run.test_accuracy})
    common.write_json(paths["summary"], result.summary())
    atomic_write(paths["report"], markdown(result) + "\n")
    plot(result, paths["plot"])
    return paths
