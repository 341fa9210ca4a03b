"""The frontier experiment's outputs: its tables and text (pure), its plots, and `write`, which
puts them all into a folder."""

from __future__ import annotations

import os
from typing import Any

from rpjax._src.durable import atomic_write
from rpjax._src.experiments import common, paper
from rpjax._src.experiments.frontier.experiment import FrontierResult

_PARAMS = ("sigma", "n", "target", "target_epsilon", "epsilon", "p", "q", "scale")


METHOD_NAMES = {"none": "undefended", "rp": "RP", "dpsgd": "DP-SGD",
                "randomized_response": "randomized response",
                "abstain": "random abstention", "output_noise": "output noise"}
"""How the comparison text names each `method` (its key in the points)."""


def _name(method: str) -> str:
    return METHOD_NAMES.get(method, method)


def describe(point: dict[str, Any]) -> str:
    """A short label of a point's parameters, e.g. `sigma=0.1 n=100`."""
    parts = []
    for k in _PARAMS:
        if point.get(k) is not None and k != "target_epsilon":
            v = point[k]
            parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


def csv_header(result: FrontierResult) -> list[str]:
    """The columns of the points CSV: every key of any point, in order of appearance."""
    keys: list[str] = []
    for p in result.points:
        keys += [k for k in p if k not in keys]
    return keys


def markdown(result: FrontierResult) -> str:
    """The table of every point (Pareto membership marked) and the comparison with the paper."""
    rows = []
    for p in result.points:
        rows.append([p["method"], describe(p), p["accuracy"], p["abstain_rate"],
                     p["asr_brep_mi"], p["asr_mi_face"],
                     "yes" if p["pareto_brep_mi"] else "", "yes" if p["pareto_mi_face"] else ""])
    headers = ["method", "parameters", "accuracy", "abstain", "ASR BREP-MI", "ASR MI-Face",
               "front (BREP)", "front (MI-Face)"]
    lines = ["# Privacy-utility frontier (Olivetti faces)", "",
             f"Held-out accuracy (abstentions count as errors) against attack success, chance "
             f"ASR {result.chance_asr:.3f}. DP-SGD epsilon is the accountant's "
             f"({result.config['accountant']}, delta = {result.config['delta']}). "
             "Label baselines leave the white-box model unchanged: their MI-Face ASR is the "
             "undefended one. `abstain` is the fraction of held-out images a release "
             "abstained on (the `abstain` method is the random-abstention baseline). "
             + common.PAPER_ACCURACY, "",
             common.markdown_table(headers, rows), "", "## Beside the paper", "",
             comparison(result), ""]
    return "\n".join(lines)


def _best_at(points, attack, max_asr):
    ok = [p for p in points if p[f"asr_{attack}"] <= max_asr]
    return max(ok, key=lambda p: p["accuracy"]) if ok else None


def measured(result: FrontierResult) -> dict[str, Any]:
    """Beside each of the paper's points (`paper.FRONTIER_POINTS`): the best held-out accuracy
    of that method here among its points at a BREP-MI ASR no larger than the paper's (None:
    no point reaches it)."""
    out = []
    for ref in paper.FRONTIER_POINTS:
        best = _best_at([p for p in result.points if p["method"] == ref["method"]], "brep_mi",
                        ref["asr"])
        out.append({"method": ref["method"], "max_asr": ref["asr"],
                    "accuracy": None if best is None else best["accuracy"],
                    "asr": None if best is None else best["asr_brep_mi"],
                    "parameters": None if best is None else describe(best)})
    return {"points": out}


def comparison(result: FrontierResult) -> str:
    """Where the measured frontier agrees or disagrees with the paper's v2 claim."""
    pts = result.points
    by = {m: [p for p in pts if p["method"] == m] for m in {p["method"] for p in pts}}
    ref = {p["method"]: p for p in paper.FRONTIER_POINTS}
    out = [f"Paper (CelebA, v2): RP keeps {ref['rp']['accuracy']:.1%} accuracy at "
           f"{ref['rp']['asr']:.0%} BREP-MI ASR, DP-SGD drops to {ref['dpsgd']['accuracy']:.1%} "
           "for a comparable ASR, and randomized response is dominated."]
    none = by["none"][0]
    out.append(f"Here the undefended target has accuracy {none['accuracy']:.3f} at BREP-MI ASR "
               f"{none['asr_brep_mi']:.2f}.")
    for attack, name in (("brep_mi", "BREP-MI"), ("mi_face", "MI-Face")):
        front = {p["method"] for p in pts if p[f"pareto_{attack}"]}
        out.append(f"{name} Pareto front: {', '.join(_name(m) for m in sorted(front))}.")
        for level in (0.25, 0.5):
            best = {m: _best_at(v, attack, level) for m, v in by.items() if m != "none"}
            desc = "; ".join(f"{_name(m)} {b['accuracy']:.3f} ({describe(b)})" if b else
                             f"{_name(m)}: no point reaches it"
                             for m, b in sorted(best.items()))
            out.append(f"Best accuracy at {name} ASR <= {level}: {desc}.")
    rp = [p for p in by.get("rp", []) if p.get("target") == "undefended"]
    dp = by.get("dpsgd", [])
    if rp and dp:
        dominated = [d for d in dp if any(r["accuracy"] >= d["accuracy"]
                                          and r["asr_brep_mi"] <= d["asr_brep_mi"] for r in rp)]
        out.append(f"{len(dominated)} of {len(dp)} DP-SGD points are dominated (BREP-MI) by an "
                   "RP point of the undefended target" +
                   (", as the paper claims." if len(dominated) == len(dp) else
                    "; the paper's claim holds only partly here."))
    rr = by.get("randomized_response", [])
    if rp and rr:
        dominated = [d for d in rr if any(r["accuracy"] >= d["accuracy"]
                                          and r["asr_brep_mi"] <= d["asr_brep_mi"] for r in rp)]
        out.append(f"{len(dominated)} of {len(rr)} randomized-response points are dominated "
                   "(BREP-MI) by an RP point.")
    return " ".join(out)


_MARKERS = {"none": ("k", "*"), "rp": ("tab:blue", "o"), "dpsgd": ("tab:red", "s"),
            "randomized_response": ("tab:green", "^"), "abstain": ("tab:purple", "v"),
            "output_noise": ("tab:orange", "D")}


def plot(result: FrontierResult, out_dir: str) -> str:
    """Accuracy vs ASR, one panel per attack, Pareto front drawn, paper points beside."""
    plt = common.pyplot()

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
    common.save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


def write(result: FrontierResult, out_dir: str) -> dict[str, str]:
    """summary.json, points.csv, report.md and frontier.png."""
    paths = common.output_paths(out_dir, summary="summary.json", csv="points.csv",
                                 markdown="report.md")
    common.write_json(paths["summary"], result.summary())
    header = csv_header(result)
    common.write_csv(paths["csv"], header, [[p.get(h, "") for h in header]
                                            for p in result.points])
    atomic_write(paths["markdown"], markdown(result))
    paths["plot"] = plot(result, out_dir)
    return paths
