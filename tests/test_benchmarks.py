"""The benchmark scripts run in their quick form (no performance target is asserted)."""

import json
import os
import subprocess
import sys

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
