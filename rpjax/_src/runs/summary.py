"""Summarizing a run: rows, `summary.json` and the certified-accuracy plot."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from rpjax._src import durable
from rpjax._src import stats as _stats
from rpjax._src.runs.blocks import _read_range, iter_rows, scan_run
from rpjax._src.runs.spec import RunSpec, read_config


def radius_grid(config: RunSpec) -> np.ndarray:
    """Radii of the summary table: multiples of sigma/4 up to the largest certifiable one."""
    top = float(_stats.max_radius(config.n, config.alpha, config.sigma))
    steps = int(np.floor(top / (config.sigma / 4) + 1e-9))
    return np.round(np.arange(steps + 1) * config.sigma / 4, 12)


class Columns(NamedTuple):
    """The per-input numbers a summary needs, gathered from the rows (`[N]` arrays each)."""

    radius: np.ndarray  # float64
    certified: np.ndarray  # bool: not abstained
    ok: np.ndarray  # bool: correct (with labels), else certified
    used: np.ndarray  # int64: n0 + estimation samples used
    decision: np.ndarray  # int8 (sequential), else empty
    blocks: set[int]
    labels: bool


def columns(config: RunSpec, rows: Iterator[dict[str, Any]]) -> Columns:
    """Streams `rows` into `Columns` (memory: a few bytes per input)."""
    radius, certified, correct, used, decision = [], [], [], [], []
    blocks: set[int] = set()
    labels = None
    for r in rows:
        radius.append(r["radius"])
        certified.append(r["predict"] >= 0)
        labels = r["label"] is not None if labels is None else labels
        correct.append(bool(r["correct"]) if labels else r["predict"] >= 0)
        used.append(config.n0 + r["n"])
        if "decision" in r:
            decision.append(r["decision"])
        blocks.add(r["block"])
    return Columns(np.array(radius, np.float64), np.array(certified, bool),
                   np.array(correct, bool), np.array(used, np.int64),
                   np.array(decision, np.int8), blocks, bool(labels))


def summary_of(config: RunSpec, cols: Columns, times: list[dict[str, Any]]
               ) -> dict[str, Any]:
    """The numbers of `summary.json` from the rows' `Columns` and the block times."""
    num = cols.radius.shape[0]
    good = cols.ok & cols.certified
    grid = radius_grid(config)
    curve = [{"radius": float(r), "fraction": float(np.mean(good & (cols.radius >= r)))
              if num else None} for r in grid]
    by_block = {t["block"]: t for t in times}
    timed = [b for b in cols.blocks if b in by_block]
    seconds = sum(by_block[b]["seconds"] for b in timed)
    passes = sum(by_block[b]["forward_passes"] for b in timed)
    per_process: dict[int, float] = {}
    for b in timed:
        p = by_block[b].get("process", 0)
        per_process[p] = per_process.get(p, 0.0) + by_block[b]["seconds"]
    slowest = max(per_process.values(), default=0.0)
    inputs_timed = sum(config.block_range(b)[1] - config.block_range(b)[0] for b in timed)
    out: dict[str, Any] = {
        "complete": num == config.num_inputs, "inputs": num, "num_inputs": config.num_inputs,
        "sigma": config.sigma, "n0": config.n0, "n": config.n, "alpha": config.alpha,
        "method": config.method, "radius": config.radius,
        "max_radius": float(_stats.max_radius(config.n, config.alpha, config.sigma)),
        "labels": cols.labels,
        "measure": "certified accuracy" if cols.labels else "certified fraction (no labels)",
        "certified_accuracy" if cols.labels else "certified_fraction": curve,
        "average_certified_radius": float(np.mean(cols.radius * good)) if num else None,
        "accuracy" if cols.labels else "certified": float(np.mean(good)) if num else None,
        "abstain_rate": float(np.mean(~cols.certified)) if num else None,
        "samples": {"total": int(cols.used.sum()),
                    "per_input_mean": float(cols.used.mean()) if num else None,
                    "fixed_n_total": num * (config.n0 + config.n)},
        "throughput": {"seconds": seconds, "inputs_timed": inputs_timed,
                       "inputs_per_second": inputs_timed / seconds if seconds else None,
                       "forward_passes": passes,
                       "forward_passes_per_second": passes / seconds if seconds else None,
                       "processes": len(per_process),
                       "job_forward_passes_per_second": passes / slowest if slowest else None,
                       "note": "seconds: certification time summed over blocks and processes "
                               "(compilation in each process's first block included); "
                               "*_per_second: per process; job_*: all processes' forward "
                               "passes over the slowest process's seconds"},
    }
    out["samples"]["note"] = (
        "total: the n0 selection and the estimation samples each input counted; "
        "throughput.forward_passes also counts, with --method sequential, the samples the "
        "scheduler evaluated past an input's stop in its last step (the lanes are shared in "
        "fixed-size steps), so it can exceed total; with --method cohen the two are equal")
    if config.method == "sequential" and config.radius is not None:
        # the decision at r answers one question: only r was tested, so the curve over radii
        # and the average radius would describe radii the rule never tried
        at_r = good & (cols.decision == 1)
        key = "certified_accuracy" if cols.labels else "certified_fraction"
        out[key] = [{"radius": config.radius, "fraction": float(np.mean(at_r))
                     if num else None}]
        out["average_certified_radius"] = None
        out["question"] = (
            f"decision at r = {config.radius:g}: each input stops as soon as it is decided "
            f"whether it is certified at r; {key} is reported at r only, the average "
            "certified radius not at all (the rule does not look for the largest radius)")
        out["decision"] = {"certified": int((cols.decision == 1).sum()),
                           "not_robust": int((cols.decision == 0).sum()),
                           "undecided": int((cols.decision == -1).sum())}
    elif config.method == "sequential":
        saved = out["samples"]["fixed_n_total"] / max(out["samples"]["total"], 1)
        out["question"] = (
            f"radius with a budget (price {config.price:g}): each input's estimation sample "
            "count is planned from its selection votes (a sample is spent while it adds at "
            "least `price` sigma of expected radius), then Clopper-Pearson at alpha; "
            f"{saved:.2f}x fewer samples than fixed n. Inputs with every vote for their class "
            "save little: a valid bound from m samples is at most alpha^(1/m), so their "
            "radius keeps growing with n")
    return out


def plot_summary(config: RunSpec, cols: Columns, path: str) -> None:
    """`certified_accuracy.png`: the certified accuracy (or fraction) against the radius."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = cols.ok & cols.certified
    num = cols.radius.shape[0]
    inputs = (f"{num:,} inputs" if num == config.num_inputs
              else f"{num:,} of {config.num_inputs:,} inputs (partial)")
    measure = "certified accuracy" if cols.labels else "certified fraction"
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    if config.method == "sequential" and config.radius is not None:
        # the decision at r: what was decided at r, nothing about other radii
        parts = {f"certified at r{', correct' if cols.labels else ''}":
                 np.mean(good & (cols.decision == 1))}
        if cols.labels:
            parts["certified at r, wrong label"] = np.mean(~cols.ok & (cols.decision == 1))
        parts["not robust at r (gave up)"] = np.mean(cols.decision == 0)
        parts["undecided at n_max"] = np.mean(cols.decision == -1)
        ax.barh(list(parts)[::-1], list(parts.values())[::-1], color="tab:blue")
        ax.set_xlim(0, 1.0)
        ax.set_xlabel("fraction of inputs")
        for i, v in enumerate(list(parts.values())[::-1]):
            ax.text(v + 0.01, i, f"{v:.3f}", va="center", fontsize=8)
        title = (f"decision at r = {config.radius:g}: {inputs}, sigma {config.sigma:g}, "
                 f"n_max {config.n:,}, alpha {config.alpha:g}")
    else:
        top = float(_stats.max_radius(config.n, config.alpha, config.sigma))
        grid = np.linspace(0.0, max(top, 1e-12) * 1.02, 400)
        curve = [np.mean(good & (cols.radius >= r)) for r in grid]
        ax.plot(grid, curve, drawstyle="steps-post")
        ax.axvline(top, ls=":", c="gray", label=f"largest radius at n = {config.n:,}")
        ax.set_xlabel("l2 radius (input units)")
        ax.set_ylabel(measure)
        ax.set_ylim(0, 1.02)
        rule = ("cohen" if config.method == "cohen"
                else f"radius with a budget (price {config.price:g})")
        title = (f"{inputs}, sigma {config.sigma:g}, n {config.n:,}, alpha "
                 f"{config.alpha:g}, {rule}")
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with durable.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def _times(run_dir: str) -> list[dict[str, Any]]:
    times: list[dict[str, Any]] = []
    parts = os.path.join(run_dir, "parts")
    for name in sorted(os.listdir(parts)) if os.path.isdir(parts) else []:
        if name.startswith("times-") and name.endswith(".jsonl"):
            with open(os.path.join(parts, name), encoding="utf-8") as f:
                for line in f:
                    try:
                        times.append(json.loads(line))
                    except ValueError:
                        continue  # a torn timing line: throughput only
    return times


def summarize(run_dir: str) -> dict[str, Any]:
    """`rpjax summarize RUN/`: rewrites `rows.jsonl`, `summary.json` and the plot from the
    committed blocks (a partial run is summarized as such: `complete` False).

    Returns:
      The summary dict (also written to `RUN/summary.json`).

    Raises:
      ValueError naming `RUN`: no run there.
    """
    config = read_config(run_dir)
    blocks = scan_run(run_dir, config)
    durable.atomic_write(os.path.join(run_dir, "rows.jsonl"),
                         (_read_range(*blocks[b]) for b in sorted(blocks)))
    cols = columns(config, iter_rows(blocks))
    summary = summary_of(config, cols, _times(run_dir))
    durable.atomic_write(os.path.join(run_dir, "summary.json"),
                         json.dumps(summary, indent=2) + "\n")
    if summary["inputs"]:
        plot_summary(config, cols, os.path.join(run_dir, "certified_accuracy.png"))
    return summary
