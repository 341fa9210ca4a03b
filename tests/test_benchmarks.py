"""The benchmark scripts run in their quick form (no performance target is asserted)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run_quick(script, out, timeout):
    """Runs `benchmarks/<script> --quick --json out`; returns (stdout, parsed JSON)."""
    proc = subprocess.run(
        [sys.executable, os.path.join(_ROOT, "benchmarks", script), "--quick", "--json",
         str(out)], capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


@pytest.mark.slow
def test_bench_engine_quick(tmp_path):
    stdout, result = _run_quick("bench_engine.py", tmp_path / "bench.json", 600)
    for model in ("mlp", "cnn"):
        (record,) = result["results"][model]
        assert record["fwd_per_s"] > 0 and record["median_s"] > 0
    assert "fwd/s" in stdout


@pytest.mark.slow
def test_bench_certify_quick(tmp_path):
    stdout, result = _run_quick("bench_certify.py", tmp_path / "certify.json", 900)
    assert result["machine"]["matmul_flops_per_s"] > 0
    for model in ("mlp", "olivetti_cnn", "cifar_cnn"):
        (record,) = result[model]
        for key in ("rpjax_fwd_per_s", "reference_fwd_per_s", "ratio", "flop_fraction"):
            assert record[key] > 0, (model, key)
        assert record["ratio"] == pytest.approx(
            record["rpjax_fwd_per_s"] / record["reference_fwd_per_s"])
        assert record["max_logit_diff"] < 1e-3
    mem = result["memory"]
    assert len(mem["rss_bytes"]) == len(mem["ns"]) == 3
    assert all(b > 0 for b in mem["program_bytes"]["mlp"])
    assert "ratio" in stdout


@pytest.mark.slow
def test_bench_sequential_quick(tmp_path):
    """The quick run's JSON is complete and its numbers agree with each other."""
    from scipy.stats import binom

    stdout, result = _run_quick("bench_sequential.py", tmp_path / "sequential.json", 600)
    cfg = result["config"]
    n, n0, alpha = cfg["n"], cfg["n0"], cfg["alpha"]
    assert cfg["quick"] and cfg["n_max"] == n and result["versions"]["jax"]
    assert set(result["tasks"]) == {"insurance_mlp", "olivetti_cnn", "synthetic",
                                    "cifar_profile"}
    for name, rec in result["tasks"].items():
        task, methods = rec["task"], rec["methods"]
        b, radii = task["num_inputs"], task["radii"]
        assert set(methods) == {"cohen", "decision", "decision_short", "budget"}, name
        assert methods["cohen"]["forward_passes"] == b * (n0 + n)
        assert methods["cohen"]["samples_used_total"] == b * n
        assert task["r_task"] == pytest.approx(cfg["r_task_sigma_units"][name] * task["sigma"])
        for m, v in methods.items():
            assert v["forward_passes"] >= v["samples_used_total"] + b * n0, (name, m)
            assert v["samples_used_mean"] * b == pytest.approx(v["samples_used_total"])
            assert 0 <= v["samples_used_quantiles"]["0.1"] <= v["samples_used_quantiles"]["0.99"]
            assert v["samples_used_quantiles"]["0.99"] <= n
            acc = v["certified_accuracy"]
            assert len(acc) == len(radii) and all(0.0 <= a <= 1.0 for a in acc), (name, m)
            assert all(np.diff(acc) <= 0), (name, m)  # non-increasing in r
            assert acc[0] == pytest.approx(v["accuracy"])
            assert 0.0 <= v["certified_accuracy_at_r"] <= v["accuracy"]
            assert 0.0 <= v["abstain_rate"] <= 1.0 and v["acr"] >= 0.0
            assert v["wall_s"] > 0, (name, m)
            if m != "cohen":
                assert sum(v["decision_counts"].values()) == b
                assert 0.0 <= v["samples_at_cap"] <= 1.0
        dec = methods["decision"]
        assert dec["decision_matches_radius"], name
        assert dec["certified_accuracy_at_r"] <= dec["decision_counts"]["1"] / b
        targets = rec["targets"]
        assert targets["binding"] is False
        assert methods["decision_short"]["decision_matches_radius"], name
        for d in rec["decision_at_radii"].values():
            assert d["accuracy_diff"] == pytest.approx(
                d["certified_accuracy_at_r"] - d["cohen_certified_accuracy_at_r"])
            assert 0.0 <= d["samples_at_cap"] <= 1.0 and d["n_max"] <= n
        assert 0.0 <= rec["budget_floor"]["acr_loss_floor"] <= 1.0
        for m in ("decision", "decision_short", "budget"):
            t, v = targets[m], methods[m]
            fwd = methods["cohen"]["forward_passes"] / v["forward_passes"]
            wall = methods["cohen"]["wall_s"] / v["wall_s"]
            assert t["fwd_ratio"] == pytest.approx(fwd) and t["wall_ratio"] == pytest.approx(wall)
            assert t["pass_fwd"] == (fwd >= cfg["targets"][m.split("_")[0]]["fwd_ratio_min"])
            wall_min = cfg["targets"]["wall_fraction_of_fwd_ratio_min"]
            assert t["pass_wall"] == (wall >= wall_min * fwd)
            extra = (t["pass_vs_fixed_n"] and t["pass_vs_oracle_allocation"]
                     if m == "budget" else True)
            assert t["pass"] == (t["pass_fwd"] and t["pass_wall"] and t["pass_accuracy"]
                                 and extra)
        # the budget rule against fixed-n Cohen at its own mean sample count and against the
        # allocation that knows pA
        at_n, oracle = rec["cohen_at_budget_n"], rec["oracle_allocation"]
        assert at_n["n"] == max(1, round(methods["budget"]["samples_used_mean"]))
        assert at_n["forward_passes"] == b * (n0 + at_n["n"])
        assert 0 < oracle["samples_mean"] <= n and oracle["acr"] >= 0
        assert targets["budget"]["acr_minus_cohen_at_same_n"] == pytest.approx(
            methods["budget"]["acr"] - at_n["acr"])
        assert targets["decision"]["accuracy_diff"] == pytest.approx(
            dec["certified_accuracy_at_r"] - methods["cohen"]["certified_accuracy_at_r"])
        # the oracle SPRT and Wald's floor, n0 counted for every input
        for key, o in rec["oracle"].items():
            assert o["oracle_forward_passes"] >= b * n0 and o["wald_floor_forward_passes"] >= b * n0
            assert o["oracle_forward_passes"] <= b * (n0 + o["n_max"])
            assert o["method_over_oracle"] == pytest.approx(
                methods[key.replace("_same_errors", "")]["forward_passes"]
                / o["oracle_forward_passes"])
            assert o["oracle_forward_passes"] == pytest.approx(
                np.mean(o["oracle_forward_passes_per_seed"]))
        floor = targets["floor"]
        assert floor["decision_over_oracle"] == pytest.approx(
            rec["oracle"]["decision"]["method_over_oracle"])
        assert floor["pass_decision"] == (
            floor["decision_over_oracle"] <= cfg["floor_targets"]["decision_over_oracle_max"]
            and floor["decision_accuracy_loss"]
            <= cfg["floor_targets"]["decision_accuracy_loss_max"])
    # the synthetic task's certificates against its exact smoothed classifier: each is wrong
    # with probability <= alpha, so more than binom.isf(1e-6, B, alpha) wrong ones is a bug
    for name in ("synthetic", "cifar_profile"):
        synth = result["tasks"][name]
        bound = binom.isf(1e-6, synth["task"]["num_inputs"], alpha)
        for m, v in synth["methods"].items():
            s = v["soundness"]
            assert s["violations"] == s["wrong_label"] + s["radius_above_exact"] <= bound, m
            assert s["released"] == round((1 - v["abstain_rate"])
                                          * synth["task"]["num_inputs"])
    assert "PASS" in stdout or "FAIL" in stdout


def test_bench_sequential_plans_on_rpjax_grid():
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    try:
        import bench_sequential
    finally:
        sys.path.pop(0)
    from rpjax._src import confseq

    for n_max in (1, 50, 64, 2000, 100_000):
        np.testing.assert_array_equal(bench_sequential.allocation_grid(n_max),
                                      confseq.allocation_grid(n_max))


def test_bench_sequential_fixed_m_ceiling_is_the_randomized_binomial_test():
    """The accuracy ceiling of any test capped at m samples: exact size alpha at p*, and its
    power between the non-randomized tests at the boundary count and one above it (scipy)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    try:
        import bench_sequential
    finally:
        sys.path.pop(0)
    from scipy.stats import binom

    m, alpha, p_star = 200, 0.05, 0.7
    at = bench_sequential.fixed_m_ceiling(np.array([p_star]), np.array([True]), p_star, m=m,
                                          alpha=alpha)
    assert abs(at - alpha) < 1e-12
    k = next(k for k in range(m + 1) if binom.sf(k, m, p_star) <= alpha)  # reject X > k
    pa = np.array([0.72, 0.75, 0.8, 0.9])
    power = np.array([bench_sequential.fixed_m_ceiling(pa[i:i + 1], np.array([True]), p_star,
                                                       m=m, alpha=alpha) for i in range(4)])
    assert np.all(power >= binom.sf(k, m, pa)) and np.all(power <= binom.sf(k - 1, m, pa))
    assert np.all(np.diff(power) > 0)
    both = bench_sequential.fixed_m_ceiling(pa, np.array([True, False, True, False]), p_star,
                                            m=m, alpha=alpha)
    np.testing.assert_allclose(both, (power[0] + power[2]) / 4)


@pytest.mark.slow
def test_bench_resnet_quick(tmp_path):
    """The quick ResNet run certifies, times and labels itself not comparable with Cohen's."""
    stdout, result = _run_quick("bench_resnet.py", tmp_path / "resnet.json", 600)
    cfg = result["config"]
    assert cfg["quick"] and result["device"]["kind"] and result["versions"]["jax"]
    assert set(result["results"]) == {"resnet110", "resnet50"}
    for name, r in result["results"].items():
        k, n0, n = r["images"], r["n0"], r["n"]
        assert (k, n0, n) == (cfg["images"], cfg["n0"], cfg["n"]), name
        assert r["timed_s"] > 0 and r["compile_s"] >= 0 and r["parameters"] > 0, name
        assert r["s_per_image"] == pytest.approx(r["timed_s"] / k)
        assert r["fwd_per_s"] == pytest.approx(k * (n0 + n) / r["timed_s"])
        assert r["projected_s_per_image_at_full_n"] == pytest.approx(100_100 / r["fwd_per_s"])
        ref = r["reference"]
        assert ref["low_s"] <= ref["typical_s"] <= ref["high_s"]
        assert r["speedup_vs_reference"] == pytest.approx(ref["typical_s"] / r["s_per_image"])
        assert r["comparable"] is False and 0.0 <= r["abstain_rate"] <= 1.0
    assert "NOT comparable" in stdout and "s/image" in stdout


@pytest.mark.slow
def test_bench_scaling_quick(tmp_path):
    """The quick scaling run's JSON is complete, its ratios are positive and recomputable from
    its own fields, and every split gave the baseline's rows byte for byte."""
    stdout, result = _run_quick("bench_scaling.py", tmp_path / "scaling.json", 900)
    cfg = result["config"]
    assert cfg["quick"] and cfg["rounds"] >= 1
    assert result["versions"]["jax"] and result["machine"]["cpu_count"]
    assert set(result["configs"]) == set(cfg["configs"]) == {
        "p1_d1", "p1_d2", "p1_d4", "p2_d1", "p2_d2"}
    fwd_total = cfg["inputs"] * (cfg["n0"] + cfg["n"])
    blocks = -(-cfg["inputs"] // cfg["block"])
    bases = result["configs"][cfg["baseline"]]["runs"]
    assert [b["round"] for b in bases] == list(range(cfg["rounds"]))
    for key, c in result["configs"].items():
        assert (c["processes"], c["devices_per_process"]) == (
            cfg["configs"][key]["processes"], cfg["configs"][key]["devices_per_process"])
        assert len(c["runs"]) == cfg["rounds"], key
        for r, base in zip(c["runs"], bases, strict=True):
            assert r["round"] == base["round"]
            assert r["forward_passes"] == fwd_total and r["rows"] == cfg["inputs"], key
            assert r["summary_complete"] and r["rows_equal_baseline"], key
            procs = r["per_process"]
            assert len(procs) == c["processes"]
            ran = sorted(b for p in procs for b in p["blocks"])
            assert ran == list(range(blocks)), key  # every block once, over all processes
            for p in procs:
                assert p["steady_blocks"] == len(p["blocks"]) - 1 >= 1
                assert p["steady_s"] == pytest.approx(sum(p["block_s"][1:]))
            assert r["steady_forward_passes"] == sum(p["steady_forward_passes"] for p in procs)
            assert r["steady_s_max"] == max(p["steady_s"] for p in procs)
            assert r["aggregate_fwd_per_s"] == pytest.approx(
                r["steady_forward_passes"] / r["steady_s_max"])
            assert r["sum_of_process_rates"] >= r["aggregate_fwd_per_s"] * (1 - 1e-9)
            assert r["median_block_rate"] == pytest.approx(
                sum(p["median_block_fwd_per_s"] for p in procs))
            assert r["e2e_fwd_per_s"] == pytest.approx(fwd_total / r["wall_s"])
            for ratio, rate in (("ratio", "aggregate_fwd_per_s"),
                                ("median_ratio", "median_block_rate"),
                                ("e2e_ratio", "e2e_fwd_per_s")):
                assert r[ratio] > 0 and r[ratio] == pytest.approx(r[rate] / base[rate]), key
        for k in ("ratio", "median_ratio", "e2e_ratio", "aggregate_fwd_per_s"):
            assert c[k] == pytest.approx(np.median([r[k] for r in c["runs"]])), (key, k)
        assert c["overhead"] == pytest.approx(1 - c["ratio"])
        assert c["e2e_overhead"] == pytest.approx(1 - c["e2e_ratio"])
        assert c["rows_equal_baseline"] is True
    assert result["configs"][cfg["baseline"]]["ratio"] == 1.0
    assert result["rows_all_equal"] is True
    assert "rows identical across all configurations: True" in stdout


@pytest.mark.slow
def test_budget_table_quick(tmp_path):
    """The budget table's quick form: the allowed answers keep the best adaptive attack under
    the cap and under the bound (the script asserts the latter for every row)."""
    stdout, result = _run_quick("budget_table.py", tmp_path / "budget.json", 600)
    assert len(result["rows"]) == 3 and "attack@allowed" in stdout
    for row in result["rows"]:
        assert row["answers_allowed"] >= 1
        assert row["best_attack_at_allowed"] <= row["bound_at_allowed"] <= result["cap"]


@pytest.mark.slow
def test_bench_ledger_quick(tmp_path):
    """The quick ledger run's JSON is complete and consistent: every ledgered release's
    overhead is recomputable from its own fields, and its answers were checked in the file."""
    stdout, result = _run_quick("bench_ledger.py", tmp_path / "ledger.json", 600)
    cfg, res = result["config"], result["results"]
    assert cfg["quick"] and cfg["n"] == 1000 and cfg["mode"] == "predict"
    assert set(res) == {"none", "full_one", "full_distinct", "normal_one", "normal_distinct"}
    base = res["none"]["s_per_query"]
    for name, rec in res.items():
        assert rec["s_per_query"] > 0 and len(rec["block_s_per_query"]) >= 1, name
        assert rec["queries_per_s"] == pytest.approx(1 / rec["s_per_query"])
        if name != "none":
            assert rec["overhead_fraction"] == pytest.approx((rec["s_per_query"] - base) / base)
            assert rec["ledger_answers_checked"] == cfg["queries"] + 1
            led = rec["ledger_in_release_s_per_query"]
            assert 0 < led["median"] <= led["p99"] <= led["max"] and led["mean"] > 0
            assert rec["ledger_in_release_fraction_of_query"] == pytest.approx(
                led["mean"] / base)
    for key, s in result["ledger_alone_s_per_query"].items():
        assert s > 0 and result["ledger_alone_fraction_of_query"][key] == pytest.approx(s / base)
    assert "ledger/query" in stdout
