"""The inversion experiment's outputs: its tables and text (pure), its plots, and `write`, which
puts them all into a folder."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from rpjax._src.durable import atomic_write
from rpjax._src.experiments import common, paper
from rpjax._src.experiments.inversion.experiment import InversionResult

CSV_HEADER = ("attack", "target_model", "sigma", "n", "identity", "class", "success_rate")


def csv_rows(result: InversionResult) -> list[list[Any]]:
    """One row per (attack, target model, setting, identity): success rate over seeds."""
    return [list(r) for r in result.per_identity]


def _records(result: InversionResult, attack: str) -> list[dict[str, Any]]:
    """Every record of `attack`: the undefended target's, its RP sweep, then the other
    targets' (augmented: `undefended_augmented`, `rp_augmented`)."""
    a = result.attacks[attack]
    out = [a["undefended"]] + a.get("rp", [])
    for key in sorted(k for k in a if k not in ("undefended", "rp")):
        out += a[key] if isinstance(a[key], list) else [a[key]]
    return out


def markdown(result: InversionResult) -> str:
    """Tables of ASR and utility per setting, beside the paper's numbers."""
    cfg = result.config
    lines = [
        "# Experiment B: model inversion against Robust Privacy (Olivetti faces)",
        "",
        f"{result.num_identities} private identities (chance ASR "
        f"{result.chance_asr:.3f}); images {cfg['image_size']}x{cfg['image_size']}; "
        f"target held-out accuracy {result.target_accuracy:.3f}, evaluator accuracy "
        f"{result.evaluator_accuracy:.3f}. RP releases: PREDICT with n samples per query "
        f"at alpha = {cfg['alpha']} (abstain = not the target); sigma in pixel units. "
        f"ASR = evaluator top-1 equals the target, mean (std) over seeds {cfg['seeds']}.",
        "",
    ]
    for attack in ("brep_mi", "mi_face"):
        lines += [f"## {attack}", "", "distance: mean l2 distance, in the evaluator's feature "
                  "space, from each reconstruction to the nearest private training image of "
                  "its identity.", ""]
        headers = ["target", "sigma", "n", "ASR", "ASR std", "top-5", "ASR initial",
                   "initial found", "distance", "accuracy", "abstain", "queries",
                   "forward passes"]
        rows = []
        for r in _records(result, attack):
            rows.append([r["target"], "-" if r["sigma"] is None else r["sigma"],
                         "-" if r["n"] is None else r["n"], r["asr"], r.get("asr_std", 0.0),
                         r.get("asr_top5", float("nan")), r.get("asr_initial", float("nan")),
                         r.get("initial_found", "-"), r.get("distance", float("nan")),
                         r["accuracy"], r["abstain_rate"],
                         r.get("queries", float("nan")), r.get("forward_passes", float("nan"))])
        lines += [common.markdown_table(headers, rows), ""]
    px = result.attacks.get("mi_face_pixels", {}).get("undefended")
    if px:
        lines += ["## MI-Face in pixel space (undefended target)", "",
                  f"ASR {px['asr']:.2f} on the raw pixel reconstructions, "
                  f"{px['asr_projected']:.2f} after projecting them onto the PCA prior; mean "
                  f"distance to the nearest private image of the target in evaluator feature "
                  f"space {px['distance']:.2f} raw vs {px['distance_projected']:.2f} projected. "
                  "A high raw ASR with a low projected one means the evaluator accepts "
                  "adversarial noise rather than a face.", ""]
    lines += ["## Beside the paper", "", comparison(result), ""]
    return "\n".join(lines)


def comparison(result: InversionResult) -> str:
    """How the measured shape compares with the paper's BREP-MI ASR against sigma."""
    brep = result.attacks["brep_mi"]
    rp = ", ".join(f"{'RP sigma' if i == 0 else 'sigma'} = {r['sigma']}: {r['asr']:.0%}"
                   for i, r in enumerate(paper.INVERSION["rp"]))
    parts = [f"Paper (CelebA, FaceNet64): undefended BREP-MI ASR "
             f"{paper.INVERSION['undefended_asr']:.0%}, {rp}. Here undefended BREP-MI ASR is "
             f"{brep['undefended']['asr']:.2f}."]
    by_sigma: dict[float, list[float]] = {}
    for r in brep.get("rp", []):
        by_sigma.setdefault(r["sigma"], []).append(r["asr"])
    if by_sigma:
        trend = ", ".join(f"sigma {s}: {max(v):.2f}" for s, v in sorted(by_sigma.items()))
        parts.append(f"Against RP (largest ASR over n): {trend}.")
        ordered = [max(v) for _, v in sorted(by_sigma.items())]
        falls = all(a >= b for a, b in zip(ordered, ordered[1:], strict=False))
        if len(ordered) >= 2:
            parts.append("ASR falls as sigma grows, the paper's shape." if falls else
                         "ASR does not fall monotonically with sigma here.")
    aug = brep.get("rp_augmented", [])
    if aug:
        trend = ", ".join(f"sigma {r['sigma']} n {r['n']}: ASR {r['asr']:.2f} at accuracy "
                          f"{r['accuracy']:.2f}" for r in aug)
        parts.append(f"Smoothing targets trained with Gaussian augmentation at each sigma: "
                     f"{trend}.")
    parts.append("Absolute numbers are not comparable (40 Olivetti identities on a CPU vs "
                 "1,000 CelebA identities); read the shape, and the accuracy beside each ASR.")
    return " ".join(parts)


def plots(result: InversionResult, out_dir: str) -> list[str]:
    """ASR vs sigma per attack and n, and reconstruction grids; PNG paths."""
    plt = common.pyplot()

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
    common.save_figure(fig, paths[-1], dpi=120)
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
        common.save_figure(fig, paths[-1], dpi=110)
        plt.close(fig)
    return paths


def write(result: InversionResult, out_dir: str) -> dict[str, str]:
    """summary.json, identities.csv, report.md, asr_vs_sigma.png and the image grids."""
    paths = common.output_paths(out_dir, summary="summary.json", csv="identities.csv",
                                 markdown="report.md")
    common.write_json(paths["summary"], result.summary())
    common.write_csv(paths["csv"], CSV_HEADER, csv_rows(result))
    atomic_write(paths["markdown"], markdown(result))
    for i, p in enumerate(plots(result, out_dir)):
        paths[f"plot{i}"] = p
    return paths
