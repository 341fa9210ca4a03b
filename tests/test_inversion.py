"""Experiment B end to end on a small setting, and its summary keys."""

import json

import pytest

from rpjax import cli


@pytest.mark.slow
def test_reproduce_inversion_quick(tmp_path):
    assert cli.main(["reproduce", "inversion", "--quick", "--out", str(tmp_path),
                     "--no-progress"]) == 0
    out = tmp_path / "inversion"
    for name in ("summary.json", "identities.csv", "report.md", "asr_vs_sigma.png",
                 "grid_brep_mi.png", "grid_mi_face.png"):
        assert (out / name).stat().st_size > 0, name
    s = json.loads((out / "summary.json").read_text())
    assert s["num_identities"] == 20
    assert s["target_accuracy"] >= 0.85
    assert s["evaluator_accuracy"] >= 0.85
    for attack in ("brep_mi", "mi_face"):
        a = s["attacks"][attack]
        assert a["undefended"]["asr"] > s["chance_asr"]  # clearly above chance
        assert len(a["rp"]) == 2  # quick: sigma in {0.1, 0.5} x n = 10
        for rec in a["rp"]:
            for key in ("sigma", "n", "asr", "asr_std", "accuracy", "abstain_rate",
                        "forward_passes"):
                assert key in rec, (attack, key)
            assert len(rec["asr_per_seed"]) == 3
    for rec in s["attacks"]["brep_mi"]["rp"]:
        for key in ("asr_initial", "initial_found", "queries"):
            assert key in rec
        assert rec["forward_passes"] == pytest.approx(rec["queries"] * rec["n"])
    # more noise: fewer identities reconstructed and lower utility
    low, high = sorted(s["attacks"]["brep_mi"]["rp"], key=lambda r: r["sigma"])
    assert high["asr"] <= low["asr"] and high["accuracy"] <= low["accuracy"]
    assert "73%" in (out / "report.md").read_text()
    px = s["attacks"]["mi_face_pixels"]["undefended"]
    assert {"asr", "asr_projected", "distance", "distance_projected"} <= set(px)
    assert all(r["distance"] > 0 for r in s["attacks"]["brep_mi"]["rp"])
    rows = (out / "identities.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3 * 20  # (brep, mi_face) x (none + 2 RP) x 20 identities
