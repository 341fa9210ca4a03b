"""`rpjax reproduce all --quick` end to end: every experiment's outputs, the report, the
summary's stable keys. One run (a few minutes) feeds all the checks."""

import json
import os

import numpy as np
import pytest

from rpjax._src import cli
from rpjax._src.experiments import faces, reproduce
from rpjax._src.experiments.context import Context, Options
from rpjax.experiments import InversionConfig, default_cache_dir

CHANCE = 1 / 20


def _check_rap(out, summary):
    for name in ("summary.json", "people.csv", "report.md", "figure1_bmi_histogram.png",
                 "interval_lengths.png"):
        assert (out / name).stat().st_size > 0, name
    own = json.loads((out / "summary.json").read_text())
    for key in ("accuracy", "median_interval_bmi"):
        assert key in own["base"]
    stable = ("accuracy", "abstain_rate", "mean_radius_std", "mean_radius_bmi",
              "median_interval_bmi", "median_not_excluded_bmi", "median_ape_interval_bmi")
    for sigma in ("1.0", "2.0", "3.0"):
        for key in stable:
            assert key in own["rp"][sigma], (sigma, key)
        for n in ("100", "1000"):
            assert set(stable) <= set(own["rp_by_n"][n][sigma])
        rec = own["rp"][sigma]
        assert abs(rec["mean_radius_bmi"] - rec["mean_radius_std"] * 6.0959) < 1e-2
        assert 0 <= rec["abstain_rate"] <= 1
    assert own["config"]["sigmas"] == [1.0, 2.0, 3.0]
    assert "29.96" in (out / "report.md").read_text()
    rows = (out / "people.csv").read_text().splitlines()
    assert len(rows) == 1 + own["num_people"] * 7  # base + 3 sigmas x 2 ns
    assert summary["rap"]["rp"]["1.0"] == own["rp"]["1.0"]


def _check_inversion(out, summary):
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
                        "forward_passes", "seconds"):
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
    # the judge does not reward an identity-free face: every control at chance level
    for name, control in s["judge_controls"].items():
        assert control["top1"] <= 3 * s["chance_asr"], name
    # a success above chance is backed by the judge-free measure, not the evaluator alone
    und = s["attacks"]["mi_face"]["undefended"]
    assert und["asr_direction"] > 3 * s["chance_asr"]
    # and the grids show it: no setting whose drawn columns are one face while its ASR is
    # above chance (`inversion.report.grid_disagreements`, pixel variation across identities)
    assert "The grid contradicts the table" not in (out / "report.md").read_text()
    rows = (out / "identities.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3 * 20  # (brep, mi_face) x (none + 2 RP) x 20 identities
    assert summary["inversion"]["target_accuracy"] == s["target_accuracy"]


def _check_frontier(out, summary):
    for name in ("summary.json", "points.csv", "report.md", "frontier.png"):
        assert (out / name).stat().st_size > 0, name
    points = summary["frontier"]
    methods = {p["method"] for p in points}
    assert methods == {"none", "rp", "dpsgd", "randomized_response", "abstain", "output_noise"}
    for p in points:
        for key in ("accuracy", "asr_brep_mi", "asr_mi_face", "pareto_brep_mi",
                    "pareto_mi_face"):
            assert key in p, (p["method"], key)
        assert 0.0 <= p["accuracy"] <= 1.0
    dp = [p for p in points if p["method"] == "dpsgd"]
    assert [p["target_epsilon"] for p in dp] == [4.0, 64.0]
    for p in dp:
        assert 0 < p["epsilon"] <= p["target_epsilon"] + 1e-6  # the accountant's epsilon
    # more privacy budget, more noise removed: the model is at least as accurate
    assert dp[1]["noise_multiplier"] < dp[0]["noise_multiplier"]
    rr = next(p for p in points if p["method"] == "randomized_response")
    none = next(p for p in points if p["method"] == "none")
    assert rr["accuracy"] < none["accuracy"]
    # the RP points are the inversion experiment's own records
    inv = summary["inversion"]["attacks"]["brep_mi"]["rp"]
    rp = [p for p in points if p["method"] == "rp"]
    assert [p["asr_brep_mi"] for p in rp] == [r["asr"] for r in inv]
    assert any(p["pareto_brep_mi"] for p in points)
    assert "61.7%" in (out / "report.md").read_text()


def _check_attacks(out, summary):
    for name in ("summary.json", "report.md", "attacks.png"):
        assert (out / name).stat().st_size > 0, name
    head = summary["attacks"]
    assert {r["attacker"] for r in head["rows"]} == {"radius", "repeat", "near_duplicate",
                                                     "abstention"}
    for a in head["advantage"]:
        assert a["empirical_advantage"] <= a["bound"] + 3 * a["standard_error"], a
    assert "measured vs the computed bound" in (out / "report.md").read_text()


def _check_distillation(out, summary):
    d = summary["distillation"]
    for key in ("agreement_undefended", "agreement_rp", "student_accuracy_undefended",
                "student_accuracy_rp"):
        assert 0.0 <= d[key] <= 1.0, key
    # a student trained on undefended labels of public faces beats chance on private faces
    assert d["agreement_undefended"] > 3 * CHANCE
    assert (out / "report.md").stat().st_size > 0


def _check_audit(out, summary):
    rows = summary["audit"]["rows"]
    assert {r["dataset"] for r in rows} == {"insurance", "fair", "diabetes"}
    assert {r["model"] for r in rows} == {"plain", "augmented"}
    for r in rows:
        assert 0.0 <= r["smoothed_reading"] <= 1.0 and 0.0 <= r["base_reading"] <= 1.0
    for d in ("insurance", "fair", "diabetes"):
        for m in ("plain", "augmented"):
            assert (out / d / m / "report.md").stat().st_size > 0
            assert (out / d / m / "summary.json").stat().st_size > 0


@pytest.mark.slow
def test_reproduce_all_quick(tmp_path, monkeypatch):
    cache = default_cache_dir()  # $RPJAX_CACHE, one folder per test run (conftest.py)
    prepared = []
    real_prepare = faces.prepare
    monkeypatch.setattr(faces, "prepare", lambda c: prepared.append(c) or real_prepare(c))
    assert cli.main(["reproduce", "all", "--quick", "--out", str(tmp_path),
                     "--cache-dir", cache, "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["experiments"] == ["rap", "attacks", "inversion", "frontier",
                                      "distillation", "audit"]
    assert summary["preset"] == "quick"
    assert summary["versions"]["jax"] and summary["versions"]["dp-accounting"]
    assert set(summary["seconds"]) == {"rap", "attacks", "inversion", "frontier", "distillation",
                                       "audit", "total"}
    report = (tmp_path / "report.md").read_text()
    for title in ("Experiment A", "Adaptive attackers", "Experiment B",
                  "Privacy-utility frontier",
                  "Distillation boundary",
                  "The audit on three real data sets"):  # every experiment it ran
        assert title in report, title
    for png in ("rap/figure1_bmi_histogram.png", "attacks/attacks.png",
                "inversion/asr_vs_sigma.png",
                "frontier/frontier.png", "audit/privacy_vs_sigma.png"):
        assert f"]({png})" in report
    assert "Run time:" in report and "Versions:" in report
    assert "agree or disagree with the paper" in report
    assert list(summary["paper_vs_measured"]) == summary["experiments"]
    measured = summary["paper_vs_measured"]["inversion"]["measured"]
    assert measured["undefended_asr"] == summary["inversion"]["attacks"]["brep_mi"][
        "undefended"]["asr"]
    assert "e-16" not in report and "e-17" not in report  # rounding-noise stds print as 0
    _check_rap(tmp_path / "rap", summary)
    _check_attacks(tmp_path / "attacks", summary)
    _check_inversion(tmp_path / "inversion", summary)
    _check_frontier(tmp_path / "frontier", summary)
    _check_distillation(tmp_path / "distillation", summary)
    _check_audit(tmp_path / "audit", summary)
    assert os.listdir(cache)  # trained models were cached with orbax
    assert len(prepared) == 1  # inversion, frontier and distillation share one faces setup


_FILES = {"rap": ("summary.json", "people.csv", "report.md", "figure1_bmi_histogram.png",
                  "interval_lengths.png"),
          "attacks": ("summary.json", "report.md", "attacks.png"),
          "inversion": ("summary.json", "identities.csv", "report.md", "asr_vs_sigma.png",
                        "grid_brep_mi.png", "grid_mi_face.png"),
          "frontier": ("summary.json", "points.csv", "report.md", "frontier.png"),
          "distillation": ("summary.json", "report.md"),
          "audit": ("summary.json", "report.md", "privacy_vs_sigma.png", "insurance", "fair",
                    "diabetes")}


@pytest.mark.parametrize("name", reproduce.EXPERIMENTS)
def test_each_experiment_runs_end_to_end_on_its_tiny_settings(name, tmp_path):
    """The whole pipeline of one experiment (configure, run in a context, write, report,
    summary) on settings that take seconds; the numbers are not checked (tiny means nothing),
    the outputs' presence and shape are."""
    assert cli.main(["reproduce", name, "--tiny", "--out", str(tmp_path), "--no-cache",
                     "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["experiments"] == [name] and summary["preset"] == "tiny"
    assert set(summary["seconds"]) == {name, "total"} and name in summary["config"]
    assert sorted(os.listdir(tmp_path / name)) == sorted(_FILES[name])
    written = json.loads((tmp_path / name / "summary.json").read_text())
    assert written["experiment"] == name and written["versions"]["jax"]
    report = (tmp_path / "report.md").read_text()
    assert f"- **{name}**:" in report  # its comparison with the paper
    # ... and in summary.json: the paper's numbers, the measured ones, the same sentence
    head = summary["paper_vs_measured"][name]
    assert set(head) == {"paper", "measured", "verdict"}
    assert (head["paper"] is None) == (name == "audit")  # the paper has no audit
    assert isinstance(head["measured"], dict) and head["measured"]
    assert f"- **{name}**: {head['verdict']}" in report
    assert "paper_accuracy" in summary["glossary"] and "paper_vs_measured" in report
    if name == "frontier":  # it reran the inversion it reuses, unreported
        assert not (tmp_path / "inversion").exists()
        assert {p["method"] for p in summary["frontier"]} == {
            "none", "rp", "dpsgd", "randomized_response", "abstain", "output_noise"}


def test_the_frontier_needs_the_inversion_in_its_context():
    from rpjax.experiments import Context, FrontierConfig, run_experiment

    with pytest.raises(ValueError, match="frontier reuses the result of inversion"):
        run_experiment("frontier", FrontierConfig.tiny(), Context(progress=False))
    with pytest.raises(TypeError, match="ctx must be an rpjax.experiments.Context"):
        run_experiment("rap", None, ctx={"progress": False})


def test_reproduce_rejects_bad_arguments(capsys):
    assert cli.main(["reproduce", "all", "--quick", "--full"]) == 2
    assert "--quick" in capsys.readouterr().err
    assert cli.main(["reproduce", "all", "--tiny", "--quick"]) == 2
    assert "at most one of --tiny" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["reproduce", "nonsense"])


def test_the_registry_is_the_cli_and_the_faces_setup_is_built_once(monkeypatch):
    parser = cli.build_parser()
    for name in ("all", *reproduce.REGISTRY):
        assert parser.parse_args(["reproduce", name]).experiment == name
    assert reproduce.EXPERIMENTS == ("rap", "attacks", "inversion", "frontier", "distillation",
                                     "audit")
    for name, exp in reproduce.REGISTRY.items():
        assert exp.name == name
    built = []
    monkeypatch.setattr(faces, "prepare", lambda c: built.append(c) or object())
    for preset in reproduce.PRESETS:
        ctx = Context(progress=False)
        configs = {n: e.configure(Options(preset, None, False, "pca"))
                   for n, e in reproduce.REGISTRY.items()}
        # distillation runs on the inversion's setup; the frontier reuses the inversion's result
        assert configs["distillation"].faces == configs["inversion"].faces
        assert len({id(ctx.faces(c.faces)) for c in (configs["inversion"],
                                                     configs["distillation"])}) == 1
    assert len(built) == len(reproduce.PRESETS)


def _inversion_record(sigma, n, asr):
    return {"sigma": sigma, "n": n, "target": "undefended", "asr": asr, "asr_std": 0.1,
            "asr_per_seed": [asr], "asr_top5": asr, "asr_initial": 0.0, "initial_found": 2,
            "asr_among_found": asr, "queries": 3.0, "forward_passes": 3.0, "distance": 1.0,
            "accuracy": 0.9, "abstain_rate": 0.0, "paper_accuracy": None, "seconds": 1.0}


def test_typed_results_write_the_same_json_and_files_without_parsing_names(tmp_path):
    """Hand-made typed results through the pure tables and the writers (no training)."""
    from rpjax._src.experiments.distillation import experiment as distillation
    from rpjax._src.experiments.distillation import report as distillation_report
    from rpjax._src.experiments.frontier import experiment as frontier
    from rpjax._src.experiments.frontier import report as frontier_report
    from rpjax._src.experiments.inversion import experiment as inversion
    from rpjax._src.experiments.inversion import report as inversion_report

    t, size = 2, 8
    images = np.linspace(0, 1, t * size * size).reshape(t, size, size, 1)
    settings = [(None, None), (0.1, 10)]
    attack = {"undefended": _inversion_record(None, None, 0.9),
              "rp": [_inversion_record(0.1, 10, 0.5)]}
    result = inversion.InversionResult(
        config={"image_size": size, "alpha": 0.01, "seeds": [0]}, num_identities=t,
        target_accuracy=0.9, target_paper_accuracy=None, evaluator_accuracy=0.95,
        chance_asr=0.5, attacks={"brep_mi": attack, "mi_face": attack}, seconds=1.0,
        versions={}, faces=InversionConfig.quick().faces,
        grids=tuple(inversion.Grid(a, "undefended", s, n, images)
                    for a in ("brep_mi", "mi_face") for s, n in settings),
        per_identity=tuple(inversion.IdentitySuccess(a, "undefended", s, n, 10 + c, c, 0.5)
                           for a in ("brep_mi", "mi_face") for s, n in settings
                           for c in range(t)),
        private_images=images, private_labels=np.arange(t))
    paths = inversion_report.write(result, str(tmp_path / "inversion"))
    written = json.loads(open(paths["summary"]).read())
    assert list(written) == list(result.summary())
    assert written["paper"] == inversion.InversionResult.paper
    assert not any(k.startswith("_") for k in written)
    rows = open(paths["csv"]).read().splitlines()
    assert rows[0] == "attack,target_model,sigma,n,identity,class,success_rate"
    assert rows[1] == "brep_mi,undefended,,,10,0,0.5" and len(rows) == 1 + 2 * 2 * t
    assert "73%" in open(paths["markdown"]).read()
    assert {os.path.basename(p) for k, p in paths.items() if k.startswith("plot")} == {
        "asr_vs_sigma.png", "grid_brep_mi.png", "grid_mi_face.png"}

    point = {"method": "none", "accuracy": 0.9, "abstain_rate": 0.0, "asr_brep_mi": 0.9,
             "asr_mi_face": 0.9, "pareto_brep_mi": True, "pareto_mi_face": True}
    front = frontier.FrontierResult(
        points=[point, {**point, "method": "rp", "sigma": 0.1, "n": 10, "accuracy": 0.8,
                        "asr_brep_mi": 0.5, "pareto_mi_face": False}],
        config={"accountant": "rdp", "delta": 1e-5}, chance_asr=0.5, seconds=1.0, versions={})
    paths = frontier_report.write(front, str(tmp_path / "frontier"))
    assert json.loads(open(paths["summary"]).read())["frontier"][1]["sigma"] == 0.1
    assert open(paths["csv"]).read().splitlines()[0].endswith(",sigma,n")
    assert "61.7%" in open(paths["markdown"]).read()

    rec = {"answered": 5, "queries": 6, "forward_passes": 6, "agreement": 0.5,
           "student_accuracy": 0.4}
    dist = distillation.DistillationResult(
        agreement_undefended=0.5, agreement_rp=0.4, student_accuracy_undefended=0.4,
        student_accuracy_rp=0.3, target_accuracy=0.9, chance=0.5, undefended=rec,
        rp=[{"sigma": 0.1, "n": 20, **rec}], config={"budget": 6}, seconds=1.0, versions={})
    paths = distillation_report.write(dist, str(tmp_path / "distillation"))
    written = json.loads(open(paths["summary"]).read())
    assert list(written) == list(dist.summary()) and written["paper"] == dist.paper
    assert set(dist.headline()) <= set(written)
