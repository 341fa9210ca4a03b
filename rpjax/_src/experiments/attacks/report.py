"""The attacks experiment's outputs: its tables and text (pure), its plots, and `write`, which
puts them all into a folder."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rpjax._src.durable import atomic_write
from rpjax._src.experiments import common
from rpjax._src.experiments.attacks.experiment import ATTACKERS, MODES, AttacksResult


def _attack_rows(result: AttacksResult) -> list[list[Any]]:
    return [[r["attacker"], r["mode"], r["noise"], r["queries"], r["median_error_bmi"],
             r["median_error_near_threshold_bmi"], r["median_interval_bmi"],
             r["median_certified_radius_bmi"],
             f"{r['located_in_ball']}/{r['certified_people']}"] for r in result.rows]


def worst_advantage_gap(result: AttacksResult) -> float:
    """Largest (empirical advantage - bound) / standard error over every measured case."""
    return max((a["empirical_advantage"] - a["bound"]) / a["standard_error"]
               for a in result.advantage)


def markdown(result: AttacksResult) -> str:
    """The attack table, the advantage table and the budget table."""
    cfg = result.config
    lines = [
        "# Adaptive attackers against the deployed release (insurance, BMI)",
        "",
        f"{result.num_people} test people; release: sigma = {cfg['sigma']} (standardized "
        f"units; 1 std of BMI = {result.units['bmi_std']:.4f} BMI points), n = {cfg['n']}, "
        f"n0 = {cfg['n0']}, alpha = {cfg['alpha']}, a fixed secret (never seen by the "
        "attacker). The attacker knows the other features, the base model and the settings; "
        "it reports the posterior median of BMI (uniform prior on [10, 60], grid "
        f"{cfg['grid_step']}) and the central 95% credible interval. `error` = |estimate - "
        "true BMI| (median over people; `near thr.`: people within 5 points of the "
        f"threshold); `certified R` = median certified radius (CERTIFY, n = "
        f"{cfg['n_certify']}) in BMI points: the ball the paper's claim says the release "
        "hides the input in; `located in ball` = people whose 95% interval holds their BMI "
        "and is narrower than their own ball's diameter 2R (of those CERTIFY did not "
        "abstain on). A posterior that is flat over a region (every answer the same label) "
        "puts its median anywhere in it, so the error column is noisy; the interval and the "
        "located count are the steadier readings.",
        "",
        common.markdown_table(
            ["attacker", "release", "noise", "queries k", "error (BMI)", "error near thr.",
             "95% interval (BMI)", "certified R (BMI)", "located in ball"],
            _attack_rows(result)),
        "",
        "Attackers: `radius` = one CERTIFY answer with its radius (the pre-hardening API); "
        "`repeat` = k answers to the same query; `near_duplicate` = k queries whose age "
        "differs by multiples of 1e-6 std (new noise under consistent noise); `abstention` = "
        "only whether each answer abstained.",
        "",
        "## Distinguishing advantage: measured vs the computed bound",
        "",
        f"x = a person's input, x' = the same with BMI -/+ {cfg['delta_bmi']} (l2 distance "
        f"{cfg['delta_bmi'] / result.units['bmi_std']:.4f} std); likelihood-ratio test over "
        f"{cfg['advantage_trials']} trials per hypothesis; the {cfg['advantage_people']} "
        "people closest to the threshold (where the leak is largest). Bound: "
        "`rpjax.privacy.advantage_bound` with p_1(x) in a Clopper-Pearson interval "
        f"from 200,000 owner samples (fails with probability <= {cfg['beta']}).",
        "",
        common.markdown_table(
            ["release", "k", "BMI", "BMI'", "p1(x)", "p1(x')", "measured advantage", "s.e.",
             "bound"],
            [[a["mode"], a["queries"], a["bmi"], a["x_prime_bmi"], a["p1_x"], a["p1_x_prime"],
              a["empirical_advantage"], a["standard_error"], a["bound"]]
             for a in result.advantage]),
        "",
        f"Largest (measured - bound) / s.e.: {worst_advantage_gap(result):.2f} (a measured "
        "advantage above the bound by more than 3 s.e. would falsify it).",
        "",
        "## A per-subject budget",
        "",
        common.markdown_table(
            ["release", "max advantage", "delta (BMI)", "one-answer bound (worst case)",
             "answers allowed", "attacker error with them (BMI)"],
            [[b["mode"], b["max_advantage"], b["delta_bmi"], b["one_answer_bound"],
              b["answers_allowed"], b["attack"]["median_error_bmi"] if "attack" in b
              else "-"] for b in result.budget]),
        "",
        "The budget uses the worst case over all inputs, so refusing never depends on the "
        "subject's data; a subject whose input sits where the answer distribution changes "
        "fastest is the one it protects.",
    ]
    return "\n".join(lines) + "\n"


def measured(result: AttacksResult) -> dict[str, Any]:
    """What the paper's claim (an adversary's advantage is at most alpha/2 inside the
    certified ball, `paper.ATTACKS`) is read against: the claim's value at this alpha, the
    largest measured distinguishing advantage between x and x with BMI changed by
    `delta_bmi` points (its release mode, answers k and computed bound), and the largest
    (measured - bound) / s.e. over every measured case."""
    adv = max(result.advantage, key=lambda a: a["empirical_advantage"])
    return {"advantage_inside_certified_ball": result.config["alpha"] / 2,
            "delta_bmi": result.config["delta_bmi"],
            "max_empirical_advantage": adv["empirical_advantage"], "mode": adv["mode"],
            "queries": adv["queries"], "bound": adv["bound"],
            "worst_gap_over_bound_se": worst_advantage_gap(result)}


def comparison(result: AttacksResult) -> str:
    """How the measurements bear on the paper's claim."""
    rows = result.rows
    radius = next((r for r in rows if r["attacker"] == "radius"), None)
    fresh = [r for r in rows if r["attacker"] == "repeat" and r["noise"] == "fresh"]
    kmax = max(r["queries"] for r in fresh)
    best = min((r for r in fresh if r["queries"] == kmax), key=lambda r: r["median_error_bmi"])
    parts = ["The paper claims an adversary's advantage is at most alpha/2 = "
             f"{result.config['alpha'] / 2:g} inside the certified ball."]
    if radius:
        parts.append(f"One answer with its radius locates BMI to a median error of "
                     f"{radius['median_error_bmi']:.2f} points (median certified radius "
                     f"{radius['median_certified_radius_bmi']:.2f}).")
    parts.append(f"With {kmax} fresh label answers ({best['mode']}) the error falls to "
                 f"{best['median_error_bmi']:.2f} points, and {best['located_in_ball']} of "
                 f"{best['certified_people']} certified people are located inside their own "
                 "certified ball.")
    adv = max(result.advantage, key=lambda a: a["empirical_advantage"])
    parts.append(f"Largest measured advantage at a {result.config['delta_bmi']}-point BMI "
                 f"change: {adv['empirical_advantage']:.2f} ({adv['mode']}, k = "
                 f"{adv['queries']}; bound {adv['bound']:.2f}). No measured advantage exceeds "
                 f"its bound by more than {max(0.0, worst_advantage_gap(result)):.1f} s.e.")
    return " ".join(parts)


_ATTACKER_STYLE = {"repeat": ("tab:blue", "o"), "near_duplicate": ("tab:orange", "s"),
                   "abstention": ("tab:green", "^")}
_NOISE_STYLE = {"fresh": "-", "consistent": "--"}


def error_series(result: AttacksResult) -> dict[str, dict[tuple[str, str], list[tuple]]]:
    """The left panels' lines: `{release mode: {(attacker, noise): [(queries, median BMI
    error), ...]}}`, queries ascending, modes in `MODES` order, attackers in `ATTACKERS`
    order (the one-answer `radius` attacker is drawn as a point, not a line)."""
    out: dict[str, dict[tuple[str, str], list[tuple]]] = {}
    for r in result.rows:
        if r["attacker"] == "radius":
            continue
        out.setdefault(r["mode"], {}).setdefault((r["attacker"], r["noise"]), []).append(
            (r["queries"], r["median_error_bmi"]))
    order = {m: i for i, m in enumerate(MODES)}
    attackers = {a: i for i, a in enumerate(ATTACKERS)}
    return {m: {k: sorted(v) for k, v in sorted(
                lines.items(), key=lambda kv: (attackers.get(kv[0][0], 99), kv[0][1]))}
            for m, lines in sorted(out.items(), key=lambda kv: (order.get(kv[0], 99), kv[0]))}


def plots(result: AttacksResult, out_dir: str) -> list[str]:
    """BMI error vs queries (one panel per release mode: colour and marker = attacker, line
    style = noise), and measured advantage vs bound; one PNG, its path in a list."""
    plt = common.pyplot()

    series = error_series(result)
    modes = list(series)
    fig = plt.figure(figsize=(4.0 * len(modes) + 5.0, 4.6))
    grid = fig.add_gridspec(1, len(modes) + 1, width_ratios=[1] * len(modes) + [1.35])
    error_axes = []
    radius = next((r for r in result.rows if r["attacker"] == "radius"), None)
    for j, mode in enumerate(modes):
        ax = fig.add_subplot(grid[0, j], sharey=error_axes[0] if error_axes else None)
        error_axes.append(ax)
        for (attacker, noise), pts in series[mode].items():
            colour, marker = _ATTACKER_STYLE.get(attacker, ("tab:gray", "x"))
            k, e = zip(*pts, strict=True)
            ax.plot(k, e, _NOISE_STYLE.get(noise, ":"), color=colour, marker=marker,
                    markersize=4, linewidth=1.2, label=f"{attacker}, {noise} noise")
        if radius and mode == "certify":
            ax.scatter([1], [radius["median_error_bmi"]], marker="*", s=140, color="k",
                       label="one CERTIFY answer with its radius", zorder=5)
        ax.axhline(result.median_certified_radius_bmi, color="tab:red", linestyle=":",
                   label="median certified radius")
        ax.set_xscale("log")
        ax.set_xlabel("queries k")
        ax.set_title(f"release: {mode}", fontsize=9)
        if j:
            ax.tick_params(labelleft=False)
    error_axes[0].set_ylabel("attacker's median BMI error (points)")
    handles: dict[str, Any] = {}
    for ax in error_axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center",
               ncol=min(4, len(handles)), fontsize=7, frameon=False,
               bbox_to_anchor=(0.5 * len(modes) / (len(modes) + 1.35), 0.0))
    ax = fig.add_subplot(grid[0, len(modes)])
    for j, mode in enumerate(sorted({a["mode"] for a in result.advantage})):
        pts = [a for a in result.advantage if a["mode"] == mode]
        ks = np.array([a["queries"] for a in pts], float) * (1 + 0.06 * j)
        ax.scatter(ks, [a["empirical_advantage"] for a in pts], marker="o",
                   color=f"C{j}", label=f"{mode}: measured")
        ax.scatter(ks, [a["bound"] for a in pts], marker="_", s=200, color=f"C{j}",
                   label=f"{mode}: bound")
    ax.axhline(result.config["alpha"] / 2, color="gray", linestyle=":",
               label="paper's alpha/2")
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("answers k")
    ax.set_ylabel("distinguishing advantage")
    ax.set_title(f"x vs BMI + {result.config['delta_bmi']}: measured and bound", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle("Adaptive attackers against the deployed release (insurance, BMI)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path = os.path.join(out_dir, "attacks.png")
    common.save_figure(fig, path, dpi=120)
    plt.close(fig)
    return [path]


def write(result: AttacksResult, out_dir: str) -> dict[str, str]:
    """summary.json, report.md and attacks.png."""
    paths = common.output_paths(out_dir, summary="summary.json", markdown="report.md")
    common.write_json(paths["summary"], result.summary())
    atomic_write(paths["markdown"], markdown(result))
    (paths["plot"],) = plots(result, out_dir)
    return paths
