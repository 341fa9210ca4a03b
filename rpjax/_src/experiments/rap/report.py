"""The rap experiment's outputs: its tables and text (pure), its plots, and `write`, which
puts them all into a folder."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rpjax._src.durable import atomic_write
from rpjax._src.experiments import common, paper
from rpjax._src.experiments.rap.experiment import RapResult
from rpjax.privacy import READINGS

CSV_HEADER = (["person", "bmi", "true_label", "release", "sigma", "n", "label", "radius_std",
               "radius_bmi"] + [f"{r}_{e}" for r in READINGS for e in ("low", "high", "length")])


def csv_rows(result: RapResult) -> list[list[Any]]:
    """One row per (person, release): label, radius (std and BMI) and the three intervals."""
    people = result.people
    scale = result.units["bmi_std"]
    rows = []
    for rel in people.releases:
        sigma, n = ("", "") if rel.sigma is None else (str(rel.sigma), str(rel.n))
        for k, pid in enumerate(people.id):
            row = [int(pid), f"{people.bmi[k]:.3f}", int(people.label[k]), rel.name, sigma, n,
                   int(rel.labels[k]), f"{rel.radius[k]:.6f}", f"{rel.radius[k] * scale:.6f}"]
            for r in READINGS:
                lo, hi = getattr(rel.intervals, r)[k]
                row += [f"{lo:.4f}", f"{hi:.4f}", f"{hi - lo:.4f}"]
            rows.append(row)
    return rows


def markdown(result: RapResult) -> str:
    """The results table with the paper's numbers beside, and how they compare."""
    base, cfg = result.base, result.config
    lines = [
        "# Experiment A: Robust Attribute Privacy on the insurance task",
        "",
        f"{result.num_people} test people; label = 1 iff BMI >= {cfg['threshold']}; "
        f"alpha = {cfg['alpha']}, n0 = {cfg['n0']}; BMI swept over [{cfg['sweep_low']}, "
        f"{cfg['sweep_high']}] ({cfg['grid_points']} grid points, {cfg['refine_steps']} "
        f"bisection steps). sigma and radius_std in standardized units; 1 std of BMI = "
        f"{result.units['bmi_std']:.4f} BMI points. Intervals are medians over people, "
        "in BMI points. Readings: `preimage` = BMI values whose release equals the released "
        "label; `not excluded` = release equal or abstaining; `APE` = preimage plus the union "
        "of [s - R(s), s + R(s)] over it, clipped to the sweep (`APE unclipped`: not clipped); "
        "`base + 2R` = the base model's preimage widened by the RP radius at the person's own "
        f"input on each side (a reading of how the paper's {_rp_interval():.2f} may have been "
        "formed). "
        "Accuracy counts abstentions as errors; mean R is over people who were not abstained "
        "on. Noisy releases use common random numbers along each person's sweep.",
        "",
        "Smoothed model: " + ("for each sigma, a base model trained with Gaussian noise "
                              "augmentation at that sigma." if cfg["augment_at_sigma"] else
                              "the same undefended base model for every sigma (as the paper)."),
        "",
    ]
    headers = ["release", "sigma", "n", "accuracy", "abstain", "mean R (std)", "mean R (BMI)",
               "preimage", "not excluded", "APE", "APE unclipped", "base + 2R"]
    rows = [["base model", "-", "-", base["accuracy_swept"], 0.0, "-", "-",
             base["median_interval_bmi"], base["median_not_excluded_bmi"],
             base["median_ape_interval_bmi"], base["median_ape_unclipped_bmi"], "-"]]
    for n, by_sigma in result.rp_by_n.items():
        for sigma, r in by_sigma.items():
            rows.append(["RP (certify)", sigma, n, r["accuracy"], r["abstain_rate"],
                         r["mean_radius_std"], r["mean_radius_bmi"], r["median_interval_bmi"],
                         r["median_not_excluded_bmi"], r["median_ape_interval_bmi"],
                         r["median_ape_unclipped_bmi"], r["median_base_widened_bmi"]])
    lines.append(common.markdown_table(headers, rows))
    lines += ["", "## Beside the paper", "", comparison(result), ""]
    lines += ["Figures: `figure1_bmi_histogram.png` (BMI of recommended people, base vs RP), "
              "`interval_lengths.png` (interval length per reading).", ""]
    return "\n".join(lines)


def _rp_interval() -> float:
    return paper.RAP["median_interval_bmi"]["rp"]


def measured(result: RapResult) -> dict[str, Any]:
    """The measured numbers under the paper's keys (`paper.RAP`): mean certified radius per
    sigma (standardized units, largest n) and the median compatible interval (BMI points) of
    the base model and of the RP release per sigma."""
    return {"mean_radius_std": {s: r["mean_radius_std"] for s, r in result.rp.items()},
            "median_interval_bmi": {"base": result.base["median_interval_bmi"],
                                    "rp": {s: r["median_interval_bmi"]
                                           for s, r in result.rp.items()}}}


def comparison(result: RapResult) -> str:
    """Sentences on how the measured numbers compare with the paper's."""
    ref = paper.RAP
    rp = result.rp
    base = result.base["median_interval_bmi"]
    parts = [f"Paper (v2): median compatible interval {ref['median_interval_bmi']['base']:.2f} "
             f"(base) -> {_rp_interval():.2f} (RP). Here the base model's median is {base:.2f}."]
    readings = {"preimage": "median_interval_bmi", "not_excluded": "median_not_excluded_bmi",
                "ape": "median_ape_interval_bmi", "ape_unclipped": "median_ape_unclipped_bmi",
                "base_widened": "median_base_widened_bmi"}
    best = None
    for sigma, rec in rp.items():
        for name, keyname in readings.items():
            gap = abs(rec[keyname] - _rp_interval())
            if best is None or gap < best[0]:
                best = (gap, name, sigma, rec[keyname])
    parts.append(
        f"At the largest n, the reading closest to the paper's {_rp_interval():.2f} is "
        f"`{best[1]}` at "
        f"sigma = {best[2]} ({best[3]:.2f}).")
    radii = [f"sigma {s}: {rp[s]['mean_radius_std']:.3f} (paper {ref['mean_radius_std'][s]})"
             for s in ref["mean_radius_std"] if s in rp]
    if radii:
        parts.append("Mean certified radius over released people, standardized units: "
                     + "; ".join(radii) + ".")
    parts.append(
        "The preimage of a smoothed model cannot be wider than the abstention-free region "
        "around the threshold, and its certified balls stay inside its own preimage, so the "
        "APE union mostly coincides with the preimage (docs/paper.md, section 4); "
        "a wider interval arises from abstentions (`not_excluded`) and from comparing two "
        "different classifiers (base f vs smoothed g).")
    return " ".join(parts)


def plots(result: RapResult, out_dir: str) -> list[str]:
    """Figure 1 (BMI of recommended people) and interval lengths per reading; PNG paths."""
    plt = common.pyplot()

    people = result.people
    largest = max(result.config["ns"])
    shown = [r for r in people.releases if r.n is None or r.n == largest]
    bins = np.arange(10, 61, 2.0)
    fig, ax = plt.subplots(figsize=(7, 4))
    for rel in shown:
        if rel.sigma is None:
            ax.hist(people.bmi[rel.labels == 1], bins=bins, color="0.8", label="base model")
            continue
        ax.hist(people.bmi[rel.labels == 1], bins=bins, histtype="step", linewidth=1.4,
                label=f"RP sigma={rel.sigma}")
    ax.axvline(result.config["threshold"], color="k", linestyle="--", linewidth=1,
               label="threshold")
    ax.set_xlabel("BMI (kg/m$^2$)")
    ax.set_ylabel("recommended people")
    ax.set_title(f"People recommended: base model vs RP (n={largest})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig1 = os.path.join(out_dir, "figure1_bmi_histogram.png")
    common.save_figure(fig, fig1, dpi=120)
    plt.close(fig)

    readings = (*READINGS, "ape_unclipped")
    ref = paper.RAP["median_interval_bmi"]
    fig, axes = plt.subplots(1, len(readings), figsize=(15, 4), sharey=True)
    for ax, reading in zip(axes, readings, strict=True):
        data = [rel.intervals.length(reading) for rel in shown]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(shown) + 1),
                      ["base" if rel.sigma is None else f"σ={rel.sigma}" for rel in shown],
                      fontsize=8)
        ax.set_title(reading)
        ax.axhline(ref["base"], color="gray", linestyle=":", linewidth=1)
        ax.axhline(ref["rp"], color="tab:red", linestyle=":", linewidth=1)
    axes[0].set_ylabel("interval length (BMI points)")
    fig.suptitle(f"Compatible-interval length per reading (n={largest}); dotted: paper's "
                 f"{ref['base']:.2f} (base) and {ref['rp']:.2f} (RP)")
    fig.tight_layout()
    fig2 = os.path.join(out_dir, "interval_lengths.png")
    common.save_figure(fig, fig2, dpi=120)
    plt.close(fig)
    return [fig1, fig2]


def write(result: RapResult, out_dir: str) -> dict[str, str]:
    """summary.json, people.csv, report.md and the two plots."""
    paths = common.output_paths(out_dir, summary="summary.json", csv="people.csv",
                                 markdown="report.md")
    common.write_json(paths["summary"], result.summary())
    common.write_csv(paths["csv"], CSV_HEADER, csv_rows(result))
    atomic_write(paths["markdown"], markdown(result))
    fig1, fig2 = plots(result, out_dir)
    paths.update(figure1=fig1, lengths=fig2)
    return paths
