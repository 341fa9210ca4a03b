"""The distillation experiment's outputs: its table and text (pure), and `write`, which puts
them into a folder."""

from __future__ import annotations

from typing import Any

from rpjax._src.durable import atomic_write
from rpjax._src.experiments import common
from rpjax._src.experiments.distillation.experiment import DistillationResult


def markdown(result: DistillationResult) -> str:
    """The agreement/accuracy table and the comparison with the paper's scope boundary."""
    cfg = result.config
    rows = [["none (argmax)", "-", "-", result.undefended["answered"],
             result.agreement_undefended, result.student_accuracy_undefended]]
    for r in result.rp:
        rows.append(["RP predict", r["sigma"], r["n"], r["answered"], r["agreement"],
                     r["student_accuracy"]])
    headers = ["release", "sigma", "n", "labels answered", "student-target agreement",
               "student accuracy"]
    return "\n".join([
        "# Distillation boundary (Olivetti faces)", "",
        f"An extractor spends {cfg['budget']} label queries on a query set it can build "
        f"without the private training images ({result.query_set}), trains a student "
        "(target architecture, another seed) on the answers (abstentions dropped), and is "
        "judged on the private held-out images: agreement with the undefended target's labels "
        f"and accuracy (target accuracy {result.target_accuracy:.3f}, chance "
        f"{result.chance:.3f}).", "",
        common.markdown_table(headers, rows), "",
        "## Beside the paper", "", comparison(result), ""])


def measured(result: DistillationResult) -> dict[str, Any]:
    """What the paper's sentence (`paper.DISTILLATION`) is read against: student-target
    agreement and student accuracy from the undefended and the RP labels (the largest RP
    agreement over the sweep)."""
    best = max((r["agreement"] for r in result.rp), default=None)
    return {"agreement_undefended": result.agreement_undefended,
            "agreement_rp": result.agreement_rp, "agreement_rp_max": best,
            "student_accuracy_undefended": result.student_accuracy_undefended,
            "student_accuracy_rp": result.student_accuracy_rp,
            "target_accuracy": result.target_accuracy, "chance": result.chance}


def comparison(result: DistillationResult) -> str:
    """Whether the student copies the function through RP, as the paper's v2 says."""
    und, rp = result.agreement_undefended, result.agreement_rp
    if rp is None or rp != rp:  # no RP label released: no student to judge
        return (f"Paper: {result.paper} Here the RP release (sigma {result.rp[0]['sigma']}, "
                f"n {result.rp[0]['n']}) abstained on every query, so no student could be "
                f"trained on its labels; on undefended labels the student agrees with the "
                f"target on {und:.2f} of the held-out images.")
    verdict = ("RP leaves most of the function extractable, as the paper's v2 says"
               if rp >= 0.5 * und else
               "RP's abstentions and noise cut the extraction much more than the paper's v2 "
               "suggests at this scale")
    return (f"Paper: {result.paper} Here the student agrees with the target on {rp:.2f} of "
            f"the held-out images when trained on RP labels (sigma {result.rp[0]['sigma']}, "
            f"n {result.rp[0]['n']}) vs {und:.2f} on undefended labels: {verdict}.")


def write(result: DistillationResult, out_dir: str) -> dict[str, str]:
    """summary.json and report.md."""
    paths = common.output_paths(out_dir, summary="summary.json", markdown="report.md")
    common.write_json(paths["summary"], result.summary())
    atomic_write(paths["markdown"], markdown(result))
    return paths
