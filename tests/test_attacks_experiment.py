"""`rpjax reproduce attacks` on a tiny setting: the measured advantages respect the bound."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from rpjax._src.experiments.attacks import experiment as attacks
from rpjax._src.experiments.attacks import report as attacks_outputs
from rpjax._src.experiments.context import Context
from rpjax._src.experiments.rap import RapConfig

# an end-to-end `rpjax reproduce attacks` run on tiny settings (it trains a model, runs every
# attacker): an experiment run, like `reproduce --quick`
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def result():
    config = attacks.AttacksConfig.quick(
        n=100, n0=20, queries=(1, 20), num_people=3, grid_step=0.5, attacker_samples=1000,
        n_certify=500, advantage_queries=(1, 5), advantage_trials=80, advantage_people=1,
        model=RapConfig.quick(train_steps=300))
    return attacks.run(config, Context(progress=False))


def test_measured_advantage_never_exceeds_the_bound(result):
    assert result.advantage
    modes = {a["mode"] for a in result.advantage}
    assert modes == {"predict", "always_label", "certify", "certify_radius"}
    for a in result.advantage:
        assert 0.0 <= a["bound"] <= 1.0
        assert a["empirical_advantage"] <= a["bound"] + 3 * a["standard_error"], a
    assert attacks_outputs.worst_advantage_gap(result) <= 3.0


def test_every_attacker_release_and_noise_mode_is_measured(result):
    seen = {(r["attacker"], r["mode"], r["noise"]) for r in result.rows}
    for mode in attacks.MODES:
        for noise in attacks.NOISE_MODES:
            assert ("repeat", mode, noise) in seen
            assert ("near_duplicate", mode, noise) in seen
    assert ("radius", "certify_radius", "fresh") in seen
    assert ("abstention", "predict", "fresh") in seen
    for r in result.rows:
        assert np.isfinite(r["median_error_bmi"]) and r["median_error_bmi"] >= 0


def test_exact_repeats_under_consistent_noise_gain_nothing(result):
    for mode in attacks.MODES:
        rows = [r for r in result.rows
                if (r["attacker"], r["mode"], r["noise"]) == ("repeat", mode, "consistent")]
        assert len({tuple(r["errors_bmi"]) for r in rows}) == 1


def test_outputs(result, tmp_path):
    paths = attacks_outputs.write(result, str(tmp_path))
    for p in paths.values():
        assert os.path.getsize(p) > 0
    written = json.loads(open(paths["summary"]).read())
    assert written["experiment"] == "attacks" and len(written["rows"]) == len(result.rows)
    assert [r["median_error_bmi"] for r in written["rows"]] == [
        r["median_error_bmi"] for r in result.rows]
    head = result.headline()
    assert all("errors_bmi" not in r for r in head["rows"])
    assert len(head["rows"]) == len(result.rows)
    md = attacks_outputs.markdown(result)
    assert "measured vs the computed bound" in md
    assert "alpha/2" in attacks_outputs.comparison(result)
