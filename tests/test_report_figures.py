"""What the reports' figures and summaries show a user (issue 25): the attacks figure's
panels, tiny standard deviations, the frontier's wording when no point reaches an ASR level,
and the glossary. No training: hand-made results."""

from __future__ import annotations

import types

import numpy as np
import pytest

from rpjax._src.experiments import common
from rpjax._src.experiments.attacks import experiment as attacks
from rpjax._src.experiments.attacks import report as attacks_report
from rpjax._src.experiments.frontier import experiment as frontier
from rpjax._src.experiments.frontier import report as frontier_report


def _attacks_result():
    rows = [{"attacker": "radius", "mode": "certify_radius", "noise": "fresh", "queries": 1,
             "median_error_bmi": 0.7}]
    rng = np.random.default_rng(0)
    for mode in attacks.MODES:
        for attacker in ("repeat", "near_duplicate", "abstention"):
            for noise in attacks.NOISE_MODES:
                if attacker == "abstention" and noise == "consistent":
                    continue
                for k in (1, 10, 100):
                    rows.append({"attacker": attacker, "mode": mode, "noise": noise,
                                 "queries": k, "median_error_bmi": float(rng.uniform(0, 10))})
    advantage = [{"mode": m, "queries": k, "empirical_advantage": 0.3, "bound": 0.5,
                  "standard_error": 0.05} for m in (*attacks.MODES, "certify_radius")
                 for k in (1, 10)]
    return types.SimpleNamespace(rows=rows, advantage=advantage,
                                 config={"alpha": 0.001, "delta_bmi": 1.0},
                                 median_certified_radius_bmi=1.3)


def test_attacks_figure_has_one_panel_per_release_with_distinct_lines(tmp_path):
    """15 error lines used to share one panel with repeated colours: now one panel per
    release mode, at most 5 lines each, no two with the same colour and line style."""
    result = _attacks_result()
    series = attacks_report.error_series(result)
    assert list(series) == list(attacks.MODES)  # the modes in their documented order
    assert sum(len(v) for v in series.values()) == 15
    for mode, lines in series.items():
        assert len(lines) == 5, mode
        styles = {(attacks_report._ATTACKER_STYLE[a], attacks_report._NOISE_STYLE[n])
                  for a, n in lines}
        assert len(styles) == len(lines)  # every line of a panel tells itself apart
        for pts in lines.values():
            assert [k for k, _ in pts] == [1, 10, 100]
    (path,) = attacks_report.plots(result, str(tmp_path))
    plt = common.pyplot()
    img = plt.imread(path)
    assert img.shape[1] > 2 * img.shape[0]  # a row of panels


def test_rounding_noise_standard_deviations_print_as_zero():
    assert np.std([0.7, 0.7, 0.7]) > 0  # the floating-point noise the report used to print
    assert common.spread([0.7, 0.7, 0.7]) == 0.0
    assert common.spread([0.5, 0.7]) == pytest.approx(0.1)
    table = common.markdown_table(["ASR std", "x"], [[1.1102230246251565e-16, None]])
    assert "e-16" not in table and "| 0 | - |" in table


def test_frontier_says_when_no_point_of_a_method_reaches_an_asr_level():
    point = {"method": "none", "accuracy": 0.9, "abstain_rate": 0.0, "asr_brep_mi": 0.9,
             "asr_mi_face": 0.9, "pareto_brep_mi": True, "pareto_mi_face": True}
    front = frontier.FrontierResult(
        points=[point, {**point, "method": "abstain", "q": 0.5, "accuracy": 0.45,
                        "abstain_rate": 0.5, "asr_brep_mi": 0.6}],
        config={"accountant": "rdp", "delta": 1e-5}, chance_asr=0.05, seconds=1.0,
        versions={})
    text = frontier_report.comparison(front)
    assert "abstain none" not in text
    assert "random abstention: no point reaches it" in text
    assert "Pareto front: random abstention, undefended" in text  # names, not keys
    md = frontier_report.markdown(front)
    assert "`paper_accuracy` is the paper's utility metric" in md
    assert "fraction of held-out images a release abstained on" in md
    measured = frontier_report.measured(front)
    assert [p["method"] for p in measured["points"]] == ["rp", "dpsgd"]
    assert all(p["accuracy"] is None for p in measured["points"])  # neither method ran


def test_the_glossary_explains_the_keys_a_user_meets():
    for key in ("paper_accuracy", "abstain_rate", "asr", "asr_direction", "asr_pixel_nn",
                "judge_controls", "paper_vs_measured"):
        assert len(common.GLOSSARY[key]) > 40, key
    assert "most confident" in common.PAPER_ACCURACY
