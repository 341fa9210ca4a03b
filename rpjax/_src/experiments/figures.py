"""The experiments' plots (matplotlib, Agg backend): one function per experiment, each
writing PNGs into a folder and returning their paths."""

from __future__ import annotations

import os

import numpy as np

from rpjax._src.durable import atomic_path
from rpjax._src.experiments import paper
from rpjax._src.experiments.attacks import AttacksResult
from rpjax._src.experiments.frontier import FrontierResult
from rpjax._src.experiments.inversion import InversionResult
from rpjax._src.experiments.rap import RapResult
from rpjax.privacy import READINGS

_MARKERS = {"none": ("k", "*"), "rp": ("tab:blue", "o"), "dpsgd": ("tab:red", "s"),
            "randomized_response": ("tab:green", "^"), "abstain": ("tab:purple", "v"),
            "output_noise": ("tab:orange", "D")}


def _save(fig, path: str, *, dpi: int) -> None:
    """`fig.savefig(path)` atomically: the previous complete PNG or the new one, never a part."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=os.path.splitext(path)[1][1:] or "png")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rap_plots(result: RapResult, out_dir: str) -> list[str]:
    """Figure 1 (BMI of recommended people) and interval lengths per reading; PNG paths."""
    plt = _pyplot()

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
    _save(fig, fig1, dpi=120)
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
    _save(fig, fig2, dpi=120)
    plt.close(fig)
    return [fig1, fig2]


def attacks_plots(result: AttacksResult, out_dir: str) -> list[str]:
    """BMI error vs queries per attacker, and measured advantage vs bound; PNG paths."""
    plt = _pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    series: dict[str, list[tuple[int, float]]] = {}
    for r in result.rows:
        if r["attacker"] == "radius":
            continue
        series.setdefault(f"{r['attacker']} / {r['mode']} / {r['noise']}", []).append(
            (r["queries"], r["median_error_bmi"]))
    for name, pts in sorted(series.items()):
        k, e = zip(*sorted(pts), strict=True)
        style = "--" if "consistent" in name else "-"
        ax.plot(k, e, style, marker="o", markersize=3, linewidth=1, label=name)
    radius = next((r for r in result.rows if r["attacker"] == "radius"), None)
    if radius:
        ax.scatter([1], [radius["median_error_bmi"]], marker="*", s=120, color="k",
                   label="one answer with radius", zorder=5)
    ax.axhline(result.median_certified_radius_bmi, color="tab:red", linestyle=":",
               label="median certified radius")
    ax.set_xscale("log")
    ax.set_xlabel("queries k")
    ax.set_ylabel("median BMI error (points)")
    ax.set_title("Attacker's BMI error vs queries")
    ax.legend(fontsize=6, ncol=2)
    ax = axes[1]
    modes = sorted({a["mode"] for a in result.advantage})
    for j, mode in enumerate(modes):
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
    ax.set_title(f"x vs BMI + {result.config['delta_bmi']}: measured and bound")
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = os.path.join(out_dir, "attacks.png")
    _save(fig, path, dpi=120)
    plt.close(fig)
    return [path]


def inversion_plots(result: InversionResult, out_dir: str) -> list[str]:
    """ASR vs sigma per attack and n, and reconstruction grids; PNG paths."""
    plt = _pyplot()

    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, attack in zip(axes, ("brep_mi", "mi_face"), strict=True):
        a = result.attacks[attack]
        ax.axhline(a["undefended"]["asr"], color="k", linestyle="--", label="undefended")
        for key, style, label in (("rp", "-", "RP"), ("rp_augmented", "--", "RP, aug. target")):
            for n in sorted({r["n"] for r in a.get(key, [])}):
                recs = sorted((r for r in a[key] if r["n"] == n), key=lambda r: r["sigma"])
                ax.errorbar([r["sigma"] for r in recs], [r["asr"] for r in recs],
                            yerr=[r.get("asr_std", 0.0) for r in recs], marker="o", capsize=3,
                            linestyle=style, label=f"{label} n={n}")
        ax.axhline(result.chance_asr, color="gray", linestyle=":", label="chance")
        ax.set_xscale("log")
        ax.set_xlabel("sigma (pixels)")
        ax.set_title(attack)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("attack success rate (evaluator top-1)")
    fig.tight_layout()
    paths.append(os.path.join(out_dir, "asr_vs_sigma.png"))
    _save(fig, paths[-1], dpi=120)
    plt.close(fig)

    for attack in ("brep_mi", "mi_face"):
        grids = [g for g in result.grids if g.attack == attack and g.target == "undefended"]
        if not grids:
            continue
        cols = 1 + len(grids)
        num = min(8, result.num_identities)
        fig, axes = plt.subplots(num, cols, figsize=(1.3 * cols, 1.3 * num), squeeze=False)
        for t in range(num):
            img = result.private_images[np.flatnonzero(result.private_labels == t)[0]]
            axes[t, 0].imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
            for j, g in enumerate(grids, start=1):
                axes[t, j].imshow(g.images[t][..., 0], cmap="gray", vmin=0, vmax=1)
        titles = ["base" if g.sigma is None else f"sigma={g.sigma}/n={g.n}" for g in grids]
        for j, title in enumerate(["private", *titles]):
            axes[0, j].set_title(title, fontsize=6)
        for ax in axes.ravel():
            ax.axis("off")
        fig.tight_layout()
        paths.append(os.path.join(out_dir, f"grid_{attack}.png"))
        _save(fig, paths[-1], dpi=110)
        plt.close(fig)
    return paths


def frontier_plot(result: FrontierResult, out_dir: str) -> str:
    """Accuracy vs ASR, one panel per attack, Pareto front drawn, paper points beside."""
    plt = _pyplot()

    pts = result.points
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, (attack, name) in zip(axes, (("brep_mi", "BREP-MI"), ("mi_face", "MI-Face")),
                                  strict=True):
        for method in dict.fromkeys(p["method"] for p in pts):
            color, marker = _MARKERS.get(method, ("gray", "x"))
            sel = [p for p in pts if p["method"] == method]
            ax.scatter([p[f"asr_{attack}"] for p in sel], [p["accuracy"] for p in sel],
                       c=color, marker=marker, label=method, s=40, alpha=0.8)
        front = sorted((p for p in pts if p[f"pareto_{attack}"]),
                       key=lambda p: p[f"asr_{attack}"])
        ax.step([p[f"asr_{attack}"] for p in front], [p["accuracy"] for p in front],
                where="post", color="k", linewidth=1, label="Pareto front")
        if attack == "brep_mi":
            for p in paper.FRONTIER_POINTS:
                color, marker = _MARKERS.get(p["method"], ("gray", "x"))
                ax.scatter([p["asr"]], [p["accuracy"]], facecolors="none", edgecolors=color,
                           marker=marker, s=90, label=p["label"])
        ax.axvline(result.chance_asr, color="gray", linestyle=":", label="chance ASR")
        ax.set_xlabel(f"{name} attack success rate")
        ax.set_title(name)
        ax.set_xlim(-0.02, 1.02)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("held-out accuracy (abstain = error)")
    fig.tight_layout()
    path = os.path.join(out_dir, "frontier.png")
    _save(fig, path, dpi=120)
    plt.close(fig)
    return path
