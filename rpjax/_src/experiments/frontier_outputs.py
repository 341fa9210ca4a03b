"""The frontier experiment's tables and text (pure: no plotting, no files)."""

from __future__ import annotations

from typing import Any

from rpjax._src.experiments import paper, report
from rpjax._src.experiments.frontier import FrontierResult

_PARAMS = ("sigma", "n", "target", "target_epsilon", "epsilon", "p", "q", "scale")


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
             "undefended one.", "",
             report.markdown_table(headers, rows), "", "## Beside the paper", "",
             comparison(result), ""]
    return "\n".join(lines)


def _best_at(points, attack, max_asr):
    ok = [p for p in points if p[f"asr_{attack}"] <= max_asr]
    return max(ok, key=lambda p: p["accuracy"]) if ok else None


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
        out.append(f"{name} Pareto front: {', '.join(sorted(front))}.")
        for level in (0.25, 0.5):
            best = {m: _best_at(v, attack, level) for m, v in by.items() if m != "none"}
            desc = "; ".join(f"{m} {b['accuracy']:.3f} ({describe(b)})" if b else f"{m} none"
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
