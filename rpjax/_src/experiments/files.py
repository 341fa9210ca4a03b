"""Writes each experiment's outputs into a folder: its summary.json, CSV, report.md and plots.

Every `write_*` returns `{kind: path}` of what it wrote; the tables and text come from the pure
`*_outputs` modules, the plots from `figures`. Every file is written atomically
(`rpjax._src.durable`): an interrupted write leaves the previous complete file or none.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any

from rpjax._src.durable import atomic_write
from rpjax._src.experiments import (
    attacks_outputs,
    distillation_outputs,
    figures,
    frontier_outputs,
    inversion_outputs,
    rap_outputs,
    report,
)
from rpjax._src.experiments.attacks import AttacksResult
from rpjax._src.experiments.distillation import DistillationResult
from rpjax._src.experiments.frontier import FrontierResult
from rpjax._src.experiments.inversion import InversionResult
from rpjax._src.experiments.rap import RapResult


def _paths(out_dir: str, **names: str) -> dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    return {k: os.path.join(out_dir, v) for k, v in names.items()}


def _text(path: str, text: str) -> None:
    atomic_write(path, text)


def _csv(path: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def write_rap(result: RapResult, out_dir: str) -> dict[str, str]:
    """summary.json, people.csv, report.md and the two plots."""
    paths = _paths(out_dir, summary="summary.json", csv="people.csv", markdown="report.md")
    report.write_json(paths["summary"], result.summary())
    _csv(paths["csv"], rap_outputs.CSV_HEADER, rap_outputs.csv_rows(result))
    _text(paths["markdown"], rap_outputs.markdown(result))
    fig1, fig2 = figures.rap_plots(result, out_dir)
    paths.update(figure1=fig1, lengths=fig2)
    return paths


def write_attacks(result: AttacksResult, out_dir: str) -> dict[str, str]:
    """summary.json, report.md and attacks.png."""
    paths = _paths(out_dir, summary="summary.json", markdown="report.md")
    report.write_json(paths["summary"], result.summary())
    _text(paths["markdown"], attacks_outputs.markdown(result))
    (paths["plot"],) = figures.attacks_plots(result, out_dir)
    return paths


def write_inversion(result: InversionResult, out_dir: str) -> dict[str, str]:
    """summary.json, identities.csv, report.md, asr_vs_sigma.png and the image grids."""
    paths = _paths(out_dir, summary="summary.json", csv="identities.csv", markdown="report.md")
    report.write_json(paths["summary"], result.summary())
    _csv(paths["csv"], inversion_outputs.CSV_HEADER, inversion_outputs.csv_rows(result))
    _text(paths["markdown"], inversion_outputs.markdown(result))
    for i, p in enumerate(figures.inversion_plots(result, out_dir)):
        paths[f"plot{i}"] = p
    return paths


def write_frontier(result: FrontierResult, out_dir: str) -> dict[str, str]:
    """summary.json, points.csv, report.md and frontier.png."""
    paths = _paths(out_dir, summary="summary.json", csv="points.csv", markdown="report.md")
    report.write_json(paths["summary"], result.summary())
    header = frontier_outputs.csv_header(result)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=header)
    w.writeheader()
    w.writerows(result.points)
    atomic_write(paths["csv"], buf.getvalue())
    _text(paths["markdown"], frontier_outputs.markdown(result))
    paths["plot"] = figures.frontier_plot(result, out_dir)
    return paths


def write_distillation(result: DistillationResult, out_dir: str) -> dict[str, str]:
    """summary.json and report.md."""
    paths = _paths(out_dir, summary="summary.json", markdown="report.md")
    report.write_json(paths["summary"], result.summary())
    _text(paths["markdown"], distillation_outputs.markdown(result))
    return paths
